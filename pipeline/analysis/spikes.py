"""A probe's spikes as flat arrays, and the unit statistics of spec section 5.

A probe is held as :class:`ProbeSpikes`: every unit's spikes concatenated (unit by unit, each in
time order) with ``offsets`` marking where each unit starts, plus its trials on the probe clock.
Every statistic is computed for all units at once from two derived arrays kept with the probe: the
index of each unit's first spike of each trial (one binary search of the trial starts per unit)
and the ISI violations (one pass over consecutive spikes); no Python loop over spikes or trials.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

#: Inter-spike intervals shorter than this are refractory-period violations (s).
ISI_THRESHOLD = 0.002
#: Trough-to-peak below this (ms) is a fast-spiking (FS) unit, else pyramidal (Pyr).
FS_TROUGH_TO_PEAK_MS = 0.4
#: Waveforms are spline-upsampled this many times before the trough and peak are found.
UPSAMPLE = 100
#: Drift: trials per block, and the Poisson tails that count as drift.
DRIFT_BLOCK = 6
DRIFT_TAILS = (0.05, 0.95)


_MEMO_LOCK = threading.Lock()

#: Spikes handled at once by the chunked computations (bounds their temporary memory).
CHUNK_SPIKES = 2_000_000
#: Spikes per step of the pass over consecutive spikes (its temporaries stay in the CPU cache).
_SCAN_SPIKES = 262_144


@dataclass
class ProbeSpikes:
    """All spikes of one probe (one clustering).

    A spike belongs to the trial whose start is the last one at or before it (the ingest's rule,
    so this equals the stored ``spike_trials``); spikes before the first trial belong to none."""

    units: np.ndarray  # (U,) unit ids
    offsets: np.ndarray  # (U + 1,) unit u's spikes are [offsets[u], offsets[u + 1])
    times: np.ndarray  # (N,) float64 s, probe clock (0 = the first trial's start)
    trial: np.ndarray  # (T,) trial numbers of the clustering, ascending
    trial_start: np.ndarray  # (T,) s, probe clock
    go_time: np.ndarray  # (T,) s, probe clock (NaN: no go cue)

    @property
    def n_spikes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def memo(self, name, compute):
        """``compute()``, computed once per probe and kept with it (what several tables derive from
        the same spikes: trial boundaries, binned counts, period rates). Thread-safe: a caller asking
        for a value another thread is computing waits for it (see ``pipeline.psth.prefetch``)."""
        cache = self.__dict__.setdefault("_memo", {})
        if name in cache:
            return cache[name]
        with _MEMO_LOCK:
            lock = self.__dict__.setdefault("_memo_locks", {}).setdefault(name, threading.Lock())
        with lock:
            if name not in cache:
                cache[name] = compute()
        return cache[name]

    def isi_violations(self) -> np.ndarray:
        """(U,) number of inter-spike intervals shorter than ``ISI_THRESHOLD`` per unit."""
        return self._scan()[0]

    def trial_bounds(self) -> np.ndarray:
        """(U, T + 2) indices into ``times``: unit u's spikes before the first trial are
        ``[b[u, 0], b[u, 1])``, those of trial k ``[b[u, k + 1], b[u, k + 2])``."""
        return self._scan()[1]

    def _scan(self) -> tuple[np.ndarray, np.ndarray]:
        """One pass over the spikes, a few units at a time while they are in the CPU cache: the ISI
        violations (consecutive spikes) and the trial boundaries (a binary search of the trial
        starts in each unit's times). A unit whose times are not ascending is sorted in place first."""

        def compute():
            n_u, n_t = len(self.units), len(self.trial)
            viol = np.zeros(n_u, dtype=np.int64)
            bounds = np.empty((n_u, n_t + 2), dtype=np.int64)
            bounds[:, 0] = self.offsets[:-1]
            bounds[:, -1] = self.offsets[1:]
            for u0, u1, sl in self.chunks(_SCAN_SPIKES):
                t = self.times[sl]
                local = self.offsets[u0 : u1 + 1] - self.offsets[u0]
                crossing = local[1:-1] - 1  # diff index between one unit's last spike and the next's first
                d = np.subtract(t[1:], t[:-1])
                short = np.flatnonzero(d < ISI_THRESHOLD)  # violations, and any spike out of order
                short = short[~np.isin(short, crossing)]
                back = short[d[short] < 0]
                if len(back):  # rare: sort the units concerned, then take the differences again
                    for j in np.unique(np.searchsorted(local, back, side="right") - 1):
                        t[local[j] : local[j + 1]].sort()
                    d = np.subtract(t[1:], t[:-1])
                    short = np.flatnonzero(d < ISI_THRESHOLD)
                    short = short[~np.isin(short, crossing)]
                viol[u0:u1] = np.bincount(np.searchsorted(local, short, side="right") - 1, minlength=u1 - u0)
                for j in range(u1 - u0):
                    o0 = int(self.offsets[u0 + j])
                    seg = t[local[j] : local[j + 1]]
                    bounds[u0 + j, 1:-1] = o0 + np.searchsorted(seg, self.trial_start, side="left")
            return viol, bounds

        return self.memo("scan", compute)

    def trial_counts(self) -> np.ndarray:
        """(U, T) spikes of each unit in each trial."""
        return np.diff(self.trial_bounds(), axis=1)[:, 1:]

    def trial_index(self, times: np.ndarray | None = None) -> np.ndarray:
        """Index into ``trial`` of each spike (of ``times``, default all): -1 before the first trial.
        For all spikes it is computed once from :meth:`trial_bounds` and kept (int16 for up to 32767
        trials)."""
        if times is not None:
            return (np.searchsorted(self.trial_start, times, side="right") - 1).astype(np.int32)

        def compute():
            n_t = len(self.trial)
            dtype = np.int16 if n_t < np.iinfo(np.int16).max else np.int32
            out = np.empty(len(self.times), dtype=dtype)
            lens = np.diff(self.trial_bounds(), axis=1)  # (U, T + 1): before the first trial, then each trial
            values = np.arange(-1, n_t, dtype=dtype)
            for u0, u1, sl in self.chunks():
                out[sl] = np.repeat(np.tile(values, u1 - u0), lens[u0:u1].ravel())
            return out

        return self.memo("tidx", compute)

    def chunks(self, max_spikes: int = CHUNK_SPIKES):
        """(u0, u1, spike slice) of consecutive units holding about ``max_spikes`` spikes (at least
        one unit each): the chunked computations loop over these, vectorised inside."""
        n_u = len(self.units)
        u0 = 0
        while u0 < n_u:
            target = self.offsets[u0] + max_spikes
            u1 = max(u0 + 1, int(np.searchsorted(self.offsets, target, side="right")) - 1)
            u1 = min(u1, n_u)
            yield u0, u1, slice(int(self.offsets[u0]), int(self.offsets[u1]))
            u0 = u1

    def local_units(self, u0: int, u1: int) -> np.ndarray:
        """Index (0 .. u1-u0-1) of each spike of units u0..u1 within that chunk."""
        return np.repeat(np.arange(u1 - u0, dtype=np.int32), np.diff(self.offsets[u0 : u1 + 1]))

    @classmethod
    def from_units(cls, units, times, trial, trial_start, go_time) -> ProbeSpikes:
        """From per-unit arrays of spike times (as stored per unit)."""
        counts = np.array([len(t) for t in times], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        order = np.argsort(np.asarray(trial))
        return cls(
            units=np.asarray(units, dtype=np.int64),
            offsets=offsets,
            times=np.concatenate([np.asarray(t, dtype=np.float64) for t in times]) if len(times) else np.zeros(0),
            trial=np.asarray(trial, dtype=np.int64)[order],
            trial_start=np.asarray(trial_start, dtype=np.float64)[order],
            go_time=np.asarray(go_time, dtype=np.float64)[order],
        )


def unit_stats(p: ProbeSpikes, trial_duration: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(avg_firing_rate Hz, isi_violation) per unit, as the original defined them (spec 5):
    rate = spikes inside the clustering's trials / sum of those trials' durations;
    isi_violation = (#ISI < 2 ms / (2 N 2 ms)) / rate, the fraction of spikes expected to be
    contaminating (Hill et al. 2011 without the refractory-period censoring term)."""
    n_u = len(p.units)
    bounds = p.trial_bounds()
    n_in = (bounds[:, -1] - bounds[:, 1]).astype(np.float64)  # at or after the first trial's start
    viol = p.isi_violations().astype(np.float64)
    total = float(np.nansum(trial_duration))
    rate = n_in / total if total > 0 else np.full(n_u, np.nan)
    n = p.n_spikes.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        isi_violation = (viol / (2 * n * ISI_THRESHOLD)) / rate
    isi_violation[(n == 0) | ~(rate > 0)] = np.nan
    return rate, isi_violation


def trough_to_peak_ms(waveforms: np.ndarray, sample_rate: float) -> np.ndarray:
    """Trough-to-peak time (ms) of each mean waveform (rows), after cubic-spline upsampling x100:
    from the minimum to the maximum that follows it. NaN for an empty or flat waveform."""
    from scipy.interpolate import CubicSpline

    w = np.atleast_2d(np.asarray(waveforms, dtype=np.float64))
    if w.size == 0 or w.shape[1] < 4:
        return np.full(len(w), np.nan)
    x = np.arange(w.shape[1])
    fine = np.linspace(0, w.shape[1] - 1, (w.shape[1] - 1) * UPSAMPLE + 1)
    up = np.ascontiguousarray(CubicSpline(x, w, axis=1)(fine))  # (scipy's is strided: slow reductions)
    trough = np.argmin(up, axis=1)
    up[np.arange(up.shape[1])[None, :] < trough[:, None]] = -np.inf  # the peak follows the trough
    peak = np.argmax(up, axis=1)
    ms = (fine[peak] - fine[trough]) / sample_rate * 1000.0
    flat = np.ptp(w, axis=1) == 0
    ms[flat] = np.nan
    return ms


def cell_types(trough_peak_ms: np.ndarray) -> np.ndarray:
    """'FS' below 0.4 ms, 'Pyr' otherwise, 'not classified' without a waveform (NaN)."""
    return np.where(
        np.isnan(trough_peak_ms), "not classified", np.where(trough_peak_ms < FS_TROUGH_TO_PEAK_MS, "FS", "Pyr")
    ).astype(object)


def drift_metric(p: ProbeSpikes, trial_duration: np.ndarray) -> np.ndarray:
    """Fraction of 6-trial blocks whose spike count is in a Poisson tail (< 5 % or > 95 %) of the
    unit's own mean rate: 0 for a stable unit, towards 1 for one that drifts in and out (spec 5,
    in non-overlapping blocks). NaN for units without spikes in trials or with < 1 block."""
    from scipy.stats import poisson

    n_units = len(p.units)
    n_blocks = len(p.trial) // DRIFT_BLOCK
    if n_blocks < 1:
        return np.full(n_units, np.nan)
    per_trial = p.trial_counts()[:, : n_blocks * DRIFT_BLOCK]
    counts = per_trial.reshape(n_units, n_blocks, DRIFT_BLOCK).sum(axis=2).astype(np.float64)
    dur = np.asarray(trial_duration, dtype=np.float64)[: n_blocks * DRIFT_BLOCK].reshape(n_blocks, DRIFT_BLOCK)
    block_dur = np.nansum(dur, axis=1)
    rate = counts.sum(axis=1) / block_dur.sum()
    expected = rate[:, None] * block_dur[None, :]
    cdf = poisson.cdf(counts, expected)
    tail = (cdf < DRIFT_TAILS[0]) | (cdf > DRIFT_TAILS[1])
    out = tail.mean(axis=1)
    out[~(rate > 0)] = np.nan
    return out


#: Per-region criteria of the original (spec 5): amplitude (uV) >, firing rate (Hz) >, presence
#: ratio >, ISI violation <, amplitude cutoff <. Regions not listed: every unit passes.
CRITERIA = {
    "Medulla": (150, 0.2, 0.9, 10, 0.15),
    "ALM": (100, 0.2, 0.95, 0.1, 0.1),
    "Midbrain": (100, 0.1, 0.9, 1, 0.08),
    "Thalamus": (90, 0.1, 0.9, 0.05, 0.08),
    "Striatum": (70, 0.1, 0.9, 0.5, 0.1),
}


def passing_criteria(region: str | None, amp, rate, presence, isi, amp_cutoff) -> np.ndarray:
    """Whether each unit passes its region's criteria. A unit missing a value it is judged on
    (NaN: e.g. no metrics.csv row) does not pass; units of other regions all pass."""
    if region not in CRITERIA:
        return np.ones(len(np.atleast_1d(amp)), dtype=bool)
    a, r, pr, iv, ac = CRITERIA[region]
    vals = [np.asarray(v, dtype=np.float64) for v in (amp, rate, presence, isi, amp_cutoff)]
    with np.errstate(invalid="ignore"):
        ok = (vals[0] > a) & (vals[1] > r) & (vals[2] > pr) & (vals[3] < iv) & (vals[4] < ac)
    return ok
