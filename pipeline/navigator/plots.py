"""The navigator's figures: PNGs from the report store when they are there and up to date, else
drawn on request with the pure functions of :mod:`pipeline.figures` (their inputs built by
:mod:`pipeline.report`'s own helpers, so a drawn figure is the one ``generate-report`` would
store) and kept in memory.

A stored figure is used when its report entry's inputs hash equals the current one (the report's
own staleness test); drawn figures are cached under the current inputs hash, so a re-ingest or a
new computation is never hidden behind an old picture. Drawing is serialised (matplotlib is not
thread-safe); the pages are not held up by it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict

import numpy as np

from ..errors import MapError
from .data import PROBE_FIGURES, SESSION_FIGURES, NotFound, _mod, have

log = logging.getLogger(__name__)

#: schema modules each figure reads (a figure whose modules have no schema is not available)
_NEEDS = {
    "session": ("experiment",),
    "clustering_quality": ("ephys",),
    "unit_characteristics": ("ephys",),
    "drift_map": ("ephys",),
    "group_psth": ("ephys", "psth"),
    "photostim_effect": ("ephys", "psth"),
    "coronal_slice": ("ephys", "histology", "ccf"),
    "unit": ("ephys", "psth", "histology"),
    "condition": ("ephys", "psth"),
}


class _LRU:
    """Bytes values, least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: OrderedDict = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= _size(old)
            self.items[key] = value
            self.size += _size(value)
            while self.size > self.max_bytes and len(self.items) > 1:
                _, dropped = self.items.popitem(last=False)
                self.size -= _size(dropped)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.size = 0


def _size(value) -> int:
    return len(value) if isinstance(value, bytes) else 1024


