"""ingest-ephys and load-insertion-location on a real database: generated behaviour sessions with
Kilosort / JRClust probes (known ground truth), re-runs, changed files, bad sync; the NIDQ (CatGT XA
edge files) sync route."""

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ephys, experiment, lab
from pipeline.ingest import ephys as ingest_ephys
from pipeline.ingest.behavior import ingest_behavior
from pipeline.ingest.ephys import ingest_ephys as ingest
from pipeline.ingest.ephys.step import ProbeFolder, ProbeInputs, build_probe, segment_spikes
from pipeline.ingest.insertion_location import load_insertion_locations
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.sorting import write_jrclust_v3, write_jrclust_v4, write_kilosort
from pipeline.synthetic.spikeglx import mtl_bitcodes, write_bitcode_mat, write_meta, write_xa_files

WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)


def _load_session(tmp_path, rig: str) -> dict:
    lab.Subject.insert1(dict(subject_id=55, sex="F"))
    lab.WaterRestriction.insert1(
        dict(subject_id=55, water_restriction_number="dm5", wr_start_date="2023-01-01", wr_start_weight=21)
    )
    truth = write_session_file(tmp_path / "rig", h2o="dm5", when=WHEN, n_trials=40, seed=8)
    assert ingest_behavior([[rig, str(tmp_path / "rig"), 0]]).ok
    codes = truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial")
    go = truth.events[truth.events.trial_event_type == "go"].groupby("trial").trial_event_time.min()
    return dict(
        key=dict(subject_id=55, session=1),
        trials=codes.trial.to_numpy(),
        codes=list(codes.trial_note),
        start_s=truth.trials.set_index("trial").start_time,  # s from the first trial's start
        go_s=go,  # s from the trial's start
    )


@pytest.fixture
def session(database, tmp_path):
    """A loaded behaviour session (dm5, 40 trials) and its trial bitcodes."""
    return _load_session(tmp_path, "RRig")


@pytest.fixture
def mtl_session(database, tmp_path):
    """The same session recorded on the RRig-MTL rig."""
    return _load_session(tmp_path, "RRig-MTL")


def _ten_bit_codes(session: dict) -> dict:
    """The session's TrialNote bitcodes replaced by 10-bit ones (the MTL rigs' code of the trial
    number), as the NIDQ route carries: the delay-response generator writes 16-bit codes, and the
    MTL rig files that have 10-bit ones are not read by ingest-behavior yet."""
    codes = mtl_bitcodes(session["trials"])
    for t, c in zip(session["trials"], codes):
        experiment.TrialNote.update1(dict(session["key"], trial=int(t), trial_note_type="bitcode", trial_note=c))
    return dict(session, codes=codes)


def _nidq_probe(root, folder="1"):
    """A probe folder without a bitcode file (meta + Kilosort), in the session folder."""
    pdir = root / "dm5" / WHEN.strftime("%Y%m%d") / folder
    meta = write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1)
    sort = write_kilosort(pdir / "kilosort2", n_units=8, n_spikes=10_000, seed=3)
    return pdir, meta, sort


def _probe(root, folder, session, sorter="kilosort", probe="np1", **kw):
    pdir = root / "dm5" / WHEN.strftime("%Y%m%d") / folder
    meta = write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe=probe, seed=1)
    # the recording saw behaviour trials 3..38 (it started late and stopped early)
    bit = write_bitcode_mat(pdir / "dm5_g0_bitcode.mat", session["codes"], recorded=range(2, 38), seed=2)
    if sorter == "kilosort":
        sort = write_kilosort(pdir / "kilosort2", n_units=12, n_spikes=30_000, seed=3, **kw)
    elif sorter == "jrclust_v3":
        sort = write_jrclust_v3(
            pdir / "dm5_g0_t0.imec0.ap_imec3_opt3_jrc.mat", n_units=8, n_spikes=15_000, seed=5, **kw
        )
    else:
        sort = write_jrclust_v4(pdir / "dm5_g0_t0.imec0.ap_res.mat", n_units=10, n_spikes=20_000, seed=4, **kw)
    return pdir, meta, bit, sort


