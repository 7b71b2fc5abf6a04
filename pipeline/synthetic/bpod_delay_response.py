"""Delay-response rig files (Bpod ``SessionData``) with known trials, events and licks.

The structure mirrors a real MAP rig file (see the real ``dl25_tw2_20180225_102508.mat``):
TrialTypes, StimTrials, TrialStartTimestamp, Info, RawEvents.Trial{i}.States/Events,
RawData.OriginalStateNamesByNumber, and the TrialSettings struct array with GUI and
GaveFreeReward. The ground truth is built from the generator's own random draws, in the
reader's output form, so a test compares the two.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io as sio

from ..io.bpod_delay_response import (
    BLOCK_COLUMNS,
    BLOCK_PORT_COLUMNS,
    BLOCK_TRIAL_COLUMNS,
    MTL_TASK,
    PHOTOSTIM_POWER,
    TRIAL_COLUMNS,
    mtl_bitcode,
)

STATE_NAMES = (
    "TrigTrialStart",
    "PreSamplePeriod",
    "SamplePeriod",
    "EarlyLickSample",
    "DelayPeriod",
    "EarlyLickDelay",
    "ResponseCue",
    "GiveLeftDrop",
    "GiveRightDrop",
    "AnswerPeriod",
    "Reward",
    "RewardConsumption",
    "NoResponse",
    "TimeOut",
    "StopLicking",
    "StopLickingReturn",
    "TrialEnd",
)


@dataclass
class GeneratedSession:
    path: Path
    h2o: str
    session_datetime: dt.datetime
    trials: pd.DataFrame
    notes: pd.DataFrame
    events: pd.DataFrame
    actions: pd.DataFrame
    photostim_events: pd.DataFrame
    skipped_trials: list[tuple[int, str]] = field(default_factory=list)
    #: multi-target licking only: BLOCK_COLUMNS, BLOCK_PORT_COLUMNS, BLOCK_TRIAL_COLUMNS rows
    blocks: pd.DataFrame | None = None
    block_ports: pd.DataFrame | None = None
    block_trials: pd.DataFrame | None = None


def _cell(items) -> np.ndarray:
    arr = np.empty((1, len(items)), dtype=object)
    for i, x in enumerate(items):
        arr[0, i] = x
    return arr


def _trial(rng, ttype: int, protocol_type: int, delay: float, aborted: bool):
    """One trial's state visits and lick events; returns (states, events, truth) in trial time."""
    t = 0.0
    states: dict[str, list[list[float]]] = {s: [] for s in STATE_NAMES}

    def visit(name, dur):
        nonlocal t
        states[name].append([t, t + dur])
        t += dur
        return states[name][-1]

    licks = {"Port1In": [], "Port2In": []}
    visit("TrigTrialStart", 0.5)
    visit("PreSamplePeriod", 0.01)
    if aborted:
        return states, licks, None
    t += 0.42  # the cue-pulse states the real machines run here (not tracked)
    early = protocol_type >= 5 and rng.random() < 0.2
    if early:  # an early lick restarts the sample period once
        a = visit("SamplePeriod", round(rng.uniform(0.1, 0.8), 4))
        licks["Port1In" if rng.random() < 0.5 else "Port2In"].append(a[1] - 0.01)
        visit("EarlyLickSample", 0.01)
    visit("SamplePeriod", 1.2)
    visit("DelayPeriod", delay)
    go = visit("ResponseCue", 0.05)[0]
    visit("AnswerPeriod", round(rng.uniform(0.1, 1.0), 4))
    outcome = rng.choice(["hit", "miss", "ignore"], p=[0.7, 0.2, 0.1])
    correct = "Port1In" if ttype == 1 else "Port2In"
    wrong = "Port2In" if ttype == 1 else "Port1In"
    if outcome == "hit":
        licks[correct].append(t - 0.005)
        visit("Reward", 0.03)
        visit("RewardConsumption", 1.5)
        licks[correct].extend(sorted(np.round(t - rng.uniform(0.05, 1.4, rng.integers(0, 5)), 4)))
    elif outcome == "miss":
        licks[wrong].append(t - 0.005)
        visit("TimeOut", 1.0)
    else:
        visit("NoResponse", 1.5)
    visit("StopLicking", 1.5)
    visit("TrialEnd", 0.25)
    truth = dict(outcome=str(outcome), early="early" if early else "no early", go=go)
    return states, licks, truth


