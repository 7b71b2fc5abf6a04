"""Allen-style CCF annotation volumes with known labels (real Allen structure ids).

The labels are a pure function of the voxel index (:func:`annotation_labels`), so the ground truth
of any voxel of any file written here, even a full-size one, can be recomputed without the file:

* an ellipsoidal "brain" (0 outside), cut into blocks: dorsal third MOs / MOp / SSp along AP; middle
  third CP (left half of ML) / ACB (right half) anteriorly and TH posteriorly; ventral third HY / MY;
* three seeded spheres (VL, Su3 = 614454277 to exercise ids above 2**16 and 2**24, ProS = 484682470).

Geometry is defined on fractions of the shape, so a small volume has the same layout as a full one.
Axes are (AP, DV, ML) like the Allen files; the NRRD header lists them fastest first, so on disk the
ML planes come one after another (see :mod:`pipeline.io.ccf`). The TIFF stack (Allen's r3 20 um
layout) has one page per AP section, DV rows by ML columns.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "ALLEN_SHAPE_10UM",
    "REGIONS",
    "annotation_labels",
    "write_annotation_nrrd",
    "write_annotation_tiff",
    "write_ontology_csv",
    "write_large_annotation_nrrd",
]

#: region id -> (acronym, name) of every id the generator writes (all real Allen CCF 2017 ids)
REGIONS: dict[int, tuple[str, str]] = {
    993: ("MOs", "Secondary motor area"),
    985: ("MOp", "Primary motor area"),
    322: ("SSp", "Primary somatosensory area"),
    672: ("CP", "Caudoputamen"),
    56: ("ACB", "Nucleus accumbens"),
    549: ("TH", "Thalamus"),
    1097: ("HY", "Hypothalamus"),
    354: ("MY", "Medulla"),
    81: ("VL", "lateral ventricle"),
    614454277: ("Su3", "Supraoculomotor periaqueductal gray"),
    484682470: ("ProS", "Prosubiculum"),
}
_SPHERE_IDS = (81, 614454277, 484682470)
ALLEN_SHAPE_10UM = (1320, 800, 1140)


def _spheres(shape, seed):
    rng = np.random.default_rng(seed)
    out = []
    for rid in _SPHERE_IDS:
        centre = rng.uniform(0.3, 0.7, 3) * np.asarray(shape, dtype=np.float64)
        radius = rng.uniform(0.06, 0.1) * min(shape)
        out.append((rid, centre, radius))
    return out


def annotation_labels(shape, ap, dv, ml, seed: int = 0) -> np.ndarray:
    """Region ids (uint32) at voxel indices ``ap``, ``dv``, ``ml`` (integer arrays, broadcast
    together) of a generated volume of ``shape`` = (AP, DV, ML)."""
    A, D, M = (int(s) for s in shape)
    ap = np.asarray(ap)
    dv = np.asarray(dv)
    ml = np.asarray(ml)
    u = (ap + 0.5) / A
    v = (dv + 0.5) / D
    w = (ml + 0.5) / M
    inside = ((u - 0.5) / 0.46) ** 2 + ((v - 0.5) / 0.42) ** 2 + ((w - 0.5) / 0.46) ** 2 <= 1.0
    dorsal = np.where(u < 0.35, 993, np.where(u < 0.6, 985, 322))
    middle = np.where(u < 0.5, np.where(w < 0.5, 672, 56), 549)
    ventral = np.where(u < 0.6, 1097, 354)
    lab = np.where(v < 0.35, dorsal, np.where(v < 0.65, middle, ventral))
    for rid, c, r in _spheres((A, D, M), seed):
        d2 = (ap - c[0]) ** 2 + (dv - c[1]) ** 2 + (ml - c[2]) ** 2
        lab = np.where(d2 <= r * r, rid, lab)
    lab = np.where(inside, lab, 0)
    return np.broadcast_to(lab, np.broadcast_shapes(ap.shape, dv.shape, ml.shape)).astype(np.uint32)


def write_ontology_csv(path) -> Path:
    """An Allen structure-tree CSV (header id, acronym, name, parent_structure_id,
    color_hex_triplet) of the root and every region the generator writes, for demos of the
    generated volumes (the real ontology files stay in the test data)."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [dict(id=997, acronym="root", name="root", parent_structure_id="", color_hex_triplet="FFFFFF")]
    for i, (rid, (acronym, name)) in enumerate(sorted(REGIONS.items())):
        rows.append(
            dict(
                id=rid,
                acronym=acronym,
                name=name,
                parent_structure_id=997,
                color_hex_triplet=f"{(0x3060A0 + 0x151515 * i) & 0xFFFFFF:06X}",
            )
        )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _header(shape, voxel_um, encoding) -> bytes:
    v = f"{voxel_um:g}"
    return (
        "NRRD0004\n"
        "# Complete NRRD file format specification at:\n"
        "# http://teem.sourceforge.net/nrrd/format.html\n"
        "type: unsigned int\n"
        "dimension: 3\n"
        "space: left-posterior-superior\n"
        f"sizes: {shape[0]} {shape[1]} {shape[2]}\n"
        f"space directions: ({v},0,0) (0,{v},0) (0,0,{v})\n"
        "kinds: domain domain domain\n"
        "endian: little\n"
        f"encoding: {encoding}\n"
        "space origin: (0,0,0)\n"
        "\n"
    ).encode("ascii")


