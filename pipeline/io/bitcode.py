"""The MAP per-probe bitcode file ``{h2o}_*bitcode.mat`` (spec 3.4 (a)) and ephys-to-behaviour trial alignment.

The file (MATLAB v5 or v7.3) holds, per trial the ephys system saw:

============== ==================================================================================
``bitCodeS``   the trial's bitcode as a character row ('0101...'); a char matrix or a cell array
``bitcode``    the same bits as a numeric (uint8/double) trials x bits matrix (old files have both)
``sTrig``      trial start, in samples of the probe's stream (absent in the old format)
``goCue``      go cue, samples; NaN for free-water trials, or (older files) listed for the
               non-free-water trials only, so shorter than ``sTrig`` (see ``BitcodeFile.pad_go_cue``)
``trialNum``   optional: the behaviour trial number (1-based) of each ephys trial, written when the
               bitcodes alone do not align; the codes must agree with it on every trial it places
foraging extras ``digMarkerPerTrial`` (+ ``headings``), ``zaberPerTrial``, ``lick{L,R,M}PerTrial``,
               ``cameraPerTrial``; every variable not listed above lands in ``BitcodeFile.extras``
============== ==================================================================================

Alignment (spec 3.4): the behaviour side knows each trial's bitcode (Bpod ``GUI.randomID``,
TrialNote 'bitcode'). ``align_trials`` locates the first ephys code among the behaviour codes and
requires every ephys code in the overlap to equal its behaviour trial's code; any disagreement is
a ``BitcodeError`` naming the trials and codes, never a silent shift. Ephys trials outside the
behaviour file (recording started before / ran past it) are dropped and reported.

**CatGT edge files of the NIDQ stream** (spec 3.4 (b)), the sync of sessions without a bitcode file:
CatGT's analog-channel extractors write one text file per extractor, one edge time (s from the start
of the stream's file, printed with 6 decimals) per line. Two are used:

========================================= ===================================================
``*.XA_0_0.txt`` or ``*.XA_0_0.adj.txt``  trial starts (the rig's trial-start pulse), one a trial
``*.XA_1_2.txt`` or ``*.XA_1_2.adj.txt``  the bit pulses of each trial's code
========================================= ===================================================

(names matched without regard to case: CatGT itself writes ``xa_0_0``). The ``.adj`` variants are
CatGT's adjusted edges, taken to be on the clock of the probe being loaded; the plain ones are on the
NIDQ clock. ``find_xa_files`` prefers the ``.adj`` pair and refuses a mix (an ``.adj`` file of one
kind with only a plain file of the other). ``read_edges`` reads one file: every non-blank line one
finite, non-negative number, in strictly increasing order, at least one; else a ``BitcodeError``
naming the file and line.

Decoding (``decode_xa_bitcodes``): a pulse belongs to the last trial that started at or before it
(a pulse before the first trial start is an error). Per trial, the time
``start + XA_FIRST_BIT_S - XA_BIT_INTERVAL_S`` (0.05 s - 0.007 s) is put before its pulses, and
bit index = cumsum(round(diff / 0.007)) - 1, so a pulse 0.05 s after the start is bit 0 and every
0.007 s later the next; the trial's code is ``XA_BITS`` (10) characters, '1' at the pulses' bits.
Rounding each gap absorbs jitter well below half a bit interval. Two pulses on one bit, a pulse
before bit 0 or past the last bit (a stray pulse between trials) are errors naming the trial.
An absent or empty pulse file means a recording without bits (``XASync.bitcodes`` is None, with
the reason); the ingest then aligns only RRig-MTL sessions, one to one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .matfile import MatFileError, read_mat

__all__ = [
    "BitcodeError",
    "ForagingEvents",
    "foraging_events",
    "BitcodeFile",
    "read_bitcode",
    "TrialAlignment",
    "align_trials",
    "CORE_VARIABLES",
    "XAFiles",
    "XASync",
    "find_xa_files",
    "read_edges",
    "decode_xa_bitcodes",
    "read_xa_sync",
]

log = logging.getLogger(__name__)

CORE_VARIABLES = ("bitCodeS", "bitcode", "sTrig", "goCue", "trialNum")
_SHOWN = 5  # mismatches listed in an error message


class BitcodeError(InputError):
    """An unreadable bitcode file (message starts with its path) or bitcodes that do not align."""


@dataclass
class BitcodeFile:
    path: Path
    bitcodes: list[str]  #: per ephys trial, '0101...'
    trial_start: np.ndarray | None  #: sTrig, samples (float64); None in the old format
    go_cue: np.ndarray | None  #: goCue, samples, NaN for free-water trials; None in the old format
    trial_numbers: np.ndarray | None  #: trialNum (int64, 1-based behaviour trials) if present
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        return len(self.bitcodes)

    @property
    def go_cue_complete(self) -> bool:
        """False when goCue lists only the non-free-water trials (use ``pad_go_cue``)."""
        return self.go_cue is None or len(self.go_cue) == self.n_trials

    def pad_go_cue(self, free_water) -> np.ndarray:
        """goCue with one entry per ephys trial, NaN at ``free_water`` trials (bool per ephys trial).

        Works for both layouts: a full-length goCue must already be NaN exactly where free_water is
        True or finite elsewhere; a short one must have one value per non-free-water trial.
        """
        if self.go_cue is None:
            raise BitcodeError(f"{self.path}: no goCue in this (old format) file")
        fw = np.asarray(free_water, dtype=bool).ravel()
        if len(fw) != self.n_trials:
            raise BitcodeError(f"{self.path}: free_water has {len(fw)} entries for {self.n_trials} ephys trials")
        if self.go_cue_complete:
            bad = np.flatnonzero(np.isnan(self.go_cue) != fw)
            if bad.size:
                raise BitcodeError(
                    f"{self.path}: goCue is NaN at ephys trials "
                    f"{np.flatnonzero(np.isnan(self.go_cue)).tolist()[:10]} but the free-water "
                    f"trials are {np.flatnonzero(fw).tolist()[:10]}"
                )
            return self.go_cue.copy()
        if int((~fw).sum()) != len(self.go_cue):
            raise BitcodeError(
                f"{self.path}: goCue has {len(self.go_cue)} entries but there are "
                f"{int((~fw).sum())} non-free-water trials of {self.n_trials}"
            )
        out = np.full(self.n_trials, np.nan)
        out[~fw] = self.go_cue
        return out


def _rows_to_codes(path: Path, arr: Any, name: str) -> list[str]:
    a = np.asarray(arr)
    if a.dtype.kind in "USO":
        return _strings(path, arr, name)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise BitcodeError(f"{path}: {name} has shape {a.shape}, expected trials x bits")
    if a.size and not np.all(np.isin(a, (0, 1))):
        raise BitcodeError(f"{path}: {name} holds values other than 0 and 1")
    digits = np.where(a.astype(np.int64) == 1, "1", "0")
    return ["".join(row) for row in digits]


def _strings(path: Path, value: Any, name: str) -> list[str]:
    """bitCodeS as read from v5 (U array / object array / str) or v7.3 (list / str)."""
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, bytes):
        return [value.decode().strip()]
    if (
        isinstance(value, np.ndarray)
        and value.dtype.kind in "iuf"
        or (isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, np.number)) for v in value))
    ):
        return _rows_to_codes(path, value, name)
    items = value.ravel().tolist() if isinstance(value, np.ndarray) else list(value)
    out = []
    for i, v in enumerate(items):
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "US":
                v = "".join(v.ravel().tolist())
            elif v.size and v.dtype.kind in "iuf" and np.all(np.isin(v, (0, 1))):
                v = "".join(str(int(b)) for b in v.ravel())
            else:
                raise BitcodeError(f"{path}: {name}[{i}] is not a string ({v!r})")
        if isinstance(v, bytes):
            v = v.decode()
        if not isinstance(v, str):
            raise BitcodeError(f"{path}: {name}[{i}] is not a string ({v!r})")
        out.append(v.strip())
    return out


def _vector(path: Path, value: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BitcodeError(f"{path}: {name} is not numeric") from None
    if a.ndim > 1 and sum(s > 1 for s in a.shape) > 1:
        raise BitcodeError(f"{path}: {name} has shape {a.shape}, expected a vector")
    return a.ravel()


def read_bitcode(path: str | Path) -> BitcodeFile:
    """Read a ``{h2o}_*bitcode.mat`` (MATLAB v5 or v7.3)."""
    path = Path(path)
    try:
        data = read_mat(path)
    except MatFileError as e:
        raise BitcodeError(str(e)) from None
    codes_s = _strings(path, data["bitCodeS"], "bitCodeS") if "bitCodeS" in data else None
    codes_m = _rows_to_codes(path, data["bitcode"], "bitcode") if "bitcode" in data else None
    if codes_s is None and codes_m is None:
        raise BitcodeError(f"{path}: neither bitCodeS nor bitcode in the file (variables: {sorted(data)})")
    if codes_s is not None and codes_m is not None:
        if len(codes_s) != len(codes_m):
            raise BitcodeError(f"{path}: bitCodeS has {len(codes_s)} trials but bitcode has {len(codes_m)}")
        bad = [i for i, (a, b) in enumerate(zip(codes_s, codes_m)) if a != b]
        if bad:
            raise BitcodeError(
                f"{path}: bitCodeS and bitcode disagree at ephys trial(s) {bad[:_SHOWN]} "
                f"(first: {codes_s[bad[0]]!r} vs {codes_m[bad[0]]!r})"
            )
    codes = codes_s if codes_s is not None else codes_m
    n = len(codes)
    if n == 0:
        raise BitcodeError(f"{path}: no trials")
    lengths = {len(c) for c in codes}
    if len(lengths) != 1 or not all(set(c) <= {"0", "1"} for c in codes):
        raise BitcodeError(f"{path}: bitcodes are not equal-length 0/1 strings (lengths {sorted(lengths)})")

    start = _vector(path, data["sTrig"], "sTrig") if "sTrig" in data else None
    go = _vector(path, data["goCue"], "goCue") if "goCue" in data else None
    if start is not None and len(start) != n:
        raise BitcodeError(f"{path}: sTrig has {len(start)} trial starts but there are {n} bitcodes")
    if go is not None and len(go) > n:
        raise BitcodeError(f"{path}: goCue has {len(go)} entries but there are only {n} bitcodes")
    if start is not None and np.any(np.diff(start) <= 0):
        raise BitcodeError(f"{path}: sTrig is not strictly increasing")
    trial_numbers = None
    if "trialNum" in data:
        tn = _vector(path, data["trialNum"], "trialNum")
        if len(tn) != n:
            raise BitcodeError(f"{path}: trialNum has {len(tn)} entries but there are {n} bitcodes")
        if not np.all(np.isfinite(tn) & (tn == np.round(tn))):
            raise BitcodeError(f"{path}: trialNum holds non-integer values")
        trial_numbers = tn.astype(np.int64)
    extras = {k: v for k, v in data.items() if k not in CORE_VARIABLES}
    return BitcodeFile(
        path=path, bitcodes=codes, trial_start=start, go_cue=go, trial_numbers=trial_numbers, extras=extras
    )


#: lick variables of the foraging rigs' bitcode files -> ActionEventType
LICK_VARIABLES = {"lickLPerTrial": "left lick", "lickRPerTrial": "right lick", "lickMPerTrial": "middle lick"}


@dataclass
class ForagingEvents:
    """The foraging rigs' extras of a bitcode file (spec 3.4): times (s, on the ephys recording's
    clock, as the file gives them) per ephys trial (0-based row of the file)."""

    trial_events: pd.DataFrame  #: ephys_trial, trial_event_id, trial_event_type, trial_event_time
    action_events: pd.DataFrame  #: ephys_trial, action_event_id, action_event_type, action_event_time
    camera_frames: dict[str, list[np.ndarray]]  #: camera name -> frame times per ephys trial
    notes: list[str] = field(default_factory=list)


def _per_trial(path: Path, value: Any, name: str, n: int) -> list[np.ndarray]:
    """A cell array with one vector of times per ephys trial."""
    cells = (
        list(value)
        if isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.dtype == object)
        else None
    )
    if cells is None or len(cells) != n:
        got = "not a cell array" if cells is None else f"{len(cells)} cells"
        raise BitcodeError(f"{path}: {name} must hold one cell per ephys trial ({n}); it has {got}")
    out = []
    for i, c in enumerate(cells):
        v = np.atleast_1d(np.asarray(c, dtype=np.float64)).ravel()
        if v.size and not np.all(np.isfinite(v)):
            raise BitcodeError(f"{path}: {name} of ephys trial {i + 1} holds NaN or infinite times")
        out.append(v)
    return out


def foraging_events(bf: BitcodeFile) -> ForagingEvents | None:
    """The trial events (``digMarkerPerTrial`` with its ``headings``, ``zaberPerTrial`` pulses as
    'zaberstep' events numbered after the headings), licks (``lick{L,R,M}PerTrial``, numbered per
    trial in time order) and camera frames (``cameraPerTrial``: per camera, named by
    ``chan.cameraNameInDJ``, of per-trial frame times) of a foraging rig's bitcode file, as the
    original read them; None if the file has no ``digMarkerPerTrial``."""
    x, path, n = bf.extras, bf.path, bf.n_trials
    if "digMarkerPerTrial" not in x:
        return None
    markers = np.asarray(x["digMarkerPerTrial"], dtype=np.float64)
    if markers.ndim == 1 and n == 1:
        markers = markers.reshape(1, -1)
    headings = _strings(path, x.get("headings", []), "headings") if "headings" in x else []
    if markers.ndim != 2 or markers.shape[0] != n or markers.shape[1] != len(headings):
        raise BitcodeError(
            f"{path}: digMarkerPerTrial is {markers.shape}; expected {n} ephys trials x "
            f"{len(headings)} headings ({', '.join(headings) or 'none given'})"
        )
    rows, cols = np.nonzero(np.isfinite(markers))
    events = pd.DataFrame(
        dict(
            ephys_trial=rows,
            trial_event_id=cols,
            trial_event_type=np.asarray(headings, dtype=object)[cols],
            trial_event_time=markers[rows, cols],
        )
    )
    if "zaberPerTrial" in x:
        pulses = _per_trial(path, x["zaberPerTrial"], "zaberPerTrial", n)
        lengths = np.array([len(p) for p in pulses])
        zaber = pd.DataFrame(
            dict(
                ephys_trial=np.repeat(np.arange(n), lengths),
                trial_event_id=len(headings) + np.concatenate([np.arange(k) for k in lengths] or [[]]).astype(int),
                trial_event_type="zaberstep",
                trial_event_time=np.concatenate(pulses or [[]]),
            )
        )
        events = pd.concat([events, zaber], ignore_index=True)
    licks = []
    for name, kind in LICK_VARIABLES.items():
        if name in x:
            times = _per_trial(path, x[name], name, n)
            lengths = np.array([len(t) for t in times])
            licks.append(
                pd.DataFrame(
                    dict(
                        ephys_trial=np.repeat(np.arange(n), lengths),
                        action_event_type=kind,
                        action_event_time=np.concatenate(times or [[]]),
                    )
                )
            )
    actions = (
        pd.concat(licks, ignore_index=True).sort_values(["ephys_trial", "action_event_time"], kind="stable")
        if licks
        else pd.DataFrame(columns=["ephys_trial", "action_event_type", "action_event_time"])
    )
    actions["action_event_id"] = actions.groupby("ephys_trial").cumcount() if len(actions) else []
    cameras: dict[str, list[np.ndarray]] = {}
    notes: list[str] = []
    if "cameraPerTrial" in x:
        names = _camera_names(x.get("chan"))
        per_camera = x["cameraPerTrial"]
        if not names:
            notes.append(f"{path.name}: cameraPerTrial without chan.cameraNameInDJ: camera frame times not loaded")
        else:
            if len(names) == 1 and len(per_camera) == n:
                per_camera = [per_camera]  # one camera: a cell per trial, not a cell per camera
            if len(per_camera) != len(names):
                raise BitcodeError(
                    f"{path}: cameraPerTrial has {len(per_camera)} cameras but chan.cameraNameInDJ names {len(names)}"
                )
            for name, frames in zip(names, per_camera):
                cameras[name] = _per_trial(path, frames, f"cameraPerTrial ({name})", n)
    return ForagingEvents(events.reset_index(drop=True), actions.reset_index(drop=True), cameras, notes)


def _camera_names(chan) -> list[str]:
    """``chan.cameraNameInDJ`` of the file's ``chan`` struct (TrackingDevice names), [] if absent."""
    if chan is None:
        return []
    value = chan.get("cameraNameInDJ") if isinstance(chan, dict) else getattr(chan, "cameraNameInDJ", None)
    if value is None:
        return []
    return [str(v) for v in np.atleast_1d(value).ravel()] if not isinstance(value, str) else [value]


