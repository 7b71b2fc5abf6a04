"""Histology files (spec 3.5): probe-track points, electrode CCF positions and landmarks.

Format 1 (MAP's own MATLAB track finder), one pair per probe (per shank on multi-shank probes)::

    landmarks_{h2o}_{YYYYMMDD}[_{HHMMSS}]_{probe}[_{shank}]_siteInfo.mat
    landmarks_{h2o}_{YYYYMMDD}[_{HHMMSS}]_{probe}[_{shank}].csv

* ``*_siteInfo.mat`` holds the struct ``site`` saved by the track finder (``save(..., 'site')``):
  ``site.pos.x/y/z`` site positions in Allen-atlas pixels of ``site.pos.mmPerPixel`` mm (0.02), in
  the pipeline's order x = ML, y = DV, z = AP; ``site.warp.x/y/z`` the same sites in the subject's
  (MRI) space; ``site.ont.id`` (NaN outside the brain) and ``site.ont.name`` (empty outside) the
  region of each site. Rows run along the shank in electrode order. Other fields (``orig``,
  ``in.brain``) are ignored. CCF um = pos * mmPerPixel * 1000, rounded to the 20 um grid.
* The ``.csv`` is a BigWarp landmark table, 8 columns, no header (fields may be quoted):
  ``name, warp ('true'/'false'), subj_x, subj_y, subj_z, ccf_x, ccf_y, ccf_z``. 'true' rows are
  subject -> CCF warp landmarks (histology.SubjectToCCFTransformation.Landmark), 'false' rows the
  labelled probe-track points (histology.LabeledProbeTrack.Point, in file order). BigWarp writes
  ``Infinity`` for an unmatched point; such values are kept as inf.

Format 2 (IBL's ephys alignment GUI):

* ``channel_locations.json`` (``channel_locations_shank{n}.json`` per shank of multi-shank probes,
  possibly with a ``{h2o}_{YYYYMMDD}_{probe}_`` prefix): ``{"channel_0": {"x", "y", "z", "axial",
  "lateral", "brain_region_id", "brain_region"}, ..., "origin": {"bregma": [ml, ap, dv]}}``. x, y, z
  are um relative to the origin with x = ML (right +), y = AP (anterior +), z = DV (up +); the
  origin is given in CCF um (IBL writes bregma = [5739, 5400, 332]). axial / lateral are the
  site's position on the probe (um), the way to match a channel to an electrode.
* ``xyz_picks.json`` (``xyz_picks_shank{n}.json``): ``{"xyz_picks": [[x, y, z], ...]}``, the
  hand-traced track in the same bregma-relative um.
* CCF: ccf_x = o0 + x, ccf_y = o2 - z, ccf_z = o1 - y, rounded to 20 um.

``*_pts.csv`` (Lasagna track points, as IBL traced them): no header, three integer columns, voxel
indices of the 25 um Allen atlas in the order (AP counted from the posterior end, ML, DV). ibllib
reads them the same way (``load_track_csv``: AP index = 527 - column 0).

Matching IBL channels to electrodes: IBL's probe coordinates are the probe's own up to a mirror
and an offset. For Neuropixels 1.0 IBL puts channel 0 at lateral 43 um, axial 20 um where
SpikeGLX (and the pipeline) put electrode 1 at 27 um (16 um from the lowest-left site), 0 um:
the layout is mirrored across the shank. For 2.0 probes ibllib's offsets changed between
versions (x 0/32 or 27/59). :func:`match_ibl_channels` therefore finds the mirror and offset
that put every channel exactly on a distinct configured electrode, and when both orientations
fit, keeps the one under which channel order follows electrode order (channel i is the i-th
recorded site, as in SpikeGLX).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .files import existing_file

__all__ = [
    "CCF_GRID_UM",
    "CHANNEL_COLUMNS",
    "LANDMARK_COLUMNS",
    "ChannelLocations",
    "HistologyError",
    "SiteInfo",
    "ibl_to_ccf",
    "ibl_xyz_to_ccf",
    "lasagna_to_ccf",
    "match_ibl_channels",
    "parse_track_points_filename",
    "parse_histology_filename",
    "read_channel_locations",
    "read_landmarks_csv",
    "read_site_info",
    "read_track_points",
    "read_xyz_picks",
]

CCF_GRID_UM = 20
#: the Lasagna track points' atlas: Allen 25 um, 528 planes along AP
LASAGNA_VOXEL_UM = 25.0
LASAGNA_AP_PLANES = 528
LANDMARK_COLUMNS = ("landmark_name", "warp", "subj_x", "subj_y", "subj_z", "ccf_x", "ccf_y", "ccf_z")
CHANNEL_COLUMNS = ("channel", "x", "y", "z", "axial", "lateral", "brain_region_id", "brain_region")


class HistologyError(InputError):
    """A histology file is missing, malformed or inconsistent; the message names it."""


def _check_file(path) -> Path:
    return existing_file(path, HistologyError)


def _round_grid(values: np.ndarray, grid: float) -> np.ndarray:
    return grid * np.around(np.asarray(values, dtype=np.float64) / grid)


def _csv_rows(path: Path, ncols: int, expected: str):
    """(line number, row) of a header-less CSV, blank lines skipped, each row checked for ``ncols``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != ncols:
                raise HistologyError(f"{path}: line {lineno}: expected {expected}, found {len(row)}")
            yield lineno, row