def write_annotation_nrrd(path, shape=(132, 80, 114), voxel_um=10, encoding="gzip", seed=0) -> np.ndarray:
    """Write a small annotation NRRD with pynrrd (an independent writer) and return its ground
    truth, the (AP, DV, ML) uint32 volume."""
    import nrrd

    if encoding not in ("gzip", "raw"):
        raise ValueError(f"encoding must be 'gzip' or 'raw', got {encoding!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    A, D, M = shape
    truth = annotation_labels(
        shape, np.arange(A)[:, None, None], np.arange(D)[None, :, None], np.arange(M)[None, None, :], seed=seed
    )
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([float(voxel_um)] * 3),
        "kinds": ["domain", "domain", "domain"],
        "endian": "little",
        "encoding": encoding,
        "space origin": np.zeros(3),
    }
    nrrd.write(str(path), truth, header, index_order="F")
    return truth


def write_large_annotation_nrrd(
    path, shape=ALLEN_SHAPE_10UM, voxel_um=10, encoding="gzip", seed=0, compresslevel=1, planes_per_chunk=4
) -> Path:
    """Write an Allen-sized annotation NRRD (default 1320 x 800 x 1140 at 10 um, 4.8 GB of uint32
    before compression) a few ML planes at a time, in bounded memory (~planes_per_chunk planes of
    float64 temporaries). The truth of any voxel is ``annotation_labels(shape, ap, dv, ml, seed)``."""
    if encoding not in ("gzip", "raw"):
        raise ValueError(f"encoding must be 'gzip' or 'raw', got {encoding!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    A, D, M = (int(s) for s in shape)
    ap = np.arange(A)[None, None, :]
    dv = np.arange(D)[None, :, None]
    with open(path, "wb") as f:
        f.write(_header((A, D, M), voxel_um, encoding))
        comp = zlib.compressobj(compresslevel, zlib.DEFLATED, 31) if encoding == "gzip" else None
        for m0 in range(0, M, planes_per_chunk):
            ml = np.arange(m0, min(M, m0 + planes_per_chunk))[:, None, None]
            chunk = annotation_labels((A, D, M), ap, dv, ml, seed=seed)  # (ml, dv, ap) = disk order
            data = chunk.astype("<u4", copy=False).tobytes()
            f.write(comp.compress(data) if comp is not None else data)
        if comp is not None:
            f.write(comp.flush())
    return path


def write_annotation_tiff(
    path, volume=None, *, shape=(132, 80, 114), seed=0, step=2, shaped=False, **imwrite_kw
) -> np.ndarray:
    """Write an annotation TIFF stack with tifffile (one page per AP section, DV rows x ML columns)
    and return what was written.

    ``volume``: the (AP, DV, ML) array to write (any dtype, for broken files); by default the volume
    of :func:`write_annotation_nrrd` (``shape``, ``seed``) at every ``step``-th voxel per axis, i.e.
    ``truth[::step, ::step, ::step]`` of that NRRD: the 20 um stack of a 10 um NRRD. ``shaped=False``
    writes plain pages without tifffile's shape metadata (as other tools do)."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if volume is None:
        A, D, M = shape
        volume = annotation_labels(
            shape,
            np.arange(0, A, step)[:, None, None],
            np.arange(0, D, step)[None, :, None],
            np.arange(0, M, step)[None, None, :],
            seed=seed,
        )
    volume = np.asarray(volume)
    kw = dict(photometric="minisblack") if volume.ndim < 4 else {}
    if not shaped:
        kw["metadata"] = None
    tifffile.imwrite(path, volume, **{**kw, **imwrite_kw})
    return volume
