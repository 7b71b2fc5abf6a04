"""Delay-response and multi-target-licking rig files: a Bpod ``SessionData`` .mat (v5 or v7.3) ->
trials, events, licks (and MTL blocks).

The rules follow the original MAP ingest (spec 3.1); times are seconds. Trial start/stop are
from the session's first trial start, event and lick times from their trial's start.

* A trial is kept if the protocol's states exist (PreSamplePeriod, SamplePeriod, DelayPeriod,
  ResponseCue, StopLicking, TrialEnd), GUI.ProtocolType >= 3, and PreSamplePeriod and TrialEnd
  were visited; otherwise it is listed in ``skipped_trials`` with the reason.
* instruction: TrialTypes 1 = left, 0 = right (GUI.Reversal 2 swaps them).
* outcome: hit if Reward was visited, miss if TimeOut, else ignore.
* early lick: ProtocolType >= 5 and EarlyLickSample or EarlyLickDelay visited.
* auto water: GUI.Autowater == 1 or GaveFreeReward[0:2] non-zero; free water: FreeTrials.
* events, one per visit: PreSamplePeriod presample, SamplePeriod sample, DelayPeriod delay,
  ResponseCue go, TrialEnd trialend. Licks from the Port1In (left) / Port2In (right) events
  (the original used Bpod 0.7's event codes 69/71, which are those same events).
* photostimulation (protocols 4-6 of ``experiment.PhotostimProtocol``): early-delay (onset at
  the last DelayPeriod start, ProtocolType 5) unless the h2o starts with SC and the file name
  has ``Recording(Rig3)_`` (late delay: onset 0.5 s before go, ProtocolType > 4); only on
  trials with StimTrials > 0, Autolearn 4 and a 1.2 s delay; power 5.5 mW.

Which files are read: a SessionData whose TrialSettings.GUI has ProtocolType with SamplePeriod or
DelayPeriod, or whose state machine has all of REQUIRED_STATES, *claims* the delay-response task;
any other Bpod file (Bpod 2 or 0.5, with or without TrialTypes / Info) is ``UnsupportedProtocol``
(a ``SkipItem``: skipped, not failed). A claiming file that is inconsistent is a BehaviorFileError:
a missing field, per-trial arrays of the wrong length, a TrialStartTimestamp that is NaN or does not
increase (named by trial), or a file-name date that is not ``Info.SessionDate``.

Session start: ``Info.SessionDate`` + ``Info.SessionStartTime_UTC`` when the file has them, else the
file name's ``<yyyymmdd>_<hhmmss>``; ``BehaviorData.start_source`` says which (for the loader's log).

**Multi-target licking (MTL)** files (``read_mtl``; ``read_rig_file`` reads either task) are those
whose ``SettingsFile.GUI`` (else the first trial's ``TrialSettings.GUI``) has X_center, Y_center and
Z_center and neither SamplePeriod nor DelayPeriod. Rules (spec 3.1):

* A trial is kept if its ``MATLABStartTimes`` entry is not 0 and it reached TrialEnd; stop = start +
  the first TrialEnd. Task multi-target-licking, protocol GUI.ProtocolType (1 = 2D, 2 = spontaneous),
  instruction none, early lick "no early", outcome N/A, free water no.
* Blocks: a block starts where ``TrialBlockOrder`` is 1 (block = cumsum(TrialBlockOrder == 1)),
  numbered 1, 2, ... over the blocks with kept trials; ``block_trial_number`` is TrialBlockOrder. The
  first trial of a block is auto water (the rig gives a free drop). Per block, from its first kept
  trial's GUI: NumLicksForReward, RollDeg (0 with a warning if absent), num_bins (x and z bins; y 1).
* Port ``mtl-<TrialTypes>``, at x / z = ``X_positions_mat`` / ``Z_positions_mat`` of the trial where
  ``trial_type_mat`` equals the trial type, y = GUI.Y_center (motor units); a block lists each port
  its trials used.
* Notes: bitcode = the trial's number in the file as 10 binary digits, reversed
  (``binary_repr(trial, 10)[::-1]``). Events: trialend only (one per TrialEnd visit). Licks: the
  single lick port's Port1In events, as ``middle lick``.
* A per-trial array of the wrong length, a trial type that is not one cell of ``trial_type_mat`` or
  has no port (``mtl-1`` to ``mtl-9``), or a missing GUI field is a BehaviorFileError naming the file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, SkipItem
from .matfile import MatFileError, no_gc, read_mat

FILENAME = re.compile(r"^(?P<h2o>[a-zA-Z]{2}[^_]*)_(?P<task>.*)_(?P<date>\d{8})_(?P<time>\d{6})\.mat$")
REQUIRED_STATES = ("PreSamplePeriod", "SamplePeriod", "DelayPeriod", "ResponseCue", "StopLicking", "TrialEnd")
EVENT_STATES = {
    "PreSamplePeriod": "presample",
    "SamplePeriod": "sample",
    "DelayPeriod": "delay",
    "ResponseCue": "go",
    "TrialEnd": "trialend",
}
LICK_EVENTS = {"Port1In": "left lick", "Port2In": "right lick"}
PHOTOSTIM_POWER = 5.5  # mW, as the original recorded for every ALM stimulation
PHOTOSTIM_PROTOCOLS = (4, 5, 6)

TRIAL_COLUMNS = (
    "trial",
    "start_time",
    "stop_time",
    "task",
    "task_protocol",
    "trial_instruction",
    "early_lick",
    "outcome",
    "auto_water",
    "free_water",
)

BLOCK_COLUMNS = (
    "block",
    "block_start_time",
    "trial_count",
    "num_licks_for_reward",
    "roll_deg",
    "position_x_bins",
    "position_y_bins",
    "position_z_bins",
)
BLOCK_PORT_COLUMNS = ("block", "water_port", "position_x", "position_y", "position_z")
BLOCK_TRIAL_COLUMNS = ("block", "trial", "block_trial_number")
MTL_TASK = "multi-target-licking"
MTL_CENTER = ("X_center", "Y_center", "Z_center")
MTL_LICK_EVENTS = {"Port1In": "middle lick"}


class BehaviorFileError(InputError):
    """The file cannot be loaded; the message names the file and what is wrong."""


class UnsupportedProtocol(BehaviorFileError, SkipItem):
    """A readable Bpod file of a protocol this reader does not load (skip it, it is not broken)."""


@dataclass
class BehaviorData:
    """One rig file's trials and what happened in them, as tables ready to insert."""

    path: Path
    h2o: str
    session_datetime: dt.datetime
    trials: pd.DataFrame  # TRIAL_COLUMNS
    notes: pd.DataFrame  # trial, trial_note_type, trial_note
    events: pd.DataFrame  # trial, trial_event_type, trial_event_time, duration
    actions: pd.DataFrame  # trial, action_event_type, action_event_time
    photostim_events: pd.DataFrame  # trial, photostim_protocol, photostim_event_time, power
    skipped_trials: list[tuple[int, str]] = field(default_factory=list)
    n_trials_in_file: int = 0
    warnings: list[str] = field(default_factory=list)
    #: where ``session_datetime`` came from, a short sentence for the loader to print:
    #: ``START_FROM_INFO`` or ``START_FROM_FILE_NAME``
    start_source: str = ""
    #: ``experiment.Task`` of every trial: "audio delay" or "multi-target-licking"
    task: str = "audio delay"
    #: multi-target-licking only (else empty): BLOCK_COLUMNS, BLOCK_PORT_COLUMNS, BLOCK_TRIAL_COLUMNS
    blocks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BLOCK_COLUMNS)))
    block_ports: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BLOCK_PORT_COLUMNS)))
    block_trials: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BLOCK_TRIAL_COLUMNS)))


