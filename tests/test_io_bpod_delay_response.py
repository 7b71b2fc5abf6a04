"""Delay-response rig-file reader (no database): the real MAP file, generated files (v5 and v7.3)
with ground truth, and broken files."""

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio

from pipeline.errors import SkipItem
from pipeline.io.bpod_delay_response import (
    START_FROM_FILE_NAME,
    START_FROM_INFO,
    BehaviorFileError,
    UnsupportedProtocol,
    read_delay_response,
)
from pipeline.io.matfile import mat_version, read_mat
from pipeline.synthetic.bpod_delay_response import (
    make_other_protocol_data,
    make_session_data,
    write_other_protocol_file,
    write_session_file,
)

REAL = "map_rig_behavior_mat/dl25_tw2_20180225_102508.mat"


def _independent(path):
    """The real file read with scipy directly, trial values derived state by state."""
    S = sio.loadmat(path, squeeze_me=True, struct_as_record=False)["SessionData"]
    ts = np.asarray(S.TrialStartTimestamp, dtype=float)
    rows, licks, events = [], [], []
    for i in range(int(S.nTrials)):
        st, ev = S.RawEvents.Trial[i].States, S.RawEvents.Trial[i].Events
        gui = S.TrialSettings[i].GUI
        visited = lambda name: not np.isnan(np.atleast_2d(getattr(st, name))[0, 0])  # noqa: E731
        rows.append(
            dict(
                trial=i + 1,
                start_time=ts[i] - ts[0],
                stop_time=ts[i] - ts[0] + np.atleast_2d(st.TrialEnd)[0, 0],
                trial_instruction="left" if S.TrialTypes[i] == 1 else "right",
                outcome="hit" if visited("Reward") else "miss" if visited("TimeOut") else "ignore",
                early_lick="early"
                if gui.ProtocolType >= 5 and (visited("EarlyLickSample") or visited("EarlyLickDelay"))
                else "no early",
            )
        )
        for port, side in (("Port1In", "left lick"), ("Port2In", "right lick")):
            for t in np.atleast_1d(getattr(ev, port, [])):
                licks.append((i + 1, side, float(t)))
        for state, et in (
            ("PreSamplePeriod", "presample"),
            ("SamplePeriod", "sample"),
            ("DelayPeriod", "delay"),
            ("ResponseCue", "go"),
            ("TrialEnd", "trialend"),
        ):
            for a, b in np.atleast_2d(getattr(st, state)):
                events.append((i + 1, et, float(a), float(b - a)))
    return S, pd.DataFrame(rows), licks, events


def test_real_rig_file(real_data):
    path = real_data / REAL
    d = read_delay_response(path)
    S, expected, licks, events = _independent(path)
    assert d.h2o == "dl25" and d.session_datetime == dt.datetime(2018, 2, 25, 11, 23, 28)
    assert len(d.trials) == int(S.nTrials) == 11 and not d.skipped_trials
    for col in ("trial", "trial_instruction", "outcome", "early_lick"):
        assert list(d.trials[col]) == list(expected[col]), col
    np.testing.assert_allclose(d.trials["start_time"], expected["start_time"])
    np.testing.assert_allclose(d.trials["stop_time"], expected["stop_time"])
    rounded = lambda rows: sorted(tuple(round(x, 9) if isinstance(x, float) else x for x in r) for r in rows)  # noqa
    assert rounded(d.actions.itertuples(index=False, name=None)) == rounded(licks)
    assert rounded(d.events.itertuples(index=False, name=None)) == rounded(events)
    assert len(licks) == 63 and len(events) == 70
    # this file's trials are ProtocolType 7 / Autolearn 1: by the original's rules none is photostimulated
    assert d.photostim_events.empty
    notes = d.notes[d.notes.trial_note_type == "bitcode"]
    assert list(notes.trial_note) == [str(S.TrialSettings[i].GUI.randomID) for i in range(11)]
    assert set(d.trials.auto_water) == {False}  # Autowater 2, GaveFreeReward [0 0 n]


