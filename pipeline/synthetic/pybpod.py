"""pybpod foraging sessions written the way pybpod writes them, with their ground truth.

``write_foraging_day`` runs a small simulation of the foraging task (the Hou/Svoboda pybpod protocol:
blocks of reward probabilities, baiting, a delay, a go cue, choice, reward, consumption licks,
double dips, auto water after runs of unrewarded or ignored trials) on a simulated Bpod, and writes
every message the real software would log: the preamble, the INFO rows of the session, every
fragment of the task's ``print`` calls (one ``stdout`` row per ``write``, the line end quoted with
``|``), TRIAL / EVENT / TRANSITION / SOFTCODE / END-TRIAL rows during a trial, and the STATE rows
written after it (visited states in order of first visit, then the states never visited with
``nan`` times). The ground truth (``GeneratedForagingDay.truth``) is assembled from the simulation's
own draws, in the reader's dataclasses.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.pybpod import ForagingBlock, ForagingSession, ForagingTrial

__all__ = ["GeneratedForagingDay", "write_foraging_day", "write_subject_meta"]

CYCLE = 0.0001  # Bpod state machine cycle (s): a 0-s state lasts one cycle
_PORT_LETTER = {"left": "L", "right": "R", "middle": "M"}
_EVENT_TYPE = {
    "ITIBeforeVideoOn": "videostart",
    "Start": "bitcodestart",
    "DelayStart": "delay",
    "GoCue": "go",
    "Double_dipped": "doubledip",
    "ITI": "trialend",
    "ITIAfterVideoOff": "videoend",
    **{f"Choice_{x}": "choice" for x in "LRM"},
    **{f"Reward_{x}": "reward" for x in "LRM"},
}
_RIG = {
    "tower-1": "Training-Tower-1",
    "tower-2": "Training-Tower-2",
    "tower-3": "Training-Tower-3",
    "ephys_han": "Ephys-Han",
}
_CHOICE_MARKER = {"L": 0.002, "R": 0.003, "M": 0.004}
_BITCODE_DIGITS = 20

# Bpod state machine r2 event codes: 3 modules x 15 serial events, 15 soft codes, BNC1-2, Wire1-2 (High, Low),
# then Port1In/Out..Port8In/Out, global timers, counters, conditions, Tup
_PORT_EVENT_BASE = 68
_TUP_CODE = 104


def _port_event(port_number: int, what: str) -> tuple[int, str]:
    code = _PORT_EVENT_BASE + 2 * (port_number - 1) + (0 if what == "In" else 1)
    return code, f"Port{port_number}{what}"


@dataclass
class GeneratedForagingDay:
    h2o: str
    files: list[Path]
    truth: ForagingSession


def _r(t: float) -> float:
    """A time on the Bpod clock (0.1 ms resolution)."""
    return round(float(t), 4)


class _Log:
    """Rows of one session CSV, each with its PC time (microsecond resolution, never going back)."""

    def __init__(self, start: dt.datetime, rng):
        self.rows: list[list] = []
        self.now = start
        self.rng = rng

    def tick(self, lo: float = 5e-6, hi: float = 60e-6) -> None:
        self.now += dt.timedelta(microseconds=int(self.rng.integers(int(lo * 1e6), int(hi * 1e6) + 1)))

    def wait(self, seconds: float) -> None:
        self.now += dt.timedelta(microseconds=int(round(seconds * 1e6)))

    def at(self, when: dt.datetime) -> None:
        self.now = max(self.now + dt.timedelta(microseconds=1), when)

    def row(self, kind: str, t0=None, t1=None, msg="", info=None) -> dt.datetime:
        pc = self.now
        self.rows.append([kind, pc, t0, t1, msg, info])
        self.tick()
        return pc

    def print(self, *args) -> dt.datetime:
        """What ``print(*args)`` leaves in the log: one stdout row per fragment; returns the first's PC time."""
        first = None
        for i, a in enumerate(args):
            if i:
                self.row("stdout", msg=" ")
            pc = self.row("stdout", msg=str(a))
            first = first or pc
        self.row("stdout", msg="\n")
        return first

    def write(self, path: Path, created: dt.datetime) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=";", quotechar="|", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow(["__UUID4__", str(uuid.UUID(int=int(self.rng.integers(0, 2**62)), version=4))])
            w.writerow(["__CREATED_ON__", str(created)])
            w.writerow(["__DEFINITION_URL__", "http://pybpod-api.readthedocs.org"])
            w.writerow(
                ["__DEFINITION_TEXT__", "This file contains data recorded during a session from the PyBpod system"]
            )
            w.writerow(["__SOFTWARE_REF__", "PyBpod API v1.8.1"])
            w.writerow(["__HAS_HEADER__"])
            w.writerow(["TYPE", "PC-TIME", "BPOD-INITIAL-TIME", "BPOD-FINAL-TIME", "MSG", "+INFO"])
            for kind, pc, t0, t1, msg, info in self.rows:
                w.writerow([kind, str(pc), t0, t1, msg, info])


