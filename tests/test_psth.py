"""populate-psth on a probe with planted responses: PSTHs, selectivity, cell types and unit
statistics against what was planted, p-values against scipy, PSTHs against np.histogram."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell
from scipy.stats import ttest_ind

from pipeline import ephys, lab, psth
from pipeline.analysis import psth as apsth
from pipeline.analysis.spikes import ISI_THRESHOLD, ProbeSpikes, trough_to_peak_ms, unit_stats
from pipeline.compute import populate_psth
from pipeline.ingest.behavior import ingest_behavior
from pipeline.ingest.ephys.step import ProbeFolder, ProbeRecord, write_probe
from pipeline.io.spikeglx import electrode_config, read_meta
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.responses import make_planted_probe, windows
from pipeline.synthetic.spikeglx import write_meta

WHEN = dt.datetime(2023, 6, 1, 10, 0, 0)
KEY = dict(subject_id=71, session=1, insertion_number=1)


def _record(planted, meta) -> ProbeRecord:
    cfg = electrode_config(meta.probe_type, meta.electrodes)
    units = [
        dict(
            unit=u.unit,
            unit_quality="good",
            electrode=int(cfg["electrodes"][u.unit]),
            unit_posx=None,
            unit_posy=None,
            n_spikes=len(u.spike_times),
            spike_times=u.spike_times,
            spike_trials=u.spike_trials,
            spike_sites=None,
            spike_depths=None,
            unit_amp=120.0 + u.unit,
            unit_snr=None,
            waveform=u.waveform,
        )
        for u in planted.units
    ]
    metrics = pd.DataFrame(dict(unit=[u.unit for u in planted.units], presence_ratio=0.99, amplitude_cutoff=0.01))
    return ProbeRecord(
        probe_serial="planted-1",
        probe_type=meta.probe_type,
        config=dict(cfg, is_used=np.ones(len(cfg["electrodes"]), dtype=bool)),
        sampling_rate=planted.sample_rate,
        clustering=dict(
            clustering_method="kilosort2",
            clustering_time=WHEN,
            quality_control=True,
            manual_curation=False,
            sampling_rate=planted.sample_rate,
        ),
        trials=planted.trials,
        units=units,
        metrics=[("ClusterMetric", metrics)],
        labels=None,
        files=[],
        n_spikes=sum(len(u.spike_times) for u in planted.units),
        method="kilosort2",
        notes=[],
    )


def load_planted(tmp_path):
    """Load the planted session and probe (its insertion location in the left hemisphere) into
    the database; returns (behaviour ground truth, planted probe)."""
    lab.Subject.insert1(dict(subject_id=71, sex="M"))
    lab.WaterRestriction.insert1(
        dict(subject_id=71, water_restriction_number="dm71", wr_start_date="2023-01-01", wr_start_weight=22)
    )
    behaviour = write_session_file(tmp_path / "rig", h2o="dm71", when=WHEN, n_trials=240, seed=11)
    assert ingest_behavior([["RRig", str(tmp_path / "rig"), 0]]).ok
    probe = make_planted_probe(behaviour, hemisphere="left", seed=5)
    meta = read_meta(write_meta(tmp_path / "m.imec0.ap.meta", probe="np1", seed=1).path)
    write_probe(KEY, ProbeFolder(tmp_path, tmp_path, tmp_path, 1), _record(probe, meta))
    ephys.ProbeInsertion.InsertionLocation.insert1(
        dict(KEY, skull_reference="Bregma", ap_location=2500, ml_location=-1500, depth=1000)
    )
    return behaviour, probe


@pytest.fixture
def planted(database, tmp_path):
    return load_planted(tmp_path)


def test_populate_psth_recovers_what_was_planted(planted):
    behaviour, probe = planted
    s = populate_psth()
    assert s.ok and len(s.loaded) == 1, s.report()
    units = {u.unit: u for u in probe.units}

    # selectivity: >= 95 % of planted labels recovered
    got = dict(zip(*(psth.UnitSelectivity.Unit & KEY).to_arrays("unit", "unit_selectivity")))
    right = sum(got[u] == units[u].kind for u in units)
    assert right / len(units) >= 0.95, {u: (units[u].kind, got[u]) for u in units if got[u] != units[u].kind}
    # in its planted period, every selective unit is selective to the planted side
    per = (psth.PeriodSelectivity.Unit & KEY).to_pandas().reset_index().set_index(["unit", "period"])
    for u in units.values():
        if u.period:
            assert per.loc[(u.unit, u.period), "period_selectivity"] == u.kind

    # cell types and unit statistics match the construction
    ct = dict(zip(*(ephys.UnitCellType.Unit & KEY).to_arrays("unit", "cell_type")))
    assert ct == {u.unit: u.cell_type for u in units.values()}
    stats = (ephys.UnitStat.Unit & KEY).to_pandas().reset_index().set_index("unit")
    trials = behaviour.trials
    total = float((trials.stop_time - trials.start_time).sum())
    for u in units.values():
        n_in = int(np.count_nonzero(u.spike_trials > 0))
        rate = n_in / total
        assert stats.loc[u.unit, "avg_firing_rate"] == pytest.approx(rate, rel=1e-9)
        expected_isi = (u.n_violations / (2 * len(u.spike_times) * ISI_THRESHOLD)) / rate
        assert stats.loc[u.unit, "isi_violation"] == pytest.approx(expected_isi, rel=1e-9, abs=1e-12)
    assert sum(u.n_violations > 0 for u in units.values()) >= 5

    # PSTHs match the planted rates within 4 standard errors (Poisson counts)
    centers = psth.bin_centers()
    for u in units.values():
        if u.kind == "non-selective":
            continue
        cond = (
            "good_noearlylick_left_hit"
            if (u.kind == "contra-selective") == (probe.hemisphere == "right")
            else ("good_noearlylick_right_hit")
        )
        rates, _, n = psth.unit_psth(dict(KEY, unit=u.unit), cond)
        assert n > 20
        # the middle of the delay period (-0.9 .. -0.3 s before go) and a baseline stretch (-3 .. -2.5 s)
        inside = (centers > -0.9) & (centers < -0.3)
        mean_in = rates[inside].mean()
        expect = u.base_rate + (u.extra_rate if u.period == "delay" else 0.0)
        se = np.sqrt(expect / (n * apsth.BIN_S * inside.sum()))
        assert abs(mean_in - expect) < 4 * se + 0.5, (u.unit, u.period, mean_in, expect)


def test_p_values_and_psth_against_independent_computation(planted):
    behaviour, probe = planted
    assert populate_psth().ok
    # p-values: scipy's ttest_ind on trial rates computed here from the planted spikes
    trials = psth.selectivity_trials(dict(subject_id=71, session=1))
    ipsi = trials.index[trials.trial_instruction == "left"].to_numpy()
    contra = trials.index[trials.trial_instruction == "right"].to_numpy()
    bt = behaviour.trials.set_index("trial")
    start, end = windows(behaviour.trials.sort_values("trial"), behaviour.events, "delay")
    win = pd.DataFrame(dict(start=start, end=end), index=behaviour.trials.sort_values("trial").trial)
    stored = (psth.PeriodSelectivity.Unit & KEY & {"period": "delay"}).to_pandas().reset_index().set_index("unit")
    for u in probe.units[:12]:
        t = u.spike_times + bt.start_time.iloc[0]

        def rates(trial_numbers):
            return np.array(
                [
                    np.count_nonzero((t >= win.start[k]) & (t < win.end[k])) / (win.end[k] - win.start[k])
                    for k in trial_numbers
                ]
            )

        expected = ttest_ind(rates(ipsi), rates(contra)).pvalue
        assert stored.loc[u.unit, "p_value"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
        assert stored.loc[u.unit, "ipsi_firing_rate"] == pytest.approx(rates(ipsi).mean(), rel=1e-9)
    # PSTHs: a plain np.histogram of the same trials
    for u in probe.units[:5]:
        cond = "good_noearlylick_right_hit"
        rates_stored, _, n = psth.unit_psth(dict(KEY, unit=u.unit), cond)
        chosen = psth.condition_trials(cond, KEY)
        go = probe.trials.set_index("trial").go_time
        aligned = np.concatenate([u.spike_times[u.spike_trials == k] - go[k] for k in chosen])
        counts, _ = np.histogram(aligned, bins=apsth.bin_edges())
        np.testing.assert_allclose(rates_stored, counts / len(chosen) / apsth.BIN_S, rtol=1e-5)
        # and the raster function gives the same spikes
        raster_t, raster_row = psth.trial_aligned_spikes(dict(KEY, unit=u.unit), cond)
        assert len(raster_t) == counts.sum() and raster_row.max() < len(chosen)


def test_rerun_computes_nothing_and_cli_reports(planted, database):
    # the makes' fingerprint (one raw query) names the sorting time as DataJoint's fetch does
    assert ephys._fingerprint(KEY)[-1] == str((ephys.Clustering & KEY).fetch1("clustering_time"))
    assert populate_psth().ok
    again = populate_psth()
    assert again.ok and not again.loaded and again.skipped[0][1] == "already computed"
    r = run_mapshell(["populate-psth", "--probe", '{"subject_id": 71}'], database.env())
    assert r.returncode == 0 and "probes: 1 found, 0 loaded, 1 skipped" in r.stdout, r.stdout + r.stderr


def test_probe_without_location_gets_no_selectivity(planted):
    ephys.ProbeInsertion.InsertionLocation.delete_quick()
    s = populate_psth()
    assert s.ok and len(s.loaded) == 1
    assert len(psth.UnitPsth & KEY) == 17 and not (psth.PeriodSelectivity & KEY)
    assert any("no insertion location" in n for n in s.notes), s.report()


def test_pure_functions_without_database():
    """ProbeSpikes statistics on a tiny hand-checkable probe (numbers derived in the test)."""
    p = ProbeSpikes.from_units(
        units=[1, 2],
        times=[np.array([0.1, 0.1015, 0.5, 1.5]), np.array([0.2, 1.2])],
        trial=[1, 2],
        trial_start=[0.0, 1.0],
        go_time=[0.5, 1.5],
    )
    rate, isi = unit_stats(p, np.array([1.0, 1.0]))
    np.testing.assert_allclose(rate, [2.0, 1.0])
    assert isi[0] == pytest.approx((1 / (2 * 4 * 0.002)) / 2.0) and isi[1] == 0
    binned = apsth.bin_probe(p)
    r, n = binned.psth(np.array([True, True]))
    assert n == 2 and r[0].sum() * apsth.BIN_S * 2 == 4 and r[1].sum() * apsth.BIN_S * 2 == 2
    fs = 30000.0
    t = np.arange(82) / fs * 1000
    narrow = -np.exp(-0.5 * ((t - 1) / 0.05) ** 2) + 0.3 * np.exp(-0.5 * ((t - 1.3) / 0.1) ** 2)
    assert trough_to_peak_ms(narrow[None, :], fs)[0] == pytest.approx(0.3, abs=0.02)


def test_probe_computations_against_direct_counts():
    """The per-probe computations (trial boundaries by binary search, PSTHs of trial groups, period
    rates from window edges) against spike-by-spike counts, on a probe with an unsorted unit, an
    empty unit, a trial without go cue and windows that reach into neighbouring trials."""
    from scipy.stats import poisson

    from pipeline.analysis.spikes import drift_metric

    rng = np.random.default_rng(3)
    n_t, n_u = 60, 12
    starts = np.cumsum(rng.uniform(6.5, 12, n_t))
    starts -= starts[0]
    go = starts + rng.uniform(2, 4, n_t)
    go[5] = np.nan
    times = [np.sort(rng.uniform(-20, starts[-1] + 10, rng.integers(0, 3000))) for _ in range(n_u)]
    times[3] = times[3][::-1].copy()  # not in time order
    times[4] = np.zeros(0)
    times[7] = np.array([starts[2], starts[2] + 0.001, starts[2] + 0.0015])
    p = ProbeSpikes.from_units(np.arange(1, n_u + 1), [t.copy() for t in times], np.arange(1, n_t + 1), starts, go)
    ts = [np.sort(t) for t in times]
    tidx = [np.searchsorted(starts, t, side="right") - 1 for t in ts]  # the ingest's rule
    assert np.array_equal(p.trial_index(), np.concatenate(tidx))

    durations = np.append(np.diff(starts), 8.0)
    rate, isi = unit_stats(p, durations)
    for u in range(n_u):
        assert rate[u] == np.count_nonzero(tidx[u] >= 0) / durations.sum()
        if rate[u] > 0:
            v = np.count_nonzero(np.diff(ts[u]) < ISI_THRESHOLD)
            assert isi[u] == pytest.approx((v / (2 * len(ts[u]) * ISI_THRESHOLD)) / rate[u])
    blocks = n_t // 6
    counts = np.array([[np.count_nonzero(tidx[u] // 6 == b) for b in range(blocks)] for u in range(n_u)], float)
    block_dur = durations[: blocks * 6].reshape(blocks, 6).sum(axis=1)
    mean = counts.sum(axis=1) / block_dur.sum()
    cdf = poisson.cdf(counts, mean[:, None] * block_dur[None, :])
    expected = ((cdf < 0.05) | (cdf > 0.95)).mean(axis=1)
    expected[~(mean > 0)] = np.nan
    np.testing.assert_allclose(drift_metric(p, durations), expected)

    cube = apsth.bin_probe(p).counts
    for u in range(n_u):
        for k in range(n_t):
            h = np.histogram(ts[u][tidx[u] == k] - go[k], bins=apsth.bin_edges())[0] if k != 5 else np.zeros(150)
            assert np.array_equal(cube[k, u], h), (u, k)
    sets = [np.array([1, 2, 3, 9]), np.arange(1, n_t + 1), np.array([], dtype=int), np.array([6, 7, 99])]
    rates, n = apsth.condition_psths(p, sets)
    for c, s in enumerate(sets):
        expected, m = apsth.BinnedProbe(cube, p.trial).psth(np.isin(p.trial, s))
        assert n[c] == m
        np.testing.assert_allclose(rates[c], expected, rtol=1e-6, equal_nan=True)

    start = rng.uniform(-3, -1, n_t)
    end = start + rng.uniform(0.5, 2, n_t)
    start[8] = np.nan
    windows = {"a": (start, end), "b": (end - 0.5, end + 6.0)}  # "b" reaches into the next trial
    out = apsth.period_rates(p, windows)
    for name, (s_, e_) in windows.items():
        for u in range(n_u):
            rel = ts[u] - np.append(go, np.nan)[tidx[u]]
            for k in range(n_t):
                inside = np.count_nonzero((tidx[u] == k) & (rel >= s_[k]) & (rel < e_[k]))
                expect = inside / (e_[k] - s_[k]) if e_[k] - s_[k] > 0 else np.nan
                assert out[name][k, u] == pytest.approx(expect, nan_ok=True), (name, u, k)


def test_encoded_blob_rows_are_the_codecs():
    """bulk.encode_rows gives, row for row, the bytes DataJoint's <blob> codec would store."""
    from types import SimpleNamespace

    from datajoint.builtin_codecs.blob import BlobCodec

    from pipeline.ingest.bulk import encode_rows

    codec = BlobCodec()
    table = SimpleNamespace(heading={"x": SimpleNamespace(codec=codec)})
    for rows in (np.random.default_rng(1).random((5, 150)).astype(np.float32), np.arange(12.0).reshape(3, 4)):
        assert encode_rows(table, "x", rows) == [codec.encode(r) for r in rows]
    big = np.random.default_rng(2).random((3, 400))  # compressed by the codec: encoded one by one
    assert encode_rows(table, "x", big) == [codec.encode(r) for r in big]