def make_session_data(
    n_trials: int = 20,
    seed: int = 0,
    when: dt.datetime = dt.datetime(2021, 3, 1, 10, 0, 0),
    protocol_type: int = 5,
    autolearn: int = 4,
    reversal: int = 1,
    delay: float = 1.2,
    stim_prob: float = 0.25,
    abort_every: int = 0,
    h2o: str = "dm1",
    path: Path | None = None,
):
    """The SessionData structure (for scipy.io.savemat) and the ground truth."""
    rng = np.random.default_rng(seed)
    ttypes = rng.integers(0, 2, n_trials)
    stim = np.where(rng.random(n_trials) < stim_prob, rng.choice([4, 5, 6], n_trials), 0)
    gaps = np.round(rng.uniform(6.5, 12.0, n_trials), 3)
    starts = np.round(3000.0 + np.concatenate([[0.0], np.cumsum(gaps[:-1])]), 3)
    autowater = rng.random(n_trials) < 0.1
    trials_raw, names, settings = [], [], []
    rows, notes, events, actions, pstim, skipped = [], [], [], [], [], []
    for i in range(n_trials):
        trial = i + 1
        aborted = abort_every > 0 and trial % abort_every == 0
        states, licks, truth = _trial(rng, int(ttypes[i]), protocol_type, delay, aborted)
        rid = "".join(rng.choice(["0", "1"], 16))
        gui = dict(
            SamplePeriod=1.2,
            DelayPeriod=delay,
            AnswerPeriod=1.5,
            ProtocolType=float(protocol_type),
            Autolearn=float(autolearn),
            Autowater=2.0,
            Reversal=float(reversal),
            randomID=rid,
        )
        settings.append(dict(GUI=gui, GaveFreeReward=np.array([[float(autowater[i]), 0.0, 150.0 + i]])))
        mat_states = {
            s: (np.array(v) if len(v) > 1 else np.array(v[0]) if v else np.array([np.nan, np.nan]))
            for s, v in states.items()
        }
        mat_events = {k: np.array(v) for k, v in licks.items() if v}
        mat_events["Tup"] = np.array(sorted(b for v in states.values() for _, b in v))
        trials_raw.append(dict(States=mat_states, Events=mat_events))
        names.append(_cell(list(STATE_NAMES)))
        if truth is None:
            skipped.append((trial, "PreSamplePeriod or TrialEnd not visited (aborted trial)"))
            continue
        start = float(starts[i] - starts[0])
        left_type = 0 if reversal == 2 else 1
        rows.append(
            (
                trial,
                start,
                start + states["TrialEnd"][0][0],
                "audio delay",
                1,
                "left" if ttypes[i] == left_type else "right",
                truth["early"],
                truth["outcome"],
                bool(autowater[i]),
                False,
            )
        )
        notes += [
            (trial, "protocol #", f"{protocol_type:g}"),
            (trial, "autolearn", f"{autolearn:g}"),
            (trial, "bitcode", rid),
        ]
        for st, et in (
            ("PreSamplePeriod", "presample"),
            ("SamplePeriod", "sample"),
            ("DelayPeriod", "delay"),
            ("ResponseCue", "go"),
            ("TrialEnd", "trialend"),
        ):
            events += [(trial, et, a, b - a) for a, b in states[st]]
        for ev, at in (("Port1In", "left lick"), ("Port2In", "right lick")):
            actions += [(trial, at, x) for x in licks[ev]]
        if stim[i] > 0 and protocol_type == 5 and autolearn == 4 and np.isclose(delay, 1.2):
            pstim.append((trial, int(stim[i]), states["DelayPeriod"][-1][0], PHOTOSTIM_POWER))

    fields = ["GUI", "GaveFreeReward"]
    ts = np.empty((1, n_trials), dtype=[(f, object) for f in fields])
    for i, s in enumerate(settings):
        for f in fields:
            ts[0, i][f] = s[f]
    session = dict(
        nTrials=float(n_trials),
        TrialTypes=ttypes.astype(float)[None, :],
        StimTrials=stim.astype(float)[None, :],
        TrialStartTimestamp=starts[None, :],
        Info=dict(
            BpodVersion="Bpod 0.7-0.9",
            SessionDate=when.strftime("%d-%b-%Y"),
            SessionStartTime_UTC=when.strftime("%H:%M:%S"),
        ),
        RawEvents=dict(Trial=_cell(trials_raw)),
        RawData=dict(OriginalStateNamesByNumber=_cell(names)),
        TrialSettings=ts,
    )
    truth = GeneratedSession(
        path=path,
        h2o=h2o,
        session_datetime=when,
        trials=pd.DataFrame(rows, columns=list(TRIAL_COLUMNS)),
        notes=pd.DataFrame(notes, columns=["trial", "trial_note_type", "trial_note"]),
        events=pd.DataFrame(events, columns=["trial", "trial_event_type", "trial_event_time", "duration"]),
        actions=pd.DataFrame(actions, columns=["trial", "action_event_type", "action_event_time"]),
        photostim_events=pd.DataFrame(pstim, columns=["trial", "photostim_protocol", "photostim_event_time", "power"]),
        skipped_trials=skipped,
    )
    return session, truth