def test_kilosort_probe_with_ground_truth(session, tmp_path):
    root = tmp_path / "ephys"
    pdir, meta, bit, sort = _probe(root, "1", session)
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    ikey = dict(session["key"], insertion_number=1)
    cl = (ephys.Clustering & ikey).fetch1()
    assert cl["clustering_method"] == "kilosort2" and cl["quality_control"]
    assert (ephys.ProbeInsertion & ikey).fetch1("probe_type") == "neuropixels 1.0 - 3B"
    # trials on the probe clock: the 36 recorded behaviour trials, first at 0 s
    trials = (ephys.Clustering.Trial & ikey).to_pandas().reset_index().sort_values("trial")
    assert list(trials.trial) == list(range(3, 39))
    fs = sort.truth.sample_rate
    np.testing.assert_allclose(trials.trial_start, (bit.trial_start - bit.trial_start[0]) / fs)
    np.testing.assert_allclose(trials.go_time, (bit.go_cue - bit.trial_start[0]) / fs)
    # every unit's spike train, trial assignment and quality equal the generator's
    t = sort.truth
    units = {u["unit"]: u for u in (ephys.Unit & ikey).to_dicts()}
    assert sorted(units) == sorted(t.cluster_ids.tolist())
    spike_trial = segment_spikes(t.spike_times, bit.trial_start, np.arange(3, 39))
    for cid in t.cluster_ids:
        mask = t.spike_clusters == cid
        u = units[int(cid)]
        np.testing.assert_allclose(np.asarray(u["spike_times"]), (t.spike_times[mask] - bit.trial_start[0]) / fs)
        np.testing.assert_array_equal(np.asarray(u["spike_trials"]), spike_trial[mask])
        assert u["n_spikes"] == mask.sum() and u["unit_quality"] == t.cluster_quality[int(cid)]
    assert sum(u["n_spikes"] for u in units.values()) == len(t.spike_times)
    assert len(ephys.Clustering.ClusterMetric & ikey) == len(units)
    # idempotent
    again = ingest([str(root)])
    assert again.ok and not again.loaded and len(again.skipped) == 1
    # a changed sorting is reported, not reloaded
    (sort.path / "spike_times.npy").write_bytes((sort.path / "spike_times.npy").read_bytes() + b"\0")
    third = ingest([str(root)])
    assert not third.ok and "changed since" in third.failed[0][1]
    assert len(ephys.Unit & ikey) == len(units)


def _check_trains(ikey, sort, bit, first_trial=3):
    """Every unit's spike times (s from the first recorded trial) and trials equal the generator's."""
    t = sort.truth
    fs = t.sample_rate
    units = {u["unit"]: u for u in (ephys.Unit & ikey).to_dicts()}
    assert sorted(units) == sorted(t.cluster_ids.tolist())
    n = len(bit.trial_start)
    spike_trial = segment_spikes(t.spike_times, bit.trial_start, np.arange(first_trial, first_trial + n))
    for cid in t.cluster_ids:
        mask = t.spike_clusters == cid
        u = units[int(cid)]
        np.testing.assert_allclose(np.asarray(u["spike_times"]), (t.spike_times[mask] - bit.trial_start[0]) / fs)
        np.testing.assert_array_equal(np.asarray(u["spike_trials"]), spike_trial[mask])
        assert u["unit_quality"] == t.cluster_quality[int(cid)]
    return units


def test_jrclust_v3_probe(session, tmp_path):
    root = tmp_path / "ephys"
    _, _, bit, sort = _probe(root, "1", session, sorter="jrclust_v3")
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    ikey = dict(session["key"], insertion_number=1)
    assert (ephys.Clustering & ikey).fetch1("clustering_method") == "jrclust_v3"
    units = _check_trains(ikey, sort, bit)
    assert all(u["waveform"] is not None for u in units.values())


def test_jrclust_probe_and_bad_sync(session, tmp_path):
    root = tmp_path / "ephys"
    _, _, bit2, sort = _probe(root, "2", session, sorter="jrclust", probe="np2_4shank")
    pdir3, _, _, _ = _probe(root, "3", session)
    # probe 3's sync file disagrees with the behaviour (a corrupted bitcode in the middle)
    write_bitcode_mat(
        pdir3 / "dm5_g0_bitcode.mat",
        session["codes"],
        recorded=range(0, 30),
        seed=2,
        corrupt={10: "1" * 16},
        trial_num=False,
    )
    s = ingest([str(root)])
    assert len(s.loaded) == 1 and len(s.failed) == 1, s.report()
    assert "bitcode.mat" in s.failed[0][1]
    ikey = dict(session["key"], insertion_number=2)
    assert (ephys.Clustering & ikey).fetch1("clustering_method") == "jrclust_v4"
    assert (ephys.ProbeInsertion & ikey).fetch1("probe_type") == "neuropixels 2.0 - MS"
    _check_trains(ikey, sort, bit2)
    assert not (ephys.ProbeInsertion & dict(session["key"], insertion_number=3))  # nothing partial
    assert not (ingest_ephys.EphysIngest & dict(session["key"], insertion_number=3))


