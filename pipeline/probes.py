"""Electrode geometry of the probe types the lab uses, built with probeinterface.

Positions are probeinterface's (the manufacturer's catalogue): micrometres, x across the probe
(including the 250 um shank pitch of multi-shank probes), y up from the lowest site. For
Neuropixels 1.0 this equals the original pipeline's own builder (columns at 0/32 um, even rows
shifted by 16 um, 20 um row pitch). ``shank_col`` is the 1-based rank of a site's x within its
row on its shank, ``shank_row`` the 1-based rank of its y on its shank.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class ProbeTypeInfo:
    probe_type: str  #: the name used in lab.ProbeType
    part_number: str | None  #: probeinterface / manufacturer part number, None for no geometry
    description: str


#: Probe types known to the pipeline. The first six are the original pipeline's names. Commercial
#: parts with the layout of an earlier one share its type (NP2003/NP2004 -> "2.0 - SS", NP2013/NP2014
#: -> "2.0 - MS"; the SpikeGLX reader checks the layouts are equal in probeinterface's catalogue).
PROBE_TYPES: tuple[ProbeTypeInfo, ...] = (
    ProbeTypeInfo("silicon_probe", None, "generic silicon probe (geometry not tracked)"),
    ProbeTypeInfo("tetrode_array", None, "tetrode array (geometry not tracked)"),
    ProbeTypeInfo("neuropixels 1.0 - 3A", "NP1000", "Neuropixels 1.0, phase 3A prototype (960 sites, 1 shank)"),
    ProbeTypeInfo("neuropixels 1.0 - 3B", "NP1000", "Neuropixels 1.0, phase 3B / commercial (960 sites, 1 shank)"),
    ProbeTypeInfo("neuropixels 2.0 - SS", "NP2000", "Neuropixels 2.0 single shank (1280 sites)"),
    ProbeTypeInfo("neuropixels 2.0 - MS", "NP2010", "Neuropixels 2.0 four shanks (4 x 1280 sites)"),
    ProbeTypeInfo(
        "neuropixels 1.0 - NHP long",
        "NP1030",
        "Neuropixels 1.0 NHP long (SOI90; 4416 sites, 1 shank, 2 columns 87 um apart, 20 um rows)",
    ),
    ProbeTypeInfo(
        "neuropixels 1.0 - ultra",
        "NP1100",
        "Neuropixels Ultra (NP1.0 UHD1 passive; 384 sites, 8 columns x 48 rows, 6 um pitch)",
    ),
    ProbeTypeInfo(
        "neuropixels 1.0 - NHP short",
        "NP1015",
        "Neuropixels 1.0 NHP short linear (NP1015/NP1016/NP1017; 960 sites, 2 columns 32 um apart, not staggered)",
    ),
    ProbeTypeInfo(
        "neuropixels 1.0 - UHD switchable",
        "NP1110",
        "Neuropixels Ultra switchable (NP1.0 UHD2 active; 6144 sites, 8 columns x 768 rows, 6 um pitch, "
        "384 channels chosen in 24 groups by the imro table)",
    ),
    ProbeTypeInfo(
        "neuropixels 2.0 - quad base",
        "NP2020",
        "Neuropixels 2.0 quad base (4 x 1280 sites, 4 x 384 channels recorded at once)",
    ),
)

ELECTRODE_COLUMNS = ("electrode", "shank", "shank_col", "shank_row", "x_coord", "y_coord", "z_coord")


def info(probe_type: str) -> ProbeTypeInfo:
    for p in PROBE_TYPES:
        if p.probe_type == probe_type:
            return p
    raise KeyError(f"unknown probe type {probe_type!r}; known: {', '.join(p.probe_type for p in PROBE_TYPES)}")


@cache
def _catalogue_probe(part_number: str):
    from probeinterface.neuropixels_tools import build_neuropixels_probe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_neuropixels_probe(part_number)


def _dense_rank(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value among the distinct values."""
    return np.unique(values, return_inverse=True)[1].astype(np.int64) + 1


def electrode_table(probe_type: str) -> dict[str, np.ndarray]:
    """Columns of lab.ProbeType.Electrode for ``probe_type`` (empty arrays if no geometry)."""
    pinfo = info(probe_type)
    if pinfo.part_number is None:
        return {c: np.empty(0) for c in ELECTRODE_COLUMNS}
    probe = _catalogue_probe(pinfo.part_number)
    pos = np.asarray(probe.contact_positions, dtype=np.float64)
    n = len(pos)
    ids = probe.shank_ids
    has_shanks = ids is not None and len(ids) == n and all(str(i) != "" for i in ids[:1])
    shank = np.asarray(ids).astype(np.int64) + 1 if has_shanks else np.ones(n, dtype=np.int64)
    row = np.empty(n, dtype=np.int64)
    col = np.empty(n, dtype=np.int64)
    for s in np.unique(shank):
        on = shank == s
        row[on] = _dense_rank(pos[on, 1])
    # column = rank of x among the sites of the same (shank, row): sort by (shank, row, x)
    order = np.lexsort((pos[:, 0], row, shank))
    keys = shank[order] * (n + 1) + row[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    col[order] = np.arange(n) - group_start + 1
    return {
        "electrode": np.arange(1, n + 1, dtype=np.int64),
        "shank": shank,
        "shank_col": col,
        "shank_row": row,
        "x_coord": pos[:, 0],
        "y_coord": pos[:, 1],
        "z_coord": np.zeros(n),
    }


def electrode_rows(probe_type: str) -> list[dict]:
    """``electrode_table`` as insertable rows, each with ``probe_type``."""
    t = electrode_table(probe_type)
    n = len(t["electrode"])
    ints = ("electrode", "shank", "shank_col", "shank_row")
    return [
        {"probe_type": probe_type, **{c: (int(t[c][i]) if c in ints else float(t[c][i])) for c in ELECTRODE_COLUMNS}}
        for i in range(n)
    ]
