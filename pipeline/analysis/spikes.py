"""A probe's spikes as flat arrays, and the unit statistics of spec section 5.

A probe is held as :class:`ProbeSpikes`: every unit's spikes concatenated (unit by unit, each in
time order) with ``offsets`` marking where each unit starts, plus its trials on the probe clock.
Every statistic is computed for all units at once with ``np.bincount`` / ``np.add.reduceat``:
no Python loop over spikes or trials.
"""

from __future__ import annotations

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


#: Spikes handled at once by the chunked computations (bounds their temporary memory).
CHUNK_SPIKES = 2_000_000


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

    def trial_index(self, times: np.ndarray | None = None) -> np.ndarray:
        """Index into ``trial`` of each spike (of ``times``, default all): -1 before the first trial.
        For all spikes it is computed once and kept (int16 for up to 32767 trials)."""
        if times is not None:
            return (np.searchsorted(self.trial_start, times, side="right") - 1).astype(np.int32)
        cached = self.__dict__.get("_tidx")
        if cached is None:
            dtype = np.int16 if len(self.trial) < np.iinfo(np.int16).max else np.int32
            cached = np.empty(len(self.times), dtype=dtype)
            for _, _, sl in self.chunks():
                cached[sl] = np.searchsorted(self.trial_start, self.times[sl], side="right") - 1
            self.__dict__["_tidx"] = cached
        return cached

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
    n_in = np.zeros(n_u)
    viol = np.zeros(n_u)
    for u0, u1, sl in p.chunks():
        t = p.times[sl]
        uloc = p.local_units(u0, u1)
        n_in[u0:u1] = np.bincount(uloc[p.trial_index()[sl] >= 0], minlength=u1 - u0)
        same = uloc[1:] == uloc[:-1]
        viol[u0:u1] = np.bincount(uloc[1:][same & (np.diff(t) < ISI_THRESHOLD)], minlength=u1 - u0)
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
    up = CubicSpline(x, w, axis=1)(fine)
    trough = np.argmin(up, axis=1)
    after = np.where(np.arange(up.shape[1])[None, :] >= trough[:, None], up, -np.inf)
    peak = np.argmax(after, axis=1)
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
    counts = np.zeros((n_units, n_blocks))
    for u0, u1, sl in p.chunks():
        block = p.trial_index()[sl].astype(np.int64) // DRIFT_BLOCK  # -1 // 6 = -1: before the first trial
        keep = (block >= 0) & (block < n_blocks)
        uloc = p.local_units(u0, u1)
        c = np.bincount(uloc[keep].astype(np.int64) * n_blocks + block[keep], minlength=(u1 - u0) * n_blocks)
        counts[u0:u1] = c.reshape(u1 - u0, n_blocks)
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
