"""Histology files with known ground truth (see :mod:`pipeline.io.histology` for the formats).

No public sample of MAP's ``*_siteInfo.mat`` / landmark CSV or of IBL's ``channel_locations.json`` /
``xyz_picks.json`` exists, so these writers follow the formats as their producers write them:

* IBL alignment GUI: ``channel_locations[_shank{n}].json`` = ``{"channel_{i}": {"x", "y", "z",
  "axial", "lateral", "brain_region_id", "brain_region"}, ..., "origin": {"bregma": [5739, 5400, 332]}}``
  (``json.dump(..., indent=2, separators=(',', ': '))``), and ``xyz_picks[_shank{n}].json`` =
  ``{"xyz_picks": [[x, y, z], ...]}``; all um relative to bregma, x = ML, y = AP, z = DV (up +).
* MAP's MATLAB track finder: ``save(..., 'site')`` of the struct ``site`` with ``pos`` (x, y, z,
  mmPerPixel = 0.02), ``warp``, ``orig``, ``ont`` (id with NaN and name with '' outside the brain) and
  ``in.brain``; sites in the brain first (tip first), as the finder fills them. The landmark CSV is
  BigWarp's: ``Pt-{i},true|false,x,y,z,x,y,z`` written with ``%f`` (optionally quoted, as BigWarp does).

Geometry: a straight track in CCF um (x = ML, y = DV, z = AP) from a seeded tip, tilted a little,
in the right hemisphere. Ground truth is computed in CCF space (rounded to the 20 um grid there) and
the files hold the producers' coordinates derived from it, so a reader that gets an axis, a sign or
the origin wrong does not reproduce the truth.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "IBL_BREGMA_MLAPDV_UM",
    "TRACK_REGIONS",
    "IBLAlignmentTruth",
    "SiteInfoTruth",
    "histology_filename",
    "ibl_np1_layout",
    "track_positions",
    "write_channel_locations",
    "write_ibl_alignment",
    "write_landmarks_csv",
    "write_site_info",
    "write_xyz_picks",
]

#: IBL's bregma in Allen CCF um, (ML, AP, DV)
IBL_BREGMA_MLAPDV_UM = (5739.0, 5400.0, 332.0)
#: regions along a generated track, deepest first: (id, acronym, name), real Allen ids
TRACK_REGIONS = ((549, "TH", "Thalamus"), (672, "CP", "Caudoputamen"), (993, "MOs", "Secondary motor area"))
GRID = 20.0


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def track_positions(depth_um, seed=0) -> np.ndarray:
    """(N, 3) float64 CCF um (ML, DV, AP) of points ``depth_um`` above a seeded tip along a seeded,
    slightly tilted track (DV decreases going up)."""
    rng = np.random.default_rng(seed)
    tip = np.array([rng.uniform(6600, 7600), rng.uniform(4200, 5200), rng.uniform(3800, 6200)])
    up = _unit([rng.uniform(-0.25, 0.25), -1.0, rng.uniform(-0.25, 0.25)])
    return tip[None, :] + np.asarray(depth_um, dtype=np.float64)[:, None] * up[None, :]


def _regions_by_depth(depth_um, extent) -> list[tuple[int, str, str]]:
    frac = np.asarray(depth_um, dtype=np.float64) / max(extent, 1e-9)
    k = np.clip((frac * len(TRACK_REGIONS)).astype(int), 0, len(TRACK_REGIONS) - 1)
    return [TRACK_REGIONS[i] for i in k]


def ibl_np1_layout(n_channels=384) -> tuple[np.ndarray, np.ndarray]:
    """(lateral, axial) um of IBL's Neuropixels 1.0 channels.localCoordinates: lateral cycles
    43, 11, 59, 27; axial 20, 20, 40, 40, ..."""
    i = np.arange(n_channels)
    lateral = np.array([43.0, 11.0, 59.0, 27.0])[i % 4]
    axial = 20.0 * (i // 2 + 1)
    return lateral, axial


def _ccf_to_ibl(ccf, origin) -> np.ndarray:
    ccf = np.asarray(ccf, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    return np.column_stack([ccf[:, 0] - o[0], o[1] - ccf[:, 2], o[2] - ccf[:, 1]])


def write_channel_locations(path, channels: pd.DataFrame, origin=IBL_BREGMA_MLAPDV_UM, origin_name="bregma") -> Path:
    """Write ``channels`` (columns channel, x, y, z, axial, lateral, brain_region_id, brain_region)
    the way the IBL alignment GUI does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for r in channels.itertuples(index=False):
        out[f"channel_{int(r.channel)}"] = {
            "x": float(r.x),
            "y": float(r.y),
            "z": float(r.z),
            "axial": float(r.axial),
            "lateral": float(r.lateral),
            "brain_region_id": int(r.brain_region_id),
            "brain_region": str(r.brain_region),
        }
    if origin is not None:
        out["origin"] = {origin_name: [float(v) for v in origin]}
    with open(path, "w") as f:
        json.dump(out, f, indent=2, separators=(",", ": "))
    return path