START_FROM_INFO = "Info.SessionDate + Info.SessionStartTime_UTC (UTC)"
START_FROM_FILE_NAME = "file name <yyyymmdd>_<hhmmss> (rig local time; the file has no Info.SessionDate)"


def parse_filename(path: str | Path) -> dict[str, str] | None:
    """``dl25_tw2_20180225_102508.mat`` -> {'h2o': 'dl25', 'task': 'tw2', 'date': ..., 'time': ...}."""
    m = FILENAME.match(Path(path).name)
    return m.groupdict() if m else None


def _per_trial(value: Any, n: int, what: str, path: Path) -> list:
    """A MATLAB per-trial array/cell/struct array as a list of length n (n == 1 comes squeezed)."""
    if n == 1 and not (isinstance(value, list) and len(value) == 1):
        return [value]
    if isinstance(value, np.ndarray):
        value = list(value.ravel()) if value.ndim else [value.item()]
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise BehaviorFileError(f"{path}: {what} has {got} entries but nTrials is {n}")
    return value


def _struct_array(value: Any, n: int, what: str, path: Path) -> list[dict]:
    """A 1 x n struct array (pymatreader: dict of per-element lists) as n dicts."""
    if isinstance(value, list):
        return _per_trial(value, n, what, path)
    if not isinstance(value, dict):
        raise BehaviorFileError(f"{path}: {what} is not a struct array")
    if n == 1:
        return [value]
    out = [dict() for _ in range(n)]
    for k, v in value.items():
        vals = _per_trial(v, n, f"{what}.{k}", path)
        for i in range(n):
            out[i][k] = vals[i]
    return out


_NO_VISITS = np.empty((0, 2))
_NO_VISITS.flags.writeable = False
_NO_NUMBERS = np.empty(0)
_NO_NUMBERS.flags.writeable = False


def _visits(states: dict, name: str) -> np.ndarray:
    """(k, 2) array of [start, stop] of each visit to a state (k = 0 if never visited)."""
    v = states.get(name)
    if v is None:
        return _NO_VISITS
    if type(v) is np.ndarray and v.shape == (2,) and v.dtype == np.float64:  # one visit, or [NaN NaN]: none
        return _NO_VISITS if v[0] != v[0] else v.reshape(1, 2)
    v = np.asarray(v, dtype=np.float64)
    v = v.reshape(-1, 2) if v.size else np.empty((0, 2))
    return v[~np.isnan(v[:, 0])]


