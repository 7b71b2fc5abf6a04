"""ingest-tracking: generated DeepLabCut folders (known values) for behavior sessions."""

import datetime as dt

import numpy as np

from pipeline import experiment, lab, tracking
from pipeline.ingest.tracking import ingest_tracking
from pipeline.synthetic.dlc import write_tracking_session

DAY = dt.date(2022, 4, 5)


def _session(subject_id, h2o, n_trials, rig="RRig", hour=10):
    if not (lab.Subject & {"subject_id": subject_id}):
        lab.Subject.insert1(dict(subject_id=subject_id, sex="M"))
        lab.WaterRestriction.insert1(
            dict(subject_id=subject_id, water_restriction_number=h2o, wr_start_date="2022-01-01", wr_start_weight=22)
        )
    lab.Person.insert1(("tester", "Test Er"), skip_duplicates=True)
    lab.Rig.insert1(dict(rig=rig), skip_duplicates=True)
    session = len(experiment.Session & {"subject_id": subject_id}) + 1
    when = dt.datetime.combine(DAY, dt.time(hour))
    key = dict(subject_id=subject_id, session=session)
    experiment.Session.insert1(dict(key, session_date=DAY, session_datetime=when, username="tester", rig=rig))
    experiment.SessionTrial.insert(
        [dict(key, trial=t, start_time=10.0 * t, stop_time=10.0 * t + 8) for t in range(1, n_trials + 1)]
    )
    return key


def test_tracking_loads_with_values(database, tmp_path):
    key = _session(31, "tr1", 6)
    gen = write_tracking_session(
        tmp_path / "video",
        "tr1",
        DAY,
        trials=list(range(1, 7)),
        bodyparts=("nose", "tongue", "paw_left", "objectA"),
        seed=3,
    )
    s = ingest_tracking([["RRig", str(tmp_path / "video")]])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert "objectA" in s.loaded[0]
    assert len(tracking.Tracking & key) == 12  # 6 trials x 2 cameras
    row = (tracking.Tracking & dict(key, trial=4, tracking_device="Camera 1")).fetch1()
    truth = gen.frames[("bottom", 4)]
    assert row["tracking_samples"] == len(truth)
    f = (tracking.Tracking.Feature & dict(key, trial=4, tracking_device="Camera 1", feature="left_paw")).fetch1()
    assert f["bodypart"] == "paw_left"
    scorer = truth.columns.get_level_values(0)[0]
    np.testing.assert_allclose(f["x"], truth[(scorer, "paw_left", "x")].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(f["likelihood"], truth[(scorer, "paw_left", "likelihood")].to_numpy(), rtol=1e-6)
    assert set((tracking.Tracking.Feature & key).to_arrays("feature")) == {"nose", "tongue", "left_paw", "objectA"}
    again = ingest_tracking([["RRig", str(tmp_path / "video")]])
    assert again.found == 0 and len(tracking.Tracking & key) == 12


def test_trial_map_second_session_and_mismatch(database, tmp_path):
    k1 = _session(32, "tr2", 4, hour=9)
    k2 = _session(32, "tr2", 5, hour=14)
    write_tracking_session(tmp_path / "v", "tr2", DAY, trials=[1, 2, 3, 4], positions=("side",), seed=1)
    # the day's second session: its folder has the _2 suffix and a trial map (video started at trial 2)
    write_tracking_session(
        tmp_path / "v", "tr2", DAY, trials=[2, 3, 5], n=2, positions=("side",), seed=2, trial_map={1: 2, 2: 3, 3: 5}
    )
    s = ingest_tracking([["RRig", str(tmp_path / "v")]])
    assert s.ok and len(s.loaded) == 2, s.report()
    assert sorted((tracking.Tracking & k2).to_arrays("trial")) == [2, 3, 5]
    assert len(tracking.Tracking & k1) == 4
    # a session whose files do not match its trials is an error and loads nothing
    k3 = _session(33, "tr3", 3)
    write_tracking_session(tmp_path / "w", "tr3", DAY, trials=[1, 2, 3, 4], positions=("side",), seed=4)
    bad = ingest_tracking([["RRig", str(tmp_path / "w")]])
    assert not bad.ok and "4 side files but the session has 3 trials" in bad.failed[0][1]
    assert not (tracking.Tracking & k3)


def test_corrupt_file_named(database, tmp_path):
    key = _session(34, "tr4", 2)
    gen = write_tracking_session(tmp_path / "v", "tr4", DAY, trials=[1, 2], positions=("side",), seed=5)
    gen.files[("side", 2)].write_text("scorer,a\nnot,a,dlc,file\n")
    s = ingest_tracking([["RRig", str(tmp_path / "v")]])
    assert not s.ok and gen.files[("side", 2)].name in s.failed[0][1]
    assert not (tracking.Tracking & key)


def test_mtl_layout_per_camera_folders_and_zero_based_files(database, tmp_path):
    """The MTL rig: {root}/{pos}/{h2o}/{YYYY_mm_dd}[_n]/{h2o}_{pos}_{trial - 1}.csv, cameras 3/4/5."""
    key = _session(35, "mt5", 4, rig="RRig-MTL", hour=9)
    k2 = _session(35, "mt5", 3, rig="RRig-MTL", hour=15)
    gen = write_tracking_session(
        tmp_path / "mtl",
        "mt5",
        DAY,
        trials=[1, 2, 3, 4],
        positions=("side", "bottom", "body"),
        frames_per_trial=(20, 40),
        seed=6,
        layout="mtl",
    )
    assert gen.files[("side", 1)].name == "mt5_side_0.csv"
    assert gen.folders["body"] == tmp_path / "mtl" / "body" / "mt5" / "2022_04_05"
    # the day's second session: _2 folders and a trial map (its video starts at trial 2)
    write_tracking_session(
        tmp_path / "mtl",
        "mt5",
        DAY,
        trials=[2, 3],
        n=2,
        positions=("side",),
        frames_per_trial=(20, 40),
        seed=7,
        layout="mtl",
        trial_map={0: 2, 1: 3},
    )
    s = ingest_tracking([["RRig-MTL", str(tmp_path / "mtl")]])
    assert s.ok and len(s.loaded) == 2, s.report()
    assert len(tracking.Tracking & key) == 12
    assert set((tracking.Tracking & key).to_arrays("tracking_device")) == {"Camera 3", "Camera 4", "Camera 5"}
    for pos, cam in (("side", "Camera 3"), ("body", "Camera 5")):
        truth = gen.frames[(pos, 1)]
        row = (tracking.Tracking & dict(key, trial=1, tracking_device=cam)).fetch1()
        assert row["tracking_samples"] == len(truth)
        f = (tracking.Tracking.Feature & dict(key, trial=1, tracking_device=cam, feature="tongue")).fetch1()
        scorer = truth.columns.get_level_values(0)[0]
        np.testing.assert_allclose(f["y"], truth[(scorer, "tongue", "y")].to_numpy(), rtol=1e-6)
    assert sorted((tracking.Tracking & k2).to_arrays("trial")) == [2, 3]
    # one file too many without a trial map: an error, nothing loaded
    k3 = _session(36, "mt6", 2, rig="RRig-MTL")
    write_tracking_session(tmp_path / "m2", "mt6", DAY, trials=[1, 2, 3], positions=("side",), layout="mtl")
    bad = ingest_tracking([["RRig-MTL", str(tmp_path / "m2")]])
    assert not bad.ok and "3 side files but the session has 2 trials" in bad.failed[0][1]
    assert "mt6_2022_04_05_side.txt" in bad.failed[0][1]
    assert not (tracking.Tracking & k3)