class _Trial:
    """A simulated Bpod trial: state visits, the events that caused them, and other input events."""

    def __init__(self):
        self.t = 0.0
        self.visits: list[tuple[str, float]] = []  # (state, entry time)
        self.causes: list[tuple[int, str] | None] = []  # event that made the state machine enter it
        self.extra: list[tuple[float, int, str]] = []  # events that changed no state
        self.softcodes: list[tuple[float, int]] = []
        self.exit_time: float | None = None
        self.exit_by_tup = True

    def enter(self, state: str, cause: tuple[int, str] | None = (_TUP_CODE, "Tup")) -> float:
        self.visits.append((state, self.t))
        self.causes.append(cause if self.visits[1:] else None)
        return self.t

    def stay(self, seconds: float) -> float:
        self.t = _r(self.t + max(seconds, CYCLE))
        return self.t

    def lick(self, port_number: int, t: float, rng, transition: bool) -> tuple[int, str]:
        """A lick at ``t``: PortIn (returned when it causes a transition) and PortOut 15-40 ms later."""
        self.extra.append((_r(t + rng.uniform(0.015, 0.04)), *_port_event(port_number, "Out")))
        if not transition:
            self.extra.append((_r(t), *_port_event(port_number, "In")))
        return _port_event(port_number, "In")

    def end(self) -> None:
        self.exit_time = self.t

    def occurrences(self) -> list[tuple[str, float, float]]:
        out = []
        for i, (state, start) in enumerate(self.visits):
            stop = self.visits[i + 1][1] if i + 1 < len(self.visits) else self.exit_time
            out.append((state, start, stop))
        return out

    def timeline(self) -> list[tuple[float, int, str, str | None]]:
        """(time, event code, event name, state entered or None) in the order the Bpod reports them."""
        items = [(start, 0, *self.causes[i], state) for i, (state, start) in enumerate(self.visits) if i]
        items += [(t, 1, code, name, None) for t, code, name in self.extra if t < self.exit_time]
        if self.exit_by_tup:
            items.append((self.exit_time, 0, _TUP_CODE, "Tup", None))
        items.sort(key=lambda x: (x[0], x[1]))
        return [(t, code, name, state) for t, _, code, name, state in items]


def _block_probabilities(rng, n_blocks: int, three: bool) -> list[tuple[float, ...]]:
    """Reward probabilities per block: the richest port changes from block to block."""
    if three:
        pairs = [(0.27, 0.135, 0.045), (0.225, 0.15, 0.075), (0.15, 0.15, 0.15)]
        out: list[tuple[float, ...]] = []
        while len(out) < n_blocks:
            base = pairs[int(rng.integers(len(pairs)))]
            p = tuple(float(x) for x in rng.permutation(base))
            if not out or (
                p != out[-1]
                and (len(set(p)) == 1 or int(np.argmax(p)) != int(np.argmax(out[-1])) or len(set(out[-1])) == 1)
            ):
                out.append(p)
        return out
    pairs = [(0.4, 0.05), (0.3857, 0.0643), (0.3375, 0.1125), (0.225, 0.225)]
    out = []
    rich = int(rng.integers(2))
    while len(out) < n_blocks:
        hi, lo = pairs[int(rng.integers(len(pairs)))]
        p = (hi, lo) if rich == 0 else (lo, hi)
        if out and p == out[-1]:
            continue
        out.append(p)
        rich = 1 - rich
    return out