def _hash(*parts) -> str:
    return hashlib.md5(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def _require(name: str) -> None:
    missing = [m for m in _NEEDS[name] if not have(m)]
    if missing:
        raise NotFound(f"figure {name} is not available: no {', '.join(missing)} schema on this database")


class Figures:
    """Figures of sessions, probes and units: stored, cached or drawn now."""

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.cache = _LRU(max_bytes)
        self.frames = _LRU(64 * 2**20)  # probe unit frames shared by a probe's figures
        self.draw_lock = threading.Lock()
        self.drawn = 0  #: figures drawn so far (tests and the benchmark read it)

    # -- what the figures depend on -------------------------------------------------------------

    def inputs(self, level: str, key: dict) -> str:
        """The report's inputs hash of ``key`` (what decides whether a figure is current)."""
        report = _mod("report")
        if level == "session":
            return report.session_inputs(key)
        if all(have(m) for m in ("ephys", "psth", "histology", "ccf")):
            return report.probe_inputs(key) if level == "probe" else report.unit_inputs(key)
        ephys = _mod("ephys")  # some schemas missing: what there is
        return _hash(ephys._fingerprint(key), level)

    def _stored(self, table, key: dict, name: str, current: str) -> bytes | None:
        if not have("report"):
            return None
        hashes = (table & {k: key[k] for k in table.primary_key if k in key}).to_arrays("inputs_hash")
        if not len(hashes) or hashes[0] != current:
            return None
        png = (table.Figure & key & {"figure_name": name}).to_arrays("png")
        return _mod("report").png_bytes(png[0]) if len(png) else None

    # -- one figure ----------------------------------------------------------------------------

    def session(self, key: dict, name: str) -> bytes:
        if name not in SESSION_FIGURES:
            raise NotFound(f"no session figure {name!r}")
        _require("session")
        key = {k: key[k] for k in ("subject_id", "session")}
        current = self.inputs("session", key)
        stored = self._stored(_mod("report").SessionReport, key, name, current)
        if stored is not None:
            return stored
        ckey = ("session", tuple(key.values()), name, current)
        return self._drawn(ckey, lambda: self._draw_session(key, name, current))

    def probe(self, key: dict, name: str) -> bytes:
        if name not in PROBE_FIGURES:
            raise NotFound(f"no probe figure {name!r}")
        _require(name)
        key = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
        current = self.inputs("probe", key)
        stored = self._stored(_mod("report").ProbeReport, key, name, current)
        if stored is not None:
            return stored
        ckey = ("probe", tuple(key.values()), name, current)
        return self._drawn(ckey, lambda: self._draw_probe(key, name, current))

    def unit(self, key: dict, unit: int, name: str, condition: str | None = None) -> bytes:
        if name not in ("unit", "condition"):
            raise NotFound(f"no unit figure {name!r}")
        _require(name)
        key = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
        current = self.inputs("unit", key)
        if name == "unit":
            stored = self._stored(_mod("report").UnitReport, dict(key, unit=unit), "unit", current)
            if stored is not None:
                return stored
        ckey = ("unit", tuple(key.values()), unit, name, condition, current)
        return self._drawn(ckey, lambda: self._draw_unit(key, unit, name, condition))

    def _drawn(self, ckey, draw) -> bytes:
        png = self.cache.get(ckey)
        if png is not None:
            return png
        with self.draw_lock:  # one drawing at a time; a second request for it waits, then finds it
            png = self.cache.get(ckey)
            if png is not None:
                return png
            try:
                png = draw()
            except MapError as e:  # e.g. a schema module that is not bound: not available here
                raise NotFound(f"figure not available: {e}") from e
            finally:
                if have("psth"):  # the psth helpers cache a session's trials; the data may change
                    _mod("psth").clear_caches()
            if png is None:
                raise NotFound("this figure has no data to show")
            self.drawn += 1
            self.cache.put(ckey, png)
            return png

    # -- drawing ---------------------------------------------------------------------------------

    def _draw_session(self, key: dict, name: str, current: str) -> bytes | None:
        report = _mod("report")
        # the report's own make_compute draws the session's figures (it uses nothing of the table
        # instance, so no instance is made: that would activate a report schema that may not exist)
        _, rows = report.SessionReport.make_compute(None, key, current)
        found = None
        for r in rows:
            png = report.png_bytes(r["png"])
            self.cache.put(("session", tuple(key.values()), r["figure_name"], current), png)
            if r["figure_name"] == name:
                found = png
        return found

    def _probe_frame(self, key: dict, current: str):
        ckey = ("frame", tuple(key.values()), current)
        frame = self.frames.get(ckey)
        if frame is None:
            frame = _mod("report")._probe_units(key)
            self.frames.put(ckey, frame)
        return frame

    def _draw_probe(self, key: dict, name: str, current: str) -> bytes | None:
        from .. import figures

        report, ephys, lab = _mod("report"), _mod("ephys"), _mod("lab")
        title = report._probe_title(key)
        units = self._probe_frame(key, current)
        if name == "clustering_quality":
            fig = figures.clustering_quality(units, title=f"{title}: clustering quality")
        elif name == "unit_characteristics":
            x, y = (
                lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
                & (ephys.ProbeInsertion & key).proj("probe_type", "electrode_config_name")
            ).to_arrays("x_coord", "y_coord")
            fig = figures.unit_characteristics(units, x, y, title=f"{title}: unit characteristics")
        elif name == "group_psth":
            fig = report._group_psth_figure(key, units, title)
        elif name == "photostim_effect":
            fig = report._photostim_units_figure(key, units, title)
        elif name == "drift_map":
            fig = report._drift_map_figure(key, units, title)
        else:
            fig = report._coronal_figure(key, title)
        return None if fig is None else figures.to_png(fig)

    def _draw_unit(self, key: dict, unit: int, name: str, condition: str | None) -> bytes | None:
        from .. import figures

        ukey = dict(key, unit=int(unit))
        if not (_mod("ephys").Clustering.Unit & ukey):
            raise NotFound(f"no unit {unit}")
        if name == "unit":
            return figures.to_png(figures.unit_summary(**unit_summary_inputs(key, int(unit))))
        return figures.to_png(condition_figure(**condition_inputs(key, int(unit), condition)))


# --- inputs of the unit figures -----------------------------------------------------------------


def unit_summary_inputs(key: dict, unit: int) -> dict:
    """Keyword arguments of :func:`pipeline.figures.unit_summary` for one unit, passing the criteria or
    not (the report draws only those that pass; the navigator shows every unit)."""
    return _mod("report").unit_figure_inputs(key, units=[unit])[0][1]


def condition_inputs(key: dict, unit: int, condition: str) -> dict:
    """Raster (go-aligned) and PSTH of one unit on one trial condition's trials."""
    report, psth = _mod("report"), _mod("psth")
    ukey = dict(key, unit=unit)
    times, rows = psth.trial_aligned_spikes(ukey, condition)
    n = len(psth.condition_trials(condition, key))
    if psth.UnitPsth.Unit & ukey & {"trial_condition_name": condition}:
        rates, centers, _ = psth.unit_psth(ukey, condition)
    else:  # not computed (e.g. a unit of quality 'all'): the same 40 ms bins from the raster
        from ..analysis import psth as apsth

        centers = apsth.bin_centers()
        counts, _ = np.histogram(times, bins=apsth.bin_edges())
        rates = counts / (max(n, 1) * apsth.BIN_S)
    return dict(
        times=np.asarray(times),
        rows=np.asarray(rows),
        n_trials=n,
        centers=np.asarray(centers),
        rates=np.asarray(rates, dtype=np.float64),
        title=f"{report._probe_title(key)} unit {unit}: {condition.replace('_', ' ')} ({n} trials)",
    )


def condition_figure(times, rows, n_trials, centers, rates, title: str = ""):
    """A raster (one row per trial of the condition, go-aligned) above its PSTH."""
    from .. import figures

    fig = figures.new_figure(8, 5, layout=None)
    grid = fig.add_gridspec(2, 1, height_ratios=[2, 1], left=0.09, right=0.98, top=0.9, bottom=0.11, hspace=0.08)
    ax_r = fig.add_subplot(grid[0])
    if len(times):
        ax_r.plot(times, rows, "|", color="k", ms=2, mew=0.6)
    else:
        figures._empty(ax_r, "no spikes on these trials")
    half = (centers[1] - centers[0]) / 2 if len(centers) > 1 else 0.02
    ax_r.axvline(0, color="0.5", ls="--", lw=0.8)
    ax_r.set_ylim(max(n_trials, 1), 0)
    ax_r.set_ylabel("trial")
    ax_r.tick_params(labelbottom=False)
    ax_p = fig.add_subplot(grid[1], sharex=ax_r)
    ax_p.plot(centers, rates, color="k")
    ax_p.axvline(0, color="0.5", ls="--", lw=0.8)
    ax_p.set_xlim(centers[0] - half, centers[-1] + half)
    ax_p.set_xlabel("time from go cue (s)")
    ax_p.set_ylabel("rate (Hz)")
    fig.suptitle(title or "raster and PSTH", fontsize=10)
    return fig
