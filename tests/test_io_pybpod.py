"""pybpod foraging reader against generated sessions with known ground truth (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.io.pybpod import (
    ForagingSession,
    PybpodError,
    find_day_files,
    find_sessions,
    read_foraging_day,
    read_log,
    read_subject_meta,
    rig_for_setup,
)
from pipeline.synthetic.pybpod import write_foraging_day, write_subject_meta

APPROX = dict(abs=1e-6)


def assert_same_session(got: ForagingSession, truth: ForagingSession) -> None:
    """Field by field, times with pytest.approx; the first difference is named."""
    for name in ("h2o", "setup", "rig", "experiment", "session_datetime", "files", "skipped_trials"):
        assert getattr(got, name) == getattr(truth, name), name
    assert got.blocks == [
        dataclasses.replace(b, start_time=pytest.approx(b.start_time, **APPROX)) for b in truth.blocks
    ]
    assert len(got.trials) == len(truth.trials)
    for g, t in zip(got.trials, truth.trials):
        for f in dataclasses.fields(t):
            a, b = getattr(g, f.name), getattr(t, f.name)
            if f.name in ("start_time", "stop_time"):
                assert a == pytest.approx(b, **APPROX), (t.trial, f.name)
            elif f.name == "events":
                assert [e[0] for e in a] == [e[0] for e in b], (t.trial, f.name)
                assert [e[1:] for e in a] == [pytest.approx(e[1:], **APPROX) for e in b], (t.trial, f.name)
            elif f.name == "licks":
                assert [x[0] for x in a] == [x[0] for x in b], (t.trial, f.name)
                assert [x[1] for x in a] == pytest.approx([x[1] for x in b], **APPROX), (t.trial, f.name)
            else:
                assert a == b, (t.trial, f.name, a, b)


def test_one_session_two_ports(tmp_path):
    gen = write_foraging_day(tmp_path / "proj", trials_per_session=60, seed=1)
    got = read_foraging_day(gen.files, "FOR01")
    assert_same_session(got, gen.truth)
    # the generated day exercises every rule
    assert got.rig == "Training-Tower-2" and got.setup == "Tower-2" and got.experiment == "Foraging"
    assert {t.task for t in got.trials} == {"foraging"} and {t.task_protocol for t in got.trials} == {100}
    assert {t.outcome for t in got.trials} == {"hit", "miss", "ignore"}
    assert {t.early_lick for t in got.trials} == {"early", "no early"}
    assert any(t.auto_water for t in got.trials) and not all(t.auto_water for t in got.trials)
    assert len(got.blocks) >= 4 and [b.block for b in got.blocks] == list(range(1, len(got.blocks) + 1))
    assert [t.trial for t in got.trials] == list(range(1, 61))
    assert got.trials[0].start_time == 0 and got.session_datetime.microsecond == 0
    assert got.trials[0].notes.get("random_seed_start") and "random_seed_start" not in got.trials[1].notes
    kinds = {e[0] for t in got.trials for e in t.events}
    assert {
        "videostart",
        "bitcodestart",
        "delay",
        "go",
        "choice",
        "reward",
        "doubledip",
        "trialend",
        "videoend",
    } <= kinds
    assert all(sum(e[0] == "go" for e in t.events) == 1 for t in got.trials)
    assert {lk[0] for t in got.trials for lk in t.licks} == {"left lick", "right lick"}
    assert got.trials[0].available_reward == {"left": False, "right": False}
    assert any(any(t.available_reward.values()) for t in got.trials)
    assert len({tuple(t.valve_open_duration.values()) for t in got.trials}) == 2  # 'Variables updated:'
    assert set(got.trials[0].lickport_position) == {"lateral", "rostrocaudal"}
    assert all(t.stop_time > t.start_time for t in got.trials)
    assert all(a.stop_time == pytest.approx(b.start_time) for a, b in zip(got.trials, got.trials[1:]))
    assert not got.skipped_trials


def test_two_sessions_three_ports_bitcode_and_skipped_trials(tmp_path):
    gen = write_foraging_day(
        tmp_path / "proj",
        h2o="HH09",
        date=dt.date(2021, 4, 2),
        n_sessions=2,
        trials_per_session=25,
        three_lickports=True,
        setup="Ephys_Han",
        seed=7,
        skip_gocue_every=6,
    )
    got = read_foraging_day(list(reversed(gen.files)), "HH09")  # file order does not matter
    assert_same_session(got, gen.truth)
    assert got.files == gen.files and got.rig == "Ephys-Han"
    assert [i for i, _ in got.skipped_trials] == [5, 11, 17, 23, 29, 35, 41, 47]
    assert all("no GoCue" in reason for _, reason in got.skipped_trials)
    assert len(got.trials) == 50 - 8 and [t.trial for t in got.trials] == list(range(1, 43))
    assert {t.task for t in got.trials} == {"foraging 3lp"} and {t.task_protocol for t in got.trials} == {101}
    assert {lk[0] for t in got.trials for lk in t.licks} == {"left lick", "right lick", "middle lick"}
    assert all(len(t.notes["bitcode"]) == 20 and set(t.notes["bitcode"]) <= {"0", "1"} for t in got.trials)
    assert sum("random_seed_start" in t.notes for t in got.trials) == 2
    assert all(set(b.reward_probability) == {"left", "right", "middle"} for b in got.blocks)
    assert set(got.trials[0].lickport_position) == {"lateral", "rostrocaudal", "dorsoventral"}
    # the second file starts a new block and the numbering goes on; times continue across files
    second = next(t for t in got.trials if "random_seed_start" in t.notes and t.trial > 1)
    starts = {b.first_trial: b for b in got.blocks}
    assert second.trial in starts and second.block == got.trials[second.trial - 2].block + 1
    assert starts[second.trial].start_time == pytest.approx(second.start_time)
    assert second.start_time > got.trials[second.trial - 2].stop_time  # the gap between the two sessions
    assert [b.first_trial for b in got.blocks] == sorted(starts)
    assert all(t.block == max(b.block for b in got.blocks if b.first_trial <= t.trial) for t in got.trials)
    assert [t.start_time for t in got.trials] == sorted(t.start_time for t in got.trials)


def test_single_file_and_generator_is_deterministic(tmp_path):
    a = write_foraging_day(tmp_path / "a" / "proj", trials_per_session=12, seed=3, skip_gocue_every=4)
    b = write_foraging_day(tmp_path / "b" / "proj", trials_per_session=12, seed=3, skip_gocue_every=4)
    assert a.files[0].read_text() == b.files[0].read_text()
    got = read_foraging_day(a.files[0], "FOR01")
    assert_same_session(got, a.truth)
    assert [i for i, _ in got.skipped_trials] == [3, 7, 11]


def test_read_log_columns_and_quoting(tmp_path):
    gen = write_foraging_day(tmp_path, trials_per_session=3, seed=2)
    df = read_log(gen.files[0])
    assert list(df.columns) == ["TYPE", "PC_TIME", "BPOD_INITIAL_TIME", "BPOD_FINAL_TIME", "MSG", "INFO"]
    assert pd.api.types.is_datetime64_any_dtype(df["PC_TIME"])
    assert df["BPOD_INITIAL_TIME"].dtype == float and df["BPOD_FINAL_TIME"].dtype == float
    assert (df["TYPE"] == "TRIAL").sum() == 3 and (df["TYPE"] == "END-TRIAL").sum() == 3
    assert not ((df["TYPE"] == "stdout") & (df["MSG"].str.strip() == "")).any()  # print separators dropped
    assert {"INFO", "stdout", "TRIAL", "EVENT", "TRANSITION", "SOFTCODE", "END-TRIAL", "STATE"} <= set(df["TYPE"])
    assert df["PC_TIME"].is_monotonic_increasing
    i = df.index[df["MSG"] == "Variables:"][0]
    assert df["MSG"].iat[i + 1].startswith("{'ValveOpenTime_L'")
    state = df[(df["TYPE"] == "STATE") & df["BPOD_INITIAL_TIME"].isna()]
    assert len(state) and (state["INFO"] == "nan").all()
    ev = df[df["TYPE"] == "EVENT"]
    assert set(ev["INFO"]) >= {"Tup", "Port7In", "Port7Out"} or set(ev["INFO"]) >= {"Tup", "Port8In"}


def test_find_sessions_and_day_files(tmp_path):
    proj = tmp_path / "Foraging_project"
    d1 = write_foraging_day(proj, h2o="FOR01", date=dt.date(2021, 3, 1), n_sessions=2, trials_per_session=3)
    d2 = write_foraging_day(proj, h2o="FOR02", date=dt.date(2021, 3, 1), trials_per_session=3, setup="Tower-3", seed=5)
    d3 = write_foraging_day(proj, h2o="FOR01", date=dt.date(2021, 3, 2), trials_per_session=3, seed=6)
    (proj / "experiments" / "Foraging" / "setups" / "Tower-2" / "sessions" / "junk").mkdir()
    (proj / "experiments" / "Foraging" / "setups" / "Tower-2" / "notes.csv").write_text("x\n")
    everything = d1.files + d2.files + d3.files
    assert find_sessions(proj) == sorted(everything)
    assert find_day_files(proj, "FOR01", dt.date(2021, 3, 1)) == sorted(d1.files)
    assert find_day_files([proj], "FOR02", dt.date(2021, 3, 1)) == d2.files
    assert find_day_files(proj, "FOR02", dt.date(2021, 3, 2)) == []
    assert find_sessions(tmp_path / "nowhere") == []


def test_read_subject_meta(tmp_path):
    days = [dt.date(2021, 3, 1), dt.date(2021, 3, 2), dt.date(2021, 3, 4)]
    path = write_subject_meta(tmp_path / "meta", "FOR01", days, seed=1)
    meta = read_subject_meta(path)
    assert list(meta.columns) == [
        "Date",
        "Time",
        "Time-end",
        "Training type",
        "Water during training",
        "Weight",
        "Extra water",
        "Notes",
        "is_session",
    ]
    assert pd.api.types.is_datetime64_any_dtype(meta["Date"])
    assert meta["Weight"].dtype == float and meta["is_session"].dtype == bool
    assert list(meta["Training type"]) == ["restriction", "handling", "foraging", "foraging", "foraging"]
    assert list(meta["is_session"]) == [False, False, True, True, True]
    assert [d.date() for d in meta.loc[meta["is_session"], "Date"]] == days  # both date formats parsed
    assert all(isinstance(t, dt.time) for t in meta.loc[meta["is_session"], "Time"])
    assert meta["Time"].iat[0] is None and meta["Notes"].iat[0] == "start of water restriction"
    # the candidate rule, row by row
    extra = tmp_path / "meta" / "X.csv"
    extra.write_text(
        "Date,Time,Time-end,Training type,Water during training,Weight,Extra water,Notes\n"
        "2021-03-01,10:00,11:00,foraging,0.8,20,0,\n"
        "2021-03-02,10:00,,foraging,0.8,20,0,no end time\n"
        "2021-03-03,10:00,11:00,freewater,0.8,20,0,\n"
        "2021-03-04,10:00,11:00,foraging,0,20,0,no water\n"
        "2021-03-05,10:00:30,11:00:00,Foraging,1.1,20,0.2,seconds too\n"
        ",,,,,,,comment row without a date\n"
    )
    m = read_subject_meta(extra)
    assert list(m["is_session"]) == [True, False, False, False, True, False]
    assert m["Time"].iat[4] == dt.time(10, 0, 30) and pd.isna(m["Date"].iat[5])
    with pytest.raises(PybpodError, match=r"X2\.csv: missing column\(s\) \['Weight'"):
        (tmp_path / "meta" / "X2.csv").write_text(
            "Date,Time,Time-end,Training type,Water during training,Extra water,Notes\n"
        )
        read_subject_meta(tmp_path / "meta" / "X2.csv")
    with pytest.raises(PybpodError, match="nope.csv: file not found"):
        read_subject_meta(tmp_path / "nope.csv")


# ---- clear errors, each naming the file


@pytest.fixture
def one_day(tmp_path):
    return write_foraging_day(tmp_path / "proj", trials_per_session=6, seed=4)


def test_error_truncated_file(one_day):
    path = one_day.files[0]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # cut mid-line while writing
    with pytest.raises(PybpodError, match=rf"^{path}: truncated file: the last line"):
        read_foraging_day([path], "FOR01")
    # cut at a line end, inside a trial: after an EVENT row, or inside the quoted line end of a print
    lines = data.decode().split("\n")
    last_trial = max(i for i, line in enumerate(lines) if line.startswith("TRIAL;"))
    quoted = next(i for i in range(last_trial, len(lines)) if lines[i].endswith(";|"))
    path.write_text("\n".join(lines[: quoted + 1]) + "\n")
    with pytest.raises(
        PybpodError,
        match=rf"^{path}: truncated file: it ends inside a '\|'-quoted field "
        rf"\(line {quoted + 1}\)",
    ):
        read_foraging_day([path], "FOR01")
    cut = next(i for i in range(last_trial + 10, len(lines)) if lines[i].startswith("EVENT;")) + 1
    path.write_text("\n".join(lines[:cut]) + "\n")
    with pytest.raises(
        PybpodError, match=rf"^{path}: truncated file: the last trial \(bpod trial 6\) has no END-TRIAL"
    ):
        read_foraging_day([path], "FOR01")
    got = read_foraging_day([path], "FOR01", allow_truncated=True)
    assert len(got.trials) == 5 and got.skipped_trials[0][0] == 5 and "incomplete" in got.skipped_trials[0][1]
    truth = one_day.truth.trials[:5]
    assert [t.outcome for t in got.trials] == [t.outcome for t in truth]
    path.write_bytes(data[:300])  # cut inside the preamble
    with pytest.raises(PybpodError, match=rf"^{path}: truncated file: the last line"):
        read_log(path)
    with pytest.raises(
        PybpodError,
        match=rf"^{path}: truncated file: it ends after \d+ complete line\(s\), "
        "before the column header row",
    ):
        read_log(path, allow_truncated=True)


def test_error_no_header(one_day, tmp_path):
    path = one_day.files[0]
    lines = path.read_text().split("\n")
    header = next(i for i, line in enumerate(lines) if line.startswith("TYPE;"))
    path.write_text("\n".join(lines[:header] + lines[header + 1 :]))
    with pytest.raises(PybpodError, match=rf"^{path}: no column header row \(TYPE;PC-TIME;"):
        read_foraging_day([path], "FOR01")
    path.write_text("\n".join(lines[:header] + ["TYPE;PC-TIME;MSG"] + lines[header + 1 :]))
    with pytest.raises(
        PybpodError,
        match=rf"^{path}: the header row \(line 7\) lacks column\(s\) "
        r"\['BPOD-INITIAL-TIME', 'BPOD-FINAL-TIME', '\+INFO'\]",
    ):
        read_log(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(PybpodError, match=rf"^{empty}: the file is empty"):
        read_log(empty)
    with pytest.raises(PybpodError, match=rf"^{tmp_path / 'missing.csv'}: cannot read the file"):
        read_log(tmp_path / "missing.csv")


def test_error_empty_session(one_day):
    path = one_day.files[0]
    lines = path.read_text().split("\n")
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("TRIAL;"))
    path.write_text("\n".join(lines[:first_trial]) + "\n")  # the task stopped before its first trial
    with pytest.raises(PybpodError, match=rf"^{path}: no trials \(no TRIAL 'New trial' row\)"):
        read_foraging_day([path], "FOR01")


def test_error_not_foraging_and_wrong_subject(tmp_path):
    gen = write_foraging_day(tmp_path / "proj", trials_per_session=3, experiment="AudioDelay")
    with pytest.raises(PybpodError, match=rf"^{gen.files[0]}: experiment 'AudioDelay' is not a foraging"):
        read_foraging_day(gen.files, "FOR01")
    ok = write_foraging_day(tmp_path / "proj2", trials_per_session=3, experiment="Bari_Cohen_2lp")
    assert read_foraging_day(ok.files, "FOR01").experiment == "Bari_Cohen_2lp"
    with pytest.raises(PybpodError, match=rf"^{ok.files[0]}: the session's subject is \['FOR01'"):
        read_foraging_day(ok.files, "HH09")


def test_error_all_trials_skipped_and_missing_variables(tmp_path):
    gen = write_foraging_day(tmp_path / "proj", trials_per_session=3, skip_gocue_every=1)
    with pytest.raises(PybpodError, match=rf"^{gen.files[0]}: no trial has a GoCue state"):
        read_foraging_day(gen.files, "FOR01")
    gen = write_foraging_day(tmp_path / "proj2", trials_per_session=3)
    path = gen.files[0]
    path.write_text(path.read_text().replace(";Variables:;", ";Settings:;"))
    with pytest.raises(PybpodError, match=rf"^{path}: no 'Variables:' row"):
        read_foraging_day(gen.files, "FOR01")


def test_rig_mapping():
    assert rig_for_setup("Tower-2") == rig_for_setup("Day1") == rig_for_setup("real foraging") == "Training-Tower-2"
    assert rig_for_setup(" tower-3") == rig_for_setup("+") == rig_for_setup("Tower 3") == "Training-Tower-3"
    assert rig_for_setup("tower-1") == "Training-Tower-1" and rig_for_setup("Ephys_Han") == "Ephys-Han"
    assert rig_for_setup("Tower-9") == "Tower-9"


def test_large_session(tmp_path):
    gen = write_foraging_day(tmp_path / "proj", trials_per_session=1000, seed=11, skip_gocue_every=97)
    got = read_foraging_day(gen.files, "FOR01")
    assert len(got.trials) == 1000 - 10
    assert_same_session(got, gen.truth)
    assert np.mean([t.outcome == "hit" for t in got.trials]) > 0.2


def test_error_cut_between_trials_or_still_running(one_day):
    """A log cut exactly at a line end between two trials looks complete but for SESSION-ENDED."""
    path = one_day.files[0]
    lines = path.read_text().split("\n")
    trial_starts = [i for i, line in enumerate(lines) if line.startswith("TRIAL;")]
    cut = trial_starts[3] - 2  # just before the 4th trial's marker rows: three whole trials remain
    path.write_text("\n".join(lines[:cut]) + "\n")
    with pytest.raises(PybpodError, match=rf"^{path}: no INFO SESSION-ENDED row"):
        read_foraging_day([path], "FOR01")
    got = read_foraging_day([path], "FOR01", allow_truncated=True)
    assert len(got.trials) == 3


# ---- binary garbage and a damaged metadata sheet


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x1f\x8b\x08|\xff\xfe\x00",  # NUL bytes, a gzip header, a '|' (quote char) and invalid UTF-8
        bytes(range(256)),
        b"\xff\xfe|||",  # invalid UTF-8 with an odd number of '|': must not look 'truncated'
    ],
)
def test_binary_garbage_is_not_called_truncated(one_day, garbage):
    path = one_day.files[0]
    lines = path.read_bytes().split(b"\n")
    at = len(lines) // 2
    lines[at] = lines[at][:10] + garbage + lines[at][10:]
    path.write_bytes(b"\n".join(lines))
    for call in (lambda: read_log(path), lambda: read_foraging_day([path], "FOR01", allow_truncated=True)):
        with pytest.raises(PybpodError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith(f"{path}: not a pybpod session log: undecodable bytes at line {at + 1} "), msg
        assert "truncated" not in msg and "\n" not in msg


def test_cut_inside_a_multibyte_character_is_truncation(one_day):
    path = one_day.files[0]
    data = path.read_bytes()
    path.write_bytes(data + "Variables: é".encode()[:-1])  # the last character cut in half
    with pytest.raises(PybpodError, match=rf"^{path}: truncated file: the last line"):
        read_log(path)


@pytest.mark.parametrize(
    "row, column, value, what",
    [
        ("2024-13-45,10:00,11:00,foraging,0.8,20,0,", "Date", "2024-13-45", "a valid date"),
        ("2021-02-30,10:00,11:00,foraging,0.8,20,0,", "Date", "2021-02-30", "a valid date"),
        ("2021-03-02,10:00,11:00,foraging,0.8,twenty,0,", "Weight", "twenty", "a number"),
        ("2021-03-02,10:00,11:00,foraging,0.8,20 g,0,", "Weight", "20 g", "a number"),
        ("2021-03-02,10:00,11:00,foraging,lots,20,0,", "Water during training", "lots", "a number"),
        ("2021-03-02,25:00,11:00,foraging,0.8,20,0,", "Time", "25:00", "a valid time"),
        ("2021-03-02,10:00,11h,foraging,0.8,20,0,", "Time-end", "11h", "a valid time"),
    ],
)
def test_metadata_sheet_bad_cell_names_file_line_and_column(tmp_path, row, column, value, what):
    sheet = tmp_path / "FOR09.csv"
    sheet.write_text(
        "Date,Time,Time-end,Training type,Water during training,Weight,Extra water,Notes\n"
        "2021-03-01,10:00,11:00,foraging,0.8,20,0,fine\n"
        "\n"  # a blank line: line numbers still count it
        f"{row}\n"
    )
    with pytest.raises(PybpodError) as e:
        read_subject_meta(sheet)
    msg = str(e.value)
    assert msg == f"{sheet}: line 4, column {column!r}: {value!r} is not {what}" + (
        " (YYYY-MM-DD or YYYY/MM/DD)" if column == "Date" else " (HH:MM or HH:MM:SS)" if "Time" in column else ""
    ), msg


def test_metadata_sheet_not_utf8(tmp_path):
    sheet = tmp_path / "FOR09.csv"
    sheet.write_bytes(
        b"Date,Time,Time-end,Training type,Water during training,Weight,Extra water,Notes\n"
        b"2021-03-01,10:00,11:00,foraging,0.8,20,0,caf\xe9\n"
    )
    with pytest.raises(PybpodError, match=rf"^{sheet}: line 2: not UTF-8 text"):
        read_subject_meta(sheet)


def test_metadata_sheet_good_rows_read_as_before(tmp_path):
    days = [dt.date(2021, 3, 1), dt.date(2021, 3, 2)]
    path = write_subject_meta(tmp_path / "meta", "FOR01", days, seed=3)
    raw = pd.read_csv(path)
    meta = read_subject_meta(path)
    assert len(meta) == len(raw) == 4
    np.testing.assert_allclose(meta["Weight"], raw["Weight"])
    assert [d.date() for d in meta["Date"]] == [pd.Timestamp(x.replace("/", "-")).date() for x in raw["Date"]]