def _setup_channels(setup: str) -> dict[str, int]:
    if setup.lower() in ("ephys_han", "voltage-1p-rig"):
        return {"L": 1, "R": 2, "M": 3}
    return {"L": 7, "R": 8, "M": 3}


def _variables(rng, setup: str, three: bool, recording: bool, probs: list[tuple[float, ...]]) -> dict:
    ch = _setup_channels(setup)
    subject = {
        "ValveOpenTime_L": 0.04,
        "ValveOpenTime_R": 0.04,
        "ValveOpenTime_M": 0.04,
        "Trialnumber_in_block": 3,
        "Trialnumber_in_block_max": 15,
        "Trialnumber_in_block_min": 7,
        "block_start_with_bias_check": False,
        "block_number": len(probs),
        "difficulty_sum_reward_rate": 0.45,
        "difficulty_ratio_pair_num": 4,
        "delay": 0.5,
        "delay_min": 0.3,
        "delay_max": 1.5,
        "response_time": 2.0,
        "Reward_consume_time": 1.0,
        "iti": 2.0,
        "iti_min": 1.0,
        "iti_max": 6.0,
        "increase_ITI_on_ignore_trials": False,
        "motor_retractiondistance": 60000,
        "motor_retract_waterport": True,
        "accumulate_reward": True,
        "auto_water": True,
        "auto_water_time_multiplier": 0.75,
        "auto_water_min_unrewarder_trials_in_a_row": 3,
        "auto_water_min_ignored_trials_in_a_row": 2,
        "auto_train_min_rewarded_trial_num": 0,
        "early_lick_punishment": False,
        "reward_rate_family": 1,
        "lickport_number": 3.0 if three else 2.0,
        "reward_probabilities_R": [p[1] for p in probs],
        "reward_probabilities_L": [p[0] for p in probs],
        "reward_probabilities_M": [p[2] for p in probs] if three else [0.0] * len(probs),
        "motor_forwardposition": 210000 + int(rng.integers(-5000, 5000)),
    }
    subject["motor_retractedposition"] = subject["motor_forwardposition"] + 60000
    setup_vars = {"GoCue_ch": "Serial1" if recording else "PWM5"}
    if recording:
        setup_vars.update(
            if_recording_rig=True,
            bitcode_channel="BNC1",
            trial_indicator_channel="BNC2",
            camera_face_trig="Wire1",
            camera_trunk_trig="Wire2",
        )
    for x in "LRM":
        setup_vars[f"WaterPort_{x}_ch_out"] = ch[x]
        setup_vars[f"WaterPort_{x}_ch_in"] = f"Port{ch[x]}In"
    setup_vars.update(
        comport_motor="COM8" if recording else "COM4",
        retract_motor_signal=("PWM8" if recording else "PWM2", 255),
        protract_motor_signal=("SoftCode", 2),
    )
    return subject, setup_vars


def _state_names(three: bool, recording: bool, auto: bool) -> list[str]:
    """The states of one trial's state machine, in the order the task adds them."""
    names = ["ITIBeforeVideoOff", "ITIBeforeVideoOn", "Start"]
    if recording:
        for d in range(1, _BITCODE_DIGITS + 1):
            names += [f"OffState{d}", f"OnState{d}"]
        names.append(f"OffState{_BITCODE_DIGITS + 1}")
    names += ["ProtractLickports", "DelayStart"]
    if auto:
        names += ["GoCue", "Auto_Water_M", "Auto_Water_L", "Auto_Water_R", "GoCue_real", "AfterGoCue"]
    else:
        names += ["GoCue", "AfterGoCue"] + [f"Choice_{x}_fixation_reward" for x in "LRM"]
    names += ["Choice_L", "Choice_R", "Choice_M"]
    for x in "LRM":
        names += [f"Reward_{x}", f"EventMarker_reward_{x}"]
    for x in "LRM":
        names += [f"Consume_reward_{x}", f"Consume_reward_return_{x}"]
    names += ["Double_dipped", "ITI", "ITIAfterVideoOn", "ITIAfterVideoOff", "End"]
    return names


