"""Spike-sorting outputs (Kilosort/phy folders, JRClust v3 ``_jrc.mat`` and v4 ``_res.mat``) with ground truth.

A small simulation is shared by every writer: units on a Neuropixels 1.0 probe (staggered sites at
x = 43/11/59/27 um, 20 um rows; the reference channel 191 is not in the channel map, as in Kilosort's
neuropixel channel maps), each with a soma position next to its peak site, a firing rate, a spike train
(a Poisson process with a 1.5 ms dead time: sorted uniform times shifted by the dead time times their
rank) and a spike shape (trough, then a slower positive repolarisation) whose amplitude falls with
distance from the soma over about 30 um and is zero beyond 100 um. Spike positions drift slowly in
depth during the session.

``truth`` is the ``SortingResult`` the reader must return; it is assembled here from the simulation's
own numbers, by code independent of the readers (per-unit loops and explicit formulas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io.kilosort import SortingResult

__all__ = [
    "GeneratedSorting",
    "write_kilosort",
    "write_jrclust_v3",
    "write_jrclust_v4",
    "write_large_kilosort",
    "sorting_differences",
    "np1_site_positions",
    "np1_channel_map",
]

NP1_X = (43.0, 11.0, 59.0, 27.0)
NP1_UV_PER_BIT = 2.34375
KS_SAMPLES, KS_TROUGH = 61, 20  # Kilosort 2.5/3/4 template length and trough sample
JRC_SAMPLES, JRC_TROUGH = 61, 24  # JRClust raw waveform window (spkLim_raw = [-24, 36])
JRC_SITES_PER_EVENT = 9  # 1 + 2 * maxSite
REFRACTORY_S = 0.0015
FOOTPRINT_UM = 30.0
FOOTPRINT_MAX_UM = 100.0
N_PC_CHANNELS = 32
CLUSTER_METRICS = (
    "firing_rate",
    "presence_ratio",
    "isi_viol",
    "amplitude_cutoff",
    "isolation_distance",
    "l_ratio",
    "d_prime",
    "nn_hit_rate",
    "nn_miss_rate",
    "silhouette_score",
    "max_drift",
    "cumulative_drift",
)
WAVEFORM_METRICS = (
    "duration",
    "halfwidth",
    "PT_ratio",
    "repolarization_slope",
    "recovery_slope",
    "spread",
    "velocity_above",
    "velocity_below",
)
JRC_NOTES = ("single", "multi", "ok", "", "noise", "Single unit", "multi?", "single")


@dataclass
class GeneratedSorting:
    path: Path  # folder (Kilosort) or .mat file (JRClust)
    truth: SortingResult
    units: dict = field(default_factory=dict)  # per-unit simulation values (peak_site, position_um, rate_hz, ...)


# ------------------------------------------------------------------------------------------ probe + units


def np1_channel_map(n_channels: int = 384) -> np.ndarray:
    """Acquisition channels of the sites: all but the reference channel (n/2 - 1) from 64 channels up."""
    chans = np.arange(n_channels)
    if n_channels >= 64:
        chans = chans[chans != n_channels // 2 - 1]
    return chans


def np1_site_positions(channels: np.ndarray) -> np.ndarray:
    channels = np.asarray(channels)
    return np.column_stack([np.take(NP1_X, channels % 4), 20.0 * (channels // 2)]).astype(np.float64)


def _shape(t: np.ndarray, width: float, ratio: float, delay: float) -> np.ndarray:
    """Extracellular spike: trough of -1 at t = 0 (samples), positive repolarisation ``delay`` later."""
    return -np.exp(-0.5 * (t / width) ** 2) + ratio * np.exp(-0.5 * ((t - delay) / (2.2 * width)) ** 2)


@dataclass
class _Sim:
    fs: float
    duration_s: float
    positions: np.ndarray  # (C, 2) site positions
    channel_map: np.ndarray  # (C,)
    peak_site: np.ndarray  # (U,)
    soma: np.ndarray  # (U, 2)
    width: np.ndarray  # (U,) trough width, samples
    ratio: np.ndarray
    delay: np.ndarray
    amp_scale: np.ndarray  # (U,) mean amplitude (template scaling / uV factor)
    spike_times: np.ndarray  # (N,) int64 samples, sorted
    spike_unit: np.ndarray  # (N,) unit index
    spike_amp: np.ndarray  # (N,) relative amplitude (~1)
    spike_pos: np.ndarray  # (N, 2) um (with drift and jitter)
    rate_hz: np.ndarray


def _simulate(
    rng: np.random.Generator,
    n_units: int,
    n_spikes: int,
    n_channels: int,
    duration_s: float,
    fs: float,
    positions: np.ndarray | None = None,
    trains: list[np.ndarray] | None = None,
) -> _Sim:
    if trains is not None:  # given spike trains (s): their units and counts
        n_units, n_spikes = len(trains), int(sum(len(t) for t in trains))
    if n_units < 1 or n_spikes < n_units:
        raise ValueError("need at least one unit and one spike per unit")
    channel_map = np1_channel_map(n_channels)
    if positions is None:
        positions = np1_site_positions(channel_map)
    else:  # the recording's own site positions (e.g. from its .meta): channel i at positions[i]
        positions = np.asarray(positions, dtype=np.float64)[channel_map]
    n_sites = channel_map.size
    if n_units > n_sites:
        raise ValueError(f"{n_units} units for {n_sites} sites")
    # peak sites spread along the probe, away from the ends
    margin = min(4, max(0, (n_sites - n_units) // 2))
    peak_site = np.sort(rng.choice(np.arange(margin, n_sites - margin), n_units, replace=False))
    soma = positions[peak_site] + rng.uniform(-4, 4, (n_units, 2))
    # firing rates (log-normal) -> spike counts summing to n_spikes, at least 1 each
    if trains is not None:
        counts = np.array([len(t) for t in trains])
        times = [np.sort(np.asarray(t, dtype=np.float64)) for t in trains]
        units = [np.full(c, u) for u, c in enumerate(counts)]
    else:
        weights = rng.lognormal(0.0, 0.8, n_units)
        counts = 1 + rng.multinomial(n_spikes - n_units, weights / weights.sum())
        if (counts * REFRACTORY_S).max() > 0.5 * duration_s:
            raise ValueError(
                f"{counts.max()} spikes in {duration_s} s is too many for a {REFRACTORY_S * 1e3} ms dead time"
            )
        times, units = [], []
        for u, c in enumerate(counts):
            base = np.sort(rng.uniform(0.0, duration_s - c * REFRACTORY_S, c))
            times.append(base + REFRACTORY_S * np.arange(c))
            units.append(np.full(c, u))
    t = np.concatenate(times)
    unit = np.concatenate(units)
    order = np.argsort(t, kind="stable")
    t, unit = t[order], unit[order]
    samples = np.floor(t * fs).astype(np.int64)
    spike_amp = rng.lognormal(0.0, 0.15, n_spikes)
    drift = 6.0 * np.sin(2 * np.pi * t / duration_s + rng.uniform(0, 2 * np.pi))
    spike_pos = soma[unit] + np.column_stack([rng.normal(0, 2.0, n_spikes), drift + rng.normal(0, 3.0, n_spikes)])
    return _Sim(
        fs=fs,
        duration_s=duration_s,
        positions=positions,
        channel_map=channel_map,
        peak_site=peak_site,
        soma=soma,
        width=rng.uniform(1.6, 3.2, n_units),
        ratio=rng.uniform(0.25, 0.5, n_units),
        delay=rng.uniform(8, 14, n_units),
        amp_scale=rng.uniform(20, 60, n_units),
        spike_times=samples,
        spike_unit=unit,
        spike_amp=spike_amp,
        spike_pos=spike_pos,
        rate_hz=counts / duration_s,
    )


def _footprint(positions: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Amplitude factor of each site for a source at ``at`` (..., 2) -> (..., C)."""
    d = np.hypot(positions[:, 0] - at[..., 0, None], positions[:, 1] - at[..., 1, None])
    return np.where(d <= FOOTPRINT_MAX_UM, np.exp(-d / FOOTPRINT_UM), 0.0)