# --------------------------------------------------------------------------------- track points
def read_track_points(path) -> np.ndarray:
    """(N, 3) int64 points of a header-less 3-column CSV (``*_pts.csv``)."""
    path = _check_file(path)
    rows = []
    for lineno, row in _csv_rows(path, 3, "3 columns"):
        try:
            vals = [float(c) for c in row]
        except ValueError:
            raise HistologyError(f"{path}: line {lineno}: not numbers: {row}") from None
        if not all(math.isfinite(v) and v == round(v) for v in vals):
            raise HistologyError(f"{path}: line {lineno}: expected integers, got {row}")
        rows.append(vals)
    if not rows:
        raise HistologyError(f"{path}: no points")
    return np.array(rows, dtype=np.float64).astype(np.int64)


def lasagna_to_ccf(points) -> np.ndarray:
    """(N, 3) float64 CCF um (ML, DV, AP) of Lasagna track points (25 um voxels: AP from the
    posterior end, ML, DV), sorted from the brain surface down (by DV), as ibllib orders them."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise HistologyError(f"track points must be (N, 3), got shape {p.shape}")
    ccf = np.column_stack([p[:, 1], p[:, 2], (LASAGNA_AP_PLANES - 1) - p[:, 0]]) * LASAGNA_VOXEL_UM
    return ccf[np.argsort(ccf[:, 1], kind="stable")]


_PTS_NAME = re.compile(
    r"(?:probe(?P<probe0>\d+)(?:_shank(?P<shank0>\d+))?"
    r"|(?:\d{8}|\d{4}-\d{2}-\d{2})(?:_\d{6})?_(?P<probe>\d+)(?:_(?P<shank>\d+))?)_pts\.csv$",
    re.IGNORECASE,
)


def parse_track_points_filename(name) -> dict | None:
    """Insertion and shank of a ``*_pts.csv``: ``..._probe{NN}[_shank{s}]_pts.csv`` (IBL's 0-based
    probe names: probe00 is insertion 1) or ``..._{YYYYMMDD}[_{HHMMSS}]_{insertion}[_{shank}]_pts.csv``
    (MAP's 1-based numbers after the date, as in the landmark files). Returns {'insertion_number', 'shank' (None if not given)}
    or None. The session date is matched by the caller (YYYY-MM-DD or YYYYMMDD in the name)."""
    m = _PTS_NAME.search(Path(str(name)).name)
    if not m:
        return None
    number = int(m["probe0"]) + 1 if m["probe0"] is not None else int(m["probe"])
    shank = m["shank0"] if m["probe0"] is not None else m["shank"]
    return {"insertion_number": number, "shank": int(shank) if shank else None}


def match_ibl_channels(lateral, axial, x, y, tol_um: float = 0.5) -> np.ndarray:
    """Index into the electrodes (``x``, ``y``: um, in electrode order) of each IBL channel.

    Tries IBL's layout as is and mirrored, each shifted so the lowest-left points coincide; a
    fit puts every channel on a distinct electrode within ``tol_um``. Raises HistologyError when
    the counts differ or neither orientation fits. See the module docstring for why."""
    lateral, axial = (np.asarray(v, dtype=np.float64) for v in (lateral, axial))
    x, y = (np.asarray(v, dtype=np.float64) for v in (x, y))
    if len(lateral) != len(x):
        raise HistologyError(f"{len(lateral)} channels but {len(x)} recorded electrodes")
    n = len(x)
    scale = 1.0 / tol_um

    def keys(px, py):
        return np.round(px * scale).astype(np.int64) * (1 << 32) + np.round(py * scale).astype(np.int64)

    ekeys = keys(x - x.min(), y - y.min())
    order = np.argsort(ekeys, kind="stable")
    sorted_keys = ekeys[order]
    fits = []
    for mirror in (False, True):
        lat = -lateral if mirror else lateral
        ck = keys(lat - lat.min(), axial - axial.min())
        pos = np.clip(np.searchsorted(sorted_keys, ck), 0, n - 1)
        hit = sorted_keys[pos] == ck
        if hit.all() and len(np.unique(pos)) == n:
            idx = order[pos]
            fits.append((int((idx == np.arange(n)).sum()), not mirror, idx))
    if not fits:
        raise HistologyError(
            "the channels' (lateral, axial) positions do not match the recorded electrodes' "
            "layout, as given or mirrored"
        )
    return max(fits, key=lambda f: (f[0], f[1]))[2]


# ------------------------------------------------------------------------------------- IBL json
@dataclass
class ChannelLocations:
    path: Path
    shank: int | None  #: from the file name (``..._shank2.json`` -> 2), None if not given
    origin: np.ndarray | None  #: (3,) CCF um of the origin as given (IBL: bregma [ml, ap, dv])
    channels: pd.DataFrame  #: CHANNEL_COLUMNS, one row per channel, sorted by channel
    origin_name: str | None = None  #: the origin's key, e.g. 'bregma'


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HistologyError(f"{path}: not valid JSON ({e})") from None


def _shank_from_name(path: Path) -> int | None:
    m = re.search(r"(\d+)$", path.stem)
    return int(m.group(1)) if m else None


def read_channel_locations(path) -> ChannelLocations:
    """Read an IBL alignment GUI ``channel_locations*.json``."""
    path = _check_file(path)
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise HistologyError(f"{path}: expected a JSON object of channel_N entries")
    origin = origin_name = None
    if "origin" in raw:
        o = raw["origin"]
        if not isinstance(o, dict) or len(o) != 1:
            raise HistologyError(f"{path}: 'origin' must hold exactly one named point, got {o!r}")
        origin_name, value = next(iter(o.items()))
        origin = np.asarray(value, dtype=np.float64)
        if origin.shape != (3,) or not np.isfinite(origin).all():
            raise HistologyError(f"{path}: origin {origin_name!r} must be 3 numbers, got {value!r}")
    keys = []
    for k in raw:
        m = re.fullmatch(r"channel_(\d+)", k)
        if m:
            keys.append((int(m.group(1)), k))
    if not keys:
        raise HistologyError(f"{path}: no channel_N entries")
    keys.sort()
    fields = ("x", "y", "z", "axial", "lateral", "brain_region_id", "brain_region")
    cols: dict[str, list] = {f: [] for f in fields}
    for _, k in keys:
        ch = raw[k]
        if not isinstance(ch, dict):
            raise HistologyError(f"{path}: {k} is not an object")
        missing = [f for f in fields if f not in ch]
        if missing:
            raise HistologyError(f"{path}: {k} lacks {missing}")
        for f in fields:
            cols[f].append(ch[f])
    try:
        num = {f: np.asarray(cols[f], dtype=np.float64) for f in ("x", "y", "z", "axial", "lateral")}
        region_id = np.asarray(cols["brain_region_id"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise HistologyError(f"{path}: non-numeric channel coordinates or region ids ({e})") from None
    for f, v in num.items():
        if not np.isfinite(v).all():
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise HistologyError(f"{path}: {keys[i][1]}.{f} is not a finite number")
    if not (np.isfinite(region_id).all() and (region_id == np.round(region_id)).all()):
        raise HistologyError(f"{path}: brain_region_id values must be integers")
    channels = pd.DataFrame(
        {
            "channel": np.array([i for i, _ in keys], dtype=np.int64),
            **num,
            "brain_region_id": region_id.astype(np.int64),
            "brain_region": pd.Series([None if r is None else str(r) for r in cols["brain_region"]], dtype=object),
        },
        columns=list(CHANNEL_COLUMNS),
    )
    return ChannelLocations(
        path=path, shank=_shank_from_name(path), origin=origin, channels=channels, origin_name=origin_name
    )


def ibl_xyz_to_ccf(xyz, origin, round_to: float | None = CCF_GRID_UM) -> np.ndarray:
    """IBL bregma-relative (x=ML, y=AP, z=DV up) um -> pipeline CCF (ccf_x=ML, ccf_y=DV, ccf_z=AP) um.

    ccf_x = o0 + x, ccf_y = o2 - z, ccf_z = o1 - y; rounded to ``round_to`` um (int64) unless None
    (then float64)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise HistologyError(f"coordinates must be (N, 3), got shape {xyz.shape}")
    if o.shape != (3,):
        raise HistologyError(f"origin must be 3 numbers, got {origin!r}")
    ccf = np.column_stack([o[0] + xyz[:, 0], o[2] - xyz[:, 2], o[1] - xyz[:, 1]])
    if round_to is None:
        return ccf
    return _round_grid(ccf, round_to).astype(np.int64)


def ibl_to_ccf(locations: ChannelLocations) -> np.ndarray:
    """(N, 3) int64 CCF um (ML, DV, AP) of the channels, rounded to 20 um (spec 3.5)."""
    if locations.origin is None:
        raise HistologyError(f"{locations.path}: no 'origin' in the file; cannot place the channels in the CCF")
    xyz = locations.channels[["x", "y", "z"]].to_numpy(dtype=np.float64)
    return ibl_xyz_to_ccf(xyz, locations.origin)


def read_xyz_picks(path) -> np.ndarray:
    """(N, 3) float64 track points of an IBL ``xyz_picks*.json`` (um, bregma-relative x=ML, y=AP, z=DV)."""
    path = _check_file(path)
    raw = _load_json(path)
    if not isinstance(raw, dict) or "xyz_picks" not in raw:
        raise HistologyError(f"{path}: no 'xyz_picks' entry")
    try:
        pts = np.asarray(raw["xyz_picks"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise HistologyError(f"{path}: xyz_picks is not an N x 3 list of numbers ({e})") from None
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise HistologyError(f"{path}: xyz_picks must be a non-empty N x 3 list, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise HistologyError(f"{path}: xyz_picks has non-finite values")
    return pts


# ------------------------------------------------------------------------------- MAP format 1
@dataclass
class SiteInfo:
    path: Path
    mm_per_pixel: float
    pos: np.ndarray  #: (N, 3) float64 site positions in atlas pixels (x=ML, y=DV, z=AP)
    warp: np.ndarray  #: (N, 3) float64 the same sites in the subject (MRI) space, as stored
    ont_id: np.ndarray  #: (N,) int64 region id, 0 where the file has NaN (outside the brain)
    ont_name: list[str | None]  #: (N,) region name, None where empty

    @property
    def ccf(self) -> np.ndarray:
        """(N, 3) int64 CCF um (ML, DV, AP): pos * mmPerPixel * 1000 rounded to 20 um (spec)."""
        return _round_grid(self.pos * (self.mm_per_pixel * 1000.0), CCF_GRID_UM).astype(np.int64)

    @property
    def warp_um(self) -> np.ndarray:
        """(N, 3) float64 subject-space position scaled like pos (warp * mmPerPixel * 1000), as the
        original loader stored it in ElectrodePosition.mri_x/y/z."""
        return self.warp * (self.mm_per_pixel * 1000.0)

    @property
    def in_brain(self) -> np.ndarray:
        """(N,) bool: the site has a region (ont.id > 0); only these become ElectrodePosition rows."""
        return self.ont_id > 0


def _field(obj, name, path, where):
    if isinstance(obj, dict) and name in obj:
        return obj[name]
    raise HistologyError(f"{path}: {where} has no field {name!r}")


def _vector(value, path, where) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise HistologyError(f"{path}: {where} is not numeric") from None
    if v.ndim == 0:
        v = v.reshape(1)
    if v.ndim == 2 and 1 in v.shape:
        v = v.ravel()
    if v.ndim != 1:
        raise HistologyError(f"{path}: {where} must be a vector, got shape {v.shape}")
    return v


def read_site_info(path) -> SiteInfo:
    """Read ``landmarks_*_siteInfo.mat`` (struct ``site``; MATLAB v5 or v7.3)."""
    from pipeline.io.matfile import MatFileError, read_mat

    path = _check_file(path)
    try:
        data = read_mat(path, variable_names=["site"])
    except MatFileError as e:
        raise HistologyError(str(e)) from None
    if "site" not in data:
        raise HistologyError(f"{path}: no variable 'site'")
    site = data["site"]
    if not isinstance(site, dict):
        raise HistologyError(f"{path}: 'site' is not a struct")
    pos = _field(site, "pos", path, "site")
    warp = _field(site, "warp", path, "site")
    ont = _field(site, "ont", path, "site")
    mm = _vector(_field(pos, "mmPerPixel", path, "site.pos"), path, "site.pos.mmPerPixel")
    if mm.size != 1 or not (np.isfinite(mm[0]) and mm[0] > 0):
        raise HistologyError(f"{path}: site.pos.mmPerPixel must be one positive number, got {mm}")
    p = _xyz(pos, path, "site.pos")
    w = _xyz(warp, path, "site.warp")
    n = len(p)
    ids = _vector(_field(ont, "id", path, "site.ont"), path, "site.ont.id")
    if len(w) != n or len(ids) != n:
        raise HistologyError(f"{path}: site.pos has {n} sites but site.warp {len(w)} and site.ont.id {len(ids)}")
    finite = np.isfinite(ids)
    if not (ids[finite] == np.round(ids[finite])).all() or (ids[finite] < 0).any():
        raise HistologyError(f"{path}: site.ont.id must hold non-negative integers or NaN")
    names: list[str | None]
    raw_names = ont.get("name") if isinstance(ont, dict) else None
    if raw_names is None:
        names = [None] * n
    else:
        if isinstance(raw_names, str):
            raw_names = [raw_names]
        names = [s if isinstance(s, str) and s != "" else None for s in list(raw_names)]
        if len(names) != n:
            raise HistologyError(f"{path}: site.ont.name has {len(names)} entries for {n} sites")
    if not np.isfinite(p).all():
        raise HistologyError(f"{path}: site.pos has non-finite positions")
    return SiteInfo(
        path=path,
        mm_per_pixel=float(mm[0]),
        pos=p,
        warp=w,
        ont_id=np.where(finite, ids, 0).astype(np.int64),
        ont_name=names,
    )


def _xyz(struct, path, where) -> np.ndarray:
    cols = [_vector(_field(struct, a, path, where), path, f"{where}.{a}") for a in "xyz"]
    lens = [c.size for c in cols]
    if len(set(lens)) != 1:
        raise HistologyError(f"{path}: {where}.x/y/z have different lengths {lens}")
    return np.column_stack(cols)


def read_landmarks_csv(path) -> pd.DataFrame:
    """Read a MAP landmark / track CSV (8 columns, no header) into LANDMARK_COLUMNS, file order."""
    path = _check_file(path)
    rows = []
    for lineno, row in _csv_rows(path, 8, "8 columns (name, warp, subj_x, subj_y, subj_z, ccf_x, ccf_y, ccf_z)"):
        warp = row[1].strip().lower()
        if warp not in ("true", "false"):
            raise HistologyError(f"{path}: line {lineno}: warp flag must be true or false, got {row[1]!r}")
        try:
            nums = [float(c) for c in row[2:]]
        except ValueError:
            raise HistologyError(f"{path}: line {lineno}: coordinates are not numbers: {row[2:]}") from None
        rows.append([row[0].strip(), warp == "true", *nums])
    if not rows:
        raise HistologyError(f"{path}: no landmarks")
    df = pd.DataFrame(rows, columns=list(LANDMARK_COLUMNS))
    df["landmark_name"] = df["landmark_name"].astype(object)
    df["warp"] = df["warp"].astype(bool)
    return df


_NAME = re.compile(
    r"^landmarks_(?P<h2o>[^_]+)_(?P<date>\d{8})(?:_(?P<time>\d{6}))?_(?P<probe>\d+)(?:_(?P<shank>\d+))?"
    r"(?P<kind>_siteInfo\.mat|\.csv)$",
    re.IGNORECASE,
)


def parse_histology_filename(name) -> dict | None:
    """Parse ``landmarks_{h2o}_{YYYYMMDD}[_{HHMMSS}]_{probe}[_{shank}](_siteInfo.mat|.csv)``.

    Returns ``{'h2o', 'date' (datetime.date), 'time' (datetime.time or None), 'probe' (int),
    'shank' (int or None), 'kind' ('siteInfo' or 'landmarks')}``, or None when the name does not
    match (or holds an impossible date/time)."""
    m = _NAME.match(Path(str(name)).name)
    if not m:
        return None
    try:
        date = dt.datetime.strptime(m["date"], "%Y%m%d").date()
        time = dt.datetime.strptime(m["time"], "%H%M%S").time() if m["time"] else None
    except ValueError:
        return None
    return {
        "h2o": m["h2o"],
        "date": date,
        "time": time,
        "probe": int(m["probe"]),
        "shank": int(m["shank"]) if m["shank"] else None,
        "kind": "siteInfo" if m["kind"].lower() == "_siteinfo.mat" else "landmarks",
    }
