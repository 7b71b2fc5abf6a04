"""TTL-triggered SpikeGLX recordings (spec 3.4 Alignment): the trial starts of the sync move back by the
pre-trigger margin, ``round(trgTTLMarginS x imSampRate)`` samples of the probe, on both sync routes
(the probe's bitcode file and the CatGT NIDQ edge files); without ``trgTTLMarginS`` nothing moves.

Ground truth from the generators: with ``ttl_margin_s`` the sync files put each trial start (the
trigger pulse) that margin after the trial's true start, as SpikeGLX records it; ``trial_start`` of
the generated files is the true start, ``sync_start`` what the file says."""

from pathlib import Path

import numpy as np
import pytest
from test_ingest_ephys import WHEN, _load_session

from pipeline import ephys, experiment
from pipeline.ingest.ephys import ingest_ephys as ingest
from pipeline.ingest.ephys.step import ProbeFolder, ProbeInputs, build_probe
from pipeline.io.spikeglx import SpikeGLXError, read_meta
from pipeline.synthetic.sorting import write_kilosort
from pipeline.synthetic.spikeglx import mtl_bitcodes, write_bitcode_mat, write_meta, write_xa_files

MARGIN = 0.5  # s, as the real TTL-triggered sample
REAL_META = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "spikeglx_meta"


def _plain(path: Path) -> dict[str, str]:
    """Independent parse of a .meta: key=value lines, '~' stripped."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip().lstrip("~")] = v.strip()
    return out


def _true_trials(spikes: np.ndarray, true_start: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Each spike's behaviour trial by the true starts (0 before the first), written apart from the ingest."""
    k = np.searchsorted(true_start, spikes, side="right") - 1
    return np.where(k >= 0, np.asarray(trials)[np.clip(k, 0, None)], 0)


# ---------------------------------------------------------------------------------------------
# the reader


@pytest.fixture(scope="module")
def real_meta():
    if not REAL_META.is_dir():
        pytest.skip(f"real SpikeGLX samples not found at {REAL_META}")
    return REAL_META


def test_real_ttl_triggered_meta(real_meta):
    path = real_meta / "ibl-neuropixel" / "sample3B2_exported.imec0.ap.meta"
    plain = _plain(path)
    assert plain["trigMode"] == "TTL" and plain["trgTTLMarginS"] == "0.5"
    meta = read_meta(path)
    assert meta.ttl_margin_s == 0.5
    assert meta.ttl_margin_samples == round(0.5 * float(plain["imSampRate"])) == 15000  # 29999.83625 Hz


def test_real_metas_without_the_key_have_no_margin(real_meta):
    read = 0
    for path in sorted(real_meta.rglob("*.meta")):
        plain = _plain(path)
        try:
            meta = read_meta(path)
        except SpikeGLXError:
            continue  # a file the reader refuses (tested in test_io_spikeglx)
        read += 1
        if "trgTTLMarginS" in plain:
            assert meta.ttl_margin_s == float(plain["trgTTLMarginS"]), path
        else:
            assert meta.ttl_margin_s is None and meta.ttl_margin_samples == 0, path
    assert read > 10


def test_generated_meta_margin(tmp_path):
    g = write_meta(tmp_path / "a.imec0.ap.meta", seed=4, ttl_margin_s=0.25)
    meta = read_meta(g.path)
    assert meta.raw["trigMode"] == "TTL"
    assert meta.ttl_margin_s == 0.25
    assert meta.ttl_margin_samples == g.ttl_margin_samples == round(0.25 * g.sampling_rate)
    plain = write_meta(tmp_path / "b" / "a.imec0.ap.meta", seed=4)
    assert "trgTTLMarginS" not in _plain(plain.path) and plain.ttl_margin_samples == 0
    meta = read_meta(plain.path)
    assert meta.ttl_margin_s is None and meta.ttl_margin_samples == 0
    # the margin changes nothing else of the file (the same random draws)
    a, b = _plain(g.path), _plain(plain.path)
    assert {k: v for k, v in a.items() if not k.startswith("trg") and k != "trigMode"} == {
        k: v for k, v in b.items() if k != "trigMode"
    }
    # a blank value is no margin
    blank = write_meta(tmp_path / "c.imec0.ap.meta", seed=4, overrides={"trgTTLMarginS": ""})
    assert read_meta(blank.path).ttl_margin_s is None


@pytest.mark.parametrize("value", ["abc", "-0.1", "nan", "inf"])
def test_bad_margin_is_refused(tmp_path, value):
    g = write_meta(tmp_path / "a.imec0.ap.meta", seed=4, overrides={"trgTTLMarginS": value})
    with pytest.raises(SpikeGLXError) as e:
        read_meta(g.path)
    assert str(e.value).startswith(str(g.path)) and f"trgTTLMarginS={value!r}" in str(e.value)


