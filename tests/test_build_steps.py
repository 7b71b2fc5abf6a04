"""The build step of each ingest is pure: files (and what the database would supply) in, rows and
arrays out, checked against the generators' ground truth without any database."""

import datetime as dt
import shutil

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.ingest.behavior.delay_response import RigFile, build_session, group_by_day
from pipeline.ingest.ephys.step import ProbeFolder, ProbeInputs, build_probe, segment_spikes
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.sorting import write_kilosort
from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)


def _rig_files(folder):
    return [RigFile("RRig", folder, p, 0) for p in sorted(folder.glob("*.mat"))]


def test_behavior_build_numbers_trials_through_in_time_order(tmp_path):
    a = write_session_file(tmp_path, h2o="dm1", when=WHEN, n_trials=12, seed=1)
    b = write_session_file(tmp_path, h2o="dm1", when=WHEN + dt.timedelta(hours=2), n_trials=7, seed=2)
    (day_files,) = group_by_day(_rig_files(tmp_path)).values()
    rec = build_session(day_files)
    trials = rec.tables["trials"]
    assert rec.n_trials == len(a.trials) + len(b.trials) == len(trials)
    assert trials["trial"].tolist() == list(range(1, rec.n_trials + 1))
    assert (np.diff(trials["start_time"].to_numpy()) > 0).all()
    offset = (b.trials["start_time"].iloc[0] + 7200) - trials["start_time"].iloc[len(a.trials)]
    assert abs(offset) < 1e-6  # the second file's trials start 2 h after the first file's start
    assert [f["first_trial"] for f in rec.files] == [1, len(a.trials) + 1]
    assert rec.start_source and rec.session_datetime.date() == WHEN.date()


def test_behavior_build_loads_a_copy_once_and_refuses_overlap(tmp_path):
    a = write_session_file(tmp_path / "copy", h2o="dm1", when=WHEN, n_trials=9, seed=1)
    shutil.copy(a.path, tmp_path / "copy" / "dm1_tw2_20230504_110000.mat")
    rec = build_session(list(group_by_day(_rig_files(tmp_path / "copy")).values())[0])
    assert rec.n_trials == 9 and len(rec.files) == 2 and rec.files[1]["n_trials_in_file"] == 0
    assert "same content" in rec.notes[0]
    write_session_file(tmp_path / "overlap", h2o="dm1", when=WHEN, n_trials=20, seed=1)
    write_session_file(tmp_path / "overlap", h2o="dm1", when=WHEN + dt.timedelta(seconds=30), n_trials=3, seed=2)
    with pytest.raises(InputError, match="overlap"):
        build_session(list(group_by_day(_rig_files(tmp_path / "overlap")).values())[0])


def test_ephys_build_matches_ground_truth_without_database(tmp_path):
    behaviour = write_session_file(tmp_path / "rig", h2o="dm5", when=WHEN, n_trials=30, seed=8)
    codes = behaviour.notes[behaviour.notes.trial_note_type == "bitcode"].sort_values("trial")
    pdir = tmp_path / "ephys" / "dm5" / WHEN.strftime("%Y%m%d") / "1"
    write_meta(pdir / "dm5_g0_tcat.imec0.ap.meta", probe="np1", seed=1)
    bit = write_bitcode_mat(pdir / "dm5_g0_bitcode.mat", list(codes.trial_note), recorded=range(2, 28), seed=2)
    sort = write_kilosort(pdir / "kilosort2", n_units=9, n_spikes=12_000, seed=3)
    inputs = ProbeInputs(codes.trial.to_numpy(), list(codes.trial_note), {})
    rec = build_probe("dm5", 1, ProbeFolder(tmp_path / "ephys", pdir.parent, pdir, 1), inputs)
    t, fs = sort.truth, sort.truth.sample_rate
    assert rec.method == "kilosort2" and rec.n_spikes == len(t.spike_times)
    assert rec.trials["trial"].tolist() == list(range(3, 29))
    spike_trial = segment_spikes(t.spike_times, bit.trial_start, np.arange(3, 29))
    units = {u["unit"]: u for u in rec.units}
    assert sorted(units) == sorted(t.cluster_ids.tolist())
    for cid in t.cluster_ids:
        mask = t.spike_clusters == cid
        np.testing.assert_allclose(units[int(cid)]["spike_times"], (t.spike_times[mask] - bit.trial_start[0]) / fs)
        np.testing.assert_array_equal(units[int(cid)]["spike_trials"], spike_trial[mask])
    assert dict(rec.metrics)["ClusterMetric"]["unit"].tolist() == [int(c) for c in sorted(units)]