def test_load_insertion_location(session, database, tmp_path):
    root = tmp_path / "ephys"
    _probe(root, "1", session)
    assert ingest([str(root)]).ok
    sheet = tmp_path / "notes.csv"
    pd.DataFrame(
        [
            dict(
                water_restriction_number="dm5",
                session_date=WHEN.date(),
                insertion_number=1,
                skull_reference="Bregma",
                ap_location=2500,
                ml_location=-1500,
                depth=3000,
                theta=15,
                phi=0,
                beta=None,
                brain_area="ALM",
                hemisphere="left",
                drift_presence="no",
                alignment_confidence="yes",
                good_period="0-20;30-end",
            )
        ]
    ).to_csv(sheet, index=False)
    s = load_insertion_locations(sheet)
    assert s.ok and len(s.loaded) == 1, s.report()
    ikey = dict(session["key"], insertion_number=1)
    loc = (ephys.ProbeInsertion.InsertionLocation & ikey).fetch1()
    assert loc["ml_location"] == -1500 and loc["skull_reference"] == "Bregma" and loc["beta"] is None
    q = (ephys.ProbeInsertionQuality & ikey).fetch1()
    assert bool(q["alignment_confidence"]) and not bool(q["drift_presence"])
    starts = (ephys.Clustering.Trial & ikey).to_pandas().reset_index()
    expected = set(starts.trial[(starts.trial_start < 20) | (starts.trial_start >= 30)])
    assert set((ephys.ProbeInsertionQuality.GoodTrial & ikey).to_arrays("trial")) == expected
    assert load_insertion_locations(sheet).skipped  # same values again: no-op
    bad = tmp_path / "bad.csv"
    df = pd.read_csv(sheet)
    df = pd.concat([df.assign(ml_location=1500), df.assign(insertion_number=7, brain_area="Cortex")])
    df.to_csv(bad, index=False)
    s = load_insertion_locations(bad)
    reasons = dict(s.failed)
    assert "insertion" in reasons["bad.csv row 3"] and "not loaded" in reasons["bad.csv row 3"]
    assert (ephys.ProbeInsertion.InsertionLocation & ikey).fetch1("ml_location") == -1500  # nothing written
    r = run_mapshell(["load-insertion-location", str(bad)], database.env())
    assert r.returncode == 1 and "bad.csv row 3" in r.stdout


def test_same_size_and_time_but_new_content_is_noticed(session, tmp_path):
    import os

    root = tmp_path / "ephys"
    pdir, meta, bit, sort = _probe(root, "1", session)
    assert ingest([str(root)]).ok
    f = sort.path / "spike_clusters.npy"
    st = f.stat()
    clusters = np.load(f)
    clusters[:141] = clusters[141:282]  # 141 spikes relabelled: same size
    np.save(f, clusters)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same time stamp
    assert f.stat().st_size == st.st_size
    again = ingest([str(root)])
    assert not again.ok and "spike_clusters.npy (same size and time, different content)" in again.failed[0][1]


def test_spikes_out_of_time_order_are_sorted_and_said_so(session, tmp_path):
    root = tmp_path / "ephys"
    pdir, meta, bit, sort = _probe(root, "1", session)
    f = sort.path / "spike_times.npy"
    times = np.load(f)
    times[[100, 101]] = times[[101, 100]]
    if times[100] == times[101]:
        times[100] += 5
    np.save(f, times)
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert any("spike_times.npy" in n and "time order" in n for n in s.notes), s.notes
    ikey = dict(session["key"], insertion_number=1)
    for u in (ephys.Unit & ikey).to_dicts():
        t = np.asarray(u["spike_times"])
        assert (np.diff(t) >= 0).all()


