"""Read pybpod *foraging* sessions (spec 3.2) into plain dataclasses, without a database.

A pybpod session is a folder ``{project}/experiments/{experiment}/setups/{setup}/sessions/{name}/``
holding ``{name}.csv``, the log pybpod writes while the task runs: a few preamble lines
(``__UUID4__;...``, ``__CREATED_ON__;...``, ... ``__HAS_HEADER__``), the column header
``TYPE;PC-TIME;BPOD-INITIAL-TIME;BPOD-FINAL-TIME;MSG;+INFO`` and one row per message, ``;``-separated
with ``|`` as the quote character. The row types used here:

=========== =====================================================================================
INFO        session information (``SETUP-NAME``, ``SUBJECT-NAME``, ...; value in +INFO)
TRIAL       ``New trial``: the task has sent a state machine and the Bpod runs it
EVENT       a Bpod input event: BPOD-INITIAL-TIME = time in the trial, MSG = event code,
            +INFO = event name (``Port7In``, ``Tup``, ...)
TRANSITION  the state machine entered the state named in MSG at BPOD-INITIAL-TIME
END-TRIAL   the trial ended
STATE       written after END-TRIAL, one row per visit of a state (MSG = state name, BPOD-INITIAL-TIME /
            BPOD-FINAL-TIME = entry / exit, +INFO = duration); states never visited get ``nan`` times
stdout      one row per ``write()`` of the task's ``print``: ``print('Blocknumber:', 3)`` gives the rows
            ``Blocknumber:``, `` ``, ``3`` and a line end, so a value follows its marker in the next
            non-blank row
=========== =====================================================================================

Times: ``ForagingTrial.start_time``/``stop_time`` are PC-TIME based, in seconds from the first trial's
start (spec). Trial events and licks are on the Bpod trial clock (BPOD-INITIAL-TIME, 0 = the moment the
Bpod started running the trial), so that event times, durations and the lick-before-go rule all use
one clock.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, SkipItem

__all__ = [
    "PybpodError",
    "NotForaging",
    "ForagingTrial",
    "ForagingBlock",
    "ForagingSession",
    "read_log",
    "find_sessions",
    "find_day_files",
    "read_session_info",
    "read_foraging_day",
    "read_subject_meta",
    "rig_for_setup",
    "is_foraging_experiment",
    "COLUMNS",
    "STATE_EVENT_TYPES",
    "WATER_PORTS",
    "META_COLUMNS",
]

COLUMNS = ("TYPE", "PC-TIME", "BPOD-INITIAL-TIME", "BPOD-FINAL-TIME", "MSG", "+INFO")
_RENAME = {
    "PC-TIME": "PC_TIME",
    "BPOD-INITIAL-TIME": "BPOD_INITIAL_TIME",
    "BPOD-FINAL-TIME": "BPOD_FINAL_TIME",
    "+INFO": "INFO",
}
_HEADER_SEARCH_LINES = 40

#: water port -> the letter pybpod's foraging task uses in state and variable names
WATER_PORTS = {"left": "L", "right": "R", "middle": "M"}

#: pybpod state name -> experiment.TrialEventType (spec 3.2)
STATE_EVENT_TYPES = {
    "ITIBeforeVideoOn": "videostart",
    "Start": "bitcodestart",
    "DelayStart": "delay",
    "GoCue": "go",
    **{f"Choice_{x}": "choice" for x in "LRM"},
    **{f"Reward_{x}": "reward" for x in "LRM"},
    "Double_dipped": "doubledip",
    "ITI": "trialend",
    "ITIAfterVideoOff": "videoend",
}
MAX_EVENT_TIME = 9999.0  # trial event times are clipped to this (a paused protocol can exceed decimal(8,4))

_RIGS = {
    "Training-Tower-2": {"day1", "tower-2", "day2-7", "day_1", "real foraging"},
    "Training-Tower-3": {"tower-3", "tower-3beh", " tower-3", "+", "tower 3"},
    "Training-Tower-1": {"tower-1"},
    "Ephys-Han": {"ephys_han"},
}
_MOTOR_KEYS = {
    "LickPort_Lateral_pos": "lateral",
    "LickPort_RostroCaudal_pos": "rostrocaudal",
    "LickPort_DorsoVentral_pos": "dorsoventral",
}
# variables that never change within a bpod session: 'Variables updated:' rows do not override them
_CONSTANT_VARIABLE = re.compile(r"reward_probabilities|_ch_in|_ch_out|^retract_motor_signal$|^protract_motor_signal$")
_NUMPY_SCALAR = re.compile(r"\b(?:np|numpy)\.\w+\(([^()]*)\)")

#: columns of the per-subject metadata sheet ``{meta_dir}/{h2o}.csv``
META_COLUMNS = ("Date", "Time", "Time-end", "Training type", "Water during training", "Weight", "Extra water", "Notes")
NOT_A_SESSION_TYPES = ("restriction", "handling", "freewater")


class PybpodError(InputError):
    """A pybpod file cannot be used; the message starts with the file path and says what is wrong."""


class NotForaging(PybpodError, SkipItem):
    """A readable pybpod session of another experiment (not foraging): skipped, not failed."""


@dataclass
class ForagingTrial:
    trial: int  # 1-based, continuous across the bpod sessions merged into one day
    start_time: float  # s since the first trial's start (PC-TIME based)
    stop_time: float
    task: str  # 'foraging' or 'foraging 3lp'
    task_protocol: int  # 100 or 101
    block: int  # 1-based
    choice: str | None  # 'left' | 'right' | 'middle' | None (no choice)
    outcome: str  # 'hit' | 'miss' | 'ignore'
    early_lick: str  # 'early' | 'no early'
    auto_water: bool
    free_water: bool
    events: list[tuple[str, float, float]]  # (trial_event_type, time on the Bpod trial clock, duration)
    licks: list[tuple[str, float]]  # ('left lick' | 'right lick' | 'middle lick', Bpod trial time)
    available_reward: dict[str, bool]  # water port -> reward was baited at trial start
    notes: dict[str, str]  # trial_note_type -> note ('bitcode', 'random_seed_start', 'autowater')
    lickport_position: dict[str, float] | None  # {'lateral':.., 'rostrocaudal':.., 'dorsoventral':..} (keys logged)
    valve_open_duration: dict[str, float]  # water port -> s


@dataclass
class ForagingBlock:
    block: int
    first_trial: int
    start_time: float
    reward_probability: dict[str, float]  # water port -> probability (3 decimals)


@dataclass
class ForagingSession:
    h2o: str
    setup: str
    rig: str
    experiment: str
    session_datetime: dt.datetime
    files: list[Path]
    trials: list[ForagingTrial]
    blocks: list[ForagingBlock]
    skipped_trials: list[tuple[int, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# small helpers


def rig_for_setup(setup: str) -> str:
    """The lab.Rig name for a pybpod setup folder name (spec 3.2); an unknown setup keeps its name."""
    low = str(setup).lower()
    for rig, names in _RIGS.items():
        if low in names:
            return rig
    return str(setup)


def is_foraging_experiment(name: str) -> bool:
    low = str(name).lower()
    return "foraging" in low or ("bari" in low and "cohen" in low)


def _literal(path: Path, text: str, what: str):
    """A Python literal printed by the task (dict of variables); numpy scalar reprs are unwrapped."""
    for candidate in (text, _NUMPY_SCALAR.sub(r"\1", text)):
        try:
            return ast.literal_eval(candidate.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    short = text if len(text) < 80 else text[:77] + "..."
    raise PybpodError(f"{path}: the value after {what!r} is not a Python literal: {short!r}")


def _latest_before(marker_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, the index (into the sorted ``marker_rows``) of the last marker before it, or -1."""
    return np.searchsorted(marker_rows, rows, side="left") - 1