def _unit_waveforms(sim: _Sim, u: int, n_samples: int, trough: int, ratio_factor: float = 1.0) -> np.ndarray:
    """(n_samples, C) waveform of unit u (peak ~ -1 at the soma), later and wider away from the soma."""
    d = np.hypot(*(sim.positions - sim.soma[u]).T)
    foot = _footprint(sim.positions, sim.soma[u])
    t = np.arange(n_samples)[:, None] - trough - d[None, :] / 60.0
    return _shape(t, sim.width[u] * (1 + d / 400.0), sim.ratio[u] * ratio_factor, sim.delay[u]) * foot


def _write_npy(path: Path, a: np.ndarray) -> None:
    np.save(path, a, allow_pickle=False)


def _write_tsv(path: Path, ids, column: str, values) -> None:
    with open(path, "w", newline="") as f:
        f.write(f"cluster_id\t{column}\r\n" if column == "group" else f"cluster_id\t{column}\n")
        for i, v in zip(ids, values):
            f.write(f"{int(i)}\t{v}\r\n" if column == "group" else f"{int(i)}\t{v}\n")


# -------------------------------------------------------------------------------------------- Kilosort


def write_kilosort(
    folder: str | Path,
    n_units: int = 20,
    n_spikes: int = 20_000,
    n_channels: int = 384,
    duration_s: float = 600.0,
    sample_rate: float = 30000.0,
    seed: int = 0,
    with_templates: bool = True,
    with_pcs: bool = True,
    labels: str | None = "group",
    with_metrics: bool = True,
    n_merged: int | None = None,
    with_clusters: bool = True,
    with_params: bool = True,
    positions: np.ndarray | None = None,
    trains: list[np.ndarray] | None = None,
) -> GeneratedSorting:
    """A Kilosort 2.5 + phy folder with ground truth.

    ``positions``: (channels, 2) site positions in um of the recording's saved channels (e.g.
    ``np.c_[meta.x, meta.y]`` of its SpikeGLX meta); default the Neuropixels 1.0 bank-0 layout.
    ``trains``: the units' spike times (s from the file's first sample) instead of random ones
    (``n_units``/``n_spikes`` then follow from them).

    Templates: unit u has template u; ``n_merged`` units (default n_units // 5) were merged in phy from
    two templates (u and a second one with a smaller repolarisation), so their cluster id is new
    (> every template id) and ``spike_clusters`` differs from ``spike_templates``; two trailing templates
    have no spikes. labels: 'group' (phy: ``cluster_group.tsv`` with one 'unsorted' cluster, plus
    Kilosort's ``cluster_KSLabel.tsv``/``cluster_ContamPct.tsv``/``cluster_Amplitude.tsv`` for the
    templates, plus phy's ``cluster_info.tsv``), 'KSLabel' (Kilosort's three files only), 'legacy'
    (``cluster_groups.csv``) or None. with_metrics: ecephys ``metrics.csv``, ``waveform_metrics.csv``,
    ``mean_waveforms.npy`` (uV).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sim = _simulate(rng, n_units, n_spikes, n_channels, duration_s, sample_rate, positions, trains)
    if trains is not None:
        n_units, n_spikes = len(trains), int(sum(len(t) for t in trains))
    n_sites = sim.channel_map.size
    n_merged = n_units // 5 if n_merged is None else n_merged
    if not with_clusters:  # Kilosort alone: no phy merges, clusters are templates
        n_merged = 0
        if labels in ("group", "legacy"):
            raise ValueError("phy labels need phy's spike_clusters.npy (with_clusters=True)")
    merged_units = np.sort(rng.choice(n_units, n_merged, replace=False)) if n_merged else np.zeros(0, int)
    n_templates = n_units + n_merged + 2

    # unwhitened templates (T, samples, sites); template peak ~ -1 at the soma
    unw = np.zeros((n_templates, KS_SAMPLES, n_sites))
    template_unit = np.full(n_templates, -1)
    for u in range(n_units):
        unw[u] = _unit_waveforms(sim, u, KS_SAMPLES, KS_TROUGH)
        template_unit[u] = u
    for j, u in enumerate(merged_units):
        unw[n_units + j] = 0.9 * _unit_waveforms(sim, u, KS_SAMPLES, KS_TROUGH, ratio_factor=0.7)
        template_unit[n_units + j] = u
    for j in range(2):  # templates without spikes
        unw[n_units + n_merged + j] = 0.5 * _unit_waveforms(sim, j % n_units, KS_SAMPLES, KS_TROUGH)
    unw = unw.astype(np.float32)

    # spikes -> templates and clusters
    spike_template = sim.spike_unit.copy()
    cluster_of_unit = np.arange(n_units)
    for j, u in enumerate(merged_units):
        mine = np.flatnonzero(sim.spike_unit == u)
        second = mine[rng.random(mine.size) < 0.4]
        spike_template[second] = n_units + j
        cluster_of_unit[u] = n_templates + j  # phy gives a merge a new id
    spike_cluster = cluster_of_unit[sim.spike_unit].astype(np.int32)
    amplitudes = (sim.amp_scale[sim.spike_unit] * sim.spike_amp).astype(np.float64)
    cluster_ids = np.sort(cluster_of_unit)
    unit_of_cluster = {int(cluster_of_unit[u]): u for u in range(n_units)}

    # whitening: banded, diagonally dominant inverse
    winv = np.diag(rng.uniform(2.0, 5.0, n_sites))
    near = np.abs(sim.positions[:, None, 1] - sim.positions[None, :, 1]) <= 20.0
    np.fill_diagonal(near, False)
    winv = winv + 0.05 * near
    whitening = np.linalg.inv(winv)
    templates_whitened = np.matmul(unw.astype(np.float64), whitening).astype(np.float32)

    # files Kilosort writes
    if with_params:
        (folder / "params.py").write_text(
            "dat_path = r'C:\\data\\sim_g0_t0.imec0.ap.bin'\n"
            f"n_channels_dat = {n_channels + 1}\n"
            "dtype = 'int16'\noffset = 0\n"
            f"sample_rate = {float(sample_rate)!r}\n"
            "hp_filtered = False\n"
            "template_scaling = 20.0\n"
            "extra = sample_rate * 2  # not a literal: ignored\n"
        )
    n = n_spikes
    _write_npy(folder / "spike_times.npy", sim.spike_times.astype(np.uint64).reshape(n, 1))
    _write_npy(folder / "spike_templates.npy", spike_template.astype(np.uint32).reshape(n, 1))
    if with_clusters:
        if labels == "group":  # phy rewrites spike_clusters.npy as int32 (N,)
            _write_npy(folder / "spike_clusters.npy", spike_cluster)
        else:
            _write_npy(folder / "spike_clusters.npy", spike_cluster.astype(np.uint32).reshape(n, 1))
    _write_npy(folder / "amplitudes.npy", amplitudes.reshape(n, 1))
    _write_npy(folder / "channel_map.npy", sim.channel_map.astype(np.int32))
    _write_npy(folder / "channel_positions.npy", sim.positions)
    _write_npy(folder / "similar_templates.npy", rng.random((n_templates, n_templates)).astype(np.float32))
    if with_templates:
        _write_npy(folder / "templates.npy", templates_whitened)
        _write_npy(folder / "templates_ind.npy", np.tile(np.arange(n_sites, dtype=np.float64), (n_templates, 1)))
        _write_npy(folder / "whitening_mat.npy", whitening)
        _write_npy(folder / "whitening_mat_inv.npy", winv)

    # per-template peak site and PC feature channels (largest template amplitude first)
    ptp = np.ptp(unw, axis=1)
    n_feat = min(N_PC_CHANNELS, n_sites)
    pc_feature_ind = np.argsort(-ptp, axis=1, kind="stable")[:, :n_feat]
    template_peak = pc_feature_ind[:, 0]
    assert np.array_equal(template_peak[:n_units], sim.peak_site)
    spike_depths = None
    if with_pcs:
        # PC1 ~ amplitude x footprint at the spike's position; noise makes far channels slightly negative
        chans = pc_feature_ind[spike_template]  # (N, F)
        d = np.hypot(
            sim.positions[chans, 0] - sim.spike_pos[:, None, 0], sim.positions[chans, 1] - sim.spike_pos[:, None, 1]
        )
        pc1 = sim.spike_amp[:, None] * 10.0 * np.exp(-d / FOOTPRINT_UM) + rng.normal(0, 0.05, d.shape)
        pcs = np.stack([pc1, rng.normal(0, 1, d.shape), rng.normal(0, 0.5, d.shape)], axis=1).astype(np.float32)
        _write_npy(folder / "pc_features.npy", pcs)
        _write_npy(folder / "pc_feature_ind.npy", pc_feature_ind.astype(np.uint32))
        w = np.clip(pcs[:, 0, :].astype(np.float64), 0, None) ** 2
        y = sim.positions[chans, 1]
        spike_depths = ((w * y).sum(axis=1) / w.sum(axis=1)).astype(np.float32)
        _write_npy(folder / "template_features.npy", rng.random((n, 32)).astype(np.float32))
        _write_npy(
            folder / "template_feature_ind.npy", rng.integers(0, n_templates, (n_templates, 32)).astype(np.uint32)
        )
    if with_templates or with_pcs:
        spike_sites = template_peak[spike_template].astype(np.int32)
        if spike_depths is None:
            spike_depths = sim.positions[spike_sites, 1].astype(np.float32)
    else:
        spike_sites = None

    # truth per cluster: spike-weighted, amplitude-scaled mean of its templates (loop over clusters)
    k = cluster_ids.size
    wave_bits_full = np.zeros((k, KS_SAMPLES, n_sites))
    for i, cid in enumerate(cluster_ids):
        sel = spike_cluster == cid
        for t in np.unique(spike_template[sel]):
            s = sel & (spike_template == t)
            wave_bits_full[i] += amplitudes[s].sum() * unw[t].astype(np.float64)
        wave_bits_full[i] /= sel.sum()
    cluster_peak = np.array([sim.peak_site[unit_of_cluster[int(c)]] for c in cluster_ids])
    assert np.array_equal(np.ptp(wave_bits_full, axis=1).argmax(axis=1), cluster_peak)
    wave_bits = wave_bits_full[np.arange(k), :, cluster_peak]

    # labels
    tsv: dict[str, pd.Series] = {}
    quality = {int(c): "all" for c in cluster_ids}
    ks_label = np.where(rng.random(n_templates) < 0.45, "good", "mua")
    if labels in ("group", "KSLabel"):
        tids = np.arange(n_templates)
        contam = [f"{x:.1f}" for x in rng.uniform(0, 100, n_templates)]
        amp = [f"{x:.1f}" for x in rng.uniform(10, 90, n_templates)]
        _write_tsv(folder / "cluster_KSLabel.tsv", tids, "KSLabel", ks_label)
        _write_tsv(folder / "cluster_ContamPct.tsv", tids, "ContamPct", contam)
        _write_tsv(folder / "cluster_Amplitude.tsv", tids, "Amplitude", amp)
        for col, vals in (("KSLabel", ks_label), ("Amplitude", amp), ("ContamPct", contam)):
            tsv[col] = pd.Series(list(vals), index=tids)
        for c in cluster_ids:
            if c < n_templates:
                quality[int(c)] = {"good": "good", "mua": "multi"}[ks_label[c]]
    if labels in ("group", "legacy"):
        groups = rng.choice(["good", "mua", "noise"], k, p=[0.4, 0.45, 0.15]).astype(object)
        groups[:3] = ["good", "mua", "noise"][: min(3, k)]
        if labels == "group" and k > 3:
            groups[3] = "unsorted"  # falls back to KSLabel
        rng.shuffle(groups)
        if labels == "group":
            _write_tsv(folder / "cluster_group.tsv", cluster_ids, "group", groups)
            info = pd.DataFrame(
                {
                    "cluster_id": cluster_ids,
                    "Amplitude": 1.0,
                    "ch": cluster_peak,
                    "depth": 0.0,
                    "group": groups,
                    "n_spikes": 0,
                }
            )
            info.to_csv(folder / "cluster_info.tsv", sep="\t", index=False)
        else:
            pd.DataFrame({"cluster_id": cluster_ids, "group": groups}).to_csv(
                folder / "cluster_groups.csv", sep="\t", index=False
            )
        tsv = {"group": pd.Series(list(groups), index=cluster_ids), **tsv}
        for c, g in zip(cluster_ids, groups):
            if g in ("good", "mua", "noise"):
                quality[int(c)] = {"good": "good", "mua": "multi", "noise": "all"}[g]
    label_df = pd.DataFrame(index=pd.Index(cluster_ids.astype(np.int64), name="cluster_id"))
    for col, s in tsv.items():
        label_df[col] = [str(s.get(int(c), "")) for c in cluster_ids]

    # ecephys metrics
    metrics = waveform_metrics = None
    mean_waveforms, waveform_unit = (wave_bits.astype(np.float32), "bits") if with_templates else (None, "")
    unit_amp = np.ptp(wave_bits, axis=1) if with_templates else None
    amp_unit = "bits" if with_templates else ""
    unit_snr = None
    if with_metrics:
        n_ids = int(cluster_ids.max()) + 1
        mw = np.zeros((n_ids, n_channels, KS_SAMPLES))
        uv = wave_bits_full * NP1_UV_PER_BIT + rng.normal(0, 0.5, wave_bits_full.shape)
        mw[cluster_ids[:, None], sim.channel_map[None, :], :] = uv.transpose(0, 2, 1)
        _write_npy(folder / "mean_waveforms.npy", mw)
        wave_uv = uv[np.arange(k), :, cluster_peak]
        snr = rng.uniform(1.5, 8.0, k)
        counts = np.array([(spike_cluster == c).sum() for c in cluster_ids])
        m = pd.DataFrame(
            {
                "cluster_id": cluster_ids,
                "firing_rate": counts / duration_s,
                "presence_ratio": rng.uniform(0.8, 1.0, k).round(2),
                "isi_viol": rng.uniform(0, 0.5, k),
                "amplitude_cutoff": rng.uniform(0, 0.2, k),
                "isolation_distance": rng.uniform(20, 120, k),
                "l_ratio": rng.uniform(0, 0.1, k),
                "d_prime": rng.uniform(2, 8, k),
                "nn_hit_rate": rng.uniform(0.6, 1, k),
                "nn_miss_rate": rng.uniform(0, 0.05, k),
                "silhouette_score": rng.uniform(0, 0.3, k),
                "max_drift": rng.uniform(0, 40, k),
                "cumulative_drift": rng.uniform(0, 200, k),
                "epoch_name_quality_metrics": "complete_session",
                "epoch_name_waveform_metrics": "complete_session",
                "peak_channel": sim.channel_map[cluster_peak],
                "snr": snr,
                "duration": sim.width[[unit_of_cluster[int(c)] for c in cluster_ids]] / sample_rate * 1e3 * 3,
                "halfwidth": rng.uniform(0.1, 0.4, k),
                "PT_ratio": rng.uniform(0.2, 0.6, k),
                "repolarization_slope": rng.uniform(0.1, 1.5, k),
                "recovery_slope": rng.uniform(-0.3, 0, k),
                "amplitude": np.ptp(wave_uv, axis=1),
                "spread": rng.choice([20.0, 40.0, 60.0, 80.0], k),
                "velocity_above": rng.normal(0.3, 0.2, k),
                "velocity_below": np.where(rng.random(k) < 0.2, np.nan, rng.normal(-0.3, 0.2, k)),
            }
        )
        m.index = pd.RangeIndex(k)
        m.to_csv(folder / "metrics.csv")  # ecephys keeps the unnamed index column
        wm = m[["cluster_id", "peak_channel", "snr", "amplitude", *WAVEFORM_METRICS]].copy()
        wm.insert(1, "epoch_name", "complete_session")
        wm.to_csv(folder / "waveform_metrics.csv")
        metrics = m.set_index("cluster_id")
        waveform_metrics = wm.set_index("cluster_id")
        mean_waveforms, waveform_unit = wave_uv.astype(np.float32), "uV"
        unit_amp, amp_unit, unit_snr = m["amplitude"].to_numpy(), "uV", snr
    if not with_templates and not with_pcs and not with_metrics:
        peak = np.full(k, -1)
    else:
        peak = cluster_peak
    unit_position = sim.positions[peak] if (peak >= 0).all() else None

    truth = SortingResult(
        path=folder,
        sorter="kilosort2",
        sample_rate=float(sample_rate) if with_params else 30000.0,
        spike_times=sim.spike_times,
        spike_clusters=spike_cluster if with_clusters else spike_template.astype(np.int32),
        spike_sites=spike_sites,
        spike_depths=spike_depths,
        amplitudes=amplitudes.astype(np.float32),
        channel_map=sim.channel_map,
        channel_positions=sim.positions,
        cluster_ids=cluster_ids if with_clusters else np.unique(spike_template).astype(np.int32),
        cluster_quality=quality,
        cluster_labels=label_df,
        peak_channel=peak,
        mean_waveforms=mean_waveforms,
        waveform_unit=waveform_unit,
        unit_amp=unit_amp,
        unit_snr=unit_snr,
        unit_position=unit_position,
        metrics=metrics,
        waveform_metrics=waveform_metrics,
        missing=[],
        amp_unit=amp_unit,
    )
    units = {
        "peak_site": sim.peak_site,
        "soma_um": sim.soma,
        "rate_hz": sim.rate_hz,
        "cluster_id": cluster_of_unit,
        "merged_units": merged_units,
        "template_peak_site": template_peak,
        "unwhitened_templates": unw,
        "ks_label": ks_label,
    }
    return GeneratedSorting(path=folder, truth=truth, units=units)


def write_large_kilosort(
    folder: str | Path,
    n_units: int = 400,
    n_spikes: int = 20_000_000,
    n_channels: int = 384,
    seed: int = 0,
    chunk: int = 2_000_000,
) -> Path:
    """A benchmark-scale Kilosort folder (spike_times, spike_clusters, spike_templates, amplitudes, probe,
    templates, labels; no PC features), written chunk by chunk into memory-mapped .npy files.

    Spikes: a merged Poisson process at 10 Hz per unit (no dead time), units drawn with log-normal
    weights. Peak memory ~ one chunk of each array plus the output pages.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fs = 30000.0
    channel_map = np1_channel_map(n_channels)
    positions = np1_site_positions(channel_map)
    n_sites = channel_map.size
    p = rng.lognormal(0.0, 0.8, n_units)
    p /= p.sum()
    cdf = np.cumsum(p)
    total_rate = 10.0 * n_units
    out = {
        "spike_times.npy": np.lib.format.open_memmap(folder / "spike_times.npy", "w+", np.uint64, (n_spikes,)),
        "spike_clusters.npy": np.lib.format.open_memmap(folder / "spike_clusters.npy", "w+", np.int32, (n_spikes,)),
        "spike_templates.npy": np.lib.format.open_memmap(folder / "spike_templates.npy", "w+", np.uint32, (n_spikes,)),
        "amplitudes.npy": np.lib.format.open_memmap(folder / "amplitudes.npy", "w+", np.float32, (n_spikes,)),
    }
    t0 = 0.0
    for lo in range(0, n_spikes, chunk):
        hi = min(n_spikes, lo + chunk)
        t = t0 + np.cumsum(rng.exponential(1.0 / total_rate, hi - lo))
        t0 = float(t[-1])
        out["spike_times.npy"][lo:hi] = np.floor(t * fs).astype(np.uint64)
        unit = np.minimum(np.searchsorted(cdf, rng.random(hi - lo)), n_units - 1).astype(np.int32)
        out["spike_clusters.npy"][lo:hi] = unit
        out["spike_templates.npy"][lo:hi] = unit.astype(np.uint32)
        out["amplitudes.npy"][lo:hi] = rng.lognormal(3.4, 0.3, hi - lo).astype(np.float32)
    for a in out.values():
        a.flush()
    del out
    (folder / "params.py").write_text(
        f"dat_path = 'large.bin'\nn_channels_dat = {n_channels + 1}\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {fs!r}\nhp_filtered = False\n"
    )
    _write_npy(folder / "channel_map.npy", channel_map.astype(np.int32))
    _write_npy(folder / "channel_positions.npy", positions)
    peak = np.sort(rng.choice(n_sites, n_units, replace=n_units > n_sites))
    t = np.arange(KS_SAMPLES)[:, None] - KS_TROUGH
    templates = np.zeros((n_units, KS_SAMPLES, n_sites), np.float32)
    for u in range(n_units):
        templates[u] = (_shape(t, 2.5, 0.35, 11.0) * _footprint(positions, positions[peak[u]])).astype(np.float32)
    _write_npy(folder / "templates.npy", templates)
    _write_npy(folder / "whitening_mat_inv.npy", np.eye(n_sites))
    _write_tsv(
        folder / "cluster_group.tsv",
        np.arange(n_units),
        "group",
        rng.choice(["good", "mua", "noise"], n_units, p=[0.4, 0.5, 0.1]),
    )
    return folder