def test_unit_positions_are_in_the_probes_frame(session, tmp_path):
    """Kilosort's channel positions are mirrored and shifted against SpikeGLX's geometry; the stored
    unit positions are in the probe's frame, next to their peak electrode's x_coord/y_coord."""
    root = tmp_path / "ephys"
    _probe(root, "1", session)
    assert ingest([str(root)]).ok
    ikey = dict(session["key"], insertion_number=1)
    rows = (ephys.Unit * lab.ProbeType.Electrode & ikey).to_dicts()
    assert rows
    for r in rows:
        assert abs(r["unit_posx"] - r["x_coord"]) < 20 and abs(r["unit_posy"] - r["y_coord"]) < 30, r


# ---------------------------------------------------------------------------------------------
# the NIDQ sync route: CatGT XA edge files in the session folder (spec 3.4 (b))


def _expected_trials(ikey, xa_start_s, trials, session, meta, sort):
    """Trials on the probe clock: the XA seconds in samples of the probe (meta rate), stored in
    seconds of the sorting's rate from the first trial, go = start + the behaviour's go time."""
    rate, fs = meta.sampling_rate, sort.truth.sample_rate
    start_samples = np.asarray(xa_start_s) * rate
    got = (ephys.Clustering.Trial & ikey).to_pandas().reset_index().sort_values("trial")
    assert got.trial.tolist() == list(trials)
    np.testing.assert_allclose(got.trial_start, (start_samples - start_samples[0]) / fs, atol=1e-9)
    go_samples = (np.asarray(xa_start_s) + session["go_s"].loc[list(trials)].to_numpy()) * rate
    np.testing.assert_allclose(got.go_time, (go_samples - start_samples[0]) / fs, atol=1e-9)
    return SimpleNamespace(trial_start=start_samples)


def test_nidq_route_probe_with_ground_truth(session, tmp_path):
    s10 = _ten_bit_codes(session)
    root = tmp_path / "ephys"
    pdir, meta, sort = _nidq_probe(root)
    sdir = pdir.parent
    recorded = range(2, 38)  # behaviour trials 3..38
    starts = s10["start_s"].loc[[i + 1 for i in recorded]].to_numpy()
    # plain (NIDQ clock) files 3 s off the adjusted ones: the adjusted pair must be the one used
    write_xa_files(sdir, s10["codes"], starts, recorded=recorded, adjusted=False, offset_s=7.0, seed=5)
    adj = write_xa_files(sdir, s10["codes"], starts, recorded=recorded, offset_s=4.0, seed=6)
    assert adj.max_jitter > 0.0005
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert "36 trials, sync CatGT adjusted NIDQ edges run_g0_tcat.nidq.XA_0_0.adj.txt" in s.loaded[0], s.loaded
    assert not any("clock" in n for n in s.notes), s.notes
    ikey = dict(session["key"], insertion_number=1)
    truth_sync = _expected_trials(ikey, adj.trial_start, range(3, 39), s10, meta, sort)
    units = _check_trains(ikey, sort, truth_sync)
    assert sum(u["n_spikes"] for u in units.values()) == len(sort.truth.spike_times)
    files = dict(zip(*(ingest_ephys.EphysIngest.EphysFile & ikey).to_arrays("ephys_file", "file_role")))
    assert files["../run_g0_tcat.nidq.XA_0_0.adj.txt"] == "trial starts"
    assert files["../run_g0_tcat.nidq.XA_1_2.adj.txt"] == "bit pulses"
    assert not any("XA_0_0.txt" in f for f in files)
    again = ingest([str(root)])
    assert again.ok and not again.loaded and len(again.skipped) == 1
    with open(adj.pulses_path, "a") as f:  # an edge file changed since: reported, not reloaded
        f.write("999.000000\n")
    third = ingest([str(root)])
    assert not third.ok and "run_g0_tcat.nidq.XA_1_2.adj.txt" in third.failed[0][1]