# ---------------------------------------------------------------------------------------------
# the build step alone (no database): both routes, with and without the margin


def _probe_dir(root: Path) -> Path:
    return root / "dm5" / WHEN.strftime("%Y%m%d") / "1"


@pytest.mark.parametrize("margin", [None, MARGIN])
@pytest.mark.parametrize("route", ["bitcode", "xa"])
def test_build_moves_starts_by_the_margin(tmp_path, route, margin):
    root = tmp_path / "ephys"
    pdir = _probe_dir(root)
    meta = write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1, ttl_margin_s=margin)
    sort = write_kilosort(pdir / "kilosort2", n_units=6, n_spikes=12_000, seed=3)
    trials = np.arange(1, 41)
    codes = mtl_bitcodes(trials)
    rate, fs = meta.sampling_rate, sort.truth.sample_rate
    mtl = {int(t): "multi-target-licking" for t in trials}  # go = the trial-start pulse on route (b)
    inputs = ProbeInputs(trials, codes, {int(t): False for t in trials}, rig="RRig", tasks=mtl)
    M = 0 if margin is None else round(margin * rate)
    assert meta.ttl_margin_samples == M
    if route == "bitcode":
        bit = write_bitcode_mat(pdir / "dm5_g0_bitcode.mat", codes, seed=2, fs=rate, ttl_margin_s=margin)
        true_start, sync_start, go = bit.trial_start, bit.sync_start, bit.go_cue
        np.testing.assert_array_equal(sync_start - true_start, M)
    else:
        xa = write_xa_files(pdir.parent, codes, seed=3, ttl_margin_s=margin, rate=rate)
        true_start, sync_start = xa.trial_start * rate, xa.sync_start * rate
        go = sync_start  # multi-target licking: no go cue, go = the pulse
        np.testing.assert_allclose(sync_start - true_start, M, atol=0.02)  # edges have 6 decimals
    rec = build_probe("dm5", 1, ProbeFolder(root, pdir.parent, pdir, 1), inputs)
    assert rec.trials.trial.tolist() == trials.tolist()
    # the starts the spikes are cut by: the sync's minus exactly M samples, i.e. the true ones
    starts = np.asarray(rec.units.trial_start)
    np.testing.assert_allclose(starts, sync_start - M, rtol=0, atol=1e-6)
    np.testing.assert_allclose(starts, true_start, atol=0.02)
    np.testing.assert_allclose(rec.trials.trial_start, (true_start - true_start[0]) / fs, atol=1e-6)
    np.testing.assert_allclose(rec.trials.go_time, (go - true_start[0]) / fs, atol=1e-6)
    if margin is None:
        assert "trgTTLMarginS" not in rec.sync
    else:
        assert rec.sync.endswith(f", starts - trgTTLMarginS 0.5 s ({M} samples)"), rec.sync
    if route == "xa":  # go stays at the pulse: the margin before it is now part of the trial
        np.testing.assert_allclose(rec.trials.go_time - rec.trials.trial_start, M / fs, atol=1e-6)
    t = sort.truth
    got = {u["unit"]: u for u in rec.units}
    for cid in t.cluster_ids:
        mask = t.spike_clusters == cid
        u = got[int(cid)]
        np.testing.assert_allclose(u["spike_times"], (t.spike_times[mask] - true_start[0]) / fs, atol=1e-6)
        np.testing.assert_array_equal(u["spike_trials"], _true_trials(t.spike_times[mask], true_start, trials))


# ---------------------------------------------------------------------------------------------
# ingest-ephys on a database (every backend)


@pytest.fixture
def session(database, tmp_path):
    """A loaded behaviour session (dm5, 40 trials), its trial bitcodes, starts and go times."""
    return _load_session(tmp_path, "RRig")


