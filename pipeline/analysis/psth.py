"""Go-aligned PSTHs, period firing rates and selectivity (spec 5), for all units of a probe at once.

The probe's spikes are binned once into a (trial x unit x bin) cube of counts (40 ms bins from
-3 to 3 s around each trial's go cue); the PSTH of any trial condition is then a weighted sum of
cube rows (a matrix product), so 17 conditions cost one pass over the spikes, not 17.
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
#: Cells of the cube held at once while binning (bounds the temporary memory).
_CHUNK_CELLS = 4_000_000


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


def bin_probe(p: ProbeSpikes) -> BinnedProbe:
    """Count every unit's spikes per trial and bin around go, chunk by chunk of units."""
    n_t, n_u = len(p.trial), len(p.units)
    counts = np.zeros((n_t, n_u, N_BINS), dtype=np.uint16)
    if n_t == 0 or n_u == 0:
        return BinnedProbe(counts, p.trial)
    go = np.append(p.go_time, np.nan)  # index -1 (before the first trial) -> NaN
    per_chunk_cells = max(1, _CHUNK_CELLS // (n_t * N_BINS))  # units per bincount: bounded output
    for c0, c1, _ in p.chunks():
        for u0 in range(c0, c1, per_chunk_cells):
            u1 = min(c1, u0 + per_chunk_cells)
            sl = slice(int(p.offsets[u0]), int(p.offsets[u1]))
            t = p.times[sl]
            tidx = p.trial_index()[sl]
            b = np.floor((t - go[tidx] - WINDOW_S[0]) / BIN_S)
            ok = (tidx >= 0) & (b >= 0) & (b < N_BINS)
            uloc = p.local_units(u0, u1)
            flat = (tidx[ok].astype(np.int64) * (u1 - u0) + uloc[ok]) * N_BINS + b[ok].astype(np.int64)
            c = np.bincount(flat, minlength=n_t * (u1 - u0) * N_BINS).reshape(n_t, u1 - u0, N_BINS)
            counts[:, u0:u1, :] = np.minimum(c, np.iinfo(np.uint16).max)
    return BinnedProbe(counts, p.trial)


def period_rates(p: ProbeSpikes, windows: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per period name, the (T, U) firing rate (Hz) of every unit in every trial within [start, end)
    relative to that trial's go cue (per-trial arrays; NaN: the trial lacks the period -> NaN
    rates). All periods in one pass over the spikes."""
    n_t, n_u = len(p.trial), len(p.units)
    go = np.append(p.go_time, np.nan)
    bounds = {
        k: (np.append(np.asarray(s_, dtype=np.float64), np.nan), np.append(np.asarray(e_, dtype=np.float64), np.nan))
        for k, (s_, e_) in windows.items()
    }
    counts = {k: np.zeros((n_t, n_u)) for k in windows}
    tidx_all = p.trial_index()
    for u0, u1, sl in p.chunks():
        tidx = tidx_all[sl].astype(np.int64)
        rel = p.times[sl] - go[tidx]
        uloc = p.local_units(u0, u1)
        cell = tidx * (u1 - u0) + uloc
        for k, (start, end) in bounds.items():
            inside = (tidx >= 0) & (rel >= start[tidx]) & (rel < end[tidx])
            c = np.bincount(cell[inside], minlength=n_t * (u1 - u0))
            counts[k][:, u0:u1] = c.reshape(n_t, u1 - u0)
    out = {}
    for k, (s_, e_) in windows.items():
        dur = np.asarray(e_, dtype=np.float64) - np.asarray(s_, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = counts[k] / dur[:, None]
        rates[~(dur > 0)] = np.nan
        out[k] = rates
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