def test_nidq_route_errors_and_plain_files(session, tmp_path):
    root = tmp_path / "ephys"
    pdir, meta, sort = _nidq_probe(root)
    sdir = pdir.parent
    ikey = dict(session["key"], insertion_number=1)
    starts = session["start_s"].to_numpy()
    codes = mtl_bitcodes(session["trials"])
    # no bit pulses, not an MTL rig: an error, nothing loaded
    none = write_xa_files(sdir, codes, starts, adjusted=False, pulses="none", seed=2)
    s = ingest([str(root)])
    assert not s.ok and len(s.failed) == 1, s.report()
    msg = s.failed[0][1]
    assert str(none.starts_path) in msg and "no bit pulses (no *.XA_1_2 bit-pulse file)" in msg
    assert "only RRig-MTL sessions align without them (this one is on rig 'RRig')" in msg and "\n" not in msg
    # 10-bit codes from the NIDQ, 16-bit ones in the behaviour file: the lengths are named
    good = write_xa_files(sdir, codes, starts, adjusted=False, seed=2)
    s = ingest([str(root)])
    assert not s.ok and "ephys codes have [10] characters, behaviour codes [16]" in s.failed[0][1]
    s10 = _ten_bit_codes(session)
    # damaged edge files: one line naming the file
    text = good.starts_path.read_text()
    lines = text.splitlines()
    good.starts_path.write_text("\n".join(lines[:5] + ["12.5 oops"] + lines[5:]) + "\n")
    s = ingest([str(root)])
    assert not s.ok and s.failed[0][1] == f"{good.starts_path}: line 6 has 2 values ('12.5 oops'); expected one time"
    good.starts_path.write_text(text)
    pulses = good.pulses_path.read_text()
    good.pulses_path.write_text(pulses + f"{starts[-1] + 0.5:.6f}\n")  # a stray pulse after the last code
    s = ingest([str(root)])
    assert not s.ok and s.failed[0][1].startswith(f"{good.pulses_path}: trial 39 (0-based")
    assert "would be bit 64 of a 10-bit code" in s.failed[0][1]
    assert not (ephys.ProbeInsertion & ikey) and not (ingest_ephys.EphysIngest & ikey)
    # the plain files alone: loaded, with a note that the times are not clock-corrected
    good.pulses_path.write_text(pulses)
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert "sync CatGT NIDQ edges run_g0_tcat.nidq.XA_0_0.txt" in s.loaded[0]
    assert any("NIDQ clock" in n and "not clock-corrected" in n for n in s.notes), s.notes
    _check_trains(ikey, sort, _expected_trials(ikey, good.trial_start, range(1, 41), s10, meta, sort), first_trial=1)


def test_mtl_session_without_bits_aligns_one_to_one(mtl_session, tmp_path):
    root = tmp_path / "ephys"
    pdir, meta, sort = _nidq_probe(root)
    starts = mtl_session["start_s"].to_numpy()
    xa = write_xa_files(pdir.parent, mtl_bitcodes(mtl_session["trials"]), starts, offset_s=3.0, pulses="empty")
    s = ingest([str(root)])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert any(
        "RRig-MTL session without bit pulses (run_g0_tcat.nidq.XA_1_2.adj.txt is empty): its 40 NIDQ trials "
        "aligned one to one with the 40 behaviour trials" in n
        for n in s.notes
    ), s.notes
    ikey = dict(mtl_session["key"], insertion_number=1)
    truth_sync = _expected_trials(ikey, xa.trial_start, range(1, 41), mtl_session, meta, sort)
    _check_trains(ikey, sort, truth_sync, first_trial=1)


def test_mtl_session_with_unequal_counts_is_an_error(mtl_session, tmp_path):
    root = tmp_path / "ephys"
    pdir, _, _ = _nidq_probe(root)
    starts = mtl_session["start_s"].to_numpy()[:38]
    xa = write_xa_files(pdir.parent, mtl_bitcodes(mtl_session["trials"]), starts, recorded=range(38), pulses="none")
    s = ingest([str(root)])
    assert not s.ok and len(s.failed) == 1
    assert s.failed[0][1] == (
        f"{xa.starts_path}: RRig-MTL session without bit pulses (no *.XA_1_2 bit-pulse file): 38 NIDQ trial "
        f"starts but 40 behaviour trials, so they cannot be aligned one to one"
    )
    assert not (ephys.ProbeInsertion & dict(mtl_session["key"], insertion_number=1))