def test_real_file_as_v73_reads_the_same(real_data, tmp_path):
    hdf5storage = pytest.importorskip("hdf5storage")
    src = real_data / REAL
    dst = tmp_path / src.name
    hdf5storage.savemat(
        str(dst), {"SessionData": sio.loadmat(src)["SessionData"]}, format="7.3", matlab_compatible=True
    )
    assert mat_version(dst) == "7.3" and mat_version(src) == "5"
    a, b = read_delay_response(src), read_delay_response(dst)
    for name in ("trials", "notes", "events", "actions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_generated_files_match_ground_truth(tmp_path, version):
    truth = write_session_file(
        tmp_path, h2o="dm7", when=dt.datetime(2022, 5, 6, 7, 8, 9), version=version, n_trials=40, seed=11, abort_every=9
    )
    d = read_delay_response(truth.path)
    assert d.session_datetime == truth.session_datetime and d.h2o == "dm7"
    for name in ("trials", "notes", "events", "actions", "photostim_events"):
        pd.testing.assert_frame_equal(getattr(d, name), getattr(truth, name), check_dtype=False)
    assert d.skipped_trials == truth.skipped_trials and len(truth.skipped_trials) == 4
    assert len(truth.photostim_events) > 0 and set(truth.trials.outcome) == {"hit", "miss", "ignore"}


def test_reversal_and_late_delay_photostim(tmp_path):
    truth = write_session_file(tmp_path, h2o="dm8", reversal=2, n_trials=30, seed=3)
    d = read_delay_response(truth.path)
    pd.testing.assert_frame_equal(d.trials, truth.trials, check_dtype=False)
    # SC animals recorded on Rig3 get late-delay stimulation: 0.5 s before the go cue
    src = write_session_file(tmp_path / "x", h2o="SC12", n_trials=30, seed=4, protocol_type=6)
    late = tmp_path / "SC12_Recording(Rig3)_20210301_100000.mat"
    shutil.copy(src.path, late)
    d = read_delay_response(late)
    assert len(d.photostim_events) > 0
    go = d.events[d.events.trial_event_type == "go"].groupby("trial").trial_event_time.first()
    for r in d.photostim_events.itertuples():
        assert r.photostim_event_time == pytest.approx(go[r.trial] - 0.5)
    assert read_delay_response(src.path).photostim_events.empty  # same file, early-delay rule: protocol 6 != 5


def test_one_trial_file(tmp_path):
    truth = write_session_file(tmp_path, h2o="dm9", n_trials=1, seed=5)
    d = read_delay_response(truth.path)
    assert len(d.trials) == 1
    pd.testing.assert_frame_equal(d.trials, truth.trials, check_dtype=False)


def test_bad_files_name_the_file(tmp_path, real_data):
    good = write_session_file(tmp_path, h2o="dm1", n_trials=10, seed=1)
    trunc = tmp_path / "dm1_tw2_20210302_100000.mat"
    trunc.write_bytes(good.path.read_bytes()[:3000])
    with pytest.raises(BehaviorFileError, match=str(trunc.name)):
        read_delay_response(trunc)
    junk = tmp_path / "dm1_tw2_20210303_100000.mat"
    junk.write_bytes(b"hello")
    with pytest.raises(BehaviorFileError, match="not a MATLAB"):
        read_delay_response(junk)
    # trial counts that disagree between fields
    session, _ = make_session_data(n_trials=8, seed=2)
    session["TrialTypes"] = session["TrialTypes"][:, :6]
    bad = tmp_path / "dm1_tw2_20210304_100000.mat"
    sio.savemat(bad, {"SessionData": session})
    with pytest.raises(BehaviorFileError, match="TrialTypes has 6 entries but nTrials is 8"):
        read_delay_response(bad)
    # a missing field
    session, _ = make_session_data(n_trials=8, seed=2)
    del session["RawEvents"]
    sio.savemat(bad, {"SessionData": session})
    with pytest.raises(BehaviorFileError, match="lacks RawEvents"):
        read_delay_response(bad)
    with pytest.raises(BehaviorFileError, match="file name"):
        read_delay_response(real_data / "map_ephys_bitcode_mat/dl25_bitcode.mat")


def test_other_bpod_protocols_are_unsupported_not_crashes(real_data, tmp_path):
    for i, f in enumerate(sorted((real_data / "bpod_sessiondata_mat/w2t-bkin").glob("*.mat"))):
        dst = tmp_path / f"ab1_whisk_20250817_10000{i}.mat"
        shutil.copy(f, dst)
        with pytest.raises(UnsupportedProtocol, match="unsupported protocol"):
            read_delay_response(dst)
        assert "SessionData" in read_mat(dst)


# ---------------------------------------------------------------------------------------------
# other protocols are skipped; a file that claims the delay-response task must be consistent


def one_line(exc_type, path) -> str:
    with pytest.raises(exc_type) as e:
        read_delay_response(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize(
    "kw",
    [
        dict(),  # Bpod 2: Info, TrialTypes, TrialSettings
        dict(trial_types=False),
        dict(info=False),
        dict(info=False, trial_types=False),
        dict(info=False, trial_types=False, settings=False),  # Bpod 0.5
        dict(n_trials=1, info=False, trial_types=False, settings=False),
    ],
)
def test_other_protocol_is_skipped(tmp_path, kw):
    path = write_other_protocol_file(tmp_path, **kw)
    with pytest.raises(UnsupportedProtocol) as e:
        read_delay_response(path)
    assert isinstance(e.value, SkipItem)
    msg = str(e.value)
    assert msg.startswith(f"{path}: unsupported protocol: a Bpod SessionData of another task") and "\n" not in msg
    assert "WaitForPoke" in msg  # says what the file looks like


def test_other_protocol_v73_is_skipped(tmp_path):
    hdf5storage = pytest.importorskip("hdf5storage")
    v5 = tmp_path / "v5.mat"
    sio.savemat(v5, {"SessionData": make_other_protocol_data(info=False, trial_types=False)})
    dst = tmp_path / "dm1_water_20210301_100000.mat"
    hdf5storage.savemat(str(dst), {"SessionData": sio.loadmat(v5)["SessionData"]}, format="7.3", matlab_compatible=True)
    assert mat_version(dst) == "7.3"
    assert "unsupported protocol" in one_line(UnsupportedProtocol, dst)


def test_real_bpod2_files_are_skipped_with_or_without_fields(real_data, tmp_path):
    """The real Bpod Gen2 files, as written and with TrialTypes / Info removed: skipped, never failed."""
    for i, f in enumerate(sorted((real_data / "bpod_sessiondata_mat/w2t-bkin").glob("*.mat"))):
        raw = sio.loadmat(f, simplify_cells=True)["SessionData"]
        for drop in (("TrialTypes",), ("Info",), ("TrialTypes", "Info")):
            dst = tmp_path / f"ab1_whisk_20250817_1000{i}{len(drop)}.mat"
            sio.savemat(dst, {"SessionData": {k: v for k, v in raw.items() if k not in drop}})
            with pytest.raises(UnsupportedProtocol, match="unsupported protocol"):
                read_delay_response(dst)


def test_claiming_file_that_is_inconsistent_fails(tmp_path):
    session, _ = make_session_data(n_trials=8, seed=2)
    del session["TrialTypes"]
    bad = tmp_path / "dm1_tw2_20210301_100000.mat"
    sio.savemat(bad, {"SessionData": session})
    with pytest.raises(BehaviorFileError) as e:
        read_delay_response(bad)
    assert not isinstance(e.value, SkipItem) and "SessionData lacks TrialTypes" in str(e.value)
    # the MAP states but a GUI without ProtocolType on some trials
    session, _ = make_session_data(n_trials=8, seed=2)
    for k in (2, 5):
        session["TrialSettings"][0, k]["GUI"] = {
            f: v for f, v in session["TrialSettings"][0, k]["GUI"].items() if f != "ProtocolType"
        }
    sio.savemat(bad, {"SessionData": session})
    msg = one_line(BehaviorFileError, bad)
    assert "TrialSettings.GUI has no ProtocolType on trial(s) [3, 6]" in msg


def test_real_rig_file_reads_as_before_with_start_source(real_data):
    d = read_delay_response(real_data / REAL)
    assert d.session_datetime == dt.datetime(2018, 2, 25, 11, 23, 28)
    assert d.start_source == START_FROM_INFO == "Info.SessionDate + Info.SessionStartTime_UTC (UTC)"
    assert len(d.trials) == 11 and d.trials.start_time.iloc[0] == 0 and (d.trials.start_time.diff().dropna() > 0).all()


def _write(tmp_path, session, name="dm1_tw2_20210301_100000.mat"):
    path = tmp_path / name
    sio.savemat(path, {"SessionData": session})
    return path


def test_trial_start_nan_and_backwards(tmp_path):
    session, _ = make_session_data(n_trials=20, seed=3)
    starts = session["TrialStartTimestamp"].copy()
    session["TrialStartTimestamp"] = starts.copy()
    session["TrialStartTimestamp"][0, 6] = np.nan
    msg = one_line(BehaviorFileError, _write(tmp_path, session))
    assert "TrialStartTimestamp of trial 7 is nan" in msg
    session["TrialStartTimestamp"] = starts.copy()
    session["TrialStartTimestamp"][0, 9:] -= 500.0  # the clock jumps back 500 s at trial 10
    msg = one_line(BehaviorFileError, _write(tmp_path, session))
    assert "TrialStartTimestamp goes backwards at trial 10" in msg and "of trial 9" in msg
    assert f"{starts[0, 9] - 500 - starts[0, 8]:+g} s" in msg


def test_file_name_date_must_match_info(tmp_path):
    session, _ = make_session_data(n_trials=5, seed=4, when=dt.datetime(2021, 3, 1, 10, 0, 0))
    path = _write(tmp_path, session, "dm1_tw2_20210302_100000.mat")
    msg = one_line(BehaviorFileError, path)
    assert "the file name's date 2021-03-02 disagrees with Info.SessionDate 01-Mar-2021 (2021-03-01)" in msg
    # started a minute before midnight: the file name is the day before SessionDate, which is fine
    session, _ = make_session_data(n_trials=5, seed=4, when=dt.datetime(2021, 3, 2, 0, 0, 30))
    d = read_delay_response(_write(tmp_path, session, "dm1_tw2_20210301_235930.mat"))
    assert d.session_datetime == dt.datetime(2021, 3, 2, 0, 0, 30) and d.start_source == START_FROM_INFO


def test_no_info_uses_the_file_name(tmp_path):
    truth = write_session_file(tmp_path / "a", h2o="dm3", n_trials=6, seed=6)
    session, _ = make_session_data(n_trials=6, seed=6, h2o="dm3")
    del session["Info"]
    path = _write(tmp_path, session, "dm3_tw2_20210305_093015.mat")
    d = read_delay_response(path)
    assert d.session_datetime == dt.datetime(2021, 3, 5, 9, 30, 15)
    assert d.start_source == START_FROM_FILE_NAME and "file name" in d.start_source
    pd.testing.assert_frame_equal(d.trials, truth.trials, check_dtype=False)
    assert read_delay_response(truth.path).start_source == START_FROM_INFO
    bad = tmp_path / "dm3_tw2_20211345_093015.mat"
    bad.write_bytes(path.read_bytes())
    assert "20211345_093015 is not a valid yyyymmdd_hhmmss" in one_line(BehaviorFileError, bad)


# ---------------------------------------------------------------------------------------------
# the vectorised reader gives what the per-trial rules gave, trial by trial


def _per_trial_reference(path):
    """The delay-response rules applied one trial at a time, as the reader did before it worked on
    all trials at once: (trials, notes, events, actions, photostim, skipped, warnings)."""
    from pipeline.io import bpod_delay_response as bdr

    names, S = bdr._load(path)
    n = int(bdr._scalar(S["nTrials"]))
    settings = bdr._struct_array(S["TrialSettings"], n, "TrialSettings", path)
    guis = [s["GUI"] for s in settings]
    trials_raw = bdr._per_trial(S["RawEvents"]["Trial"], n, "RawEvents.Trial", path)
    ttypes = np.asarray(bdr._per_trial(S["TrialTypes"], n, "TrialTypes", path), dtype=float)
    starts = np.asarray(bdr._per_trial(S["TrialStartTimestamp"], n, "TrialStartTimestamp", path), dtype=float)
    stim = np.asarray(bdr._per_trial(S["StimTrials"], n, "", path), dtype=float) if "StimTrials" in S else np.zeros(n)
    free = np.asarray(bdr._per_trial(S["FreeTrials"], n, "", path), dtype=float) if "FreeTrials" in S else np.zeros(n)
    state_names = S["RawData"]["OriginalStateNamesByNumber"] if "RawData" in S else None
    if state_names is not None:
        state_names = [set(np.atleast_1d(s).tolist()) for s in bdr._per_trial(state_names, n, "", path)]
    late = names["h2o"].upper().startswith("SC") and "Recording(Rig3)_" in path.name
    trials, notes, events, actions, stims, skipped, warnings = [], [], [], [], [], [], []
    for i in range(n):
        trial, g, tr = i + 1, guis[i], trials_raw[i]
        states, evts = tr.get("States", {}), tr.get("Events", {})
        known = state_names[i] if state_names is not None else set(states)
        missing = [s for s in bdr.REQUIRED_STATES if s not in known]
        protocol = bdr._scalar(g.get("ProtocolType"))
        visits = lambda state: bdr._visits(states, state)  # noqa: E731
        if missing:
            skipped.append((trial, f"states {', '.join(missing)} not in this trial's state machine"))
            continue
        if not protocol >= 3:
            skipped.append((trial, f"ProtocolType {protocol:g} < 3 (training stage without the full task)"))
            continue
        if not len(visits("PreSamplePeriod")) or not len(visits("TrialEnd")):
            skipped.append((trial, "PreSamplePeriod or TrialEnd not visited (aborted trial)"))
            continue
        start = float(starts[i] - starts[0])
        reversal = bdr._scalar(g.get("Reversal"), 1)
        left = ttypes[i] == (0 if reversal == 2 else 1) or reversal not in (1, 2)
        outcome = "hit" if len(visits("Reward")) else "miss" if len(visits("TimeOut")) else "ignore"
        early = protocol >= 5 and (len(visits("EarlyLickSample")) or len(visits("EarlyLickDelay")))
        fr = np.asarray(settings[i].get("GaveFreeReward", []), dtype=float).ravel()
        auto = bdr._scalar(g.get("Autowater")) == 1 or bool(np.any(fr[:2] != 0))
        trials.append(
            (trial, start, start + float(visits("TrialEnd")[0, 0]), "audio delay", 1, "left" if left else "right")
            + ("early" if early else "no early", outcome, bool(auto), bool(free[i] != 0))
        )
        notes.append((trial, "protocol #", f"{protocol:g}"))
        if "Autolearn" in g:
            notes.append((trial, "autolearn", f"{bdr._scalar(g['Autolearn']):g}"))
        if "randomID" in g:
            rid = g["randomID"]
            notes.append((trial, "bitcode", rid if isinstance(rid, str) else f"{bdr._scalar(rid):.0f}"))
        for state, etype in bdr.EVENT_STATES.items():
            events.extend((trial, etype, float(a), float(b - a)) for a, b in visits(state))
        for ev, atype in bdr.LICK_EVENTS.items():
            times = np.atleast_1d(np.asarray(evts.get(ev, []), dtype=float))
            actions.extend((trial, atype, float(t)) for t in times[~np.isnan(times)])
        ok = protocol > 4 if late else protocol == 5
        delay = bdr._scalar(g.get("DelayPeriod"))
        if stim[i] > 0 and ok and bdr._scalar(g.get("Autolearn")) == 4 and np.isclose(delay, 1.2):
            if int(stim[i]) not in bdr.PHOTOSTIM_PROTOCOLS:
                warnings.append(
                    f"trial {trial}: StimTrials {stim[i]:g} is not a known photostim protocol "
                    f"{bdr.PHOTOSTIM_PROTOCOLS}; its photostimulation is not recorded"
                )
                continue
            onset = visits("ResponseCue")[0, 0] - 0.5 if late else visits("DelayPeriod")[-1, 0]
            stims.append((trial, int(stim[i]), float(onset), bdr.PHOTOSTIM_POWER))
    return trials, notes, events, actions, stims, skipped, warnings


def _oddities(tmp_path) -> list:
    """Rig files that exercise the rules: aborted and training trials, v7.3, reversal, late-delay
    photostimulation, repeated state visits, NaN licks, missing fields, unknown stim protocols."""
    files, k = [], 0

    def gen(**kw):
        nonlocal k
        k += 1
        kw.setdefault("when", dt.datetime(2021, 3, 1, 10, 0, k))
        return write_session_file(tmp_path / str(k), **kw).path

    for version in ("5", "7.3"):
        files += [gen(version=version, n_trials=40, seed=11, abort_every=9), gen(version=version, n_trials=2, seed=5)]
        files += [gen(version=version, n_trials=30, seed=3, reversal=2)]
    files.append(gen(n_trials=1, seed=5))
    for protocol_type, autolearn in ((3, 4), (4, 1), (5, 4), (6, 4), (7, 1)):
        files.append(
            gen(n_trials=25, seed=protocol_type, protocol_type=protocol_type, autolearn=autolearn, stim_prob=0.8)
        )
    files += [gen(n_trials=20, seed=8, reversal=3), gen(n_trials=20, seed=9, delay=0.9, stim_prob=0.9)]
    for h2o, protocol_type in (("SC12", 6), ("SC13", 5)):
        src = gen(h2o=h2o, n_trials=30, seed=4, protocol_type=protocol_type, stim_prob=0.9, abort_every=4)
        files.append(shutil.copy(src, tmp_path / f"{h2o}_Recording(Rig3)_20210301_100000.mat"))
    oddities = (
        "no RawData",
        "repeats",
        "no presample",
        "stim 7",
        "no autolearn",
        "numeric id",
        "no reversal",
        "scalar",
    )
    for j, odd in enumerate(oddities):
        session, _ = make_session_data(n_trials=30, seed=20 + j, stim_prob=0.7, abort_every=5)
        raw, settings = session["RawEvents"]["Trial"][0], session["TrialSettings"][0]
        if odd == "no RawData":
            del session["RawData"]
        elif odd == "repeats":  # states visited twice, a NaN among the licks
            for t in raw[::3]:
                for state in ("DelayPeriod", "ResponseCue", "TrialEnd"):
                    v = np.atleast_2d(t["States"][state])
                    if not np.isnan(v[0, 0]):
                        t["States"][state] = np.vstack([v, v + 0.05])
                t["Events"]["Port2In"] = np.array([[1.0, np.nan, 2.0]])
        elif odd == "no presample":  # ran to TrialEnd without PreSamplePeriod
            for t in raw[::4]:
                t["States"]["PreSamplePeriod"] = np.array([[np.nan, np.nan]])
        elif odd == "stim 7":
            session["StimTrials"] = np.where(session["StimTrials"] > 0, 7, 0)
        for i, s in enumerate(settings):
            gui = s["GUI"]
            if odd == "no autolearn" and i % 2:
                s["GUI"] = {f: v for f, v in gui.items() if f not in ("Autolearn", "randomID")}
            elif odd == "numeric id":
                gui["randomID"] = float(1234 + i)
            elif odd == "no reversal":
                s["GUI"] = {f: v for f, v in gui.items() if f != "Reversal"}
            elif odd == "scalar":
                s["GaveFreeReward"] = float(i % 3 == 0) if i % 2 else np.array([[np.nan, 0, 0]])
        files.append(_write(tmp_path, session, f"dm{j}_tw2_20210301_1000{j:02d}.mat"))
    return files


def test_vectorised_reader_equals_per_trial_rules(tmp_path, real_data):
    files = [real_data / REAL, *_oddities(tmp_path)]
    for path in files:
        d = read_delay_response(path)
        trials, notes, events, actions, stims, skipped, warnings = _per_trial_reference(path)
        for got, want in (
            (d.trials, trials),
            (d.notes, notes),
            (d.events, events),
            (d.actions, actions),
            (d.photostim_events, stims),
        ):
            assert [tuple(r) for r in got.itertuples(index=False)] == want, path.name
        assert d.skipped_trials == skipped and d.warnings == warnings, path.name
    assert sum(len(_per_trial_reference(p)[5]) for p in files) > 50  # skipped trials of every kind were seen