# -------------------------------------------------------------------------------------------- JRClust


def _jrc_sim(rng, n_units, n_spikes, n_channels, duration_s, sample_rate, noise_fraction):
    """Shared JRClust simulation: clusters 1..U, noise spikes (cluster 0 or -1), local site groups."""
    sim = _simulate(rng, n_units, n_spikes, n_channels, duration_s, sample_rate)
    n_sites = sim.channel_map.size
    cluster = (sim.spike_unit + 1).astype(np.int32)
    noise = rng.random(n_spikes) < noise_fraction
    cluster[noise] = np.where(rng.random(noise.sum()) < 0.8, 0, -1)
    # local sites of each site: itself first, then by distance (JRClust's miSites)
    dist = np.hypot(*(sim.positions[:, None, :] - sim.positions[None, :, :]).transpose(2, 0, 1))
    n_local = min(JRC_SITES_PER_EVENT, n_sites)
    local = np.argsort(dist, axis=1, kind="stable")[:, :n_local]
    # a spike's centre site: mostly the peak site, sometimes its nearest neighbour
    neighbour = rng.random(n_spikes) < 0.1
    spike_site = sim.peak_site[sim.spike_unit].copy()
    spike_site[neighbour] = local[spike_site[neighbour], 1]
    # mean raw waveforms at the local sites of the peak site, uV
    wav = np.zeros((JRC_SAMPLES, n_local, n_units), np.float32)
    for u in range(n_units):
        full = _unit_waveforms(sim, u, JRC_SAMPLES, JRC_TROUGH) * sim.amp_scale[u] * 3.0
        wav[:, :, u] = full[:, local[sim.peak_site[u]]]
    pos = np.zeros((n_units, 2))
    for u in range(n_units):
        pos[u] = sim.spike_pos[sim.spike_unit == u].mean(axis=0)
    notes = [JRC_NOTES[i % len(JRC_NOTES)] for i in rng.permutation(n_units)]
    return sim, cluster, spike_site, wav, pos, notes, local