def test_nidq_route_without_database(tmp_path):
    """build_probe alone: multi-target-licking trials (no go cue) get go = start; a probe folder with a
    bitcode file uses it even when the session folder has XA files."""
    root = tmp_path / "ephys"
    pdir, meta, sort = _nidq_probe(root)
    trials = np.arange(1, 13)
    xa = write_xa_files(pdir.parent, mtl_bitcodes(trials), pulses="none", seed=3)
    inputs = ProbeInputs(
        trials,
        mtl_bitcodes(trials),
        {int(t): False for t in trials},
        rig="RRig-MTL",
        tasks={int(t): "multi-target-licking" for t in trials},
    )
    pf = ProbeFolder(root, pdir.parent, pdir, 1)
    rec = build_probe("dm5", 1, pf, inputs)
    assert rec.sync.startswith("sync CatGT adjusted NIDQ edges")
    assert rec.trials.trial.tolist() == trials.tolist()
    np.testing.assert_allclose(rec.trials.go_time, rec.trials.trial_start)
    rate, fs = meta.sampling_rate, sort.truth.sample_rate
    np.testing.assert_allclose(rec.trials.trial_start, (xa.trial_start - xa.trial_start[0]) * rate / fs)
    assert any("12 multi-target-licking trials have no go cue" in n for n in rec.notes)
    # other tasks without a go event: no go time
    rec = build_probe("dm5", 1, pf, ProbeInputs(trials, mtl_bitcodes(trials), inputs.free_water, rig="RRig-MTL"))
    assert rec.trials.go_time.isna().all()
    # a bitcode file in the probe folder comes first
    bit = write_bitcode_mat(pdir / "dm5_g0_bitcode.mat", mtl_bitcodes(trials), seed=2)
    rec = build_probe("dm5", 1, pf, inputs)
    assert rec.sync == "sync dm5_g0_bitcode.mat"
    np.testing.assert_allclose(rec.trials.trial_start, (bit.trial_start - bit.trial_start[0]) / fs)


def test_foraging_extras_become_ephys_events(session, tmp_path):
    """A bitcode file with the foraging rigs' extras: its events, licks and camera frames are loaded
    for the aligned trials (behaviour trial numbers), equal to the file's, and archived with the
    sorting on --replace (they are part of the probe's load)."""
    from pipeline import tracking
    from pipeline.ingest.archive import CLUSTERING

    root = tmp_path / "ephys"
    pdir = root / "dm5" / WHEN.strftime("%Y%m%d") / "1"
    write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1)
    bit = write_bitcode_mat(
        pdir / "dm5_g0_bitcode.mat", session["codes"], recorded=range(2, 38), foraging_extras=True, seed=2
    )
    write_kilosort(pdir / "kilosort2", n_units=5, n_spikes=5000, seed=3)
    s = ingest([str(root)])
    assert s.ok, s.report()
    ikey = dict(session["key"], insertion_number=1)
    x = bit.extras
    trial_of = dict(zip(bit.ephys_index, bit.behavior_trials))  # ephys trial -> behaviour trial
    m = x["digMarkerPerTrial"]
    want = {
        (int(trial_of[i]), j, x["headings"][j], float(m[i, j]))
        for i in range(m.shape[0])
        for j in range(m.shape[1])
        if np.isfinite(m[i, j])
    } | {
        (int(trial_of[i]), len(x["headings"]) + k, "zaberstep", float(t))
        for i, ts in enumerate(x["zaberPerTrial"])
        for k, t in enumerate(ts)
    }
    got = {
        (r["trial"], r["trial_event_id"], r["trial_event_type"], r["trial_event_time"])
        for r in (ephys.TrialEvent & ikey).to_dicts()
    }
    assert got == want and {t for t, *_ in got} == set(range(3, 39))
    licks = (ephys.ActionEvent & ikey & {"trial": 10}).to_pandas().reset_index().sort_values("action_event_id")
    i = 10 - 3
    expected = sorted(
        [(t, "left lick") for t in x["lickLPerTrial"][i]] + [(t, "right lick") for t in x["lickRPerTrial"][i]]
    )
    assert list(zip(licks.action_event_time, licks.action_event_type)) == expected
    frames = (tracking.EphysFrameTime & ikey & {"trial": 10, "tracking_device": "Camera 1"}).fetch1()
    np.testing.assert_allclose(frames["frame_time"], x["cameraPerTrial"][1][i])
    assert frames["n_frames"] == len(x["cameraPerTrial"][1][i])
    assert len(tracking.EphysFrameTime & ikey) == 2 * 36
    assert tracking.EphysFrameTime.full_table_name in {t.full_table_name for t in CLUSTERING.tables()}