def write_xyz_picks(path, xyz) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"xyz_picks": np.asarray(xyz, dtype=np.float64).tolist()}, f, indent=2)
    return path


@dataclass
class IBLAlignmentTruth:
    channel_locations_path: Path
    xyz_picks_path: Path
    origin: np.ndarray  #: (3,) as written
    channels: pd.DataFrame  #: as written (channel, x, y, z, axial, lateral, brain_region_id, brain_region)
    ccf: np.ndarray  #: (n_channels, 3) int64 CCF um (ML, DV, AP) on the 20 um grid
    picks: np.ndarray  #: (n_picks, 3) float64 as written (IBL coordinates)
    picks_ccf: np.ndarray  #: (n_picks, 3) float64 CCF um (ML, DV, AP), not rounded


def write_ibl_alignment(
    folder,
    n_channels=384,
    shank: int | None = None,
    prefix: str = "",
    n_picks: int = 12,
    seed: int = 0,
    lateral=None,
    axial=None,
    origin=IBL_BREGMA_MLAPDV_UM,
) -> IBLAlignmentTruth:
    """Write ``{prefix}channel_locations[_shank{n}].json`` and ``xyz_picks[_shank{n}].json`` for one
    shank into ``folder``. ``lateral``/``axial`` default to IBL's NP1 layout."""
    folder = Path(folder)
    if lateral is None or axial is None:
        lateral, axial = ibl_np1_layout(n_channels)
    lateral = np.asarray(lateral, dtype=np.float64)
    axial = np.asarray(axial, dtype=np.float64)
    n = len(axial)
    rng = np.random.default_rng(seed + 1)
    # channel CCF: along the track at its axial height, plus a small off-grid wobble (< 7 um) so
    # the rounding to 20 um is exercised away from ties
    ccf_exact = track_positions(axial, seed) + rng.uniform(-7, 7, (n, 3))
    ccf_exact[:, 0] += lateral - lateral.mean()
    ccf = GRID * np.round(ccf_exact / GRID)
    ccf_true = ccf.astype(np.int64)
    # the file's exact coordinates: the grid point + an offset of < 9 um (never a .5 tie)
    offset = rng.uniform(-9, 9, (n, 3))
    xyz = _ccf_to_ibl(ccf + offset, origin)
    regions = _regions_by_depth(axial - axial.min(), np.ptp(axial) + 1)
    channels = pd.DataFrame(
        {
            "channel": np.arange(n, dtype=np.int64),
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "axial": axial,
            "lateral": lateral,
            "brain_region_id": np.array([r[0] for r in regions], dtype=np.int64),
            "brain_region": pd.Series([r[1] for r in regions], dtype=object),
        }
    )
    suffix = "" if shank is None else f"_shank{shank}"
    cl = write_channel_locations(folder / f"{prefix}channel_locations{suffix}.json", channels, origin)
    depth = np.linspace(0, axial.max() + 1500.0, n_picks)
    picks_ccf = track_positions(depth, seed)
    picks = _ccf_to_ibl(picks_ccf, origin)
    xp = write_xyz_picks(folder / f"xyz_picks{suffix}.json", picks)
    return IBLAlignmentTruth(cl, xp, np.asarray(origin, dtype=np.float64), channels, ccf_true, picks, picks_ccf)


@dataclass
class SiteInfoTruth:
    path: Path
    mm_per_pixel: float
    pos: np.ndarray  #: (N, 3) as written (atlas pixels)
    warp: np.ndarray  #: (N, 3) as written
    ccf: np.ndarray  #: (N, 3) int64 CCF um (ML, DV, AP) on the 20 um grid
    ont_id: np.ndarray  #: (N,) int64, 0 outside the brain
    ont_name: list  #: (N,) str or None outside the brain