def _jrc_truth(path, sorter, sim, cluster, spike_site, wav, pos, notes, snr, missing=()):
    keep = cluster > 0
    cluster_ids = np.arange(1, len(notes) + 1, dtype=np.int32)
    quality = {}
    for cid, note in zip(cluster_ids, notes):
        n = note.strip().lower()
        quality[int(cid)] = (
            "good"
            if n.startswith("single")
            else "multi"
            if n.startswith("multi")
            else "ok"
            if n.startswith("ok")
            else "all"
        )
    return SortingResult(
        path=Path(path),
        sorter=sorter,
        sample_rate=sim.fs,
        spike_times=sim.spike_times[keep],
        spike_clusters=cluster[keep],
        spike_sites=spike_site[keep].astype(np.int32),
        spike_depths=sim.spike_pos[keep, 1].astype(np.float32),
        amplitudes=None,
        channel_map=sim.channel_map,
        channel_positions=sim.positions,
        cluster_ids=cluster_ids,
        cluster_quality=quality,
        cluster_labels=pd.DataFrame({"note": notes}, index=pd.Index(cluster_ids.astype(np.int64), name="cluster_id")),
        peak_channel=sim.peak_site.astype(np.int64),
        mean_waveforms=wav[:, 0, :].T.copy(),
        waveform_unit="uV",
        unit_amp=np.ptp(wav[:, 0, :], axis=0).astype(np.float64),
        unit_snr=snr.astype(np.float64),
        unit_position=pos,
        metrics=None,
        waveform_metrics=None,
        missing=list(missing),
        amp_unit="uV",
        dropped_spikes=int((~keep).sum()),
    )


