"""ingest-behavior on a real database: real + generated rig files in, exact rows out; re-runs,
changed files, bad files and crashes."""

import datetime as dt
import shutil

import numpy as np
import pandas as pd
from conftest import run_mapshell

from pipeline import experiment, lab
from pipeline.ingest import behavior as ingest_behavior
from pipeline.ingest import bulk
from pipeline.ingest.behavior import delay_response as behavior_ingest_module
from pipeline.ingest.behavior import ingest_behavior as ingest
from pipeline.synthetic.bpod_delay_response import write_session_file

REAL = "map_rig_behavior_mat/dl25_tw2_20180225_102508.mat"


def _animal(subject_id, h2o):
    lab.Subject.insert1(dict(subject_id=subject_id, sex="F"))
    lab.WaterRestriction.insert1(
        dict(subject_id=subject_id, water_restriction_number=h2o, wr_start_date="2018-01-01", wr_start_weight=22)
    )


def _session_frames(subject_id, session=1):
    key = dict(subject_id=subject_id, session=session)
    trials = (experiment.SessionTrial * experiment.BehaviorTrial & key).to_pandas().reset_index()
    events = (experiment.TrialEvent & key).to_pandas().reset_index()
    actions = (experiment.ActionEvent & key).to_pandas().reset_index()
    return trials.sort_values("trial"), events, actions


def test_real_file_loads_with_checked_values(database, real_data, tmp_path):
    from pipeline.io.bpod_delay_response import read_delay_response

    _animal(25, "dl25")
    rig = tmp_path / "rig1"
    rig.mkdir()
    shutil.copy(real_data / REAL, rig)
    s = ingest([["Rig1", str(rig), 0]])
    assert s.ok and len(s.loaded) == 1, s.report()
    sess = experiment.Session.fetch1()
    assert sess["session_datetime"] == dt.datetime(2018, 2, 25, 11, 23, 28) and sess["rig"] == "Rig1"
    trials, events, actions = _session_frames(25)
    ref = read_delay_response(rig / "dl25_tw2_20180225_102508.mat")
    assert len(trials) == 11
    for col in ("trial_instruction", "outcome", "early_lick"):
        assert list(trials[col]) == list(ref.trials[col])
    np.testing.assert_allclose(trials["start_time"], ref.trials["start_time"])
    assert len(events) == len(ref.events) and len(actions) == len(ref.actions)
    assert list(actions.sort_values("action_event_id")["action_event_type"]) == list(ref.actions["action_event_type"])
    f = ingest_behavior.BehaviorIngest.BehaviorFile.fetch1()
    assert f["behavior_file"] == "dl25_tw2_20180225_102508.mat" and f["n_trials_in_file"] == 11
    assert (experiment.TrialNote & {"trial": 4, "trial_note_type": "bitcode"}).fetch1("trial_note") == ref.notes.query(
        "trial == 4 and trial_note_type == 'bitcode'"
    ).trial_note.item()


