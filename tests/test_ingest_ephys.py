"""ingest-ephys and load-insertion-location on a real database: generated behaviour sessions with
Kilosort / JRClust probes (known ground truth), re-runs, changed files, bad sync."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ephys, lab
from pipeline.ingest import ephys as ingest_ephys
from pipeline.ingest.behavior import ingest_behavior
from pipeline.ingest.ephys import ingest_ephys as ingest
from pipeline.ingest.ephys.step import segment_spikes
from pipeline.ingest.insertion_location import load_insertion_locations
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.sorting import write_jrclust_v3, write_jrclust_v4, write_kilosort
from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)


@pytest.fixture
def session(database, tmp_path):
    """A loaded behaviour session (dm5, 40 trials) and its trial bitcodes."""
    lab.Subject.insert1(dict(subject_id=55, sex="F"))
    lab.WaterRestriction.insert1(
        dict(subject_id=55, water_restriction_number="dm5", wr_start_date="2023-01-01", wr_start_weight=21)
    )
    truth = write_session_file(tmp_path / "rig", h2o="dm5", when=WHEN, n_trials=40, seed=8)
    assert ingest_behavior([["RRig", str(tmp_path / "rig"), 0]]).ok
    codes = truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial")
    return dict(key=dict(subject_id=55, session=1), trials=codes.trial.to_numpy(), codes=list(codes.trial_note))


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