def _cell(strings) -> np.ndarray:
    c = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        c[i, 0] = s
    return c


def _savemat73(path: Path, data: dict) -> None:
    from . import hdf5storage as _need_hdf5storage

    hdf5storage = _need_hdf5storage()

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    hdf5storage.savemat(str(path), data, format="7.3", matlab_compatible=True, store_python_metadata=False)


def _mat_path(path: str | Path, default_name: str) -> Path:
    path = Path(path)
    return path if path.suffix == ".mat" else path / default_name


def write_jrclust_v3(
    path: str | Path,
    n_units: int = 20,
    n_spikes: int = 20_000,
    n_channels: int = 384,
    duration_s: float = 600.0,
    sample_rate: float = 30000.0,
    seed: int = 0,
    noise_fraction: float = 0.05,
    with_site_map: bool = True,
    fmt: str = "7.3",
) -> GeneratedSorting:
    """A JRClust v3 ``*_jrc.mat`` (MATLAB v7.3 by default, ``fmt='5'`` for a classic file).

    MATLAB orientation and 1-based indices: viTime_spk (N,1) int32 samples, viSite_spk (N,1) int32,
    mrPos_spk (N,2) single, S_clu.viClu (N,1) int32 (0 / -1: noise), S_clu.trWav_raw_clu
    (samples, local sites, clusters) single uV with the peak site first, csNote_clu (clusters,1) cell,
    vrPosX/Y_clu, vrVpp_uv_clu, vrSnr_clu, viSite_clu (clusters,1); P.sRateHz, P.viSite2Chan, P.mrSiteXY.
    """
    path = _mat_path(path, "sim_g0_t0.imec.ap_imec3_opt3_jrc.mat")
    rng = np.random.default_rng(seed)
    sim, cluster, spike_site, wav, pos, notes, local = _jrc_sim(
        rng, n_units, n_spikes, n_channels, duration_s, sample_rate, noise_fraction
    )
    snr = rng.uniform(2, 12, n_units)
    n = n_spikes
    P = {
        "sRateHz": np.array([[float(sample_rate)]]),
        "uV_per_bit": np.array([[NP1_UV_PER_BIT]]),
        "vcFile": "sim_g0_t0.imec.ap.bin",
        "maxSite": np.array([[4.0]]),
    }
    if with_site_map:
        P["viSite2Chan"] = (sim.channel_map + 1).astype(np.float64).reshape(-1, 1)
        P["mrSiteXY"] = sim.positions
    S_clu = {
        "viClu": cluster.reshape(n, 1),
        "nClu": np.array([[float(n_units)]]),
        "trWav_raw_clu": wav,
        "csNote_clu": _cell(notes),
        "vrPosX_clu": pos[:, :1].astype(np.float32),
        "vrPosY_clu": pos[:, 1:].astype(np.float32),
        "vrVpp_uv_clu": np.ptp(wav[:, 0, :], axis=0).reshape(-1, 1).astype(np.float32),
        "vrSnr_clu": snr.reshape(-1, 1).astype(np.float32),
        "viSite_clu": (sim.peak_site + 1).reshape(-1, 1).astype(np.float64),
        "vnSpk_clu": np.bincount(cluster[cluster > 0], minlength=n_units + 1)[1:].reshape(-1, 1).astype(np.float64),
    }
    data = {
        "P": P,
        "viTime_spk": (sim.spike_times + 1).astype(np.int32).reshape(n, 1),
        "viSite_spk": (spike_site + 1).astype(np.int32).reshape(n, 1),
        "vrAmp_spk": rng.normal(-100, 20, (n, 1)).astype(np.float32),
        "mrPos_spk": sim.spike_pos.astype(np.float32),
        "S_clu": S_clu,
    }
    if fmt == "5":
        import scipy.io as sio

        path.parent.mkdir(parents=True, exist_ok=True)
        sio.savemat(str(path), data, do_compression=True)
    else:
        _savemat73(path, data)
    truth = _jrc_truth(
        path,
        "jrclust_v3",
        sim,
        cluster,
        spike_site,
        wav,
        pos.astype(np.float32).astype(np.float64),
        notes,
        snr.astype(np.float32),
    )
    if not with_site_map:
        truth.channel_map = np.arange(int(spike_site.max()) + 1)
        truth.channel_positions = np.full((truth.channel_map.size, 2), np.nan)
    return GeneratedSorting(
        path=path,
        truth=truth,
        units={"peak_site": sim.peak_site, "soma_um": sim.soma, "rate_hz": sim.rate_hz, "local_sites": local},
    )