def test_generated_day_with_two_files_is_one_session(database, tmp_path):
    _animal(7, "dm7")
    rig = tmp_path / "rig"
    a = write_session_file(rig, h2o="dm7", when=dt.datetime(2022, 1, 5, 9, 0, 0), n_trials=30, seed=1, abort_every=8)
    b = write_session_file(rig / "later", h2o="dm7", when=dt.datetime(2022, 1, 5, 11, 30, 0), n_trials=25, seed=2)
    c = write_session_file(rig, h2o="dm7", when=dt.datetime(2022, 1, 6, 9, 0, 0), n_trials=20, seed=3)
    s = ingest([["RRig", str(rig), 0]])
    assert s.ok and len(s.loaded) == 2, s.report()
    assert len(experiment.Session()) == 2
    trials, events, actions = _session_frames(7, 1)
    n_a = len(a.trials)
    assert len(trials) == n_a + len(b.trials)
    # the second file's trials follow on, timed from the first file's start (2.5 h later)
    second = trials[trials.trial > n_a]
    np.testing.assert_allclose(second["start_time"].to_numpy(), b.trials["start_time"].to_numpy() + 9000.0)
    assert list(trials["outcome"]) == list(a.trials["outcome"]) + list(b.trials["outcome"])
    assert len(events) == len(a.events) + len(b.events)
    assert len(actions) == len(a.actions) + len(b.actions)
    ps = (experiment.PhotostimEvent & {"session": 1}).to_pandas()
    assert len(ps) == len(a.photostim_events) + len(b.photostim_events)
    assert set((experiment.Photostim & {"session": 1}).to_arrays("photo_stim")) == set(
        a.photostim_events.photostim_protocol
    ) | set(b.photostim_events.photostim_protocol)
    files = ingest_behavior.BehaviorIngest.BehaviorFile & {"session": 1}
    assert sorted(files.to_arrays("first_trial")) == [1, n_a + 1]
    # day 2 is session 2, with its own numbering
    t2, _, _ = _session_frames(7, 2)
    assert list(t2.trial) == list(c.trials.trial)

    # idempotent: nothing changes on a re-run
    counts = {t.__name__: len(t()) for t in (experiment.SessionTrial, experiment.TrialEvent, experiment.ActionEvent)}
    again = ingest([["RRig", str(rig), 0]])
    assert again.ok and not again.loaded and len(again.skipped) == 2
    assert counts == {
        t.__name__: len(t()) for t in (experiment.SessionTrial, experiment.TrialEvent, experiment.ActionEvent)
    }

    # a changed file, or a new file on a loaded day, is reported and nothing is altered
    write_session_file(rig, h2o="dm7", when=dt.datetime(2022, 1, 6, 9, 0, 0), n_trials=21, seed=4)
    write_session_file(rig, h2o="dm7", when=dt.datetime(2022, 1, 5, 15, 0, 0), n_trials=5, seed=5)
    third = ingest([["RRig", str(rig), 0]])
    reasons = dict(third.failed)
    assert len(third.failed) == 2 and not third.loaded
    assert any("changed since loading: dm7_tw2_20220106_090000.mat" in r for r in reasons.values())
    assert any("not in the loaded session: dm7_tw2_20220105_150000.mat" in r for r in reasons.values())
    assert counts == {
        t.__name__: len(t()) for t in (experiment.SessionTrial, experiment.TrialEvent, experiment.ActionEvent)
    }


def test_bad_input_is_reported_and_the_rest_load(database, tmp_path, real_data):
    _animal(1, "dm1")
    rig = tmp_path / "rig"
    good = write_session_file(rig, h2o="dm1", when=dt.datetime(2022, 2, 1, 9, 0, 0), n_trials=12, seed=1)
    broken = write_session_file(rig, h2o="dm1", when=dt.datetime(2022, 2, 2, 9, 0, 0), n_trials=12, seed=2)
    broken.path.write_bytes(broken.path.read_bytes()[:2500])
    write_session_file(rig, h2o="zz9", when=dt.datetime(2022, 2, 3, 9, 0, 0), n_trials=5, seed=3)
    shutil.copy(real_data / "bpod_sessiondata_mat/w2t-bkin/session_file01.mat", rig / "dm1_whisk_20220204_090000.mat")
    s = ingest([["RRig", str(rig), 0], ["Gone", str(tmp_path / "missing"), 1]])
    assert len(s.loaded) == 1 and s.found == 4
    failed, skipped = dict(s.failed), dict(s.skipped)
    assert any("truncated" in r and "dm1_tw2_20220202_090000.mat" in r for r in failed.values())
    assert any("does not exist" in r for r in failed.values())
    assert any("'zz9' is not in lab.WaterRestriction" in r for r in skipped.values())
    assert any("unsupported protocol" in r for r in skipped.values())
    assert len(experiment.Session()) == 1
    assert len(experiment.SessionTrial()) == len(good.trials)


