"""A probe whose units respond to a generated delay-response session in known ways.

Units are Poisson spike trains (with a 2.5 ms dead time, so no refractory violations unless
planted) at a baseline rate, plus, for selective units, an extra rate in one trial period
(sample, delay or response) on trials of their preferred side: contra- or ipsi-lateral to the
recorded hemisphere. Some units get a known number of refractory violations (extra spikes 1 ms
after existing ones), narrow (FS) or wide (Pyr) mean waveforms, or no waveform. The ground truth
is what was planted; tests compare the pipeline's PSTHs, selectivity, cell types and unit
statistics with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PERIODS = {  # period -> (start event, shift, end event, shift), as experiment.Period
    "sample": ("sample", 0.0, "delay", 0.0),
    "delay": ("delay", 0.0, "go", 0.0),
    "response": ("go", 0.0, "go", 1.2),
}
WAVEFORM_SAMPLES = 82
DEAD_TIME = 0.0025


@dataclass
class PlantedUnit:
    unit: int
    kind: str  # 'contra-selective' | 'ipsi-selective' | 'non-selective'
    period: str | None  # where the extra rate is
    base_rate: float  # Hz
    extra_rate: float  # Hz on preferred trials in the period
    cell_type: str  # 'FS' | 'Pyr' | 'not classified'
    trough_to_peak_ms: float | None
    n_violations: int  # planted ISIs < 2 ms
    spike_times: np.ndarray = field(repr=False, default=None)
    spike_trials: np.ndarray = field(repr=False, default=None)
    waveform: np.ndarray | None = field(repr=False, default=None)


@dataclass
class PlantedProbe:
    trials: pd.DataFrame  # trial, trial_start, go_time (probe clock = behaviour session clock)
    units: list[PlantedUnit]
    hemisphere: str  # 'left' | 'right'
    sample_rate: float


def _waveform(ttp_ms: float, fs: float, rng) -> np.ndarray:
    """A mean waveform (uV): a trough at sample 30 and a peak ``ttp_ms`` later."""
    t = (np.arange(WAVEFORM_SAMPLES) - 30) / fs * 1000.0  # ms
    trough = -80 * np.exp(-0.5 * (t / 0.08) ** 2)
    peak = 30 * np.exp(-0.5 * ((t - ttp_ms) / max(0.1, ttp_ms / 2.5)) ** 2)
    return (trough + peak + rng.normal(0, 0.2, WAVEFORM_SAMPLES)).astype(np.float32)


def _poisson(rng, rate: float, t0: float, t1: float) -> np.ndarray:
    """Poisson spikes in [t0, t1) with a dead time (no ISI below DEAD_TIME)."""
    if rate <= 0 or t1 <= t0:
        return np.zeros(0)
    n = rng.poisson(rate * (t1 - t0) * 1.2) + 10
    isi = rng.exponential(1.0 / rate, n) + DEAD_TIME
    t = t0 + np.cumsum(isi)
    return t[t < t1]


def windows(behaviour_trials: pd.DataFrame, events: pd.DataFrame, period: str) -> tuple[np.ndarray, np.ndarray]:
    """Per trial, the period's [start, end) on the session clock (NaN when an event is missing)."""
    last = events.sort_values("trial_event_time").groupby(["trial", "trial_event_type"]).last().reset_index()
    ev = last.pivot(index="trial", columns="trial_event_type", values="trial_event_time").reindex(
        behaviour_trials["trial"]
    )
    s_ev, s_sh, e_ev, e_sh = PERIODS[period]
    start = behaviour_trials["start_time"].to_numpy() + ev[s_ev].to_numpy() + s_sh
    end = behaviour_trials["start_time"].to_numpy() + ev[e_ev].to_numpy() + e_sh
    return start, end