def _session_path_parts(path: Path) -> tuple[str, str] | None:
    """(experiment, setup) from ``.../experiments/{exp}/setups/{setup}/sessions/{name}/{name}.csv``."""
    p = path.parents
    try:
        if p[1].name == "sessions" and p[3].name == "setups" and p[5].name == "experiments":
            return p[4].name, p[2].name
    except IndexError:
        pass
    return None


# ----------------------------------------------------------------------------------------------
# the raw log


#: bytes that never occur in a pybpod text log (C0 controls but tab, line feed, carriage return, escape)
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


def _decode(path: Path, raw: bytes) -> str:
    """The log as text; binary garbage (invalid UTF-8, NUL and other control bytes) is an error naming
    its line. A multi-byte character cut at the very end (an unfinished last line) is left for the
    truncation checks."""
    m = _BINARY.search(raw)
    bad_at = m.start() if m else None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        last_line_start = raw.rfind(b"\n") + 1
        if e.reason == "unexpected end of data" and e.start >= last_line_start and bad_at is None:
            return raw[: e.start].decode("utf-8") + "\ufffd"  # cut mid-character while being written
        bad_at = e.start if bad_at is None else min(bad_at, e.start)
    else:
        if bad_at is None:
            return text
    line = raw.count(b"\n", 0, bad_at) + 1
    raise PybpodError(
        f"{path}: not a pybpod session log: undecodable bytes at line {line} ({raw[bad_at : bad_at + 8]!r}...): "
        "binary data in a text log, the file is damaged"
    )