def write_jrclust_v4(
    path: str | Path,
    n_units: int = 20,
    n_spikes: int = 20_000,
    n_channels: int = 384,
    duration_s: float = 600.0,
    sample_rate: float = 30000.0,
    seed: int = 0,
    noise_fraction: float = 0.05,
    with_prm: bool = True,
) -> GeneratedSorting:
    """A JRClust v4 ``*_res.mat`` (MATLAB v7.3) and, with_prm, its ``.prm`` parameter file beside it.

    spikeTimes/spikeSites/spikeClusters (N,1) int32 (1-based; clusters <= 0 are noise), spikePositions
    (N,2) single, meanWfLocalRaw (samples, local sites, clusters) single uV, clusterNotes (clusters,1) cell,
    clusterCentroids (clusters,2), unitVppRaw, unitSNR, clusterSites (clusters,1). The sample rate and
    the site map live in the .prm (sampleRate, siteMap, siteLoc), not in the res file.
    """
    path = _mat_path(path, "sim_g0_t0.imec.ap_res.mat")
    rng = np.random.default_rng(seed)
    sim, cluster, spike_site, wav, pos, notes, local = _jrc_sim(
        rng, n_units, n_spikes, n_channels, duration_s, sample_rate, noise_fraction
    )
    snr = rng.uniform(2, 12, n_units)
    n = n_spikes
    data = {
        "spikeTimes": (sim.spike_times + 1).astype(np.int32).reshape(n, 1),
        "spikeSites": (spike_site + 1).astype(np.int32).reshape(n, 1),
        "spikePositions": sim.spike_pos.astype(np.float32),
        "spikeClusters": cluster.reshape(n, 1),
        "spikeAmps": rng.normal(-100, 20, (n, 1)).astype(np.float32),
        "meanWfLocalRaw": wav,
        "clusterNotes": _cell(notes),
        "clusterCentroids": pos,
        "unitVppRaw": np.ptp(wav[:, 0, :], axis=0).reshape(-1, 1).astype(np.float32),
        "unitSNR": snr.reshape(-1, 1),
        "clusterSites": (sim.peak_site + 1).reshape(-1, 1).astype(np.float64),
        "unitCount": np.bincount(cluster[cluster > 0], minlength=n_units + 1)[1:].reshape(-1, 1).astype(np.float64),
        "nClusters": np.array([[float(n_units)]]),
    }
    _savemat73(path, data)
    missing = []
    if with_prm:
        prm = (
            path.with_name(path.name[: -len("_res.mat")] + ".prm")
            if path.name.endswith("_res.mat")
            else path.with_suffix(".prm")
        )
        site_loc = ";\n    ".join(f"{x:g}, {y:g}" for x, y in sim.positions)
        prm.write_text(
            "% JRCLUST parameters (simulated)\n"
            "% RECORDING PARAMETERS\n"
            f"rawRecordings = {{'{path.parent / 'sim_g0_t0.imec.ap.bin'}'}}; % Path or paths to raw recordings\n"
            f"sampleRate = {float(sample_rate):g}; % (formerly sRateHz) Sampling rate (in Hz)\n"
            f"bitScaling = {NP1_UV_PER_BIT:g}; % (formerly uV_per_bit)\n"
            "% PROBE PARAMETERS\n"
            f"siteMap = [{', '.join(str(c + 1) for c in sim.channel_map)}]; % (formerly viSite2Chan)\n"
            f"siteLoc = [{site_loc}]; % (formerly mrSiteXY) Site locations (in um)\n"
            f"shankMap = [{', '.join('1' for _ in sim.channel_map)}];\n"
            "probePad = [12, 12];\n"
            "useGPU = false;\n"
        )
    truth = _jrc_truth(path, "jrclust_v4", sim, cluster, spike_site, wav, pos, notes, snr, missing)
    truth.unit_amp = np.ptp(wav[:, 0, :], axis=0).astype(np.float32).astype(np.float64)
    if not with_prm:
        truth.sample_rate = 30000.0
        truth.channel_map = np.arange(int(spike_site.max()) + 1)
        truth.channel_positions = np.full((truth.channel_map.size, 2), np.nan)
    return GeneratedSorting(
        path=path,
        truth=truth,
        units={"peak_site": sim.peak_site, "soma_um": sim.soma, "rate_hz": sim.rate_hz, "local_sites": local},
    )