def _scalar(x: Any, default: float = np.nan) -> float:
    a = np.asarray(x, dtype=np.float64).ravel() if x is not None else np.empty(0)
    return float(a[0]) if a.size else default


def _require(S: dict, path: Path, *fields: str) -> None:
    missing = [f for f in fields if f not in S]
    if missing:
        raise BehaviorFileError(f"{path}: SessionData lacks {', '.join(missing)}")


def session_datetime(info: dict, path: Path) -> dt.datetime:
    try:
        date = dt.datetime.strptime(str(info["SessionDate"]).strip(), "%d-%b-%Y").date()
        t = dt.datetime.strptime(str(info["SessionStartTime_UTC"]).strip(), "%H:%M:%S").time()
    except (KeyError, ValueError) as e:
        raise BehaviorFileError(
            f"{path}: SessionData.Info has no usable SessionDate/SessionStartTime_UTC ({e})"
        ) from None
    return dt.datetime.combine(date, t)


def _session_start(S: dict, names: dict[str, str], path: Path) -> tuple[dt.datetime, str]:
    """(session start, where it came from): Info.SessionDate + SessionStartTime_UTC when the file has
    them (the date must be the file name's), else the file name's date and time."""
    try:
        from_name = dt.datetime.strptime(names["date"] + names["time"], "%Y%m%d%H%M%S")
    except ValueError:
        raise BehaviorFileError(
            f"{path}: the file name's date/time {names['date']}_{names['time']} is not a valid yyyymmdd_hhmmss"
        ) from None
    info = S.get("Info")
    if not isinstance(info, dict) or ("SessionDate" not in info and "SessionStartTime_UTC" not in info):
        return from_name, START_FROM_FILE_NAME
    when = session_datetime(info, path)
    # Bpod writes SessionDate (local) when the session starts, the file name a moment before: the
    # same day, unless the session was started just before midnight
    days = (when.date() - from_name.date()).days
    if not (days == 0 or (days == 1 and from_name.time() >= dt.time(23, 0))):
        raise BehaviorFileError(
            f"{path}: the file name's date {from_name:%Y-%m-%d} disagrees with Info.SessionDate "
            f"{str(info['SessionDate']).strip()} ({when:%Y-%m-%d}): a renamed file or a wrong rig clock"
        )
    return when, START_FROM_INFO


def _first(value: Any) -> Any:
    """The first element of a MATLAB per-trial list / struct array (or the value itself)."""
    if isinstance(value, list):
        return value[0] if value else None
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value.ravel()[0] if value.size else None
    return value


def _protocol_claim(S: dict) -> tuple[bool, str]:
    """(does the file claim MAP's delay-response protocol?, what it looks like, for messages).

    It does when its first trial's TrialSettings.GUI has ProtocolType and SamplePeriod or
    DelayPeriod (the MAP task's settings), or its state machine has every state of REQUIRED_STATES."""
    settings = S.get("TrialSettings")
    first = _first(settings)
    gui = first.get("GUI") if isinstance(first, dict) else None
    gui = _first(gui) if isinstance(gui, list) else gui
    gui_fields = sorted(gui) if isinstance(gui, dict) else []
    states: set[str] = set()
    raw_data = S.get("RawData")
    names = raw_data.get("OriginalStateNamesByNumber") if isinstance(raw_data, dict) else None
    if names is not None:
        # a cell of per-trial name lists, or (one trial, squeezed) the name list itself
        flat = names if isinstance(names, (str, list)) else np.asarray(names, dtype=object).ravel().tolist()
        if isinstance(flat, list) and flat and not isinstance(flat[0], str):
            flat = flat[0]
        flat = [flat] if isinstance(flat, str) else np.asarray(flat, dtype=object).ravel().tolist()
        states = {str(x) for x in flat}
    raw = S.get("RawEvents")
    trial0 = _first(raw.get("Trial")) if isinstance(raw, dict) else None
    if not states and isinstance(trial0, dict) and isinstance(trial0.get("States"), dict):
        states = set(trial0["States"])
    by_gui = "ProtocolType" in gui_fields and ("SamplePeriod" in gui_fields or "DelayPeriod" in gui_fields)
    by_states = set(REQUIRED_STATES) <= states
    looks = (
        f"TrialSettings.GUI fields: {', '.join(gui_fields[:6]) or 'none'}{'...' if len(gui_fields) > 6 else ''}; "
        f"states: {', '.join(sorted(states)[:6]) or 'none'}{'...' if len(states) > 6 else ''}"
    )
    return by_gui or by_states, looks


def read_delay_response(path: str | Path) -> BehaviorData:
    """Read one delay-response rig file. Raises BehaviorFileError (or UnsupportedProtocol)."""
    path = Path(path)
    with no_gc():  # the file's values are gone before the collector would look at them
        names, S = _load(path)
        if is_mtl(S):
            raise UnsupportedProtocol(
                f"{path}: a multi-target-licking file, not delay-response (read it with read_rig_file or read_mtl)"
            )
        return _read_delay_response(path, names, S)


