"""Go-aligned PSTHs, period firing rates and selectivity (spec 5), for all units of a probe at once.

The probe's spikes are binned (trial x unit x bin counts, 40 ms bins from -3 to 3 s around each
trial's go cue) one group of units at a time; the PSTH of any trial condition is a weighted sum of
the cube's trial rows (a matrix product), so every condition of a probe costs one pass over the
spikes in the trials' windows, not one each.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .spikes import ProbeSpikes

BIN_S = 0.04
WINDOW_S = (-3.0, 3.0)
N_BINS = int(round((WINDOW_S[1] - WINDOW_S[0]) / BIN_S))  # 150
#: p above this: non-selective (Student's t-test of ipsi vs contra trial rates).
SELECTIVITY_P = 0.05
#: Cells of the cube, and spikes, handled at once while binning (bound the temporary memory).
_CHUNK_CELLS = 4_000_000
_CHUNK_SPIKES = 1_000_000


def bin_centers() -> np.ndarray:
    return WINDOW_S[0] + BIN_S * (np.arange(N_BINS) + 0.5)


def bin_edges() -> np.ndarray:
    return WINDOW_S[0] + BIN_S * np.arange(N_BINS + 1)


@dataclass
class BinnedProbe:
    """Spike counts per trial, unit and 40 ms bin around go (uint16: at most 65535 per bin)."""

    counts: np.ndarray  # (T, U, N_BINS)
    trial: np.ndarray  # (T,) trial numbers

    def psth(self, trial_mask: np.ndarray) -> tuple[np.ndarray, int]:
        """(U, N_BINS) mean rate (Hz) over the selected trials, and their number."""
        n = int(np.count_nonzero(trial_mask))
        if n == 0:
            return np.full(self.counts.shape[1:], np.nan), 0
        w = trial_mask.astype(np.float32)
        t, u, b = self.counts.shape
        total = w @ self.counts.reshape(t, u * b)  # float32 sum over trials
        return (total.reshape(u, b) / (n * BIN_S)).astype(np.float64), n


def _trial_windows(p: ProbeSpikes, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per trial, the absolute window [go + start, go + end) cut to the trial's own spikes (from its
    start to the next trial's start): a spike counts for the trial it belongs to only. NaN where
    the trial has no go cue or no window."""
    nxt = np.append(p.trial_start[1:], np.inf)
    lo = np.maximum(p.go_time + start, p.trial_start)
    hi = np.minimum(p.go_time + end, nxt)
    return lo, hi