def _check_stored(ikey, sort, trials, true_start, go, margin_samples, sync_start):
    """Stored trials and spikes equal the ground truth (true starts, in samples of the probe), and
    differ from what the unshifted sync starts would give."""
    fs = sort.truth.sample_rate
    got = (ephys.Clustering.Trial & ikey).to_pandas().reset_index().sort_values("trial")
    assert got.trial.tolist() == list(trials)
    start = got.trial_start.to_numpy()
    np.testing.assert_allclose(start, (true_start - true_start[0]) / fs, atol=1e-6)
    np.testing.assert_allclose(got.go_time.to_numpy(), (go - true_start[0]) / fs, atol=1e-6)
    t = sort.truth
    units = {u["unit"]: u for u in (ephys.Unit & ikey).to_dicts()}
    assert sorted(units) == sorted(t.cluster_ids.tolist())
    by_trial = dict(zip(got.trial.tolist(), start))
    moved = 0
    for cid in t.cluster_ids:
        mask = t.spike_clusters == cid
        s = t.spike_times[mask]
        u = units[int(cid)]
        times, spike_trials = np.asarray(u["spike_times"]), np.asarray(u["spike_trials"])
        # spike times from the first trial's true start, trial of each spike by the true starts
        np.testing.assert_allclose(times, (s - true_start[0]) / fs, atol=1e-6)
        truth_trials = _true_trials(s, true_start, trials)
        np.testing.assert_array_equal(spike_trials, truth_trials)
        # trial-aligned spike times (s from the spike's trial start) equal the truth
        inside = truth_trials > 0
        k = np.searchsorted(trials, truth_trials[inside])
        aligned = times[inside] - np.array([by_trial[int(x)] for x in spike_trials[inside]])
        np.testing.assert_allclose(aligned, (s[inside] - true_start[k]) / fs, atol=1e-6)
        # without the margin the sync's starts would have cut the spikes elsewhere
        moved += int(np.sum(_true_trials(s, sync_start, trials) != truth_trials))
        if margin_samples:
            assert not np.allclose(times, (s - sync_start[0]) / fs, atol=1e-6)
    assert (moved > 0) == bool(margin_samples)


@pytest.mark.parametrize("margin", [None, MARGIN])
def test_bitcode_route_on_the_database(session, tmp_path, margin):
    root = tmp_path / "ephys"
    pdir = _probe_dir(root)
    meta = write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1, ttl_margin_s=margin)
    rate = meta.sampling_rate
    # the recording saw behaviour trials 3..38; starts and go cues at the behaviour's own times
    recorded = range(2, 38)
    trials = np.arange(3, 39)
    start_s = session["start_s"].loc[trials].to_numpy()
    go_s = start_s + session["go_s"].reindex(trials).to_numpy()
    bit = write_bitcode_mat(
        pdir / "dm5_g0_bitcode.mat",
        session["codes"],
        recorded=recorded,
        seed=2,
        fs=rate,
        trial_start_s=start_s,
        go_s=go_s,
        first_sample=40_000,
        ttl_margin_s=margin,
    )
    sort = write_kilosort(pdir / "kilosort2", n_units=10, n_spikes=30_000, seed=3)
    M = meta.ttl_margin_samples
    assert M == (0 if margin is None else 15000)  # round(0.5 x ~30000 Hz)
    # the raw sync (sTrig) is the true start + M samples: what the ingest must take back
    np.testing.assert_array_equal(bit.sync_start - bit.trial_start, M)
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    if margin is None:
        assert "trgTTLMarginS" not in s.loaded[0]
    else:
        assert "36 trials, sync dm5_g0_bitcode.mat, starts - trgTTLMarginS 0.5 s (15000 samples)" in s.loaded[0]
    ikey = dict(session["key"], insertion_number=1)
    _check_stored(ikey, sort, trials, bit.trial_start, bit.go_cue, M, bit.sync_start)


def test_xa_route_on_the_database(session, tmp_path):
    # 10-bit codes, as the NIDQ route carries
    codes = mtl_bitcodes(session["trials"])
    for t, c in zip(session["trials"], codes):
        experiment.TrialNote.update1(dict(session["key"], trial=int(t), trial_note_type="bitcode", trial_note=c))
    root = tmp_path / "ephys"
    pdir = _probe_dir(root)
    meta = write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1, ttl_margin_s=MARGIN)
    sort = write_kilosort(pdir / "kilosort2", n_units=8, n_spikes=20_000, seed=3)
    rate, M = meta.sampling_rate, meta.ttl_margin_samples
    recorded = range(2, 38)
    trials = np.arange(3, 39)
    starts = session["start_s"].loc[trials].to_numpy() + 4.0
    xa = write_xa_files(pdir.parent, codes, starts, recorded=recorded, seed=6, ttl_margin_s=MARGIN, rate=rate)
    # the raw edges are the true starts + M samples of the probe (to the edges' 6 decimals)
    np.testing.assert_allclose((xa.sync_start - xa.trial_start) * rate, M, atol=0.02)
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert (
        "36 trials, sync CatGT adjusted NIDQ edges run_g0_tcat.nidq.XA_0_0.adj.txt, "
        "starts - trgTTLMarginS 0.5 s (15000 samples)" in s.loaded[0]
    ), s.loaded
    ikey = dict(session["key"], insertion_number=1)
    # go = the trial-start pulse + the behaviour's go time (the rig times its trial from the pulse)
    go = (xa.sync_start + session["go_s"].reindex(trials).to_numpy()) * rate
    _check_stored(ikey, sort, trials, xa.trial_start * rate, go, M, xa.sync_start * rate)