def _simulate_session(
    log: _Log,
    rng,
    *,
    h2o: str,
    setup: str,
    experiment: str,
    project: str,
    name: str,
    three: bool,
    recording: bool,
    n_trials: int,
    skip_every: int,
    trial_offset: int,
    file_name: str,
) -> list[dict]:
    """Write one bpod session into ``log``; return one record per bpod trial (file order)."""
    ports = ["left", "right", "middle"] if three else ["left", "right"]
    letters = [_PORT_LETTER[p] for p in ports]
    ch = _setup_channels(setup)
    n_blocks = max(3, n_trials // 5 + 2)
    probs = _block_probabilities(rng, n_blocks, three)
    subject_vars, setup_vars = _variables(rng, setup, three, recording, probs)
    variables = {**subject_vars, **setup_vars}

    started = log.now
    # -- session information (pybpodgui + pybpod-api)
    log.row("INFO", msg="SESSION-NAME", info=name)
    log.row("INFO", msg="SESSION-STARTED", info=str(started))
    log.row("INFO", msg="BPOD-API-VERSION", info="1.8.1")
    log.row("INFO", msg="BPOD-GUI-VERSION", info="1.8.2")
    log.row("INFO", msg="PROTOCOL-NAME", info="Foraging_bpod")
    log.row("INFO", msg="CREATOR-NAME", info='["hh", "' + str(uuid.UUID(int=7, version=4)) + '", "local"]')
    log.row("INFO", msg="PROJECT-NAME", info=project)
    log.row("INFO", msg="EXPERIMENT-NAME", info=experiment)
    log.row("INFO", msg="BOARD-NAME", info=f"Bpod-{setup}")
    log.row("INFO", msg="SETUP-NAME", info=setup)
    log.row("INFO", msg="SUBJECT-NAME", info=str([h2o, str(uuid.UUID(int=11, version=4))]))
    log.row("INFO", msg="SERIAL-PORT", info="COM3")
    log.row("INFO", msg="FIRMWARE-VERSION", info="22")
    log.row("INFO", msg="MACHINE-TYPE", info="3")
    log.wait(rng.uniform(0.5, 1.5))
    # -- the task's start-up prints
    log.print("setup_name: ", setup)
    log.print("experiment_name: ", experiment)
    log.print("subject_name: ", h2o)
    log.print("subject variables loaded from Json file")
    log.print(subject_vars)
    log.print("setup variables loaded from Json file")
    log.wait(rng.uniform(0.2, 0.6))  # reading the motor positions
    log.print("json files (re)generated")
    log.print("Variables:", variables)
    seed = int((started - dt.datetime(1970, 1, 1)).total_seconds())
    log.print("Random seed:", str(seed))
    log.wait(rng.uniform(0.3, 1.0))  # retracting the lick ports

    lateral = 320000 + int(rng.integers(-20000, 20000))
    rostrocaudal = subject_vars["motor_forwardposition"]
    dorsoventral = 95000 + int(rng.integers(-3000, 3000))
    accumulated = {x: True for x in letters}  # baited from the start ('accumulate_reward')
    printed_accumulated: dict[str, bool] | None = None  # what was last printed after a trial
    unrewarded_in_row = ignored_in_row = 0
    iti_previous = 2.0
    bpod_clock = _r(rng.uniform(1, 3))
    update_at = int(rng.integers(3, max(4, n_trials - 1))) if n_trials >= 6 else -1
    records: list[dict] = []

    block = 0
    block_left = 0
    for k in range(n_trials):
        if block_left <= 0:
            if k:
                block += 1
            block_left = int(np.ceil(min(15, 7 + rng.exponential(3))))
        block_left -= 1
        p = dict(zip(letters, probs[block]))
        rec: dict = {
            "file_trial": k + 1,
            "task": "foraging 3lp" if three else "foraging",
            "task_protocol": 101 if three else 100,
            "probability": {pt: round(p[_PORT_LETTER[pt]], 3) for pt in ports},
        }
        skip = skip_every > 0 and (trial_offset + k + 1) % skip_every == 0

        # ---- between trials: prints before the state machine is sent
        log.print("-----------------------------")
        if k == update_at:
            variables = {
                **variables,
                "ValveOpenTime_L": round(variables["ValveOpenTime_L"] + 0.005, 3),
                "ValveOpenTime_R": round(variables["ValveOpenTime_R"] - 0.005, 3),
            }
            log.print("Variables updated:", variables)
        log.print("Blocknumber:", block + 1)
        start_row = log.print("Trialnumber:", k + 1)
        bitcode = None
        if recording:
            bitcode = "".join(str(int(b)) for b in rng.integers(0, 2, _BITCODE_DIGITS))
            start_row = log.print("TrialBitCode: ", bitcode)
        # spec 3.2: a trial begins where the task printed its trial number (bitcode on recording rigs)
        # just before sending the state machine; the first trial begins with the file
        rec["start_pc"] = log.rows[0][1] if k == 0 else start_row
        log.wait(rng.uniform(0.01, 0.04))  # building and sending the state machine

        # ---- behaviour draws
        reward = {x: bool(rng.random() < p[x]) for x in letters}
        baited = {x: reward[x] or accumulated[x] for x in letters}
        auto = (
            unrewarded_in_row >= variables["auto_water_min_unrewarder_trials_in_a_row"]
            or ignored_in_row >= variables["auto_water_min_ignored_trials_in_a_row"]
        )
        ignore = rng.random() < 0.15
        w = np.array([p[x] + 0.1 for x in letters])
        chosen = letters[int(rng.choice(len(letters), p=w / w.sum()))]
        iti_this = min(variables["iti_max"], rng.exponential(variables["iti"]) + variables["iti_min"]) - 0.05
        iti_before = iti_previous / 2
        before_on = min(iti_before - 0.1, 2.0)
        iti_after = iti_this / 2
        after_on = min(iti_after - 0.1, 2.0)
        iti_previous = iti_this
        delay = min(variables["delay_max"], rng.exponential(variables["delay"]) + variables["delay_min"])

        # ---- the Bpod runs the trial
        tr = _Trial()
        tr.enter("ITIBeforeVideoOff", None)
        tr.stay(iti_before - before_on)
        tr.enter("ITIBeforeVideoOn")
        if rng.random() < 0.08:  # a lick before the trial proper
            tr.lick(
                ch[letters[int(rng.integers(len(letters)))]],
                _r(tr.t + rng.uniform(0.05, before_on - 0.1)),
                rng,
                transition=False,
            )
        tr.stay(before_on)
        tr.enter("Start")
        tr.stay(0.02 if recording else CYCLE)
        if recording:
            for d, bit in enumerate(bitcode, start=1):
                tr.enter(f"OffState{d}")
                tr.stay(0.01)
                tr.enter(f"OnState{d}")
                tr.stay(0.01)
            tr.enter(f"OffState{_BITCODE_DIGITS + 1}")
            tr.stay(CYCLE)
        tr.softcodes.append((tr.enter("ProtractLickports"), 2))
        tr.stay(CYCLE)
        delay_start = tr.enter("DelayStart")
        if rng.random() < 0.2:  # early licks during the delay
            for t in np.sort(rng.uniform(delay_start + 0.05, delay_start + delay - 0.05, int(rng.integers(1, 3)))):
                tr.lick(ch[letters[int(rng.integers(len(letters)))]], _r(t), rng, transition=False)
        auto_water: dict[str, float] = {}
        choice = None
        outcome = "ignore"
        if skip:  # the experimenter ended the trial in the delay
            tr.stay(rng.uniform(0.1, 0.9) * delay)
            tr.exit_by_tup = False
            tr.end()
        else:
            tr.stay(delay)
            tr.enter("GoCue")
            if auto:
                tr.stay(CYCLE)
                for x in "MLR":
                    tr.enter(f"Auto_Water_{x}")
                    water = x in letters and baited[x]
                    multiplier = variables["auto_water_time_multiplier"]
                    tr.stay(variables[f"ValveOpenTime_{x}"] * multiplier if water else CYCLE)
                    if water:
                        auto_water[x] = True
                tr.enter("GoCue_real")
                tr.stay(0.001)
            else:
                tr.stay(0.001 if recording else 0.01)
            tr.enter("AfterGoCue")
            if ignore:
                tr.stay(variables["response_time"])
                tr.enter("ITI")
            else:
                choice = chosen
                tr.stay(rng.uniform(0.12, 0.8))
                cause = tr.lick(ch[chosen], tr.t, rng, transition=True)
                if not auto:
                    tr.enter(f"Choice_{chosen}_fixation_reward", cause)
                    tr.stay(CYCLE)
                    tr.enter(f"Choice_{chosen}")
                else:
                    tr.enter(f"Choice_{chosen}", cause)
                tr.stay(_CHOICE_MARKER[chosen])
                if baited[chosen]:
                    outcome = "hit"
                    tr.enter(f"Reward_{chosen}")
                    tr.stay(variables[f"ValveOpenTime_{chosen}"])
                    tr.enter(f"EventMarker_reward_{chosen}")
                    tr.stay(0.03)
                else:
                    outcome = "miss"
                tr.enter(f"Consume_reward_{chosen}")
                for _ in range(int(rng.integers(0, 6 if outcome == "hit" else 3))):
                    tr.stay(rng.uniform(0.12, 0.3))
                    cause = tr.lick(ch[chosen], tr.t, rng, transition=True)
                    tr.enter(f"Consume_reward_return_{chosen}", cause)
                    tr.stay(CYCLE)
                    tr.enter(f"Consume_reward_{chosen}")
                others = [x for x in letters if x != chosen]
                if rng.random() < 0.15:
                    tr.stay(rng.uniform(0.15, 0.8))
                    cause = tr.lick(ch[others[int(rng.integers(len(others)))]], tr.t, rng, transition=True)
                    tr.enter("Double_dipped", cause)
                    tr.stay(CYCLE)
                else:
                    tr.stay(variables["Reward_consume_time"])
                tr.enter("ITI")
            tr.stay(0.04)
            tr.enter("ITIAfterVideoOn")
            tr.stay(after_on)
            tr.enter("ITIAfterVideoOff")
            tr.stay(iti_after - after_on)
            tr.enter("End")
            tr.stay(CYCLE)
            tr.end()

        # ---- the log of the trial
        log.row("TRIAL", msg="New trial")
        bpod_zero = log.now + dt.timedelta(microseconds=int(rng.integers(1500, 4000)))
        soft = dict(tr.softcodes)
        for t, code, ev_name, state in tr.timeline():
            log.at(bpod_zero + dt.timedelta(seconds=t + rng.uniform(0.0005, 0.006)))
            log.row("EVENT", t, None, code, ev_name)
            if state is not None:
                log.row("TRANSITION", t, None, state)
                if t in soft and state == "ProtractLickports":
                    log.row("SOFTCODE", msg=soft[t])
                    log.print(soft[t])
                    log.print("protracting Zabermotor")
        log.at(bpod_zero + dt.timedelta(seconds=tr.exit_time + rng.uniform(0.002, 0.01)))
        log.row("END-TRIAL", msg="The trial ended")
        log.row(
            "INFO",
            bpod_clock,
            _r(bpod_clock + tr.exit_time),
            "TRIAL-BPOD-TIME",
            _r(bpod_clock + tr.exit_time) - bpod_clock,
        )
        bpod_clock = _r(bpod_clock + tr.exit_time + rng.uniform(0.03, 0.08))
        occ = tr.occurrences()
        order = list(dict.fromkeys(s for s, _, _ in occ))
        for state in order:
            for s, a, b in occ:
                if s == state:
                    log.row("STATE", a, b, s, b - a)
        for state in _state_names(three, recording, auto):
            if state not in order:
                log.row("STATE", float("nan"), float("nan"), state, float("nan"))

        # ---- truth of this trial (from the simulation itself)
        licks = sorted([(t, name) for t, _, name, _ in tr.timeline() if name.endswith("In")], key=lambda x: x[0])
        port_of = {f"Port{ch[x]}In": pt for pt, x in zip(ports, letters)}
        lick_list = [(f"{port_of[name]} lick", t) for t, name in licks if name in port_of]
        events = sorted(
            ((_EVENT_TYPE[s], a, b - a) for s, a, b in occ if s in _EVENT_TYPE and a > 0), key=lambda e: e[1]
        )
        rec["skip"] = None
        if skip:
            rec["skip"] = f"no GoCue state ({file_name}, bpod trial {k + 1})"
        else:
            go_time = next(t for typ, t, _ in events if typ == "go")
            notes = {}
            if bitcode is not None:
                notes["bitcode"] = bitcode
            if k == 0:
                notes["random_seed_start"] = str(seed)
            if auto and any(auto_water.get(x) for x in letters):
                notes["autowater"] = " and ".join(pt for pt, x in zip(ports, letters) if auto_water.get(x))
            rec.update(
                choice={"L": "left", "R": "right", "M": "middle"}[choice] if choice else None,
                outcome=outcome,
                early_lick="early" if any(t < go_time for _, t in lick_list) else "no early",
                auto_water=bool(auto),
                events=events,
                licks=lick_list,
                available_reward={
                    pt: bool(printed_accumulated[x]) if printed_accumulated else False for pt, x in zip(ports, letters)
                },
                notes=notes,
                valve_open_duration={pt: float(variables[f"ValveOpenTime_{x}"]) for pt, x in zip(ports, letters)},
            )

        # ---- after the trial: baiting, counters and the task's prints
        consumed = outcome == "hit"
        for x in letters:
            if consumed and x == choice:
                accumulated[x] = False
            elif reward[x]:
                accumulated[x] = True
        unrewarded_in_row = 0 if consumed else unrewarded_in_row + 1
        if choice:
            ignored_in_row = 0
        else:
            log.print(f"ignored {ignored_in_row}")
            ignored_in_row += 1
        log.print("Trialtype:", "free choice")
        for x in "LRM":
            log.print(f"reward_{x}_accumulated:", accumulated[x] if x in letters else False)
        printed_accumulated = dict(accumulated)
        for x in "LRM":
            log.print(f"reward_p_{x}:", p.get(x, 0.0))
        log.wait(rng.uniform(0.02, 0.06))  # reading the lick port motors
        if rng.random() < 0.1:
            lateral += int(rng.integers(-2000, 2000))  # the experimenter nudged the lick ports
        motors = {"LickPort_Lateral_pos": lateral, "LickPort_RostroCaudal_pos": rostrocaudal}
        if three:
            motors["LickPort_DorsoVentral_pos"] = dorsoventral
        log.print("LickportMotors:", motors)
        if not rec["skip"]:
            rec["lickport_position"] = {
                "lateral": float(lateral),
                "rostrocaudal": float(rostrocaudal),
                **({"dorsoventral": float(dorsoventral)} if three else {}),
            }
        records.append(rec)
        log.wait(rng.uniform(0.005, 0.02))

    log.wait(rng.uniform(0.5, 2.0))
    end_pc = log.row("INFO", msg="SESSION-ENDED", info=str(log.now))
    for i, rec in enumerate(records):
        rec["stop_pc"] = records[i + 1]["start_pc"] if i + 1 < len(records) else end_pc
    return records


def write_foraging_day(
    root,
    h2o: str = "FOR01",
    date: dt.date = dt.date(2021, 3, 1),
    n_sessions: int = 1,
    trials_per_session: int = 20,
    three_lickports: bool = False,
    setup: str = "Tower-2",
    seed: int = 0,
    skip_gocue_every: int = 0,
    *,
    experiment: str = "Foraging",
    bitcode: bool | None = None,
) -> GeneratedForagingDay:
    """Write ``n_sessions`` bpod sessions of ``h2o`` on ``date`` under the pybpod project folder
    ``root`` (``{root}/experiments/{experiment}/setups/{setup}/sessions/{YYYYMMDD-HHMMSS}/...csv``).

    ``skip_gocue_every = k > 0`` ends every k-th bpod trial of the day in its delay period (the
    experimenter stopped it), so it has no GoCue state. ``bitcode`` (default: only on the
    recording rig ``Ephys_Han``) adds the 20-bit trial bitcode states and 'TrialBitCode:' prints.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    recording = setup.lower() == "ephys_han" if bitcode is None else bool(bitcode)
    start = dt.datetime.combine(date, dt.time(10, 0)) + dt.timedelta(seconds=float(rng.uniform(0, 1800)))
    start = start.replace(microsecond=0)  # pybpod then writes PC-TIME without fraction
    files: list[Path] = []
    per_file: list[list[dict]] = []
    offset = 0
    for s in range(n_sessions):
        name = start.strftime("%Y%m%d-%H%M%S")
        path = root / "experiments" / experiment / "setups" / setup / "sessions" / name / f"{name}.csv"
        log = _Log(start, rng)
        records = _simulate_session(
            log,
            rng,
            h2o=h2o,
            setup=setup,
            experiment=experiment,
            project=root.name,
            name=name,
            three=three_lickports,
            recording=recording,
            n_trials=trials_per_session,
            skip_every=skip_gocue_every,
            trial_offset=offset,
            file_name=path.name,
        )
        log.write(path, created=start - dt.timedelta(microseconds=int(rng.integers(1000, 90000))))
        files.append(path)
        per_file.append(records)
        offset += trials_per_session
        start = (log.now + dt.timedelta(minutes=float(rng.uniform(10, 40)))).replace(microsecond=0)

    # ---- ground truth in the reader's dataclasses
    kept = [r for recs in per_file for r in recs if r["skip"] is None]
    t_zero = kept[0]["start_pc"] if kept else None
    trials, blocks, skipped = [], [], []
    index = 0
    for fi, recs in enumerate(per_file):
        previous = None
        for r in recs:
            index += 1
            if r["skip"] is not None:
                skipped.append((index - 1, r["skip"]))
                continue
            number = len(trials) + 1
            start_time = (r["start_pc"] - t_zero).total_seconds()
            if previous is None or r["probability"] != previous:
                blocks.append(
                    ForagingBlock(
                        block=len(blocks) + 1,
                        first_trial=number,
                        start_time=start_time,
                        reward_probability=dict(r["probability"]),
                    )
                )
                previous = r["probability"]
            trials.append(
                ForagingTrial(
                    trial=number,
                    start_time=start_time,
                    stop_time=(r["stop_pc"] - t_zero).total_seconds(),
                    task=r["task"],
                    task_protocol=r["task_protocol"],
                    block=blocks[-1].block,
                    choice=r["choice"],
                    outcome=r["outcome"],
                    early_lick=r["early_lick"],
                    auto_water=r["auto_water"],
                    free_water=False,
                    events=r["events"],
                    licks=r["licks"],
                    available_reward=r["available_reward"],
                    notes=r["notes"],
                    lickport_position=r["lickport_position"],
                    valve_open_duration=r["valve_open_duration"],
                )
            )
    truth = ForagingSession(
        h2o=h2o,
        setup=setup,
        rig=_RIG.get(setup.lower(), setup),
        experiment=experiment,
        session_datetime=t_zero,
        files=list(files),
        trials=trials,
        blocks=blocks,
        skipped_trials=skipped,
    )
    return GeneratedForagingDay(h2o=h2o, files=files, truth=truth)


def write_subject_meta(
    meta_dir, h2o: str, days: list[dt.date], *, seed: int = 0, training_type: str = "foraging"
) -> Path:
    """``{meta_dir}/{h2o}.csv`` as the lab keeps it: a 'restriction' and a 'handling' row before the
    first day (not sessions), then one training row per day in ``days`` (dates alternately written
    YYYY-MM-DD and YYYY/MM/DD, both of which the lab used)."""
    rng = np.random.default_rng(seed)
    path = Path(meta_dir) / f"{h2o}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    days = sorted(days)
    first = days[0] if days else dt.date(2021, 3, 1)
    weight = round(float(rng.uniform(22, 26)), 1)
    rows = [
        [
            (first - dt.timedelta(days=7)).isoformat(),
            "",
            "",
            "restriction",
            "",
            weight,
            1.0,
            "start of water restriction",
        ],
        [
            (first - dt.timedelta(days=1)).isoformat(),
            "15:00",
            "15:20",
            "handling",
            0,
            round(weight * 0.9, 1),
            1.0,
            "handling, calm",
        ],
    ]
    for i, d in enumerate(days):
        begin = dt.datetime.combine(d, dt.time(9, 30)) + dt.timedelta(minutes=int(rng.integers(0, 60)))
        end = begin + dt.timedelta(minutes=int(rng.integers(60, 120)))
        rows.append(
            [
                d.strftime("%Y-%m-%d" if i % 2 == 0 else "%Y/%m/%d"),
                begin.strftime("%H:%M"),
                end.strftime("%H:%M"),
                training_type,
                round(float(rng.uniform(0.5, 1.2)), 2),
                round(weight * float(rng.uniform(0.82, 0.9)), 1),
                round(float(rng.uniform(0, 0.6)), 2),
                "good session" if rng.random() < 0.5 else "biased to the left",
            ]
        )
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["Date", "Time", "Time-end", "Training type", "Water during training", "Weight", "Extra water", "Notes"]
        )
        w.writerows(rows)
    return path