@dataclass
class TrialAlignment:
    behavior_trials: np.ndarray  #: behaviour trial number (1-based) of each ephys trial kept
    ephys_index: np.ndarray  #: 0-based index into the ephys trials of each of those
    n_ephys: int
    n_behavior: int
    dropped_ephys: list[int]  #: ephys trials that matched no behaviour trial (reasons in messages)
    messages: list[str] = field(default_factory=list)
    method: str = "bitcode"  #: 'bitcode' or 'trialNum'
    offset: int | None = None  #: behaviour index - ephys index (bitcode method)


def _where(path) -> str:
    return f"{path}: " if path is not None else ""


def _mismatch_text(pairs: list[tuple[int, int, str, str]], total: int) -> str:
    shown = "; ".join(
        f"ephys trial {i} (0-based) has {a!r}, behaviour trial {t} has {b!r}" for i, t, a, b in pairs[:_SHOWN]
    )
    more = f" (+{total - _SHOWN} more)" if total > _SHOWN else ""
    return shown + more


def align_trials(
    ephys_codes,
    behavior_codes,
    trial_numbers=None,
    path=None,
    *,
    behavior_trial_numbers=None,
    allow_partial: bool = True,
) -> TrialAlignment:
    """Match the ephys trials (bitcodes from the bitcode file) to behaviour trials.

    ``behavior_codes`` are in behaviour trial order; their trial numbers are
    ``behavior_trial_numbers`` (default 1..n). ``trial_numbers`` (the file's trialNum) places each
    ephys trial on that behaviour trial (0/unknown numbers are dropped); the ephys code of every
    trial so placed must still equal its behaviour trial's code, else ``BitcodeError`` naming the
    trials and both codes (a trialNum that contradicts the codes is a wrong file, not an override).

    Without trialNum: the offset is where the first ephys code occurs among the behaviour codes
    (if it occurs several times, the placement under which every overlapping code agrees; if it does
    not occur, the offset most ephys codes agree on). Every ephys code in the overlap must then equal
    its behaviour code, else ``BitcodeError`` (which trials, which codes). Ephys trials before the
    first or after the last behaviour trial are dropped and reported (an error if not
    ``allow_partial``).
    """
    e = [str(c).strip() for c in ephys_codes]
    b = [str(c).strip() for c in behavior_codes]
    n_e, n_b = len(e), len(b)
    bt = (
        np.arange(1, n_b + 1, dtype=np.int64)
        if behavior_trial_numbers is None
        else np.asarray(behavior_trial_numbers, dtype=np.int64).ravel()
    )
    where = _where(path)
    if len(bt) != n_b:
        raise BitcodeError(f"{where}{len(bt)} behaviour trial numbers for {n_b} behaviour codes")
    if n_e == 0:
        raise BitcodeError(f"{where}no ephys bitcodes")
    if n_b == 0:
        raise BitcodeError(f"{where}no behaviour bitcodes")
    messages: list[str] = []

    if trial_numbers is not None:
        tn = np.asarray(trial_numbers).ravel()
        if len(tn) != n_e:
            raise BitcodeError(f"{where}trialNum has {len(tn)} entries but there are {n_e} ephys trials")
        tn = np.asarray(tn, dtype=np.float64)
        pos = {int(t): j for j, t in enumerate(bt)}
        keep, dropped, behav = [], [], []
        for i, t in enumerate(tn):
            if np.isfinite(t) and t == round(t) and int(t) in pos:
                keep.append(i)
                behav.append(int(t))
            else:
                dropped.append(i)
                messages.append(f"ephys trial {i}: trialNum {t:g} is not a behaviour trial; dropped")
        dup = [t for t, k in Counter(behav).items() if k > 1]
        if dup:
            raise BitcodeError(
                f"{where}trialNum gives behaviour trial(s) {sorted(dup)[:_SHOWN]} to more than one ephys trial"
            )
        if dropped and not allow_partial:
            raise BitcodeError(f"{where}" + "; ".join(messages))
        keep_a = np.asarray(keep, dtype=np.int64)
        behav_j = np.asarray([pos[t] for t in behav], dtype=np.int64)
        if keep_a.size:
            differ = np.asarray(e, dtype=object)[keep_a] != np.asarray(b, dtype=object)[behav_j]
            if differ.any():
                k = np.flatnonzero(differ)
                pairs = [(int(keep_a[j]), int(behav[j]), e[keep_a[j]], b[behav_j[j]]) for j in k[:_SHOWN]]
                raise BitcodeError(
                    f"{where}trialNum and the bitcodes disagree at {k.size} of {keep_a.size} trials "
                    f"(the codes must match wherever trialNum places an ephys trial): "
                    f"{_mismatch_text(pairs, int(k.size))}"
                )
        return TrialAlignment(
            behavior_trials=np.asarray(behav, dtype=np.int64),
            ephys_index=np.asarray(keep, dtype=np.int64),
            n_ephys=n_e,
            n_behavior=n_b,
            dropped_ephys=dropped,
            messages=messages,
            method="trialNum",
        )

    lengths_e, lengths_b = {len(c) for c in e}, {len(c) for c in b}
    hint = (
        f" (ephys codes have {sorted(lengths_e)} characters, behaviour codes {sorted(lengths_b)})"
        if lengths_e != lengths_b
        else ""
    )
    e_arr, b_arr = np.asarray(e, dtype=object), np.asarray(b, dtype=object)

    def placement(d: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(max(0, -d), min(n_e, n_b - d))
        return i, (e_arr[i] != b_arr[i + d]) if i.size else np.zeros(0, dtype=bool)

    firsts = [j for j, c in enumerate(b) if c == e[0]]
    if firsts:
        tried = [(d, *placement(d)) for d in firsts]
        clean = [t for t in tried if not t[2].any()]
        if len(clean) > 1:
            raise BitcodeError(
                f"{where}ambiguous alignment: the ephys codes fit behaviour trials starting at "
                f"{[int(bt[d]) for d, _, _ in clean][:_SHOWN]} equally well"
            )
        d, idx, bad = clean[0] if clean else min(tried, key=lambda t: int(t[2].sum()))
    else:
        pos: dict[str, list[int]] = {}
        for j, c in enumerate(b):
            pos.setdefault(c, []).append(j)
        offsets = Counter(j - i for i, c in enumerate(e) for j in pos.get(c, ()))
        if not offsets:
            raise BitcodeError(
                f"{where}none of the {n_e} ephys bitcodes occurs among the {n_b} behaviour "
                f"bitcodes (first ephys {e[0]!r}, first behaviour {b[0]!r}){hint}"
            )
        (d, votes), *rest = offsets.most_common()
        if rest and rest[0][1] == votes:
            raise BitcodeError(
                f"{where}the first ephys bitcode {e[0]!r} is not among the behaviour bitcodes and "
                f"the other codes do not agree on one alignment{hint}"
            )
        idx, bad = placement(d)
        anchor = (
            f"ephys trial {-d} = behaviour trial {int(bt[0])}"
            if d < 0
            else f"ephys trial 0 = behaviour trial {int(bt[d]) if d < n_b else d + 1}"
        )
        messages.append(
            f"the first ephys bitcode {e[0]!r} is not among the behaviour bitcodes; "
            f"{votes} matching codes give {anchor}"
        )
    if bad.any():
        pairs = [(int(i), int(bt[i + d]), e[i], b[i + d]) for i in idx[bad]]
        anchor = (
            f"ephys trial {-d} = behaviour trial {int(bt[0])}"
            if d < 0
            else f"ephys trial 0 = behaviour trial {int(bt[d])}"
        )
        raise BitcodeError(
            f"{where}ephys and behaviour bitcodes disagree at {len(pairs)} of {idx.size} "
            f"overlapping trials (aligned with {anchor}): {_mismatch_text(pairs, len(pairs))}{hint}"
        )
    if idx.size == 0:
        raise BitcodeError(f"{where}the ephys and behaviour trials do not overlap")
    dropped = [i for i in range(n_e) if i < idx[0] or i > idx[-1]]
    before = [i for i in dropped if i < idx[0]]
    after = [i for i in dropped if i > idx[-1]]
    if before:
        messages.append(f"ephys trials {before[0]}..{before[-1]} come before the first behaviour trial; dropped")
    if after:
        messages.append(
            f"ephys trials {after[0]}..{after[-1]} come after the last behaviour trial ({int(bt[-1])}); dropped"
        )
    if dropped and not allow_partial:
        raise BitcodeError(f"{where}" + "; ".join(messages))
    n_unrecorded = n_b - idx.size
    if n_unrecorded:
        messages.append(f"{n_unrecorded} of {n_b} behaviour trials have no ephys trial")
    return TrialAlignment(
        behavior_trials=bt[idx + d],
        ephys_index=idx.astype(np.int64),
        n_ephys=n_e,
        n_behavior=n_b,
        dropped_ephys=dropped,
        messages=messages,
        method="bitcode",
        offset=int(d),
    )


# ---------------------------------------------------------------------------------------------
# CatGT edge files of the NIDQ stream (spec 3.4 (b))

XA_FIRST_BIT_S = 0.05  #: bit 0 of a trial's code, s after the trial-start edge
XA_BIT_INTERVAL_S = 0.007  #: s between consecutive bits
XA_BITS = 10  #: characters of a code
_XA_START = re.compile(r"\.xa_0_0(\.adj)?\.txt$", re.IGNORECASE)
_XA_PULSE = re.compile(r"\.xa_1_2(\.adj)?\.txt$", re.IGNORECASE)


@dataclass
class XAFiles:
    """The edge files a session folder holds for the NIDQ sync route."""

    starts: Path  #: trial starts (``*.XA_0_0[.adj].txt``)
    pulses: Path | None  #: bit pulses (``*.XA_1_2[.adj].txt``); None when there is none
    adjusted: bool  #: the ``.adj`` pair (probe clock) rather than the plain files (NIDQ clock)


@dataclass
class XASync:
    """Trial starts and decoded codes of one pair of edge files."""

    files: XAFiles
    trial_start: np.ndarray  #: s, one per trial the NIDQ saw
    bitcodes: list[str] | None  #: per trial, XA_BITS characters; None: no bits (see ``no_bits``)
    no_bits: str | None = None  #: why there are no bits (no pulse file, an empty one)

    @property
    def n_trials(self) -> int:
        return len(self.trial_start)


def find_xa_files(folder: str | Path) -> XAFiles | None:
    """The session folder's edge files: the ``.adj`` pair if there is one, else the plain files.

    None when the folder has no trial-start file at all; ``BitcodeError`` (naming the files) when a
    kind has several files, or when ``.adj`` and plain files would be mixed.
    """
    folder = Path(folder)
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return None
    found: dict[tuple[str, bool], list[Path]] = {}
    for p in names:
        for kind, rx in (("starts", _XA_START), ("pulses", _XA_PULSE)):
            m = rx.search(p.name)
            if m:
                found.setdefault((kind, m.group(1) is not None), []).append(p)
    for (kind, adj), hits in found.items():
        if len(hits) > 1:
            raise BitcodeError(
                f"{folder}: several {'adjusted ' if adj else ''}CatGT {kind} files "
                f"({', '.join(h.name for h in hits)}); expected one"
            )
    one = {k: v[0] for k, v in found.items()}
    adj_start, adj_pulse = one.get(("starts", True)), one.get(("pulses", True))
    plain_start, plain_pulse = one.get(("starts", False)), one.get(("pulses", False))
    if adj_start is not None or adj_pulse is not None:
        if adj_start is None:
            raise BitcodeError(
                f"{adj_pulse}: adjusted bit pulses but no adjusted trial starts (*.XA_0_0.adj.txt) beside "
                f"them{f' (only {plain_start.name}, on the NIDQ clock)' if plain_start else ''}; the two must "
                f"be on one clock"
            )
        if adj_pulse is None and plain_pulse is not None:
            raise BitcodeError(
                f"{adj_start}: adjusted trial starts but the bit pulses are only in {plain_pulse.name} "
                f"(NIDQ clock); the two must be on one clock (run CatGT's adjustment on both)"
            )
        return XAFiles(adj_start, adj_pulse, True)
    if plain_start is None:
        return None
    return XAFiles(plain_start, plain_pulse, False)


def read_edges(path: str | Path, *, allow_empty: bool = False) -> np.ndarray:
    """One CatGT edge file -> float64 seconds: one finite non-negative number per non-blank line,
    strictly increasing, at least one (unless ``allow_empty``); else a one-line ``BitcodeError``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BitcodeError(f"{path}: file not found") from None
    except OSError as e:
        raise BitcodeError(f"{path}: cannot read ({e.strerror or e})") from None
    if b"\x00" in raw:
        raise BitcodeError(f"{path}: binary content (NUL bytes), not a CatGT edge text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BitcodeError(f"{path}: not text (undecodable byte at offset {e.start})") from None
    values, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) > 1:
            raise BitcodeError(f"{path}: line {n} has {len(tok)} values ({line.strip()[:40]!r}); expected one time")
        try:
            v = float(tok[0])
        except ValueError:
            raise BitcodeError(f"{path}: line {n} is not a number ({tok[0][:40]!r})") from None
        if not np.isfinite(v) or v < 0:
            raise BitcodeError(f"{path}: line {n} is {tok[0][:40]!r}; edge times are finite and >= 0 s")
        values.append(v)
        lines.append(n)
    if not values:
        if allow_empty:
            return np.zeros(0)
        raise BitcodeError(f"{path}: empty (no edge times)")
    a = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(np.diff(a) <= 0)
    if bad.size:
        j = int(bad[0])
        raise BitcodeError(
            f"{path}: times not in increasing order: line {lines[j + 1]} ({a[j + 1]:.6f} s) follows "
            f"line {lines[j]} ({a[j]:.6f} s)"
        )
    return a


def decode_xa_bitcodes(trial_start, pulses, path=None, *, n_bits: int = XA_BITS) -> list[str]:
    """The code of each trial from its bit pulses (s, both sorted): see the module docstring."""
    starts = np.asarray(trial_start, dtype=np.float64).ravel()
    p = np.asarray(pulses, dtype=np.float64).ravel()
    where = _where(path)
    trial = np.searchsorted(starts, p, side="right") - 1
    if p.size and trial[0] < 0:
        raise BitcodeError(f"{where}bit pulse at {p[0]:.6f} s comes before the first trial start ({starts[0]:.6f} s)")
    codes = []
    bounds = np.searchsorted(trial, np.arange(len(starts) + 1), side="left")
    for i, s in enumerate(starts):
        tp = p[bounds[i] : bounds[i + 1]]
        bits = np.zeros(n_bits, dtype=np.int8)
        if tp.size:
            t = np.r_[s + XA_FIRST_BIT_S - XA_BIT_INTERVAL_S, tp]
            steps = np.round(np.diff(t) / XA_BIT_INTERVAL_S).astype(np.int64)
            if np.any(steps < 1):
                k = int(np.flatnonzero(steps < 1)[0])
                what = (
                    f"the pulse at {tp[0]:.6f} s comes before bit 0 ({s + XA_FIRST_BIT_S:.6f} s)"
                    if k == 0
                    else f"the pulses at {tp[k - 1]:.6f} s and {tp[k]:.6f} s fall on one bit"
                )
                raise BitcodeError(f"{where}trial {i} (0-based, start {s:.6f} s): {what}")
            idx = np.cumsum(steps) - 1
            if idx[-1] >= n_bits:
                k = int(np.flatnonzero(idx >= n_bits)[0])
                raise BitcodeError(
                    f"{where}trial {i} (0-based, start {s:.6f} s): the pulse at {tp[k]:.6f} s would be bit "
                    f"{int(idx[k])} of a {n_bits}-bit code (a pulse outside the trial's code, "
                    f"{(tp[k] - s):.3f} s after its start)"
                )
            bits[idx] = 1
        codes.append("".join("1" if b else "0" for b in bits))
    return codes


def read_xa_sync(files: XAFiles) -> XASync:
    """Trial starts and (when there are bit pulses) the trials' codes of one pair of edge files."""
    starts = read_edges(files.starts)
    if files.pulses is None:
        return XASync(files, starts, None, "no *.XA_1_2 bit-pulse file")
    pulses = read_edges(files.pulses, allow_empty=True)
    if not pulses.size:
        return XASync(files, starts, None, f"{files.pulses.name} is empty")
    return XASync(files, starts, decode_xa_bitcodes(starts, pulses, files.pulses))
