"""Multi-target-licking (MTL) rig files: the reader against the generator's ground truth (v5 and
v7.3), detection, broken files, and ingest-behavior on a real database (every field compared)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio

from pipeline import experiment, lab
from pipeline.io.bpod_delay_response import (
    BehaviorFileError,
    UnsupportedProtocol,
    is_mtl,
    mtl_bitcode,
    read_delay_response,
    read_mtl,
    read_rig_file,
)
from pipeline.io.matfile import read_mat
from pipeline.synthetic.bpod_delay_response import (
    make_mtl_session_data,
    write_mtl_session_file,
    write_session_file,
)

TABLES = ("trials", "notes", "events", "actions", "blocks", "block_ports", "block_trials")
WHEN = dt.datetime(2021, 6, 1, 10, 0, 0)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_reader_matches_ground_truth(tmp_path, version):
    truth = write_mtl_session_file(tmp_path, version=version, n_trials=30, seed=2, abort_every=9)
    d = read_rig_file(truth.path)
    assert d.task == "multi-target-licking" and d.session_datetime == WHEN and d.h2o == "mt1"
    for k in TABLES:
        _same(getattr(d, k), getattr(truth, k))
    assert d.skipped_trials == truth.skipped_trials and d.n_trials_in_file == 30
    assert {r for _, r in d.skipped_trials} == {
        "MATLABStartTimes is 0 (the trial did not run)",
        "TrialEnd not visited (aborted trial)",
    }
    assert read_mtl(truth.path).trials.equals(d.trials)
    # the rules, read off the result
    t = d.trials.set_index("trial")
    first = d.block_trials[d.block_trials.block_trial_number == 1].trial
    assert t.auto_water.sum() == len(first) and t.loc[list(first), "auto_water"].all()
    assert set(t.outcome) == {"N/A"} and set(t.trial_instruction) == {"none"} and set(t.early_lick) == {"no early"}
    assert set(d.events.trial_event_type) == {"trialend"} and set(d.actions.action_event_type) == {"middle lick"}
    assert d.notes.set_index("trial").loc[6, "trial_note"] == "0110000000" == mtl_bitcode(6)
    assert list(d.blocks.block) == list(range(1, len(d.blocks) + 1))
    assert d.blocks.trial_count.sum() == len(d.trials)


def test_block_whose_trials_all_failed_is_left_out(tmp_path):
    session, truth = make_mtl_session_data(n_trials=12, seed=4, invalid_every=0, block_sizes=(3, 3))
    session["MATLABStartTimes"][0, 3:6] = 0  # the whole second block never ran
    path = tmp_path / "mt1_MTL_20210601_100000.mat"
    sio.savemat(path, {"SessionData": session})
    d = read_rig_file(path)
    assert len(d.trials) == 9 and list(d.blocks.block) == [1, 2, 3]
    assert list(d.blocks.trial_count) == [3, 3, 3]
    assert d.block_trials.set_index("trial").loc[7, "block"] == 2


def test_detection(tmp_path):
    mtl = write_mtl_session_file(tmp_path, n_trials=6, seed=1)
    dr = write_session_file(tmp_path, h2o="dm1", n_trials=4, seed=1)
    assert is_mtl(read_mat(mtl.path)["SessionData"]) and not is_mtl(read_mat(dr.path)["SessionData"])
    with pytest.raises(UnsupportedProtocol, match="multi-target-licking file"):
        read_delay_response(mtl.path)
    with pytest.raises(UnsupportedProtocol, match="not a multi-target-licking file"):
        read_mtl(dr.path)
    assert read_rig_file(dr.path).task == "audio delay"
    # without SettingsFile, the first trial's GUI decides
    session, _ = make_mtl_session_data(n_trials=5)
    del session["SettingsFile"]
    path = tmp_path / "other" / "mt1_MTL_20210601_100000.mat"
    path.parent.mkdir()
    sio.savemat(path, {"SessionData": session})
    assert is_mtl(read_mat(path)["SessionData"])
    session["TrialSettings"][0, 0]["GUI"]["SamplePeriod"] = 1.2
    sio.savemat(path, {"SessionData": session})
    assert not is_mtl(read_mat(path)["SessionData"])


def _one_line(exc: Exception, path) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text
    return text


def test_broken_files_name_the_file(tmp_path):
    good = write_mtl_session_file(tmp_path / "a", n_trials=8, seed=3)
    cut = tmp_path / "b" / good.path.name
    cut.parent.mkdir()
    cut.write_bytes(good.path.read_bytes()[:3000])
    with pytest.raises(BehaviorFileError) as e:
        read_rig_file(cut)
    assert "truncated or corrupt" in _one_line(e.value, cut)

    def broken(change, match):
        session, _ = make_mtl_session_data(n_trials=8, seed=3)
        change(session)
        path = tmp_path / "c" / "mt1_MTL_20210601_100000.mat"
        path.parent.mkdir(exist_ok=True)
        sio.savemat(path, {"SessionData": session})
        with pytest.raises(BehaviorFileError, match=match) as e:
            read_rig_file(path)
        _one_line(e.value, path)

    broken(lambda s: s.update(TrialBlockOrder=s["TrialBlockOrder"][:, :5]), "TrialBlockOrder has 5 entries")
    broken(lambda s: s.pop("MATLABStartTimes"), "lacks MATLABStartTimes")
    broken(lambda s: s["TrialTypes"].__setitem__((0, 1), 42.0), "trial 2: TrialTypes 42")
    broken(lambda s: s["TrialSettings"][0, 0]["GUI"].pop("NumLicksForReward"), "trial 1: .*NumLicksForReward")
    broken(lambda s: s["TrialSettings"][0, 0]["GUI"].__setitem__("ProtocolType", 7.0), "ProtocolType 7")


def test_real_mtl_files(real_data):
    found = []
    for p in sorted(real_data.rglob("*.mat")):
        try:
            if is_mtl(read_mat(p).get("SessionData") or {}):
                found.append(p)
        except Exception:  # noqa: BLE001 - other kinds of .mat files
            continue
    if not found:
        pytest.skip("no multi-target-licking rig files among the real sample data")
    for p in found:
        d = read_mtl(p)
        assert len(d.trials) and d.blocks.trial_count.sum() == len(d.trials)


# --- on a database ---------------------------------------------------------------------------


def _animal(subject_id, h2o):
    lab.Subject.insert1(dict(subject_id=subject_id, sex="M"))
    lab.WaterRestriction.insert1(
        dict(subject_id=subject_id, water_restriction_number=h2o, wr_start_date="2021-01-01", wr_start_weight=22)
    )


def _db(table, key, cols, sort):
    df = (table & key).to_pandas().reset_index()
    return df[cols].sort_values(sort).reset_index(drop=True)


def test_ingest_compares_every_field(database, tmp_path):
    from pipeline.ingest.behavior import BehaviorIngest, ingest_behavior

    _animal(61, "mt1")
    rig = tmp_path / "mtl"
    a = write_mtl_session_file(rig, when=WHEN, n_trials=14, seed=5, abort_every=6)
    b = write_mtl_session_file(rig, when=WHEN + dt.timedelta(hours=1), n_trials=9, seed=6, version="7.3")
    s = ingest_behavior([["RRig-MTL", str(rig), 0]])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert "blocks (multi-target licking)" in s.loaded[0]
    key = dict(subject_id=61, session=1)
    # the truth of the day: b's trials and blocks numbered on from a's, b's times 3600 s later
    ta, tb = a.trials.copy(), b.trials.copy()
    n_a, k_a = len(ta), len(a.blocks)
    renum = {t: i for i, t in enumerate(ta.trial, start=1)}
    renum_b = {t: n_a + i for i, t in enumerate(tb.trial, start=1)}

    def day(fa, fb, time_cols=(), block=False):
        fa, fb = fa.copy(), fb.copy()
        if "trial" in fa:
            fa["trial"] = fa["trial"].map(renum)
            fb["trial"] = fb["trial"].map(renum_b)
        for c in time_cols:
            fb[c] += 3600.0
        if block:
            fb["block"] += k_a
        return pd.concat([fa, fb], ignore_index=True)

    trials = day(ta, tb, ("start_time", "stop_time"))
    cols = list(trials.columns)
    got = _db(experiment.SessionTrial * experiment.BehaviorTrial, key, cols, "trial")
    _same(got, trials)
    notes = day(a.notes, b.notes)
    _same(_db(experiment.TrialNote, key, list(notes.columns), "trial"), notes)
    for table, truth_a, truth_b, sort in (
        (experiment.TrialEvent, a.events, b.events, "trial_event_id"),
        (experiment.ActionEvent, a.actions, b.actions, "action_event_id"),
    ):
        want = day(truth_a, truth_b)
        _same(_db(table, key, [*want.columns, sort], sort)[list(want.columns)], want)
    blocks = day(a.blocks, b.blocks, ("block_start_time",), block=True)
    _same(_db(experiment.MultiTargetLickingSessionBlock, key, list(blocks.columns), "block"), blocks)
    ports = day(a.block_ports, b.block_ports, block=True)
    _same(_db(experiment.MultiTargetLickingSessionBlock.WaterPort, key, list(ports.columns), "block"), ports)
    bt = day(a.block_trials, b.block_trials, block=True)
    _same(_db(experiment.MultiTargetLickingSessionBlock.BlockTrial, key, list(bt.columns), "trial"), bt)
    files = _db(BehaviorIngest.BehaviorFile, key, ["behavior_file", "first_trial", "n_trials_in_file"], "first_trial")
    assert list(files.first_trial) == [1, n_a + 1] and list(files.n_trials_in_file) == [14, 9]
    # a re-run changes nothing
    before = len(experiment.MultiTargetLickingSessionBlock.BlockTrial())
    again = ingest_behavior([["RRig-MTL", str(rig), 0]])
    assert again.ok and not again.loaded and len(again.skipped) == 1
    assert len(experiment.MultiTargetLickingSessionBlock.BlockTrial()) == before


def test_damaged_or_mixed_day_loads_nothing(database, tmp_path):
    from pipeline.ingest.behavior import ingest_behavior

    _animal(62, "mt2")
    rig = tmp_path / "mtl"
    good = write_mtl_session_file(rig, h2o="mt2", when=WHEN, n_trials=8, seed=1)
    bad = write_mtl_session_file(rig, h2o="mt2", when=WHEN + dt.timedelta(days=1), n_trials=8, seed=2)
    bad.path.write_bytes(bad.path.read_bytes()[:2500])
    write_mtl_session_file(rig, h2o="mt2", when=WHEN + dt.timedelta(days=2), n_trials=6, seed=3)
    write_session_file(rig, h2o="mt2", when=WHEN + dt.timedelta(days=2, hours=2), n_trials=5, seed=4)
    s = ingest_behavior([["RRig-MTL", str(rig), 0]])
    assert len(s.loaded) == 1 and good.path.name in s.loaded[0]
    reasons = [r for _, r in s.failed]
    assert len(reasons) == 2, s.report()
    damaged = next(r for r in reasons if bad.path.name in r)
    assert "\n" not in damaged and "truncated or corrupt" in damaged
    assert any("of different tasks" in r for r in reasons)
    assert len(experiment.Session()) == 1
    assert set(experiment.SessionTrial.to_arrays("session")) == {1}
    assert len(experiment.MultiTargetLickingSessionBlock()) == len(good.blocks)
    # the session's trials are numbered through (the file's trial 7 never ran)
    np.testing.assert_array_equal(
        sorted(experiment.MultiTargetLickingSessionBlock.BlockTrial.to_arrays("trial")),
        np.arange(1, len(good.trials) + 1),
    )