def read_rig_file(path: str | Path) -> BehaviorData:
    """Read one rig file of either task: multi-target-licking (see :func:`is_mtl`) or delay-response."""
    path = Path(path)
    with no_gc():  # the file's values are gone before the collector would look at them
        names, S = _load(path)
        if is_mtl(S):
            return _read_mtl(path, names, S)
        return _read_delay_response(path, names, S)


def _load(path: Path) -> tuple[dict[str, str], dict]:
    """(file-name parts, SessionData) of a rig file; BehaviorFileError / UnsupportedProtocol."""
    names = parse_filename(path)
    if names is None:
        raise BehaviorFileError(f"{path}: file name is not <h2o>_<task>_<yyyymmdd>_<hhmmss>.mat")
    try:
        data = read_mat(path)
    except MatFileError as e:
        raise BehaviorFileError(str(e)) from None
    if "SessionData" not in data or not isinstance(data["SessionData"], dict):
        raise UnsupportedProtocol(f"{path}: no Bpod SessionData struct in the file")
    return names, data["SessionData"]


def _trial_starts(S: dict, n: int, path: Path) -> np.ndarray:
    """TrialStartTimestamp as n finite, increasing numbers (BehaviorFileError naming the trial)."""
    try:
        starts = np.asarray(_per_trial(S["TrialStartTimestamp"], n, "TrialStartTimestamp", path), dtype=np.float64)
    except (TypeError, ValueError):
        raise BehaviorFileError(f"{path}: TrialStartTimestamp is not a list of numbers") from None
    if not np.isfinite(starts).all():
        bad = np.flatnonzero(~np.isfinite(starts))
        raise BehaviorFileError(
            f"{path}: TrialStartTimestamp of trial {int(bad[0]) + 1} is {starts[bad[0]]:g} "
            f"({bad.size} trial(s) without a start time)"
        )
    back = np.flatnonzero(np.diff(starts) <= 0)
    if back.size:
        k = int(back[0]) + 1
        raise BehaviorFileError(
            f"{path}: TrialStartTimestamp goes backwards at trial {k + 1}: {starts[k]:g} s after "
            f"{starts[k - 1]:g} s of trial {k} ({starts[k] - starts[k - 1]:+g} s; trial start times must increase)"
        )
    return starts


def _numbers(values: list, default: float = np.nan) -> np.ndarray:
    """Per-trial numbers as :func:`_scalar` reads each (a number, the first of an array; ``default``
    for None or an empty array): in one go when they are all plain numbers."""
    try:
        a = np.array(values, dtype=np.float64)
        if a.shape == (len(values),) and (np.isnan(default) or all(v is not None for v in values)):
            return a
    except (TypeError, ValueError):
        pass
    return np.array([_scalar(v, default) for v in values], dtype=np.float64).reshape(len(values))