# ------------------------------------------------------------------------------------------- comparison


def sorting_differences(
    got: SortingResult,
    truth: SortingResult,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    skip: tuple[str, ...] = ("path", "missing", "params"),
) -> list[str]:
    """Field-by-field differences between a reader's result and the truth ([] when they agree).

    Integer arrays must be equal, float arrays close (NaN == NaN), shapes identical, None only where the
    truth has None; DataFrames are compared with pandas (values, index, columns; not dtypes).
    """
    import dataclasses

    out = []
    for f in dataclasses.fields(truth):
        if f.name in skip:
            continue
        a, b = getattr(got, f.name), getattr(truth, f.name)
        if b is None or a is None:
            if not (a is None and b is None):
                out.append(
                    f"{f.name}: {'None' if a is None else type(a).__name__} != "
                    f"{'None' if b is None else type(b).__name__}"
                )
            continue
        if isinstance(b, pd.DataFrame):
            try:
                pd.testing.assert_frame_equal(
                    a,
                    b,
                    check_dtype=False,
                    check_exact=False,
                    rtol=rtol,
                    atol=atol,
                    check_index_type=False,
                    check_column_type=False,
                )
            except AssertionError as e:
                out.append(f"{f.name}: {str(e).splitlines()[0:3]}")
        elif isinstance(b, np.ndarray):
            a = np.asarray(a)
            if a.shape != b.shape:
                out.append(f"{f.name}: shape {a.shape} != {b.shape}")
            elif b.dtype.kind in "iub" and a.dtype.kind in "iub":
                if not np.array_equal(a, b):
                    bad = np.flatnonzero(a.ravel() != b.ravel())
                    out.append(
                        f"{f.name}: {bad.size} values differ, first at {bad[0]}: {a.ravel()[bad[0]]} != "
                        f"{b.ravel()[bad[0]]}"
                    )
            elif not np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
                out.append(f"{f.name}: max difference {np.nanmax(diff):.3g}")
        elif isinstance(b, float):
            if not np.isclose(a, b, rtol=rtol, atol=atol):
                out.append(f"{f.name}: {a} != {b}")
        elif a != b:
            out.append(f"{f.name}: {a!r} != {b!r}"[:300])
    return out