def write_session_file(
    folder: str | Path,
    h2o: str = "dm1",
    when: dt.datetime = dt.datetime(2021, 3, 1, 10, 0, 0),
    task: str = "tw2",
    version: str = "5",
    **kw,
) -> GeneratedSession:
    """Write ``<folder>/<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat`` and return its ground truth."""
    return _write_rig_file(make_session_data, folder, h2o, when, task, version, **kw)


def _write_rig_file(make, folder, h2o: str, when: dt.datetime, task: str, version: str, **kw) -> GeneratedSession:
    """The rig's file name for ``h2o``, ``task`` and ``when`` in ``folder``, holding what ``make``
    (:func:`make_session_data` or :func:`make_mtl_session_data`) generates; its ground truth."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{h2o}_{task}_{when:%Y%m%d_%H%M%S}.mat"
    session, truth = make(when=when, h2o=h2o, path=path, **kw)
    _save(path, session, version)
    return truth


def _save(path: Path, session: dict, version: str) -> None:
    """``{"SessionData": session}`` as a MATLAB v5 or v7.3 file."""
    if version == "5":
        sio.savemat(path, {"SessionData": session}, do_compression=False)
    elif version == "7.3":
        from . import hdf5storage as _need_hdf5storage

        hdf5storage = _need_hdf5storage()

        # Write v5, read it back the way MATLAB arrays look (records, cells), write that as HDF5:
        # the same route a real v5 rig file takes to v7.3, checked in the tests.
        with tempfile.TemporaryDirectory() as tmp:
            v5 = Path(tmp) / "v5.mat"
            sio.savemat(v5, {"SessionData": session})
            data = sio.loadmat(v5)
        hdf5storage.savemat(str(path), {"SessionData": data["SessionData"]}, format="7.3", matlab_compatible=True)
    else:
        raise ValueError(f"version must be '5' or '7.3', not {version!r}")


def make_other_protocol_data(
    n_trials: int = 3,
    *,
    trial_types: bool = True,
    info: bool = True,
    settings: bool = True,
    seed: int = 0,
    when: dt.datetime = dt.datetime(2021, 3, 1, 10, 0, 0),
) -> dict:
    """SessionData of a Bpod protocol that is *not* MAP's delay-response task (a simple two-port
    water task: states ITI / WaitForPoke / Reward / Drinking), as Bpod 2 (with ``Info``, ``TrialTypes``,
    ``TrialSettings``) or Bpod 0.5 (``info=False``, ``trial_types=False``, ``settings=False``) writes it."""
    rng = np.random.default_rng(seed)
    names = ("ITI", "WaitForPoke", "Reward", "Drinking")
    trials = []
    for _ in range(n_trials):
        wait = round(float(rng.uniform(0.2, 2.0)), 4)
        states = {
            "ITI": np.array([[0.0, 1.0]]),
            "WaitForPoke": np.array([[1.0, 1.0 + wait]]),
            "Reward": np.array([[1.0 + wait, 1.05 + wait]]),
            "Drinking": np.array([[1.05 + wait, 2.5 + wait]]),
        }
        trials.append(dict(States=states, Events=dict(Port1In=np.array([1.0 + wait, 1.3 + wait]))))
    starts = np.round(np.cumsum(rng.uniform(4.0, 6.0, n_trials)), 4)
    session: dict = dict(
        nTrials=float(n_trials),
        RawEvents=dict(Trial=_cell(trials)),
        RawData=dict(OriginalStateNamesByNumber=_cell([np.array(names, dtype=object)] * n_trials)),
        TrialStartTimestamp=starts[None, :],
    )
    if trial_types:
        session["TrialTypes"] = rng.integers(1, 3, n_trials).astype(float)[None, :]
    if settings:
        ts = np.empty((1, n_trials), dtype=[("GUI", object)])
        for i in range(n_trials):
            ts[0, i]["GUI"] = dict(RewardAmount=3.0, ITIDuration=1.0, ResponseWindow=5.0)
        session["TrialSettings"] = ts
    if info:
        session["Info"] = dict(
            BpodSoftwareVersion="2.1",
            StateMachineVersion="Bpod 2.0",
            SessionDate=when.strftime("%d-%b-%Y"),
            SessionStartTime_UTC=when.strftime("%H:%M:%S"),
        )
    return session


def write_other_protocol_file(folder: str | Path, h2o: str = "dm1", task: str = "water", **kw) -> Path:
    """``<folder>/<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat`` holding :func:`make_other_protocol_data`."""
    when = kw.get("when", dt.datetime(2021, 3, 1, 10, 0, 0))
    path = Path(folder) / f"{h2o}_{task}_{when:%Y%m%d_%H%M%S}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {"SessionData": make_other_protocol_data(**kw)}, do_compression=False)
    return path


# --- multi-target licking (the MTL rig's Bpod protocol, spec 3.1) ------------------------------

MTL_STATE_NAMES = (
    "TrigTrialStart",
    "StartBitcodeTrialNumber",
    "EndBitcodeTrialNumber",
    "OffStatePreSample",
    "GiveDrop",
    "AnswerPeriodAutoWater",
    "AnswerPeriodFirstLick",
    "Reward",
    "RewardConsumption",
    "NoResponse",
    "TrialEnd",
)


def _mtl_gui(num_bins: int, n_licks: int, roll: float, protocol_type: int) -> dict:
    return dict(
        WaterValveTime=0.05,
        AutoWaterValveTime=0.05,
        NumLicksForReward=float(n_licks),
        X_radius=60000.0,
        Z_radius=8000.0,
        num_bins=float(num_bins),
        X_center=210000.0,
        Y_center=420000.0,
        Z_center=153000.0,
        RollDeg=float(roll),
        ProtocolType=float(protocol_type),
        Autowater=2.0,
        AutowaterFirstTrialInBlock=1.0,
    )


def _mtl_positions(num_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trial_type_mat, X_positions_mat, Z_positions_mat) as the protocol builds them: X varies along
    a row, Z down a column, port numbers 1..num_bins^2."""
    x = 210000.0 - 60000.0 + np.arange(num_bins) * (2 * 60000.0 / (num_bins - 1))
    z = 153000.0 - 8000.0 + np.arange(num_bins) * (2 * 8000.0 / (num_bins - 1))
    ttm = np.arange(1, num_bins * num_bins + 1, dtype=float).reshape(num_bins, num_bins)
    return ttm, np.tile(x, (num_bins, 1)), np.tile(z[:, None], (1, num_bins))