def test_crash_mid_session_leaves_nothing_and_rerun_finishes(database, tmp_path, monkeypatch):
    _animal(2, "dm2")
    rig = tmp_path / "rig"
    truths = [
        write_session_file(rig, h2o="dm2", when=dt.datetime(2022, 3, 1 + d, 9, 0, 0), n_trials=15, seed=d)
        for d in range(3)
    ]
    real_insert = bulk.insert_frame
    calls = {"n": 0}

    def flaky(table, df):
        if table.__name__ == "ActionEvent":  # the second session dies after its trials were written
            calls["n"] += 1
            if calls["n"] == 2:
                raise ConnectionError("simulated crash in the middle of a session")
        return real_insert(table, df)

    monkeypatch.setattr(behavior_ingest_module, "insert_frame", flaky)
    s = ingest([["RRig", str(rig), 0]])
    assert len(s.loaded) == 2 and len(s.failed) == 1 and "rolled back" in s.failed[0][1]
    assert len(experiment.Session()) == 2
    # no orphan rows of the failed session anywhere
    sessions = set(experiment.Session().to_arrays("session"))
    for t in (experiment.SessionTrial, experiment.BehaviorTrial, experiment.TrialEvent, experiment.TrialNote):
        assert set(t().to_arrays("session")) <= sessions
    monkeypatch.undo()
    s = ingest([["RRig", str(rig), 0]])
    assert len(s.loaded) == 1 and len(s.skipped) == 2
    assert len(experiment.Session()) == 3
    assert len(experiment.SessionTrial()) == sum(len(t.trials) for t in truths)
    assert len(experiment.ActionEvent()) == sum(len(t.actions) for t in truths)
    assert sorted(pd.Series(experiment.Session().to_arrays("session_date")).astype(str)) == [
        "2022-03-01",
        "2022-03-02",
        "2022-03-03",
    ]