def write_site_info(
    path, n_sites=1000, n_in_brain=None, mm_per_pixel=0.02, site_pitch_um=10.0, seed=0
) -> SiteInfoTruth:
    """Write a MAP ``landmarks_*_siteInfo.mat`` (MATLAB v5) with struct ``site``; sites run from the
    tip up the shank, the first ``n_in_brain`` (default 80 %) in the brain."""
    import scipy.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_in = int(round(0.8 * n_sites)) if n_in_brain is None else int(n_in_brain)
    rng = np.random.default_rng(seed + 2)
    depth = np.arange(n_sites) * float(site_pitch_um)
    ccf = GRID * np.round(track_positions(depth, seed) / GRID)
    px = mm_per_pixel * 1000.0
    pos = (ccf + rng.uniform(-9, 9, ccf.shape)) / px  # sub-pixel positions, never a tie
    warp = pos * rng.uniform(0.9, 1.1, 3) + rng.uniform(-50, 50, 3)  # some affine "subject" space
    regions = _regions_by_depth(depth[:n_in], depth[n_in - 1] + 1 if n_in else 1)
    ont_id = np.zeros(n_sites, dtype=np.int64)
    ont_id[:n_in] = [r[0] for r in regions]
    names = [r[2] for r in regions] + [None] * (n_sites - n_in)
    id_field = np.where(ont_id > 0, ont_id.astype(np.float64), np.nan)[:, None]
    name_cell = np.empty((n_sites, 1), dtype=object)
    for i, nm in enumerate(names):
        name_cell[i, 0] = "" if nm is None else nm
    col = lambda v: np.asarray(v, dtype=np.float64)[:, None]
    site = {
        "pos": {"x": col(pos[:, 0]), "y": col(pos[:, 1]), "z": col(pos[:, 2]), "mmPerPixel": float(mm_per_pixel)},
        "warp": {"x": col(warp[:, 0]), "y": col(warp[:, 1]), "z": col(warp[:, 2])},
        "orig": {"x": col(warp[:, 0] * 2), "y": col(warp[:, 1] * 2), "z": col(warp[:, 2] * 2)},
        "ont": {"id": id_field, "name": name_cell},
        "in": {"brain": (ont_id > 0)[:, None]},
    }
    sio.savemat(str(path), {"site": site}, do_compression=True, oned_as="column")
    return SiteInfoTruth(path, float(mm_per_pixel), pos, warp, ccf.astype(np.int64), ont_id, names)


def write_landmarks_csv(path, n_warp=12, n_track=20, seed=0, quoted=False) -> pd.DataFrame:
    """Write a MAP landmark CSV (BigWarp format, no header): ``n_warp`` 'true' warp landmarks then
    ``n_track`` 'false' probe-track points (CCF along the generated track). Returns the expected
    :func:`~pipeline.io.histology.read_landmarks_csv` result (values as written, ``%f``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 3)
    warp_ccf = rng.uniform([1000, 500, 1000], [10000, 7000, 12000], (n_warp, 3))
    track_ccf = track_positions(np.linspace(0, 3000, n_track), seed)
    ccf = np.vstack([warp_ccf, track_ccf])
    subj = ccf * rng.uniform(0.9, 1.1, 3) + rng.uniform(-300, 300, 3)
    names = [f"Pt-{i}" for i in range(len(ccf))]
    flags = [True] * n_warp + [False] * n_track
    lines = []
    for nm, fl, s, c in zip(names, flags, subj, ccf):
        cells = [nm, "true" if fl else "false", *(f"{v:f}" for v in (*s, *c))]
        lines.append(",".join(f'"{x}"' for x in cells) if quoted else ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    vals = np.round(np.hstack([subj, ccf]), 6)
    return pd.DataFrame(
        {
            "landmark_name": pd.Series(names, dtype=object),
            "warp": np.array(flags, dtype=bool),
            "subj_x": vals[:, 0],
            "subj_y": vals[:, 1],
            "subj_z": vals[:, 2],
            "ccf_x": vals[:, 3],
            "ccf_y": vals[:, 4],
            "ccf_z": vals[:, 5],
        }
    )


def histology_filename(
    h2o: str, date: dt.date, probe: int, kind: str = "siteInfo", time: dt.time | None = None, shank: int | None = None
) -> str:
    """``landmarks_{h2o}_{YYYYMMDD}[_{HHMMSS}]_{probe}[_{shank}]`` + ``_siteInfo.mat`` or ``.csv``."""
    parts = [f"landmarks_{h2o}", date.strftime("%Y%m%d")]
    if time is not None:
        parts.append(time.strftime("%H%M%S"))
    parts.append(str(int(probe)))
    if shank is not None:
        parts.append(str(int(shank)))
    return "_".join(parts) + ("_siteInfo.mat" if kind == "siteInfo" else ".csv")