def _mtl_trial(rng, first_in_block: bool, licks_needed: int, aborted: bool):
    """One MTL trial's state visits and licks (trial time): a free drop on a block's first trial,
    else ``licks_needed`` licks then the reward (or no response)."""
    t = 0.0
    states: dict[str, list[list[float]]] = {s: [] for s in MTL_STATE_NAMES}

    def visit(name, dur):
        nonlocal t
        states[name].append([round(t, 4), round(t + dur, 4)])
        t = round(t + dur, 4)
        return states[name][-1]

    lick_times: list[float] = []
    visit("TrigTrialStart", 0.05)
    visit("StartBitcodeTrialNumber", 0.06)
    t += 0.84  # the bitcode's on/off states (not tracked)
    visit("EndBitcodeTrialNumber", 0.06)
    visit("OffStatePreSample", 2.0)
    if aborted:
        return states, lick_times
    if first_in_block:
        visit("GiveDrop", 0.05)
        a = visit("AnswerPeriodAutoWater", round(float(rng.uniform(0.5, 2.0)), 4))
        lick_times += sorted(np.round(rng.uniform(a[0], a[1], rng.integers(1, 4)), 4).tolist())
    else:
        a = visit("AnswerPeriodFirstLick", round(float(rng.uniform(0.2, 3.0)), 4))
        if rng.random() < 0.85:
            lick_times += sorted(np.round(rng.uniform(a[0], a[1], licks_needed), 4).tolist())
            visit("Reward", 0.05)
            visit("RewardConsumption", 1.0)
        else:
            visit("NoResponse", 0.5)
    visit("TrialEnd", 0.05)
    return states, lick_times