def _rows(values: list, width: int, what: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial number arrays (None: none) -> (trial index of each row, the rows as (m, width)
    floats), in trial order, without rows whose first number is NaN. A state's visits are rows of
    [start stop] (width 2; Bpod writes [NaN NaN] for a state not visited), event times rows of 1."""
    n = len(values)
    try:  # most often every trial has one row: all at once
        rows = np.array(values, dtype=np.float64)
        if rows.shape != ((n, width) if width > 1 else (n,)):
            raise ValueError
        rows, trial = rows.reshape(n, width), np.arange(n)
    except (TypeError, ValueError):
        parts = [np.asarray(v, dtype=np.float64).ravel() if v is not None else _NO_NUMBERS for v in values]
        sizes = np.fromiter(map(len, parts), dtype=np.intp, count=n)
        odd = np.flatnonzero(sizes % width)
        if odd.size:
            raise BehaviorFileError(
                f"{path}: {what} of trial {odd[0] + 1} has {sizes[odd[0]]} numbers, not rows of {width}"
            ) from None
        rows, trial = np.concatenate([_NO_NUMBERS, *parts]).reshape(-1, width), np.repeat(np.arange(n), sizes // width)
    keep = ~np.isnan(rows[:, 0])
    return trial[keep], rows[keep]


def _formatted(values: np.ndarray, spec: str) -> np.ndarray:
    """``format(value, spec)`` of each value (each distinct value formatted once)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([format(v, spec) for v in distinct.tolist()], dtype=object)[inverse]


def _by_trial(columns: list[str], *parts: tuple) -> pd.DataFrame:
    """A table from parts, each a tuple of column values (arrays, or one value for all its rows),
    the first the trial numbers: the rows sorted by trial, in the parts' order within a trial."""
    sizes = [len(p[0]) for p in parts]
    cols = [
        np.concatenate([np.asarray(p[j]) if np.ndim(p[j]) else np.full(k, p[j]) for p, k in zip(parts, sizes)])
        for j in range(len(columns))
    ]
    order = np.argsort(cols[0], kind="stable")
    return pd.DataFrame({c: v[order] for c, v in zip(columns, cols)})


def _read_delay_response(path: Path, names: dict[str, str], S: dict) -> BehaviorData:
    claims, looks = _protocol_claim(S)
    if not claims:
        raise UnsupportedProtocol(
            f"{path}: unsupported protocol: a Bpod SessionData of another task, not MAP's delay-response "
            f"(no TrialSettings.GUI.ProtocolType with SamplePeriod/DelayPeriod, nor its states; {looks})"
        )
    # from here on the file claims to be a delay-response session: anything missing is an error
    _require(S, path, "nTrials", "TrialTypes", "TrialSettings", "TrialStartTimestamp", "RawEvents")
    n = int(_scalar(S["nTrials"], 0))
    if n <= 0:
        raise BehaviorFileError(f"{path}: SessionData.nTrials is {S['nTrials']!r}; no trials to load")
    settings = _struct_array(S["TrialSettings"], n, "TrialSettings", path)
    guis = [s.get("GUI") if isinstance(s, dict) else None for s in settings]
    if not all(isinstance(g, dict) for g in guis):
        raise BehaviorFileError(f"{path}: TrialSettings lacks a GUI struct on some trials")
    lacking = [i + 1 for i, g in enumerate(guis) if "ProtocolType" not in g]
    if lacking:
        raise BehaviorFileError(
            f"{path}: a delay-response file ({looks}) but TrialSettings.GUI has no ProtocolType "
            f"on trial(s) {lacking[:5]}"
        )
    raw = S["RawEvents"]
    if not isinstance(raw, dict) or "Trial" not in raw:
        raise BehaviorFileError(f"{path}: RawEvents.Trial is missing")
    trials_raw = _per_trial(raw["Trial"], n, "RawEvents.Trial", path)
    ttypes = np.asarray(_per_trial(S["TrialTypes"], n, "TrialTypes", path), dtype=np.float64)
    starts = _trial_starts(S, n, path)
    session_start, start_source = _session_start(S, names, path)
    stim, free = (
        np.asarray(_per_trial(S[f], n, f, path), dtype=np.float64) if f in S else np.zeros(n)
        for f in ("StimTrials", "FreeTrials")
    )
    late_delay = names["h2o"].upper().startswith("SC") and "Recording(Rig3)_" in path.name

    # every trial at once: each state's visits and each lick event as rows tagged with the trial
    states = [tr.get("States") if isinstance(tr, dict) else None for tr in trials_raw]
    states = [s if isinstance(s, dict) else {} for s in states]
    events = [tr.get("Events") if isinstance(tr, dict) else None for tr in trials_raw]
    events = [e if isinstance(e, dict) else {} for e in events]
    used = {*EVENT_STATES, "Reward", "TimeOut", "EarlyLickSample", "EarlyLickDelay"}
    visits = {v: _rows([s.get(v) for s in states], 2, f"RawEvents.Trial.States.{v}", path) for v in used}
    licks = {e: _rows([x.get(e) for x in events], 1, f"RawEvents.Trial.Events.{e}", path) for e in LICK_EVENTS}

    def visited(state: str) -> np.ndarray:
        return np.bincount(visits[state][0], minlength=n) > 0

    def gui(name: str, default: float = np.nan) -> np.ndarray:
        return _numbers([g.get(name, default) for g in guis], default)

    # which trials are complete, and why the others are not
    state_names = S.get("RawData", {}).get("OriginalStateNamesByNumber") if isinstance(S.get("RawData"), dict) else None
    if state_names is None:
        missing = [[s for s in REQUIRED_STATES if s not in st] for st in states]
    else:  # the v5 reader shares equal name lists: each distinct one is checked once
        state_names = _per_trial(state_names, n, "RawData.OriginalStateNamesByNumber", path)
        distinct = {id(x): x for x in state_names}
        known = {i: {x} if isinstance(x, str) else set(np.atleast_1d(x).tolist()) for i, x in distinct.items()}
        absent = {i: [s for s in REQUIRED_STATES if s not in k] for i, k in known.items()}
        missing = [absent[id(x)] for x in state_names]
    protocol_type = gui("ProtocolType")
    complete = visited("PreSamplePeriod") & visited("TrialEnd")
    keep = ~np.array([bool(m) for m in missing]) & (protocol_type >= 3) & complete
    skipped = []
    for i in np.flatnonzero(~keep).tolist():
        if missing[i]:
            skipped.append((i + 1, f"states {', '.join(missing[i])} not in this trial's state machine"))
        elif not protocol_type[i] >= 3:
            skipped.append((i + 1, f"ProtocolType {protocol_type[i]:g} < 3 (training stage without the full task)"))
        else:
            skipped.append((i + 1, "PreSamplePeriod or TrialEnd not visited (aborted trial)"))
    k = np.flatnonzero(keep)
    if not k.size:
        raise BehaviorFileError(
            f"{path}: none of the {n} trials is a complete delay-response trial "
            f"(first reason: {skipped[0][1] if skipped else 'unknown'})"
        )
    trial = k + 1

    def first_visit(state: str, last: bool = False) -> np.ndarray:
        """The start of each kept trial's first (last) visit to ``state`` (NaN if none)."""
        t, rows = visits[state]
        out = np.full(len(k), np.nan)
        if len(t):
            at = np.clip(np.searchsorted(t, k, side="right") - 1 if last else np.searchsorted(t, k), 0, len(t) - 1)
            hit = t[at] == k
            out[hit] = rows[at[hit], 0]
        return out

    # the trials
    start = (starts - starts[0])[k]
    reversal = gui("Reversal", 1)[k]
    left = (ttypes[k] == np.where(reversal == 2, 0, 1)) | ~np.isin(reversal, (1, 2))
    early = (protocol_type[k] >= 5) & (visited("EarlyLickSample") | visited("EarlyLickDelay"))[k]
    free_reward = [s.get("GaveFreeReward") if isinstance(s, dict) else None for s in settings]
    auto_water = (gui("Autowater") == 1)[k] | _first_two_nonzero([free_reward[i] for i in k.tolist()])
    trials = pd.DataFrame(
        {
            "trial": trial,
            "start_time": start,
            "stop_time": start + first_visit("TrialEnd"),
            "task": "audio delay",
            "task_protocol": 1,
            "trial_instruction": np.where(left, "left", "right"),
            "early_lick": np.where(early, "early", "no early"),
            "outcome": np.select([visited("Reward")[k], visited("TimeOut")[k]], ["hit", "miss"], "ignore"),
            "auto_water": auto_water,
            "free_water": free[k] != 0,
        }
    )
    # notes: protocol #, autolearn (if set), bitcode (the randomID, if set)
    autolearn = gui("Autolearn")
    has_autolearn = np.array(["Autolearn" in guis[i] for i in k.tolist()], dtype=bool)
    rids = [guis[i].get("randomID") for i in k.tolist()]
    has_rid = np.array(["randomID" in guis[i] for i in k.tolist()], dtype=bool)
    bitcodes = [r if isinstance(r, str) else f"{_scalar(r):.0f}" for r, h in zip(rids, has_rid) if h]
    notes = _by_trial(
        ["trial", "trial_note_type", "trial_note"],
        (trial, "protocol #", _formatted(protocol_type[k], "g")),
        (trial[has_autolearn], "autolearn", _formatted(autolearn[k][has_autolearn], "g")),
        (trial[has_rid], "bitcode", np.array(bitcodes, dtype=object)),
    )
    # events: one per visit of each event state; licks: one per lick event
    ev_parts = []
    for state, etype in EVENT_STATES.items():
        t, rows = visits[state]
        sel = keep[t]
        ev_parts.append((t[sel] + 1, etype, rows[sel, 0], rows[sel, 1] - rows[sel, 0]))
    events = _by_trial(["trial", "trial_event_type", "trial_event_time", "duration"], *ev_parts)
    ac_parts = []
    for ev, atype in LICK_EVENTS.items():
        t, rows = licks[ev]
        sel = keep[t]
        ac_parts.append((t[sel] + 1, atype, rows[sel, 0]))
    actions = _by_trial(["trial", "action_event_type", "action_event_time"], *ac_parts)
    # photostimulation
    pt = protocol_type[k]
    protocol_ok = pt > 4 if late_delay else pt == 5
    stimulated = (stim[k] > 0) & protocol_ok & (autolearn[k] == 4) & np.isclose(gui("DelayPeriod")[k], 1.2)
    protocol = np.where(stimulated, stim[k], 0).astype(np.int64)
    known_protocol = np.isin(protocol, PHOTOSTIM_PROTOCOLS)
    warnings = [
        f"trial {t}: StimTrials {s:g} is not a known photostim protocol "
        f"{PHOTOSTIM_PROTOCOLS}; its photostimulation is not recorded"
        for t, s in zip(trial[stimulated & ~known_protocol].tolist(), stim[k][stimulated & ~known_protocol].tolist())
    ]
    onset = first_visit("ResponseCue") - 0.5 if late_delay else first_visit("DelayPeriod", last=True)
    sel = stimulated & known_protocol
    if np.isnan(onset[sel]).any():
        t = trial[sel][np.isnan(onset[sel])][0]
        raise BehaviorFileError(
            f"{path}: trial {t} is photostimulated but never reached "
            f"{'ResponseCue' if late_delay else 'DelayPeriod'} (the stimulation's onset)"
        )
    photostim = pd.DataFrame(
        {
            "trial": trial[sel],
            "photostim_protocol": protocol[sel],
            "photostim_event_time": onset[sel],
            "power": np.full(sel.sum(), PHOTOSTIM_POWER),
        }
    )
    return BehaviorData(
        path=path,
        h2o=names["h2o"],
        session_datetime=session_start,
        trials=trials,
        notes=notes,
        events=events,
        actions=actions,
        photostim_events=photostim,
        skipped_trials=skipped,
        n_trials_in_file=n,
        warnings=warnings,
        start_source=start_source,
    )


def _first_two_nonzero(values: list) -> np.ndarray:
    """Per trial: is any of the first two numbers of its GaveFreeReward not 0 (False if it has none)."""
    try:  # arrays of one length: all at once
        a = np.array(values, dtype=np.float64)
        if a.ndim == 2 and len(a) == len(values) and all(v is not None for v in values):
            return (a[:, :2] != 0).any(axis=1)
    except (TypeError, ValueError):
        pass
    return np.array(
        [bool(np.any(np.asarray(v if v is not None else [], dtype=np.float64).ravel()[:2] != 0)) for v in values],
        dtype=bool,
    ).reshape(len(values))


# --- multi-target licking --------------------------------------------------------------------


def _settings_gui(S: dict) -> dict:
    """``SettingsFile.GUI`` (the protocol's settings as the session started), else the first
    trial's ``TrialSettings.GUI``; {} if neither is a struct."""
    sf = S.get("SettingsFile")
    gui = sf.get("GUI") if isinstance(sf, dict) else None
    if not isinstance(gui, dict):
        first = _first(S.get("TrialSettings"))
        gui = first.get("GUI") if isinstance(first, dict) else None
        gui = _first(gui) if isinstance(gui, list) else gui
    return gui if isinstance(gui, dict) else {}


def is_mtl(S: dict) -> bool:
    """A multi-target-licking SessionData: its settings GUI has X/Y/Z_center and neither
    SamplePeriod nor DelayPeriod (spec 3.1)."""
    gui = _settings_gui(S)
    return all(c in gui for c in MTL_CENTER) and "SamplePeriod" not in gui and "DelayPeriod" not in gui


def mtl_bitcode(trial_in_file: int) -> str:
    """The trial's bitcode note: its number in the file as 10 binary digits, least significant first
    (the order the rig sends the bits)."""
    return np.binary_repr(int(trial_in_file), 10)[::-1]


def _gui_number(g: dict, name: str, trial: int, path: Path) -> float:
    v = _scalar(g.get(name)) if name in g else np.nan
    if not np.isfinite(v):
        raise BehaviorFileError(f"{path}: trial {trial}: TrialSettings.GUI.{name} is missing or not a number")
    return v


def read_mtl(path: str | Path) -> BehaviorData:
    """Read one multi-target-licking rig file (BehaviorFileError / UnsupportedProtocol otherwise)."""
    path = Path(path)
    names, S = _load(path)
    if not is_mtl(S):
        raise UnsupportedProtocol(f"{path}: not a multi-target-licking file (its settings have no X/Y/Z_center)")
    return _read_mtl(path, names, S)


def _read_mtl(path: Path, names: dict[str, str], S: dict) -> BehaviorData:
    per_trial = ("MATLABStartTimes", "TrialBlockOrder", "trial_type_mat", "X_positions_mat", "Z_positions_mat")
    _require(S, path, "nTrials", "TrialTypes", "TrialSettings", "TrialStartTimestamp", "RawEvents", *per_trial)
    n = int(_scalar(S["nTrials"], 0))
    if n <= 0:
        raise BehaviorFileError(f"{path}: SessionData.nTrials is {S['nTrials']!r}; no trials to load")
    settings = _struct_array(S["TrialSettings"], n, "TrialSettings", path)
    guis = [s.get("GUI") if isinstance(s, dict) else None for s in settings]
    if not all(isinstance(g, dict) for g in guis):
        raise BehaviorFileError(f"{path}: TrialSettings lacks a GUI struct on some trials")
    raw = S["RawEvents"]
    if not isinstance(raw, dict) or "Trial" not in raw:
        raise BehaviorFileError(f"{path}: RawEvents.Trial is missing")
    trials_raw = _per_trial(raw["Trial"], n, "RawEvents.Trial", path)
    numbers = {}
    for k in ("TrialTypes", "MATLABStartTimes", "TrialBlockOrder"):
        values = _per_trial(S[k], n, k, path)
        try:
            numbers[k] = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise BehaviorFileError(f"{path}: {k} is not a list of numbers") from None
    ttypes, matlab_start, order = numbers["TrialTypes"], numbers["MATLABStartTimes"], numbers["TrialBlockOrder"]
    mats = {k: _per_trial(S[k], n, k, path) for k in ("trial_type_mat", "X_positions_mat", "Z_positions_mat")}
    starts = _trial_starts(S, n, path)
    session_start, start_source = _session_start(S, names, path)
    raw_block = np.cumsum(order == 1)  # a block starts where TrialBlockOrder is 1

    t0 = starts[0]
    rows, notes, events, actions, skipped, warnings, per = [], [], [], [], [], [], []
    for i in range(n):
        trial = i + 1
        if not (np.isfinite(matlab_start[i]) and matlab_start[i] != 0):
            skipped.append((trial, "MATLABStartTimes is 0 (the trial did not run)"))
            continue
        tr = trials_raw[i]
        states = tr.get("States", {}) if isinstance(tr, dict) else {}
        evts = tr.get("Events", {}) if isinstance(tr, dict) else {}
        trial_end = _visits(states, "TrialEnd")
        if not len(trial_end):
            skipped.append((trial, "TrialEnd not visited (aborted trial)"))
            continue
        g = guis[i]
        protocol = _gui_number(g, "ProtocolType", trial, path)
        if protocol not in (1, 2):
            raise BehaviorFileError(
                f"{path}: trial {trial}: GUI.ProtocolType {protocol:g} is not 1 (2D) or 2 (spontaneous)"
            )
        ttype = ttypes[i]
        tmat = np.asarray(mats["trial_type_mat"][i], dtype=np.float64)
        hit = tmat == ttype
        if hit.sum() != 1:
            raise BehaviorFileError(
                f"{path}: trial {trial}: TrialTypes {ttype:g} is not exactly one cell of trial_type_mat"
            )
        pos = {}
        for axis in ("X", "Z"):
            m = np.asarray(mats[f"{axis}_positions_mat"][i], dtype=np.float64)
            if m.shape != tmat.shape:
                raise BehaviorFileError(
                    f"{path}: trial {trial}: {axis}_positions_mat is {m.shape}, trial_type_mat {tmat.shape}"
                )
            pos[axis] = float(m[hit][0])
        if not 1 <= ttype <= 9 or ttype != int(ttype):
            raise BehaviorFileError(
                f"{path}: trial {trial}: TrialTypes {ttype:g} has no port (experiment.WaterPort has mtl-1 to mtl-9)"
            )
        if "RollDeg" not in g and not any("RollDeg" in w for w in warnings):
            warnings.append("TrialSettings.GUI has no RollDeg: roll_deg recorded as 0")
        start = float(starts[i] - t0)
        first_in_block = order[i] == 1
        rows.append(
            (
                trial,
                start,
                start + float(trial_end[0, 0]),
                MTL_TASK,
                int(protocol),
                "none",
                "no early",
                "N/A",
                bool(first_in_block),
                False,
            )
        )
        notes.append((trial, "bitcode", mtl_bitcode(trial)))
        events.extend((trial, "trialend", float(a), float(b - a)) for a, b in trial_end)
        for ev, atype in MTL_LICK_EVENTS.items():
            times = np.atleast_1d(np.asarray(evts.get(ev, []), dtype=np.float64))
            actions.extend((trial, atype, float(t)) for t in times[~np.isnan(times)])
        per.append(
            dict(
                raw_block=int(raw_block[i]),
                trial=trial,
                start=start,
                block_trial_number=int(order[i]),
                water_port=f"mtl-{int(ttype)}",
                position_x=pos["X"],
                position_y=_gui_number(g, "Y_center", trial, path),
                position_z=pos["Z"],
                num_licks_for_reward=int(_gui_number(g, "NumLicksForReward", trial, path)),
                roll_deg=_scalar(g.get("RollDeg"), 0.0) if "RollDeg" in g else 0.0,
                bins=int(_gui_number(g, "num_bins", trial, path)),
            )
        )
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    if trials.empty:
        raise BehaviorFileError(
            f"{path}: none of the {n} trials is a complete multi-target-licking trial "
            f"(first reason: {skipped[0][1] if skipped else 'unknown'})"
        )
    blocks, ports, block_trials = [], [], []
    for k, (_, grp) in enumerate(pd.DataFrame(per).groupby("raw_block", sort=True), start=1):
        first = grp.iloc[0]
        blocks.append(
            (
                k,
                float(first["start"]),
                len(grp),
                int(first["num_licks_for_reward"]),
                float(first["roll_deg"]),
                int(first["bins"]),
                1,
                int(first["bins"]),
            )
        )
        seen: dict[str, tuple] = {}
        for r in grp.itertuples():
            xyz = (r.position_x, r.position_y, r.position_z)
            if r.water_port in seen and seen[r.water_port] != xyz:
                raise BehaviorFileError(
                    f"{path}: trial {r.trial}: port {r.water_port} of block {k} moved from {seen[r.water_port]} to {xyz}"
                )
            if r.water_port not in seen:
                seen[r.water_port] = xyz
                ports.append((k, r.water_port, *xyz))
            block_trials.append((k, r.trial, r.block_trial_number))
    return BehaviorData(
        path=path,
        h2o=names["h2o"],
        session_datetime=session_start,
        trials=trials,
        notes=pd.DataFrame(notes, columns=["trial", "trial_note_type", "trial_note"]),
        events=pd.DataFrame(events, columns=["trial", "trial_event_type", "trial_event_time", "duration"]),
        actions=pd.DataFrame(actions, columns=["trial", "action_event_type", "action_event_time"]),
        photostim_events=pd.DataFrame(columns=["trial", "photostim_protocol", "photostim_event_time", "power"]),
        skipped_trials=skipped,
        n_trials_in_file=n,
        warnings=warnings,
        start_source=start_source,
        task=MTL_TASK,
        blocks=pd.DataFrame(blocks, columns=list(BLOCK_COLUMNS)),
        block_ports=pd.DataFrame(ports, columns=list(BLOCK_PORT_COLUMNS)),
        block_trials=pd.DataFrame(block_trials, columns=list(BLOCK_TRIAL_COLUMNS)),
    )
