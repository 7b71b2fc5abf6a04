"""Electrode positions and probe tracks in the CCF, completed from the histology: pure functions
(arrays in, arrays out; no database).

Coordinates are CCF micrometres: x = ML, y = DV (down), z = AP.
"""

from __future__ import annotations

import numpy as np

GRID_UM = 20.0  #: the annotation's voxel, and the rounding of interpolated positions


def interpolate_positions(
    group: np.ndarray, along: np.ndarray, known: np.ndarray, xyz: np.ndarray, fallback: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fill in the positions of electrodes the histology did not place.

    ``group``: each electrode's (shank, column) group as one integer; ``along``: its position along
    the shank (um, the probe's y); ``known``: whether it has a position; ``xyz``: (n, 3) positions
    (rows of unknown electrodes are ignored). Per group, each coordinate is linearly interpolated
    in ``along`` between the placed electrodes and extrapolated beyond them with the slope of the
    nearest two; a group with fewer than two placed electrodes uses those of ``fallback`` (e.g. the
    electrode's whole shank) instead. Positions are rounded to 20 um.

    Returns the (n, 3) positions (placed electrodes keep theirs, unrounded) and a mask of the
    electrodes that could be placed (False where even the fallback has fewer than two).
    """
    group = np.asarray(group)
    along = np.asarray(along, dtype=np.float64)
    known = np.asarray(known, dtype=bool)
    out = np.array(xyz, dtype=np.float64, copy=True)
    placed = known.copy()
    fallback = group if fallback is None else np.asarray(fallback)
    for level in (group, fallback):
        for g in np.unique(level[~placed]):
            members = level == g
            src = members & known
            todo = members & ~placed
            if src.sum() < 2 or not todo.any():
                continue
            order = np.argsort(along[src])
            a = along[src][order]
            a, first = np.unique(a, return_index=True)  # one position per height
            if len(a) < 2:
                continue
            for c in range(3):
                v = xyz[src][order][first, c]
                out[todo, c] = _interp_extrap(along[todo], a, v)
            placed |= todo
    fill = placed & ~known
    out[fill] = np.round(out[fill] / GRID_UM) * GRID_UM
    return out, placed


def _interp_extrap(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Interpolate inside [xp[0], xp[-1]]; outside, the least-squares line through (xp, fp)."""
    y = np.interp(x, xp, fp)
    outside = (x < xp[0]) | (x > xp[-1])
    if outside.any():
        slope, intercept = np.polyfit(xp, fp, 1)
        y[outside] = slope * x[outside] + intercept
    return y


def fit_track(points: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares straight track through (n, 3) points: ML = a_ml * DV + b_ml and
    AP = a_ap * DV + b_ap (a shank goes down, so DV is the free variable). Needs points at two
    depths at least. Returns (a_ml, b_ml, a_ap, b_ap)."""
    p = np.asarray(points, dtype=np.float64)
    if len(np.unique(p[:, 1])) < 2:
        raise ValueError("a track needs points at two depths at least")
    design = np.c_[p[:, 1], np.ones(len(p))]
    (a_ml, b_ml), *_ = np.linalg.lstsq(design, p[:, 0], rcond=None)
    (a_ap, b_ap), *_ = np.linalg.lstsq(design, p[:, 2], rcond=None)
    return float(a_ml), float(b_ml), float(a_ap), float(b_ap)


def sample_track(fit: tuple[float, float, float, float], dv_stop: float, step: float = GRID_UM) -> np.ndarray:
    """The track's points every ``step`` um of DV from the top of the volume (DV 0) down to
    ``dv_stop``, as (n, 3) CCF coordinates rounded to the 20 um grid."""
    a_ml, b_ml, a_ap, b_ap = fit
    dv = np.arange(0.0, dv_stop + step / 2, step)
    xyz = np.c_[a_ml * dv + b_ml, dv, a_ap * dv + b_ap]
    return np.round(xyz / GRID_UM) * GRID_UM
