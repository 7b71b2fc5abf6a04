"""The figures a lab looks at: pure functions, arrays and frames in, a matplotlib Figure out.

No database and no pyplot: every function builds a :class:`matplotlib.figure.Figure` on the Agg
canvas, so nothing is shown, nothing leaks between figures, and they can be drawn in worker
processes. The report tables (:mod:`pipeline.report`) fetch the inputs, call these and store the
PNGs; the navigator draws them on request the same way.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LEFT, RIGHT = "#d62728", "#1f77b4"  # the MAP papers' convention: left red, right blue
CONTRA, IPSI = "#1f77b4", "#d62728"
CELL_COLORS = {"FS": "#2ca02c", "Pyr": "#9467bd", "not classified": "#7f7f7f"}
DPI = 100


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure on the Agg canvas. ``layout=None`` for figures drawn by the hundred (units): the
    constrained layout engine costs about a third of their drawing time, so they place axes by hand."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (and its memory released)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _sliding(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving mean ignoring NaN (NaN where the window holds no value)."""
    v = np.where(np.isnan(x), 0.0, x)
    n = (~np.isnan(x)).astype(float)
    k = np.ones(max(1, min(window, len(x))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.convolve(v, k, "same") / np.convolve(n, k, "same")


# --- session -----------------------------------------------------------------------------------


def session_performance(trials: pd.DataFrame, title: str = "", window: int = 20) -> Figure:
    """Proportion correct (hits / (hits + misses)) over trials in a sliding window, for all trials
    and per instruction, with early-lick, auto-water and ignored trials marked below.

    ``trials``: trial, trial_instruction ('left'/'right'), outcome ('hit'/'miss'/'ignore'),
    early_lick ('early'/'no early'), auto_water (bool)."""
    fig = new_figure(10.5, 4)
    ax = fig.add_subplot()
    t = trials.sort_values("trial")
    x = t["trial"].to_numpy()
    correct = np.where(t["outcome"] == "hit", 1.0, np.where(t["outcome"] == "miss", 0.0, np.nan))
    ax.plot(x, _sliding(correct, window), color="k", lw=2, label="all")
    for side, color in (("left", LEFT), ("right", RIGHT)):
        c = np.where(t["trial_instruction"] == side, correct, np.nan)
        ax.plot(x, _sliding(c, window), color=color, lw=1.2, label=f"{side} trials")
    marks = (
        ("early lick", t["early_lick"] == "early", "#ff7f0e", -0.06),
        ("auto water", t["auto_water"].astype(bool), "#17becf", -0.12),
        ("ignored", t["outcome"] == "ignore", "0.5", -0.18),
    )
    for label, mask, color, y in marks:
        xs = x[mask.to_numpy()]
        ax.plot(xs, np.full(len(xs), y), "|", color=color, ms=8, label=f"{label} ({len(xs)})")
    ax.axhline(0.5, color="0.7", ls=":", lw=1)
    ax.set_ylim(-0.22, 1.02)
    ax.set_xlim(x.min(initial=0) - 1, x.max(initial=1) + 1)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"proportion correct ({window}-trial window)")
    ax.set_title(title or "behaviour performance")
    ax.legend(loc="upper left", fontsize=8, frameon=False, bbox_to_anchor=(1.01, 1.0))
    return fig


def photostim_effect(trials: pd.DataFrame, title: str = "") -> Figure:
    """Proportion correct on control vs stimulated trials, per instruction and stimulated site.

    ``trials``: trial_instruction, outcome, stim_site (None/'' for control trials)."""
    fig = new_figure(7.5, 4)
    ax = fig.add_subplot()
    t = trials[trials["outcome"].isin(["hit", "miss"])].copy()
    t["site"] = t["stim_site"].fillna("").replace("", "control")
    sites = ["control"] + sorted(s for s in t["site"].unique() if s != "control")
    if len(sites) == 1:
        _empty(ax, "no photostimulation in this session")
        ax.set_title(title or "photostimulation effect")
        return fig
    width = 0.8 / len(sites)
    cmap = ["0.3", "#2ca02c", "#17becf", "#bcbd22", "#e377c2", "#8c564b"]
    for k, site in enumerate(sites):
        for j, side in enumerate(("left", "right")):
            sel = t[(t["site"] == site) & (t["trial_instruction"] == side)]
            n = len(sel)
            p = (sel["outcome"] == "hit").mean() if n else np.nan
            err = np.sqrt(p * (1 - p) / n) if n else 0
            ax.bar(
                j + (k - (len(sites) - 1) / 2) * width,
                p,
                width,
                color=cmap[k % len(cmap)],
                yerr=err,
                capsize=2,
                label=site if j == 0 else None,
            )
            ax.text(
                j + (k - (len(sites) - 1) / 2) * width,
                0.02,
                f"n={n}",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                color="w",
            )
    ax.set_xticks([0, 1], ["left trials", "right trials"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("proportion correct (± s.e.)")
    ax.set_title(title or "photostimulation effect")
    ax.legend(
        fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="stimulated", title_fontsize=8
    )
    return fig


def foraging_session(trials: pd.DataFrame, title: str = "", window: int = 10) -> Figure:
    """Choices and rewards over trials with the blocks' reward probabilities.

    ``trials``: trial, choice ('left'/'right'/'none'), rewarded (bool), p_left, p_right."""
    fig = new_figure(11, 4)
    ax = fig.add_subplot()
    t = trials.sort_values("trial")
    x = t["trial"].to_numpy()
    right = np.where(t["choice"] == "right", 1.0, np.where(t["choice"] == "left", 0.0, np.nan))
    ax.plot(x, _sliding(right, window), color="k", lw=1.5, label=f"choice right ({window}-trial window)")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = t["p_right"].to_numpy() / (t["p_left"].to_numpy() + t["p_right"].to_numpy())
    ax.step(x, ratio, where="mid", color="#ff7f0e", lw=1.5, label="p(reward right) / sum")
    for side, y, color in (("left", -0.08, LEFT), ("right", 1.08, RIGHT)):
        chosen = (t["choice"] == side).to_numpy()
        rew = t["rewarded"].astype(bool).to_numpy()
        ax.plot(x[chosen & rew], np.full((chosen & rew).sum(), y), "|", color=color, ms=10)
        ax.plot(x[chosen & ~rew], np.full((chosen & ~rew).sum(), y), "|", color=color, ms=4, alpha=0.5)
    ax.plot(
        x[(t["choice"] == "none").to_numpy()],
        np.full(int((t["choice"] == "none").sum()), 0.5),
        "x",
        color="0.5",
        ms=3,
        label="no choice",
    )
    ax.set_ylim(-0.15, 1.15)
    ax.set_yticks([-0.08, 0, 0.5, 1, 1.08], ["left choices", "0", "0.5", "1", "right choices"])
    ax.set_xlabel("trial (long ticks: rewarded)")
    ax.set_title(title or "foraging choices and rewards")
    ax.set_ylabel("fraction of right choices")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --- probe -------------------------------------------------------------------------------------


def clustering_quality(units: pd.DataFrame, title: str = "") -> Figure:
    """Distributions of the units' quality metrics, and each against depth.

    ``units``: depth (um), amplitude (uV), snr, isi_violation, firing_rate (Hz), presence_ratio."""
    metrics = [
        ("amplitude", "amplitude (µV)"),
        ("snr", "SNR"),
        ("isi_violation", "ISI violation"),
        ("firing_rate", "firing rate (Hz)"),
        ("presence_ratio", "presence ratio"),
    ]
    fig = new_figure(12, 6)
    axes = fig.subplots(2, len(metrics))
    for j, (col, label) in enumerate(metrics):
        v = units[col].to_numpy(dtype=np.float64) if col in units else np.full(len(units), np.nan)
        ok = np.isfinite(v)
        top, bottom = axes[0, j], axes[1, j]
        if not ok.any():
            _empty(top, "not available")
            _empty(bottom, "")
            top.set_title(label, fontsize=9)
            continue
        top.hist(v[ok], bins=int(np.clip(ok.sum() // 2, 5, 30)), color="0.4")
        top.set_title(label, fontsize=9)
        bottom.scatter(v[ok], units["depth"].to_numpy()[ok], s=8, color="k", alpha=0.7)
        bottom.set_xlabel(label, fontsize=8)
        if j == 0:
            bottom.set_ylabel("depth on the probe (µm)")
            top.set_ylabel("units")
    fig.suptitle(title or "clustering quality", fontsize=11)
    return fig


def unit_characteristics(units: pd.DataFrame, probe_x: np.ndarray, probe_y: np.ndarray, title: str = "") -> Figure:
    """Units on the probe (marker size: amplitude, colour: cell type), firing rate and amplitude
    against depth. ``units``: x, depth, amplitude, firing_rate, cell_type."""
    fig = new_figure(10, 7)
    a, b, c = fig.subplots(1, 3, sharey=True, width_ratios=[1.2, 1, 1])
    a.scatter(probe_x, probe_y, s=4, marker="s", color="0.85")
    amp = units["amplitude"].to_numpy(dtype=np.float64)
    size = 10 + 90 * np.nan_to_num(amp / np.nanmax(amp) if np.isfinite(amp).any() else amp * 0)
    for ct, color in CELL_COLORS.items():
        m = (units["cell_type"] == ct).to_numpy()
        if m.any():
            a.scatter(
                units["x"].to_numpy()[m],
                units["depth"].to_numpy()[m],
                s=size[m],
                color=color,
                alpha=0.7,
                edgecolor="k",
                lw=0.3,
                label=f"{ct} ({m.sum()})",
            )
    a.set_xlabel("x on the probe (µm)")
    a.set_ylabel("depth on the probe (µm)")
    a.legend(fontsize=8, frameon=False, loc="upper right")
    b.scatter(units["firing_rate"], units["depth"], s=10, color="k")
    b.set_xlabel("firing rate (Hz)")
    c.scatter(units["amplitude"], units["depth"], s=10, color="k")
    c.set_xlabel("amplitude (µV)")
    fig.suptitle(title or "unit characteristics", fontsize=11)
    return fig


def group_psth(
    centers: np.ndarray, contra: dict[str, np.ndarray], ipsi: dict[str, np.ndarray], title: str = ""
) -> Figure:
    """Heat maps of contra- and ipsi-selective units (rows ordered by depth, rates normalised per
    unit) on contra and ipsi trials, and the groups' mean PSTHs.

    ``contra``/``ipsi``: {'contra trials': (units, bins), 'ipsi trials': (units, bins)} per group."""
    fig = new_figure(10, 7)
    grid = fig.add_gridspec(3, 2, height_ratios=[2, 2, 1.2])
    for col, (group, data) in enumerate((("contra-selective units", contra), ("ipsi-selective units", ipsi))):
        stacked = [m for m in (data.get("contra trials"), data.get("ipsi trials")) if m is not None and len(m)]
        # each unit scaled by its peak over both trial types, so the two panels compare
        peak = np.nanmax(np.abs(np.concatenate(stacked, axis=1)), axis=1, keepdims=True) if stacked else None
        for row, trials in enumerate(("contra trials", "ipsi trials")):
            ax = fig.add_subplot(grid[row, col])
            m = data.get(trials)
            if m is None or not len(m):
                _empty(ax, f"no {group}")
            else:
                norm = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0)
                ax.imshow(
                    norm,
                    aspect="auto",
                    cmap="magma",
                    vmin=0,
                    vmax=1,
                    extent=(centers[0], centers[-1], len(m), 0),
                    interpolation="nearest",
                )
                ax.set_ylabel("unit (by depth)")
            ax.axvline(0, color="w", lw=0.8, ls="--")
            ax.set_title(f"{group}: {trials}", fontsize=9)
        ax = fig.add_subplot(grid[2, col])
        for trials, color in (("contra trials", CONTRA), ("ipsi trials", IPSI)):
            m = data.get(trials)
            if m is not None and len(m):
                ax.plot(centers, np.nanmean(m, axis=0), color=color, label=trials)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("time from go cue (s)")
        ax.set_ylabel("rate (Hz)")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title or "group PSTH", fontsize=11)
    return fig


def photostim_unit_effect(control: np.ndarray, stim: np.ndarray, depth: np.ndarray, title: str = "") -> Figure:
    """Each unit's firing rate on stimulated vs control trials, and the change against depth."""
    fig = new_figure(9, 4)
    a, b = fig.subplots(1, 2)
    ok = np.isfinite(control) & np.isfinite(stim)
    if not ok.any():
        _empty(a, "no stimulated trials with PSTHs")
        _empty(b, "")
    else:
        top = max(np.nanmax(control[ok]), np.nanmax(stim[ok]), 1.0)
        a.scatter(control[ok], stim[ok], s=10, color="k")
        a.plot([0, top], [0, top], color="0.6", ls="--")
        a.set_xlabel("control rate (Hz)")
        a.set_ylabel("stimulated rate (Hz)")
        b.scatter(stim[ok] - control[ok], depth[ok], s=10, color="k")
        b.axvline(0, color="0.6", ls="--")
        b.set_xlabel("stimulated − control (Hz)")
        b.set_ylabel("depth on the probe (µm)")
    fig.suptitle(title or "photostimulation effect on units", fontsize=11)
    return fig


def drift_map(
    times: np.ndarray, depths: np.ndarray, amplitudes: np.ndarray, title: str = "", max_points: int = 200_000
) -> Figure:
    """Spike depth over time, coloured by amplitude (a random subset of at most ``max_points``)."""
    fig = new_figure(10, 5)
    ax = fig.add_subplot()
    if not len(times):
        _empty(ax, "no spike depths in this sorting")
    else:
        idx = np.arange(len(times))
        if len(idx) > max_points:
            idx = np.sort(np.random.default_rng(0).choice(len(times), max_points, replace=False))
        amp = amplitudes[idx]
        lo, hi = np.nanpercentile(amp, [5, 95]) if np.isfinite(amp).any() else (0, 1)
        sc = ax.scatter(times[idx], depths[idx], c=amp, s=0.5, cmap="viridis", vmin=lo, vmax=hi, rasterized=True)
        fig.colorbar(sc, ax=ax, label="amplitude")
    ax.set_xlabel("time (s, probe clock)")
    ax.set_ylabel("depth on the probe (µm)")
    ax.set_title(title or "drift map")
    return fig


def coronal_slice(
    annotation_slice: np.ndarray,
    colors: dict[int, str],
    names: dict[int, str],
    voxel_um: float,
    electrodes: np.ndarray,
    track: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """A coronal slice of the CCF annotation (DV x ML, region colours), the probe's electrodes and
    track on it, and the regions the electrodes are in, labelled.

    ``electrodes``: (n, 3) ML, DV, region id; ``track``: (m, 2) ML, DV or None."""
    fig = new_figure(8, 6)
    ax = fig.add_subplot()
    ids = np.unique(annotation_slice)
    lut = {int(i): colors.get(int(i), "cccccc") for i in ids}
    rgb = np.ones(annotation_slice.shape + (3,))
    for i, hexcode in lut.items():
        if i == 0:
            continue
        h = hexcode.lstrip("#")
        rgb[annotation_slice == i] = [int(h[k : k + 2], 16) / 255 for k in (0, 2, 4)]
    n_dv, n_ml = annotation_slice.shape
    ax.imshow(rgb, extent=(0, n_ml * voxel_um, n_dv * voxel_um, 0), interpolation="nearest")
    if track is not None and len(track):
        ax.plot(track[:, 0], track[:, 1], color="k", lw=1, ls="--", label="track")
    if len(electrodes):
        ax.scatter(electrodes[:, 0], electrodes[:, 1], s=6, color="k", label="electrodes")
        regions = pd.Series(electrodes[:, 2].astype(int))
        for rid, dv in pd.Series(electrodes[:, 1]).groupby(regions).median().items():
            if rid:
                ax.annotate(
                    names.get(int(rid), str(rid)),
                    (np.median(electrodes[:, 0]), dv),
                    xytext=(12, 0),
                    textcoords="offset points",
                    fontsize=8,
                    va="center",
                    bbox=dict(boxstyle="round,pad=0.2", fc="w", ec="0.6", alpha=0.85),
                )
    ax.set_xlabel("ML (µm)")
    ax.set_ylabel("DV (µm)")
    ax.set_title(title or "probe track, coronal slice")
    ax.legend(fontsize=8, loc="lower right")
    return fig


# --- unit --------------------------------------------------------------------------------------


def unit_summary(
    rasters: dict[str, tuple[np.ndarray, np.ndarray, int]],
    centers: np.ndarray,
    psths: dict[str, np.ndarray],
    waveform: np.ndarray | None,
    sample_rate: float,
    isi: np.ndarray,
    info: list[str],
    title: str = "",
) -> Figure:
    """One unit: rasters and PSTHs of left and right hit trials (go-aligned), mean waveform, ISI
    histogram, and a text box (location, rates, cell type, selectivity).

    ``rasters``: {'left': (times, trial rows, n trials), 'right': ...}."""
    fig = new_figure(10, 6, layout=None)
    grid = fig.add_gridspec(
        3, 3, height_ratios=[1.2, 1.2, 1], left=0.07, right=0.98, top=0.91, bottom=0.08, hspace=0.6, wspace=0.3
    )
    ax_r = fig.add_subplot(grid[0:2, 0:2])
    offset = 0
    for side, color in (("left", LEFT), ("right", RIGHT)):
        t, row, n = rasters.get(side, (np.zeros(0), np.zeros(0, int), 0))
        ax_r.plot(t, row + offset, "|", color=color, ms=2, mew=0.6)
        if n:
            ax_r.text(-2.95, offset + n / 2, f"{side} hit ({n})", color=color, fontsize=8, va="center")
        offset += n
    ax_r.axvline(0, color="0.5", ls="--", lw=0.8)
    ax_r.set_xlim(centers[0] - (centers[1] - centers[0]) / 2, centers[-1] + (centers[1] - centers[0]) / 2)
    ax_r.set_ylim(offset, 0)
    ax_r.set_ylabel("trial")
    ax_r.tick_params(labelbottom=False)
    ax_p = fig.add_subplot(grid[2, 0:2], sharex=ax_r)
    for side, color in (("left", LEFT), ("right", RIGHT)):
        if side in psths:
            ax_p.plot(centers, psths[side], color=color, label=f"{side} hit")
    ax_p.axvline(0, color="0.5", ls="--", lw=0.8)
    ax_p.set_xlabel("time from go cue (s)")
    ax_p.set_ylabel("rate (Hz)")
    ax_p.legend(fontsize=8, frameon=False)
    ax_w = fig.add_subplot(grid[0, 2])
    if waveform is None or not len(waveform):
        _empty(ax_w, "no waveform")
    else:
        ax_w.plot(np.arange(len(waveform)) / sample_rate * 1000, waveform, color="k")
        ax_w.set_xlabel("ms", fontsize=8)
        ax_w.set_ylabel("µV", fontsize=8)
    ax_w.set_title("mean waveform", fontsize=9)
    ax_i = fig.add_subplot(grid[1, 2])
    ax_i.hist(isi[isi < 0.1] * 1000, bins=np.arange(0, 101, 2), color="0.4")
    ax_i.axvline(2, color="r", lw=0.8)
    ax_i.set_xlabel("ISI (ms)", fontsize=8)
    ax_i.set_title("inter-spike intervals", fontsize=9)
    ax_t = fig.add_subplot(grid[2, 2])
    ax_t.axis("off")
    ax_t.text(0, 1, "\n".join(info), va="top", fontsize=8, family="monospace")
    fig.suptitle(title or "unit", fontsize=11)
    return fig


# --- project -----------------------------------------------------------------------------------


def project_tracks(
    brain_mask: np.ndarray, voxel_um: float, tracks: dict[str, list[np.ndarray]], title: str = ""
) -> Figure:
    """Every probe track of every subject in the CCF, seen from the front (ML x DV), the side
    (AP x DV) and above (ML x AP), over the brain's outline. ``brain_mask``: (AP, DV, ML) bool;
    ``tracks``: subject -> list of (n, 3) ML, DV, AP points (um)."""
    fig = new_figure(13, 4.5)
    axes = fig.subplots(1, 3)
    views = (
        ("coronal (front)", brain_mask.any(axis=0), (0, 1), "ML (µm)", "DV (µm)"),  # (DV, ML)
        ("sagittal (side)", brain_mask.any(axis=2), (2, 1), "AP (µm, from the front)", "DV (µm)"),  # (AP, DV)
        ("horizontal (top)", brain_mask.any(axis=1), (0, 2), "ML (µm)", "AP (µm, from the front)"),  # (AP, ML)
    )
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for ax, (name, outline, (ix, iy), xl, yl) in zip(axes, views):
        img = outline.T if name.startswith("sagittal") else outline
        ax.imshow(
            np.where(img, 0.9, 1.0),
            cmap="gray",
            vmin=0,
            vmax=1,
            extent=(0, img.shape[1] * voxel_um, img.shape[0] * voxel_um, 0),
            interpolation="nearest",
        )
        for k, (subject, subject_tracks) in enumerate(sorted(tracks.items())):
            color = palette[k % len(palette)]
            for j, pts in enumerate(subject_tracks):
                ax.plot(pts[:, ix], pts[:, iy], color=color, lw=1.5, label=subject if j == 0 else None)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel(yl, fontsize=8)
    if tracks:
        axes[2].legend(fontsize=8, frameon=False, loc="upper right")
    fig.suptitle(title or "probe tracks", fontsize=11)
    return fig