def test_cli_uses_setting_and_exit_status(database, tmp_path):
    _animal(3, "dm3")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm3", n_trials=10, seed=1)
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text('{"custom": {"behavior_data_paths": [["RRig", "%s", 0]]}}' % rig)
    env = database.env(MAP_CONFIG=str(conf))
    r = run_mapshell(["ingest-behavior"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 found, 1 loaded, 0 skipped, 0 failed" in r.stdout
    (rig / "dm3_tw2_20230101_100000.mat").write_bytes(b"MATLAB 5.0 MAT-file broken")
    r = run_mapshell(["ingest-behavior"], env)
    assert r.returncode == 1 and "dm3_tw2_20230101_100000.mat" in r.stdout
    assert len(experiment.Session()) == 1


def test_stored_rows_are_the_files_values_exactly(database, tmp_path):
    """Every row of a session as the reader made it, floats bit for bit (binary COPY on PostgreSQL,
    repr literals on MySQL), photostim and notes included."""
    from pipeline.io.bpod_delay_response import read_delay_response

    _animal(8, "dm8")
    truth = write_session_file(tmp_path / "rig", h2o="dm8", n_trials=60, seed=5, abort_every=7)
    assert ingest([["RRig", str(tmp_path / "rig"), 0]]).ok
    d = read_delay_response(truth.path)
    key = dict(subject_id=8, session=1)

    def stored(table, order, columns):
        df = (table & key).to_pandas().reset_index().sort_values(order)
        return [tuple(r) for r in df[columns].itertuples(index=False)]

    def expected(df, columns):
        return [tuple(r) for r in df[columns].itertuples(index=False)]

    trials = experiment.SessionTrial * experiment.BehaviorTrial
    columns = ["trial", "start_time", "stop_time", "trial_instruction", "early_lick", "outcome", "auto_water"]
    renumbered = d.trials.assign(trial=np.arange(1, len(d.trials) + 1))
    assert stored(trials, "trial", columns) == expected(renumbered, columns)
    number = dict(zip(d.trials.trial, renumbered.trial))
    events = d.events.assign(trial=d.events.trial.map(number))
    columns = ["trial", "trial_event_type", "trial_event_time", "duration"]
    assert stored(experiment.TrialEvent, "trial_event_id", columns) == expected(events, columns)
    actions = d.actions.assign(trial=d.actions.trial.map(number))
    columns = ["trial", "action_event_type", "action_event_time"]
    assert stored(experiment.ActionEvent, "action_event_id", columns) == expected(actions, columns)
    notes = d.notes.assign(trial=d.notes.trial.map(number)).sort_values(["trial", "trial_note_type"])
    columns = ["trial", "trial_note_type", "trial_note"]
    assert stored(experiment.TrialNote, ["trial", "trial_note_type"], columns) == expected(notes, columns)
    stims = d.photostim_events.assign(trial=d.photostim_events.trial.map(number))
    assert len(stims) > 0
    got = stored(experiment.PhotostimEvent, "photostim_event_id", ["trial", "photo_stim", "photostim_event_time"])
    assert got == expected(stims, ["trial", "photostim_protocol", "photostim_event_time"])


AWKWARD = [
    "",
    " ",
    "a'b",
    'q"x',
    "back\\slash\\",
    "\\N",
    "NULL",
    "tab\tnew\nline\rcr",
    "%s %(x)s %%",
    "ünï ☃ 😀",
    "x" * 255,
]


def test_bulk_insert_stores_what_datajoint_stores(database):
    """insert_frame against DataJoint's own insert of the same rows: awkward strings (quotes,
    backslashes, control characters, \\N, unicode), NULLs, float and integer extremes, booleans and
    in-table blobs come back the same on every backend."""
    import datajoint as dj

    from pipeline import db

    schema = dj.Schema(database.prefix + "bulk_test", connection=db.connect())
    try:

        @schema
        class Awkward(dj.Manual):
            definition = """
            k : int32
            ---
            s = null : varchar(255)
            x = null : float64
            i : int16
            n : int64
            b : bool
            blob = null : <blob>
            """

        floats = [0.0, -0.0, 0.1, 1 / 3, 1e-5, 1e-300, 5e-324, 1.7976931348623157e308, -2.5, 1e16, 123456789.123456789]
        m = len(AWKWARD) + 1
        rows = [
            dict(s=s, x=x, i=i, n=n, b=b, blob=blob)
            for s, x, i, n, b, blob in zip(
                [*AWKWARD, None],
                [*floats, None],
                [-32768, 32767, *range(m - 2)],
                [2**62, -(2**63), *range(m - 2)],
                [True, False] * m,
                [np.arange(3.0), None, "text", {"a": [1, 2]}, *(np.array([j]) for j in range(m - 4))],
            )
        ]
        df = pd.DataFrame([dict(r, k=j) for j, r in enumerate(rows)])
        if database.conn.adapter.backend == "postgresql":  # all of it goes by binary COPY
            heading = Awkward.heading
            blobs = df.assign(blob=[None if v is None else heading["blob"].codec.encode(v) for v in df.blob])
            assert all(bulk._binary_column(blobs[c], heading[c].sql_type) is not None for c in df.columns)
        with db.connect().transaction:
            assert bulk.insert_frame(Awkward, df) == m
        Awkward.insert([dict(r, k=100 + j) for j, r in enumerate(rows)])
        got = Awkward.to_pandas().reset_index().sort_values("k")
        ours, theirs = got[got.k < 100].drop(columns="k"), got[got.k >= 100].drop(columns="k")
        for column in ours.columns:
            for a, b in zip(ours[column], theirs[column]):
                assert np.array_equal(a, b) if isinstance(a, np.ndarray) else repr(a) == repr(b), (column, a, b)
        assert list(ours.s[:-1]) == AWKWARD and pd.isna(ours.s.iloc[-1])
    finally:
        schema.drop(prompt=False)


def test_mysql_literals_are_written_as_pymysql_writes_them():
    """The MySQL path's numbers and strings, literal by literal, as PyMySQL's escaping (no database)."""
    import pymysql.converters as conv

    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.normal(0, 1, 300) * 10.0 ** rng.integers(-30, 30, 300),
            [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 5e-324, 1.7976931348623157e308, -1e-5],
        ]
    )
    assert bulk._mysql_column(pd.Series(x), None) == [conv.escape_float(float(v)) for v in x]
    assert bulk._mysql_column(pd.Series([1.5, np.nan]), None) == ["1.5e0", "NULL"]
    ints = pd.Series([3, -(2**63), 2**62, 3])
    assert bulk._mysql_column(ints, None) == [conv.escape_int(int(v)) for v in ints]
    assert bulk._mysql_column(pd.Series([7] * 4), None) == ["7"] * 4
    escape = lambda v: conv.escape_item(v, "utf8mb4")  # noqa: E731
    texts = pd.Series([*AWKWARD, None, "a'b"])
    assert bulk._mysql_column(texts, escape) == [escape(v) for v in AWKWARD] + ["NULL", escape("a'b")]
    assert bulk._mysql_column(pd.Series([True, False]), None) == ["1", "0"]