def read_log(path: str | Path, allow_truncated: bool = False) -> pd.DataFrame:
    """The rows of a pybpod session CSV: columns TYPE, PC_TIME (datetime64), BPOD_INITIAL_TIME,
    BPOD_FINAL_TIME (float, NaN when empty or ``nan``), MSG, INFO (str, '' when empty).

    The preamble before the ``TYPE;PC-TIME;...`` header is skipped wherever the header is, fields
    quoted with ``|`` (pybpod's quote character, e.g. the line end of every ``print``) are read as one
    field, and ``stdout`` rows that are only whitespace (the separators and line ends of ``print``)
    are dropped, so a printed value is in the row right after its marker. A file that does not end
    with a line end was cut while being written: PybpodError, unless ``allow_truncated`` (then the
    incomplete last line is ignored).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PybpodError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if not raw.strip():
        raise PybpodError(f"{path}: the file is empty")
    text = _decode(path, raw)
    if not text.endswith("\n"):
        if not allow_truncated:
            last = text[text.rfind("\n") + 1 :]
            raise PybpodError(
                f"{path}: truncated file: the last line ({last[:40]!r}...) has no line end, "
                "so pybpod stopped while writing it"
            )
        text = text[: text.rfind("\n") + 1]
    if text.count("|") % 2:  # '|' is the quote character, doubled inside quotes
        if not allow_truncated:
            raise PybpodError(
                f"{path}: truncated file: it ends inside a '|'-quoted field (line "
                f"{text.count(chr(10), 0, text.rfind('|')) + 1}), so pybpod stopped while "
                "writing it"
            )
        text = text[: text.rfind("\n", 0, text.rfind("|")) + 1]

    head = text.split("\n", _HEADER_SEARCH_LINES)[:_HEADER_SEARCH_LINES]
    header_line = next((i for i, line in enumerate(head) if line.split(";", 1)[0].strip() == "TYPE"), None)
    if header_line is None and len(head) < _HEADER_SEARCH_LINES:
        raise PybpodError(
            f"{path}: truncated file: it ends after {text.count(chr(10))} complete line(s), "
            f"before the column header row ({';'.join(COLUMNS)})"
        )
    if header_line is None:
        raise PybpodError(
            f"{path}: no column header row ({';'.join(COLUMNS)}) in the first "
            f"{_HEADER_SEARCH_LINES} lines; is this a pybpod session log?"
        )
    header = [c.strip() for c in head[header_line].rstrip("\r").split(";")]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PybpodError(f"{path}: the header row (line {header_line + 1}) lacks column(s) {missing}; found {header}")
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=";",
            quotechar="|",
            skiprows=header_line,
            header=0,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            usecols=list(COLUMNS),
            skip_blank_lines=True,
            engine="c",
        )
    except (pd.errors.ParserError, ValueError) as e:
        raise PybpodError(f"{path}: malformed rows ({e})") from None
    df = df.rename(columns=_RENAME)
    for c in ("TYPE", "MSG", "INFO"):
        df[c] = df[c].fillna("").astype(str)
    df["TYPE"] = df["TYPE"].str.strip()
    blank = (df["TYPE"] == "stdout") & (df["MSG"].str.strip() == "")
    df = df.loc[~blank].reset_index(drop=True)

    pc = df["PC_TIME"].fillna("").astype(str).str.strip()
    df["PC_TIME"] = pd.to_datetime(pc, format="ISO8601", errors="coerce")
    bad = df["PC_TIME"].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise PybpodError(
            f"{path}: row {i + 1} after the header ({df['TYPE'].iat[i]} {df['MSG'].iat[i]!r}) "
            f"has an unreadable PC-TIME {pc.iat[i]!r}"
        )
    for c in ("BPOD_INITIAL_TIME", "BPOD_FINAL_TIME"):
        df[c] = pd.to_numeric(df[c].fillna("").astype(str).str.strip().replace("", np.nan), errors="coerce").astype(
            float
        )
    return df[["TYPE", "PC_TIME", "BPOD_INITIAL_TIME", "BPOD_FINAL_TIME", "MSG", "INFO"]]


def read_session_info(path: str | Path, max_lines: int = 200) -> dict[str, str]:
    """The INFO rows at the head of a session CSV (``SETUP-NAME``, ``SUBJECT-NAME``, ...) without
    reading the whole file (first ``max_lines`` lines); first value of each name."""
    path = Path(path)
    out: dict[str, str] = {}
    try:
        if path.stat().st_size == 0:
            raise PybpodError(f"{path}: the file is empty (zero bytes): not a pybpod session log")
        with path.open("r", encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if i >= max_lines:
                    break
                parts = line.rstrip("\r\n").split(";")
                if len(parts) >= 6 and parts[0] == "INFO":
                    out.setdefault(parts[4], ";".join(parts[5:]))
    except OSError as e:
        raise PybpodError(f"{path}: cannot read the file ({e.strerror or e})") from None
    return out


def find_sessions(project_path: str | Path) -> list[Path]:
    """Every ``{project}/experiments/{exp}/setups/{setup}/sessions/{name}/{name}.csv``, sorted."""
    root = Path(project_path)
    return sorted(
        p for p in root.glob("experiments/*/setups/*/sessions/*/*.csv") if p.stem == p.parent.name and p.is_file()
    )


def find_day_files(project_paths, h2o: str, date: dt.date) -> list[Path]:
    """The session CSVs of subject ``h2o`` on ``date`` in the given pybpod project folder(s): session
    name starting ``YYYYMMDD`` and ``h2o`` in the SUBJECT-NAME row (as pybpodgui records subjects)."""
    if isinstance(project_paths, (str, Path)):
        project_paths = [project_paths]
    day = date.strftime("%Y%m%d")
    out = []
    for proj in project_paths:
        for p in find_sessions(proj):
            if p.stem.startswith(day) and h2o in read_session_info(p).get("SUBJECT-NAME", ""):
                out.append(p)
    return sorted(out)


# ----------------------------------------------------------------------------------------------
# one bpod session file


@dataclass
class _FileTrials:
    path: Path
    experiment: str
    setup: str
    task: str
    task_protocol: int
    first_time: pd.Timestamp
    trials: list[dict]  # file order, kept and skipped (key 'skip' = reason or None)


class _Markers:
    """Printed markers of one log: ``get(name)`` = (rows of the marker, value printed after each,
    i.e. the next row's MSG)."""

    def __init__(self, df: pd.DataFrame):
        stdout = (df["TYPE"] == "stdout").to_numpy()
        key = df["MSG"].str.strip().to_numpy(dtype=object)
        self._following = np.append(key[1:], "")
        rows = np.flatnonzero(stdout & pd.Series(key).str.endswith(":").to_numpy())
        self._rows = pd.Series(rows).groupby(key[rows]).agg(list).to_dict() if len(rows) else {}

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(self._rows.get(name, []), dtype=int)
        return rows, self._following[rows]


def _parse_file(path: Path, h2o: str | None, allow_truncated: bool) -> _FileTrials:
    df = read_log(path, allow_truncated=allow_truncated)
    n = len(df)
    typ = df["TYPE"].to_numpy()
    msg = df["MSG"].to_numpy()
    info_col = df["INFO"].to_numpy()
    t0 = df["BPOD_INITIAL_TIME"].to_numpy()
    t1 = df["BPOD_FINAL_TIME"].to_numpy()
    pc = df["PC_TIME"]
    marks = _Markers(df)

    infos = df.loc[df["TYPE"] == "INFO"].drop_duplicates("MSG").set_index("MSG")["INFO"].to_dict()
    parts = _session_path_parts(path)
    experiment, setup = parts if parts else (infos.get("EXPERIMENT-NAME", ""), infos.get("SETUP-NAME", ""))
    if not is_foraging_experiment(experiment):
        raise NotForaging(
            f"{path}: experiment {experiment!r} is not a foraging experiment "
            "(its name must contain 'foraging', or 'bari' and 'cohen')"
        )
    subject = infos.get("SUBJECT-NAME")
    if h2o and subject is not None and h2o not in subject:
        raise PybpodError(f"{path}: the session's subject is {subject}, not {h2o}")

    trial_rows = np.flatnonzero((typ == "TRIAL") & (msg == "New trial"))
    if not len(trial_rows):
        raise PybpodError(f"{path}: no trials (no TRIAL 'New trial' row): an empty or aborted bpod session")

    # -- settings: 'Variables:' (the first is the base) and later 'Variables updated:' rows
    var_rows, var_text = marks.get("Variables:")
    if not len(var_rows):
        raise PybpodError(
            f"{path}: no 'Variables:' row, so the task settings (water port channels, reward probabilities) are unknown"
        )
    base = _literal(path, var_text[0], "Variables:")
    if not isinstance(base, dict):
        raise PybpodError(f"{path}: the value after 'Variables:' is not a dict")
    upd_rows, upd_text = marks.get("Variables updated:")
    snapshots_rows = [var_rows[0]]
    snapshots = [base]
    for r, text in sorted(zip(upd_rows[upd_rows > var_rows[0]], upd_text[upd_rows > var_rows[0]])):
        new = _literal(path, text, "Variables updated:")
        if isinstance(new, dict):
            snapshots_rows.append(r)
            snapshots.append({**snapshots[-1], **{k: v for k, v in new.items() if not _CONSTANT_VARIABLE.search(k)}})
    snapshots_rows = np.asarray(snapshots_rows)

    three = base.get("lickport_number") == 3
    task, task_protocol = ("foraging 3lp", 101) if three else ("foraging", 100)
    ports = ["left", "right", "middle"] if three else ["left", "right"]
    channels, probabilities = {}, {}
    for port in ports:
        x = WATER_PORTS[port]
        for key in (f"WaterPort_{x}_ch_in", f"reward_probabilities_{x}"):
            if key not in base:
                raise PybpodError(f"{path}: 'Variables:' lacks {key!r} (needed for the {port} port)")
        channels[str(base[f"WaterPort_{x}_ch_in"])] = port
        probabilities[port] = list(base[f"reward_probabilities_{x}"])

    # -- trial ranges: a trial starts 2 rows before its 'New trial' row (where the task printed its
    #    bitcode / trial number), the first at row 0; it runs to the next trial's start
    starts = trial_rows - 2
    starts[0] = 0
    starts[1:] = np.maximum(starts[1:], trial_rows[:-1] + 1)
    ends = np.append(starts[1:], n)  # exclusive
    stop_rows = np.append(starts[1:], n - 1)  # the row whose PC-TIME is the trial's stop
    tid = np.searchsorted(starts, np.arange(n), side="right") - 1
    n_trials = len(trial_rows)

    def first_per_trial(rows: np.ndarray, values) -> dict[int, object]:
        if not len(rows):
            return {}
        s = pd.Series(list(values), index=tid[rows])
        return s.groupby(level=0, sort=False).first().to_dict()

    ended = set(tid[typ == "END-TRIAL"].tolist()) if (typ == "END-TRIAL").any() else set()

    # -- printed per-trial values (the latest one printed before the trial's 'New trial' row)
    blk_rows, blk_text = marks.get("Blocknumber:")
    blk_val = pd.to_numeric(pd.Series(blk_text, dtype=object), errors="coerce").to_numpy(dtype=float)
    ok = ~np.isnan(blk_val)
    blk_rows, blk_val = blk_rows[ok], blk_val[ok]
    blk_idx = _latest_before(blk_rows, trial_rows)
    accumulated = {}
    for port in ports:
        r, v = marks.get(f"reward_{WATER_PORTS[port]}_accumulated:")
        i = _latest_before(r, trial_rows)
        accumulated[port] = (
            np.where(i >= 0, np.asarray(v, dtype=object)[np.maximum(i, 0)] == "True", False)
            if len(r)
            else np.zeros(n_trials, bool)
        )
    var_idx = _latest_before(snapshots_rows, trial_rows)

    mot_rows, mot_text = marks.get("LickportMotors:")
    motors = [_literal(path, t, "LickportMotors:") for t in mot_text]
    mot_in = np.searchsorted(mot_rows, starts, side="left")  # first at or after the trial start

    bitcodes = first_per_trial(*marks.get("TrialBitCode:"))
    seeds = first_per_trial(*marks.get("Random seed:"))

    # -- Bpod states -> trial events (visited states only: BPOD-INITIAL-TIME > 0)
    st = np.flatnonzero((typ == "STATE") & (t0 > 0) & pd.Series(msg).isin(STATE_EVENT_TYPES).to_numpy())
    st = st[np.lexsort((t0[st], tid[st]))]
    st_tid = tid[st]
    st_type = pd.Series(msg[st], dtype=object).map(STATE_EVENT_TYPES).to_numpy(dtype=object)
    st_time = np.minimum(t0[st], MAX_EVENT_TIME)
    st_dur = t1[st] - t0[st]
    st_bounds = np.searchsorted(st_tid, np.arange(n_trials + 1))
    go_time = pd.Series(st_time[st_type == "go"], index=st_tid[st_type == "go"]).groupby(level=0).min()

    # -- licks: EVENT rows whose event name (+INFO) is a water port's input channel ('Port7In'); a
    #    numeric channel is an event code (MSG), and old logs without +INFO have the name in MSG
    lick_name = info_col
    if all(c.isdigit() for c in channels) or ((typ == "EVENT").any() and not (info_col[typ == "EVENT"] != "").any()):
        lick_name = msg
    lk = np.flatnonzero((typ == "EVENT") & pd.Series(lick_name).isin(channels).to_numpy())
    lk = lk[np.lexsort((t0[lk], tid[lk]))]
    lk_tid = tid[lk]
    lk_type = (pd.Series(lick_name[lk], dtype=object).map(channels) + " lick").to_numpy(dtype=object)
    lk_time = t0[lk]
    lk_bounds = np.searchsorted(lk_tid, np.arange(n_trials + 1))
    first_lick = pd.Series(lk_time, index=lk_tid).groupby(level=0).min()

    # -- choice and reward transitions
    choice_names = {f"Choice_{WATER_PORTS[p]}": p for p in ports}
    ch = np.flatnonzero((typ == "TRANSITION") & pd.Series(msg).isin(choice_names).to_numpy())
    choices = first_per_trial(ch, pd.Series(msg[ch], dtype=object).map(choice_names))
    rewarded = set(
        tid[
            (typ == "TRANSITION") & pd.Series(msg).isin([f"Reward_{WATER_PORTS[p]}" for p in ports]).to_numpy()
        ].tolist()
    )

    # -- auto water: visited Auto_Water_X states
    auto_names = {f"Auto_Water_{WATER_PORTS[p]}": p for p in ports}
    aw = np.flatnonzero((typ == "STATE") & ~np.isnan(t0) & pd.Series(msg).isin(auto_names).to_numpy())
    auto_trials = set(tid[aw].tolist())
    auto_dur: dict[tuple[int, str], float] = {}
    for k, m, d in zip(tid[aw].tolist(), msg[aw], (t1[aw] - t0[aw]).tolist()):
        auto_dur.setdefault((k, auto_names[m]), d)

    trials = []
    for k in range(n_trials):
        rec: dict = {"start": pc.iat[starts[k]], "stop": pc.iat[stop_rows[k]], "skip": None}
        if k not in ended:
            if k == n_trials - 1 and not allow_truncated:
                raise PybpodError(f"{path}: truncated file: the last trial (bpod trial {k + 1}) has no END-TRIAL row")
            rec["skip"] = f"incomplete trial, no END-TRIAL row ({path.name}, bpod trial {k + 1})"
            trials.append(rec)
            continue
        if k not in go_time.index:
            rec["skip"] = f"no GoCue state ({path.name}, bpod trial {k + 1})"
            trials.append(rec)
            continue
        b = int(blk_val[blk_idx[k]]) if blk_idx[k] >= 0 else 1
        if not 1 <= b <= min(len(v) for v in probabilities.values()):
            raise PybpodError(
                f"{path}: bpod trial {k + 1} is in block {b}, but the reward probabilities "
                f"list only {min(len(v) for v in probabilities.values())} blocks"
            )
        variables = snapshots[var_idx[k]] if var_idx[k] >= 0 else base
        if mot_in[k] < len(mot_rows) and mot_rows[mot_in[k]] < ends[k]:
            motor = motors[mot_in[k]]
        elif mot_in[k] > 0:
            motor = motors[mot_in[k] - 1]
        else:
            motor = None
        lo, hi = st_bounds[k], st_bounds[k + 1]
        events = list(zip(st_type[lo:hi].tolist(), st_time[lo:hi].tolist(), st_dur[lo:hi].tolist()))
        lo, hi = lk_bounds[k], lk_bounds[k + 1]
        licks = list(zip(lk_type[lo:hi].tolist(), lk_time[lo:hi].tolist()))
        choice = choices.get(k)
        notes = {}
        if k in bitcodes:
            notes["bitcode"] = str(bitcodes[k])
        if k in seeds:
            notes["random_seed_start"] = str(seeds[k])
        auto_water = k in auto_trials
        if auto_water:
            watered = [p for p in ports if auto_dur.get((k, p), 0.0) > 0.001]
            if watered:
                notes["autowater"] = " and ".join(watered)
        rec.update(
            task=task,
            task_protocol=task_protocol,
            probability={p: round(float(probabilities[p][b - 1]), 3) for p in ports},
            choice=choice,
            outcome="hit" if k in rewarded else ("miss" if choice else "ignore"),
            early_lick="early" if k in first_lick.index and first_lick[k] < go_time[k] else "no early",
            auto_water=auto_water,
            events=events,
            licks=licks,
            available_reward={p: bool(accumulated[p][k]) for p in ports},
            notes=notes,
            lickport_position=None
            if not isinstance(motor, dict)
            else {_MOTOR_KEYS[key]: float(v) for key, v in motor.items() if key in _MOTOR_KEYS},
            valve_open_duration={
                p: float(variables[f"ValveOpenTime_{WATER_PORTS[p]}"])
                for p in ports
                if f"ValveOpenTime_{WATER_PORTS[p]}" in variables
            },
        )
        trials.append(rec)
    # pybpod closes every session with INFO SESSION-ENDED. Without it the file was cut (possibly
    # exactly at a line end, between trials) or the session is still running: loading it now would
    # store half a session, and the finished file would later differ from what was loaded.
    if not allow_truncated and not ((df["TYPE"] == "INFO") & (df["MSG"] == "SESSION-ENDED")).any():
        raise PybpodError(
            f"{path}: no INFO SESSION-ENDED row: the session is still being recorded, or the "
            "file was cut or pybpod stopped before closing it"
        )
    return _FileTrials(
        path=path,
        experiment=experiment,
        setup=setup,
        task=task,
        task_protocol=task_protocol,
        first_time=pc.iat[0],
        trials=trials,
    )


# ----------------------------------------------------------------------------------------------
# one subject-day


def read_foraging_day(paths, h2o: str, allow_truncated: bool = False) -> ForagingSession:
    """The bpod sessions (CSV paths) of subject ``h2o`` on one day as one session.

    Files are ordered by their first PC-TIME; trials are numbered 1.. across them (trials without a
    GoCue state are left out and listed in ``skipped_trials`` as (0-based index of the 'New trial'
    row among all of the day's, reason)). A new block starts with each file and whenever the reward
    probabilities change; block numbers continue across files. ``allow_truncated`` reads a file cut
    while being written up to its last complete row and skips an unfinished last trial.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise PybpodError("read_foraging_day: no files given")
    parsed, other = [], []
    for p in dict.fromkeys(paths):
        try:
            parsed.append(_parse_file(p, h2o, allow_truncated))
        except NotForaging as e:
            other.append(e)
    if other and not parsed:  # only sessions of other experiments that day: nothing to load, nothing wrong
        raise NotForaging("; ".join(str(e) for e in other))
    if other:  # a foraging day with another experiment's session in it: which belongs is for a person to say
        raise PybpodError(f"{other[0]} (the day also has foraging sessions; move the other experiment's session away)")
    files = sorted(parsed, key=lambda f: (f.first_time, str(f.path)))
    kept = [(fi, rec) for fi, f in enumerate(files) for rec in f.trials if rec["skip"] is None]
    if not kept:
        others = f" (and {len(files) - 1} more file(s))" if len(files) > 1 else ""
        raise PybpodError(f"{files[0].path}{others}: no trial has a GoCue state")
    t_zero = kept[0][1]["start"]

    trials: list[ForagingTrial] = []
    blocks: list[ForagingBlock] = []
    skipped: list[tuple[int, str]] = []
    index = 0
    prev_key = None
    for fi, f in enumerate(files):
        for rec in f.trials:
            if rec["skip"] is not None:
                skipped.append((index, rec["skip"]))
                index += 1
                continue
            index += 1
            number = len(trials) + 1
            start = (rec["start"] - t_zero).total_seconds()
            key = (fi, tuple(rec["probability"].items()))
            if key != prev_key:
                blocks.append(
                    ForagingBlock(
                        block=len(blocks) + 1,
                        first_trial=number,
                        start_time=start,
                        reward_probability=dict(rec["probability"]),
                    )
                )
                prev_key = key
            trials.append(
                ForagingTrial(
                    trial=number,
                    start_time=start,
                    stop_time=(rec["stop"] - t_zero).total_seconds(),
                    task=rec["task"],
                    task_protocol=rec["task_protocol"],
                    block=blocks[-1].block,
                    choice=rec["choice"],
                    outcome=rec["outcome"],
                    early_lick=rec["early_lick"],
                    auto_water=rec["auto_water"],
                    free_water=False,
                    events=rec["events"],
                    licks=rec["licks"],
                    available_reward=rec["available_reward"],
                    notes=rec["notes"],
                    lickport_position=rec["lickport_position"],
                    valve_open_duration=rec["valve_open_duration"],
                )
            )
    first = files[0]
    return ForagingSession(
        h2o=h2o,
        setup=first.setup,
        rig=rig_for_setup(first.setup),
        experiment=first.experiment,
        session_datetime=t_zero.to_pydatetime(),
        files=[f.path for f in files],
        trials=trials,
        blocks=blocks,
        skipped_trials=skipped,
    )


# ----------------------------------------------------------------------------------------------
# the subject metadata sheet


def _parse_times(s: pd.Series) -> pd.Series:
    t = pd.to_datetime(s, format="%H:%M", errors="coerce")
    t = t.fillna(pd.to_datetime(s, format="%H:%M:%S", errors="coerce"))
    return pd.Series([x.time() if pd.notna(x) else None for x in t], index=s.index, dtype=object)


def read_subject_meta(path: str | Path) -> pd.DataFrame:
    """``{meta_dir}/{h2o}.csv``: one row per day of training/handling/restriction.

    Returns the columns of META_COLUMNS parsed (Date datetime64, Time and Time-end datetime.time or
    None, the three amounts float, Training type and Notes str) plus ``is_session``: the row is a
    behaviour session candidate (spec 3.2: a date, both times filled in, type not restriction /
    handling / freewater, Water during training > 0). Empty cells are allowed (NaT / None / NaN); a
    filled-in cell that is not a valid date (``2024-13-45``), time or non-negative number is a PybpodError naming
    the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise PybpodError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise PybpodError(
            f"{path}: line {line}: not UTF-8 text (byte {raw[e.start : e.start + 1]!r}); save the sheet as UTF-8 CSV"
        ) from None
    try:
        # blank lines are kept (and dropped below) so that row i is on line i + 2
        df = pd.read_csv(
            io.BytesIO(raw),
            dtype=str,
            keep_default_na=True,
            skipinitialspace=True,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except Exception as e:
        raise PybpodError(f"{path}: cannot read as CSV ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in META_COLUMNS if c not in df.columns]
    if missing:
        raise PybpodError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    line = pd.Series(np.arange(len(df)) + 2, index=df.index)
    keep = df.notna().any(axis=1)
    df, line = df.loc[keep].reset_index(drop=True), line.loc[keep].reset_index(drop=True)
    out = df[list(META_COLUMNS)].copy()
    text = {c: out[c].fillna("").astype(str).str.strip() for c in META_COLUMNS}

    def refuse(column: str, bad: pd.Series, what: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            more = f" ({int(bad.sum())} such cells in the column)" if bad.sum() > 1 else ""
            raise PybpodError(
                f"{path}: line {int(line.iat[i])}, column {column!r}: {text[column].iat[i]!r} is not {what}{more}"
            )

    date = pd.to_datetime(text["Date"], format="%Y-%m-%d", errors="coerce")
    out["Date"] = date.fillna(pd.to_datetime(text["Date"], format="%Y/%m/%d", errors="coerce"))
    refuse("Date", (text["Date"] != "") & out["Date"].isna(), "a valid date (YYYY-MM-DD or YYYY/MM/DD)")
    for c in ("Time", "Time-end"):
        out[c] = _parse_times(text[c])
        refuse(c, (text[c] != "") & out[c].isna(), "a valid time (HH:MM or HH:MM:SS)")
    for c in ("Water during training", "Weight", "Extra water"):
        out[c] = pd.to_numeric(text[c].replace("", np.nan), errors="coerce").astype(float)
        refuse(c, (text[c] != "") & ~np.isfinite(out[c]), "a number")
        refuse(c, out[c] < 0, "a non-negative amount")
    out["Training type"] = out["Training type"].fillna("").astype(str).str.strip()
    out["Notes"] = out["Notes"].fillna("").astype(str)
    out["is_session"] = (
        out["Date"].notna()
        & (text["Time"] != "")
        & (text["Time-end"] != "")
        & ~out["Training type"].str.lower().isin(NOT_A_SESSION_TYPES)
        & (out["Water during training"].fillna(0) > 0)
    ).astype(bool)
    return out
