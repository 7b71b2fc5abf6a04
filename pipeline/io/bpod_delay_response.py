"""Delay-response rig files: a Bpod ``SessionData`` .mat (v5 or v7.3) -> trials, events, licks.

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
from .matfile import MatFileError, read_mat

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


def _visits(states: dict, name: str) -> np.ndarray:
    """(k, 2) array of [start, stop] of each visit to a state (k = 0 if never visited)."""
    v = np.asarray(states.get(name, np.empty((0, 2))), dtype=np.float64)
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
    names = parse_filename(path)
    if names is None:
        raise BehaviorFileError(f"{path}: file name is not <h2o>_<task>_<yyyymmdd>_<hhmmss>.mat")
    try:
        data = read_mat(path)
    except MatFileError as e:
        raise BehaviorFileError(str(e)) from None
    if "SessionData" not in data or not isinstance(data["SessionData"], dict):
        raise UnsupportedProtocol(f"{path}: no Bpod SessionData struct in the file")
    S = data["SessionData"]
    first_settings = _first(S.get("TrialSettings"))
    first_gui = first_settings.get("GUI") if isinstance(first_settings, dict) else None
    if isinstance(first_gui, dict) and "X_center" in first_gui and "SamplePeriod" not in first_gui:
        raise UnsupportedProtocol(f"{path}: multi-target-licking files are not supported by ingest-behavior yet")
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
    session_start, start_source = _session_start(S, names, path)
    stim = (
        np.asarray(_per_trial(S["StimTrials"], n, "StimTrials", path), dtype=np.float64)
        if "StimTrials" in S
        else np.zeros(n)
    )
    free = (
        np.asarray(_per_trial(S["FreeTrials"], n, "FreeTrials", path), dtype=np.float64)
        if "FreeTrials" in S
        else np.zeros(n)
    )
    state_names = S.get("RawData", {}).get("OriginalStateNamesByNumber") if isinstance(S.get("RawData"), dict) else None
    if state_names is not None:
        state_names = _per_trial(state_names, n, "RawData.OriginalStateNamesByNumber", path)
        state_names = [set(np.atleast_1d(s).tolist()) if not isinstance(s, str) else {s} for s in state_names]
    free_reward = [s.get("GaveFreeReward") for s in settings]
    late_delay = names["h2o"].upper().startswith("SC") and "Recording(Rig3)_" in path.name

    t0 = starts[0]
    trial_rows, notes, events, actions, pstim, skipped, warnings = [], [], [], [], [], [], []
    for i in range(n):
        trial = i + 1
        g = guis[i]
        tr = trials_raw[i]
        states = tr.get("States", {}) if isinstance(tr, dict) else {}
        evts = tr.get("Events", {}) if isinstance(tr, dict) else {}
        known = state_names[i] if state_names is not None else set(states)
        missing = [s for s in REQUIRED_STATES if s not in known]
        protocol_type = _scalar(g.get("ProtocolType"))
        if missing:
            skipped.append((trial, f"states {', '.join(missing)} not in this trial's state machine"))
            continue
        if not protocol_type >= 3:
            skipped.append((trial, f"ProtocolType {protocol_type:g} < 3 (training stage without the full task)"))
            continue
        trial_end = _visits(states, "TrialEnd")
        if not len(_visits(states, "PreSamplePeriod")) or not len(trial_end):
            skipped.append((trial, "PreSamplePeriod or TrialEnd not visited (aborted trial)"))
            continue
        start = float(starts[i] - t0)
        reversal = _scalar(g.get("Reversal"), 1)
        left_type = 0 if reversal == 2 else 1
        instruction = "left" if ttypes[i] == left_type else "right"
        if reversal not in (1, 2):
            instruction = "left"
        outcome = "hit" if len(_visits(states, "Reward")) else "miss" if len(_visits(states, "TimeOut")) else "ignore"
        early = protocol_type >= 5 and (
            len(_visits(states, "EarlyLickSample")) or len(_visits(states, "EarlyLickDelay"))
        )
        fr = np.asarray(free_reward[i] if free_reward[i] is not None else [], dtype=np.float64).ravel()
        auto_water = _scalar(g.get("Autowater")) == 1 or bool(np.any(fr[:2] != 0))
        trial_rows.append(
            (
                trial,
                start,
                start + float(trial_end[0, 0]),
                "audio delay",
                1,
                instruction,
                "early" if early else "no early",
                outcome,
                bool(auto_water),
                bool(free[i] != 0),
            )
        )
        notes.append((trial, "protocol #", f"{protocol_type:g}"))
        if "Autolearn" in g:
            notes.append((trial, "autolearn", f"{_scalar(g['Autolearn']):g}"))
        if "randomID" in g:
            rid = g["randomID"]
            notes.append((trial, "bitcode", rid if isinstance(rid, str) else f"{_scalar(rid):.0f}"))
        for state, etype in EVENT_STATES.items():
            v = _visits(states, state)
            events.extend((trial, etype, float(a), float(b - a)) for a, b in v)
        for ev, atype in LICK_EVENTS.items():
            times = np.atleast_1d(np.asarray(evts.get(ev, []), dtype=np.float64))
            actions.extend((trial, atype, float(t)) for t in times[~np.isnan(times)])
        delay = _scalar(g.get("DelayPeriod"))
        protocol_ok = protocol_type > 4 if late_delay else protocol_type == 5
        if stim[i] > 0 and protocol_ok and _scalar(g.get("Autolearn")) == 4 and np.isclose(delay, 1.2):
            if int(stim[i]) not in PHOTOSTIM_PROTOCOLS:
                warnings.append(
                    f"trial {trial}: StimTrials {stim[i]:g} is not a known photostim protocol "
                    f"{PHOTOSTIM_PROTOCOLS}; its photostimulation is not recorded"
                )
            else:
                if late_delay:
                    onset = float(_visits(states, "ResponseCue")[0, 0]) - 0.5
                else:
                    onset = float(_visits(states, "DelayPeriod")[-1, 0])
                pstim.append((trial, int(stim[i]), onset, PHOTOSTIM_POWER))

    trials = pd.DataFrame(trial_rows, columns=list(TRIAL_COLUMNS))
    if trials.empty:
        raise BehaviorFileError(
            f"{path}: none of the {n} trials is a complete delay-response trial "
            f"(first reason: {skipped[0][1] if skipped else 'unknown'})"
        )
    return BehaviorData(
        path=path,
        h2o=names["h2o"],
        session_datetime=session_start,
        trials=trials,
        notes=pd.DataFrame(notes, columns=["trial", "trial_note_type", "trial_note"]),
        events=pd.DataFrame(events, columns=["trial", "trial_event_type", "trial_event_time", "duration"]),
        actions=pd.DataFrame(actions, columns=["trial", "action_event_type", "action_event_time"]),
        photostim_events=pd.DataFrame(pstim, columns=["trial", "photostim_protocol", "photostim_event_time", "power"]),
        skipped_trials=skipped,
        n_trials_in_file=n,
        warnings=warnings,
        start_source=start_source,
    )