def make_mtl_session_data(
    n_trials: int = 24,
    seed: int = 0,
    when: dt.datetime = dt.datetime(2021, 6, 1, 10, 0, 0),
    num_bins: int = 3,
    protocol_type: int = 1,
    invalid_every: int = 7,
    abort_every: int = 0,
    block_sizes: tuple[int, int] = (3, 6),
    h2o: str = "mt1",
    path: Path | None = None,
):
    """A multi-target-licking SessionData (for scipy.io.savemat) and its ground truth.

    Blocks of ``block_sizes`` trials at one random port each (``TrialBlockOrder`` 1, 2, ...), every
    ``invalid_every``-th trial never ran (``MATLABStartTimes`` 0), every ``abort_every``-th never
    reached TrialEnd; the first trial of a block gets free water (GiveDrop), the others wait for
    NumLicksForReward licks."""
    rng = np.random.default_rng(seed)
    ttm, xmat, zmat = _mtl_positions(num_bins)
    order, ttypes, licks_needed, rolls = [], [], [], []
    while len(order) < n_trials:
        size = int(rng.integers(block_sizes[0], block_sizes[1] + 1))
        port, need, roll = (
            int(rng.integers(1, num_bins * num_bins + 1)),
            int(rng.integers(1, 4)),
            rng.choice([0, 10, -15]),
        )
        for k in range(1, size + 1):
            order.append(k)
            ttypes.append(port)
            licks_needed.append(need)
            rolls.append(float(roll))
    order, ttypes = order[:n_trials], ttypes[:n_trials]
    gaps = np.round(rng.uniform(4.0, 9.0, n_trials), 3)
    starts = np.round(1500.0 + np.concatenate([[0.0], np.cumsum(gaps[:-1])]), 3)
    matlab_start = np.round(738300.0 + starts / 86400.0, 8)
    trials_raw, names, settings = [], [], []
    rows, notes, events, actions, skipped, per = [], [], [], [], [], []
    for i in range(n_trials):
        trial = i + 1
        gui = _mtl_gui(num_bins, licks_needed[i], rolls[i], protocol_type)
        settings.append(dict(GUI=gui))
        names.append(_cell(list(MTL_STATE_NAMES)))
        invalid = invalid_every > 0 and trial % invalid_every == 0
        aborted = abort_every > 0 and trial % abort_every == 0 and not invalid
        if invalid:
            matlab_start[i] = 0.0
        states, lick_times = _mtl_trial(rng, order[i] == 1, licks_needed[i], aborted)
        mat_states = {
            s: (np.array(v) if len(v) > 1 else np.array(v[0]) if v else np.array([np.nan, np.nan]))
            for s, v in states.items()
        }
        mat_events = {"Tup": np.array(sorted(b for v in states.values() for _, b in v))}
        if lick_times:
            mat_events["Port1In"] = np.array(lick_times)
        trials_raw.append(dict(States=mat_states, Events=mat_events))
        if invalid:
            skipped.append((trial, "MATLABStartTimes is 0 (the trial did not run)"))
            continue
        if aborted:
            skipped.append((trial, "TrialEnd not visited (aborted trial)"))
            continue
        start = float(starts[i] - starts[0])
        end = states["TrialEnd"][0]
        rows.append(
            (trial, start, start + end[0], MTL_TASK, protocol_type, "none", "no early", "N/A", order[i] == 1, False)
        )
        notes.append((trial, "bitcode", mtl_bitcode(trial)))
        events.append((trial, "trialend", end[0], end[1] - end[0]))
        actions += [(trial, "middle lick", x) for x in lick_times]
        hit = ttm == ttypes[i]
        per.append(
            dict(
                raw=sum(1 for k in order[: i + 1] if k == 1),
                trial=trial,
                start=start,
                order=order[i],
                port=f"mtl-{ttypes[i]}",
                xyz=(float(xmat[hit][0]), 420000.0, float(zmat[hit][0])),
                need=licks_needed[i],
                roll=rolls[i],
            )
        )

    blocks, ports, block_trials = [], [], []
    for k, raw in enumerate(sorted({p["raw"] for p in per}), start=1):
        grp = [p for p in per if p["raw"] == raw]
        blocks.append((k, grp[0]["start"], len(grp), grp[0]["need"], grp[0]["roll"], num_bins, 1, num_bins))
        ports.append((k, grp[0]["port"], *grp[0]["xyz"]))
        block_trials += [(k, p["trial"], p["order"]) for p in grp]

    fields = ["GUI"]
    ts = np.empty((1, n_trials), dtype=[(f, object) for f in fields])
    for i, st in enumerate(settings):
        ts[0, i]["GUI"] = st["GUI"]
    session = dict(
        nTrials=float(n_trials),
        TrialTypes=np.asarray(ttypes, dtype=float)[None, :],
        TrialBlockOrder=np.asarray(order, dtype=float)[None, :],
        MATLABStartTimes=matlab_start[None, :],
        TrialStartTimestamp=starts[None, :],
        trial_type_mat=_cell([ttm] * n_trials),
        X_positions_mat=_cell([xmat] * n_trials),
        Z_positions_mat=_cell([zmat] * n_trials),
        Info=dict(
            BpodVersion="Bpod 0.7-0.9",
            SessionDate=when.strftime("%d-%b-%Y"),
            SessionStartTime_UTC=when.strftime("%H:%M:%S"),
        ),
        RawEvents=dict(Trial=_cell(trials_raw)),
        RawData=dict(OriginalStateNamesByNumber=_cell(names)),
        SettingsFile=dict(GUI=_mtl_gui(num_bins, licks_needed[0], rolls[0], protocol_type)),
        TrialSettings=ts,
    )
    truth = GeneratedSession(
        path=path,
        h2o=h2o,
        session_datetime=when,
        trials=pd.DataFrame(rows, columns=list(TRIAL_COLUMNS)),
        notes=pd.DataFrame(notes, columns=["trial", "trial_note_type", "trial_note"]),
        events=pd.DataFrame(events, columns=["trial", "trial_event_type", "trial_event_time", "duration"]),
        actions=pd.DataFrame(actions, columns=["trial", "action_event_type", "action_event_time"]),
        photostim_events=pd.DataFrame(columns=["trial", "photostim_protocol", "photostim_event_time", "power"]),
        skipped_trials=skipped,
        blocks=pd.DataFrame(blocks, columns=list(BLOCK_COLUMNS)),
        block_ports=pd.DataFrame(ports, columns=list(BLOCK_PORT_COLUMNS)),
        block_trials=pd.DataFrame(block_trials, columns=list(BLOCK_TRIAL_COLUMNS)),
    )
    return session, truth


def write_mtl_session_file(
    folder: str | Path,
    h2o: str = "mt1",
    when: dt.datetime = dt.datetime(2021, 6, 1, 10, 0, 0),
    task: str = "MTL",
    version: str = "5",
    **kw,
) -> GeneratedSession:
    """Write ``<folder>/<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat`` (a multi-target-licking rig file)
    and return its ground truth."""
    return _write_rig_file(make_mtl_session_data, folder, h2o, when, task, version, **kw)