def _sorted_search(keys: np.ndarray):
    """``search(times)``: ``np.searchsorted(times, keys)`` with the keys searched in ascending order
    (several times faster on large arrays: consecutive searches walk the same cache lines)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]

    def search(times: np.ndarray) -> np.ndarray:
        out = np.empty(len(keys), dtype=np.int64)
        out[order] = np.searchsorted(times, ordered, side="left")
        return out

    return search


def _binned_units(
    p: ProbeSpikes,
    row_of_trial: np.ndarray | None = None,
    n_rows: int | None = None,
    max_cells: int = _CHUNK_CELLS,
    max_spikes: int = _CHUNK_SPIKES,
):
    """(u0, u1, counts (R, u1 - u0, N_BINS) int64) for consecutive groups of units: each trial's
    spikes in its window around go, binned and added to the trial's row (``row_of_trial``; default
    one row per trial; -1: left out). The spikes of a trial's window are a contiguous run of a
    unit's (ascending) times, found by two binary searches per trial; only those are touched."""
    n_t = len(p.trial)
    if row_of_trial is None:
        row_of_trial, n_rows = np.arange(n_t, dtype=np.int64), n_t
    row_of_trial = np.asarray(row_of_trial, dtype=np.int64)
    lo, hi = _trial_windows(p, np.full(n_t, WINDOW_S[0]), np.full(n_t, WINDOW_S[1]))
    valid = (lo < hi) & (row_of_trial >= 0)  # False where NaN
    lo, hi = np.where(valid, lo, 0.0), np.where(valid, hi, 0.0)  # left out: an empty window
    go = np.where(valid, p.go_time, 0.0)
    row_of_trial = np.where(valid, row_of_trial, 0)
    search = _sorted_search(np.concatenate([lo, hi]))
    p.trial_bounds()  # units in time order
    per_group = max(1, max_cells // max(1, n_rows * N_BINS))
    for c0, c1, _ in p.chunks(max_spikes):
        for u0 in range(c0, c1, per_group):
            u1 = min(c1, u0 + per_group)
            nu = u1 - u0
            first = np.empty((nu, n_t), dtype=np.int64)
            lens = np.empty((nu, n_t), dtype=np.int64)
            for j in range(nu):
                o0, o1 = int(p.offsets[u0 + j]), int(p.offsets[u0 + j + 1])
                pos = search(p.times[o0:o1])
                first[j] = o0 + pos[:n_t]
                lens[j] = pos[n_t:] - pos[:n_t]
            lens = lens.ravel()
            total = int(lens.sum())
            shift = first.ravel() - (np.cumsum(lens) - lens)  # spike i of the runs: times[shift + i]
            x = p.times[np.repeat(shift, lens) + np.arange(total)]
            x -= np.repeat(np.tile(go, nu), lens)
            x -= WINDOW_S[0]
            x /= BIN_S
            b = np.floor(x, out=x).astype(np.int64)
            del x
            np.clip(b, 0, N_BINS - 1, out=b)  # only rounding at the window's edges reaches past it
            cell = (row_of_trial[None, :] * nu + np.arange(nu, dtype=np.int64)[:, None]) * N_BINS
            b += np.repeat(cell.ravel(), lens)
            yield u0, u1, np.bincount(b, minlength=n_rows * nu * N_BINS).reshape(n_rows, nu, N_BINS)


def bin_probe(p: ProbeSpikes) -> BinnedProbe:
    """Count every unit's spikes per trial and bin around go (the whole trial x unit x bin cube)."""
    n_t, n_u = len(p.trial), len(p.units)
    counts = np.zeros((n_t, n_u, N_BINS), dtype=np.uint16)
    if n_t and n_u:
        for u0, u1, c in _binned_units(p):
            counts[:, u0:u1, :] = np.minimum(c, np.iinfo(np.uint16).max)
    return BinnedProbe(counts, p.trial)


def condition_psths(p: ProbeSpikes, trial_sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The PSTH of every unit for each set of trials, in one pass over the spikes in the trials'
    windows: ((C, U, N_BINS) float32 mean rate in Hz, NaN for a set without trials of the probe;
    (C,) trials used). Trials that belong to the same sets are binned into one row (a handful of
    rows, not one per trial), and each set's counts are the sum of its rows."""
    n_t, n_u = len(p.trial), len(p.units)
    member = np.zeros((len(trial_sets), n_t), dtype=bool)
    for k, s_ in enumerate(trial_sets):
        member[k] = np.isin(p.trial, np.asarray(s_, dtype=np.int64))
    n = member.sum(axis=1).astype(np.int64)
    rates = np.full((len(trial_sets), n_u, N_BINS), np.nan, dtype=np.float32)
    if not (n_t and n_u and member.any()):
        return rates, n
    patterns, row = np.unique(member.T, axis=0, return_inverse=True)  # (G, C): the sets of each row
    row = row.reshape(-1)
    used = patterns.any(axis=1)
    renumber = np.where(used, np.cumsum(used) - 1, -1)  # trials in no set: left out
    patterns = patterns[used]
    total = np.zeros((len(trial_sets), n_u, N_BINS), dtype=np.float64)
    for u0, u1, c in _binned_units(p, renumber[row], len(patterns)):
        for k in np.flatnonzero(n):
            np.sum(c, axis=0, where=patterns[:, k, None, None], out=total[k, u0:u1])
    for k in np.flatnonzero(n):
        rates[k] = total[k] / (int(n[k]) * BIN_S)
    return rates, n


def period_rates(p: ProbeSpikes, windows: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per period name, the (T, U) firing rate (Hz) of every unit in every trial within [start, end)
    relative to that trial's go cue (per-trial arrays; NaN: the trial lacks the period -> NaN
    rates). Counts are differences of binary searches of the windows' edges in each unit's times:
    no pass over the spikes."""
    n_t, n_u = len(p.trial), len(p.units)
    names = list(windows)
    edges = [
        _trial_windows(p, np.asarray(s_, dtype=np.float64), np.asarray(e_, dtype=np.float64))
        for s_, e_ in windows.values()
    ]
    keys = np.concatenate([np.concatenate([lo, hi]) for lo, hi in edges]) if edges else np.zeros(0)
    counts = np.zeros((len(names), n_t, n_u))
    if len(names) and n_t:
        p.trial_bounds()  # units in time order
        search = _sorted_search(np.where(np.isnan(keys), np.inf, keys))  # NaN windows: NaN rates below
        for u in range(n_u):
            o0, o1 = int(p.offsets[u]), int(p.offsets[u + 1])
            pos = search(p.times[o0:o1]).reshape(len(names), 2, n_t)
            counts[:, :, u] = np.maximum(pos[:, 1] - pos[:, 0], 0)
    out = {}
    for k, (s_, e_) in enumerate(windows.values()):
        dur = np.asarray(e_, dtype=np.float64) - np.asarray(s_, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = counts[k] / dur[:, None]
        rates[~(dur > 0)] = np.nan
        out[names[k]] = rates
    return out


@contextmanager
def _quiet_nanmean():
    """numpy warns "Mean of empty slice" where the NaN it returns is the answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclass
class Selectivity:
    label: np.ndarray  # (U,) 'contra-selective' | 'ipsi-selective' | 'non-selective'
    ipsi_rate: np.ndarray  # (U,) mean Hz over ipsi trials
    contra_rate: np.ndarray
    p_value: np.ndarray


def selectivity(rates: np.ndarray, ipsi: np.ndarray, contra: np.ndarray) -> Selectivity:
    """Student's t-test (equal variances) of each unit's trial rates, ipsi vs contra trials; p > 0.05
    (or NaN, e.g. no variance) is non-selective, else the side with the higher mean."""
    from scipy.stats import ttest_ind

    a, b = rates[ipsi], rates[contra]
    with np.errstate(invalid="ignore", divide="ignore"):
        res = ttest_ind(a, b, axis=0, equal_var=True, nan_policy="omit")
    p = np.asarray(res.pvalue, dtype=np.float64)
    p = np.where(np.isnan(p), 1.0, p)
    empty = np.full(rates.shape[1], np.nan)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        mi = np.nanmean(a, axis=0) if len(a) else empty
        mc = np.nanmean(b, axis=0) if len(b) else empty
    label = np.where(p > SELECTIVITY_P, "non-selective", np.where(mi > mc, "ipsi-selective", "contra-selective"))
    return Selectivity(label.astype(object), mi, mc, p)


def unit_selectivity(period_labels: np.ndarray, ipsi_rates: np.ndarray, contra_rates: np.ndarray) -> np.ndarray:
    """A unit's overall selectivity from its periods (rows: periods): non-selective when every period
    is, else the side whose mean rate over the periods is higher (spec 5)."""
    any_sel = (np.asarray(period_labels) != "non-selective").any(axis=0)
    with _quiet_nanmean():
        mi, mc = np.nanmean(ipsi_rates, axis=0), np.nanmean(contra_rates, axis=0)
    return np.where(~any_sel, "non-selective", np.where(mi > mc, "ipsi-selective", "contra-selective")).astype(object)