def make_planted_probe(
    behaviour,
    hemisphere: str = "left",
    n_contra: int = 16,
    n_ipsi: int = 16,
    n_non: int = 8,
    base_rate: float = 6.0,
    extra_rate: float = 25.0,
    sample_rate: float = 30000.0,
    seed: int = 0,
) -> PlantedProbe:
    """Units responding to ``behaviour`` (a GeneratedSession of :mod:`.bpod_delay_response`).

    Trials of either side count for the planted extra rate when they are hits without early lick,
    auto/free water or photostimulation (the trials selectivity uses) -- on every other trial the
    unit fires at its baseline, so the expected PSTH of any condition is known too.
    """
    rng = np.random.default_rng(seed)
    bt = behaviour.trials.sort_values("trial").reset_index(drop=True)
    go_rel = behaviour.events[behaviour.events.trial_event_type == "go"].groupby("trial").trial_event_time.last()
    trials = pd.DataFrame(
        dict(
            trial=bt["trial"].to_numpy(),
            trial_start=bt["start_time"].to_numpy(dtype=np.float64),
            go_time=bt["start_time"].to_numpy(dtype=np.float64) + go_rel.reindex(bt["trial"]).to_numpy(),
        )
    )
    stim = set(behaviour.photostim_events["trial"].tolist())
    eligible = (
        (bt["outcome"] == "hit")
        & (bt["early_lick"] == "no early")
        & ~bt["auto_water"].astype(bool)
        & ~bt["free_water"].astype(bool)
        & ~bt["trial"].isin(stim)
    ).to_numpy()
    contra_side = "right" if hemisphere == "left" else "left"
    t0 = float(trials["trial_start"].iloc[0]) - 2.0
    t1 = float(bt["stop_time"].max()) + 2.0
    kinds = ["contra-selective"] * n_contra + ["ipsi-selective"] * n_ipsi + ["non-selective"] * n_non
    units = []
    for k, kind in enumerate(kinds):
        period = list(PERIODS)[k % 3] if kind != "non-selective" else None
        spikes = [_poisson(rng, base_rate, t0, t1)]
        if period is not None:
            side = contra_side if kind == "contra-selective" else hemisphere
            start, end = windows(bt, behaviour.events, period)
            on = eligible & (bt["trial_instruction"].to_numpy() == side) & np.isfinite(start) & np.isfinite(end)
            for s, e in zip(start[on], end[on]):  # a loop over trials of the generator, not of the pipeline
                spikes.append(_poisson(rng, extra_rate, s, e))
        times = np.sort(np.concatenate(spikes))
        times = times[np.concatenate([[True], np.diff(times) >= DEAD_TIME])]  # keep the dead time after merging
        n_viol = int(rng.integers(5, 40)) if k % 4 == 1 else 0
        if n_viol:
            at = rng.choice(len(times) - 1, n_viol, replace=False)
            gap_ok = (times[at + 1] - times[at]) > 0.003  # room for a spike 1 ms later
            at = at[gap_ok]
            n_viol = len(at)
            times = np.sort(np.concatenate([times, times[at] + 0.001]))
        ctype = "not classified" if k % 7 == 3 else ("FS" if k % 3 == 0 else "Pyr")
        ttp = {"FS": 0.25, "Pyr": 0.7, "not classified": None}[ctype]
        idx = np.searchsorted(trials["trial_start"].to_numpy(), times, side="right") - 1
        spike_trials = np.where(idx >= 0, trials["trial"].to_numpy()[np.clip(idx, 0, None)], 0).astype(np.int32)
        units.append(
            PlantedUnit(
                unit=k + 1,
                kind=kind,
                period=period,
                base_rate=base_rate,
                extra_rate=extra_rate if period else 0.0,
                cell_type=ctype,
                trough_to_peak_ms=ttp,
                n_violations=n_viol,
                spike_times=times - float(trials["trial_start"].iloc[0]),
                spike_trials=spike_trials,
                waveform=None if ttp is None else _waveform(ttp, sample_rate, rng),
            )
        )
    start0 = float(trials["trial_start"].iloc[0])
    trials["trial_start"] -= start0
    trials["go_time"] -= start0
    return PlantedProbe(trials=trials, units=units, hemisphere=hemisphere, sample_rate=sample_rate)
