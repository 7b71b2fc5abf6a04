"""ccf: the Allen Common Coordinate Framework: region ontology and the annotation volume.

The original stored one row per 20 um voxel (tens of millions of rows) to map a coordinate to
a region. Here the 20 um annotation volume is one array (``<npy@map>``); a region lookup for any
number of coordinates is a single vectorised indexing of that array (:func:`region_at`).
Coordinates follow the original: ccf_x = ML, ccf_y = DV, ccf_z = AP, in um.
"""

from pathlib import Path

import datajoint as dj
import numpy as np

from . import config, db
from .errors import InputError

schema = dj.Schema()


@schema
class AnnotationVersion(dj.Lookup):
    """A version of the Allen annotation (and its ontology)."""

    definition = """
    annotation_version : varchar(32)
    ---
    annotation_desc = '' : varchar(255)
    """
    contents = [("CCF_2017", "Allen CCF v3, 2017 annotation")]


@schema
class CCFBrainRegion(dj.Lookup):
    """One brain region of an annotation version's ontology."""

    definition = """
    -> AnnotationVersion
    region_id : int32
    ---
    region_name : varchar(255)
    acronym = null : varchar(32)
    parent_id = null : int32
    color_code = '' : varchar(6)      # RRGGBB
    structure_id_path = '' : varchar(255)
    """

    @classmethod
    def load_regions(cls, paths: dict | None = None) -> int:
        """Load the ontology named in ``ccf_data_paths`` (region_csv, hexcode_csv, version_name).

        Returns the number of regions added (0 when already loaded)."""
        from .io.ccf import read_ontology

        paths = config.validate("ccf_data_paths", paths or config.get("ccf_data_paths") or {})
        if "region_csv" not in paths:
            raise config.ConfigError("ccf_data_paths: region_csv is needed to load the regions")
        version = paths.get("version_name", "CCF_2017")
        ont = read_ontology(paths["region_csv"], paths.get("hexcode_csv"))
        AnnotationVersion.insert1(dict(annotation_version=version), skip_duplicates=True)
        have = set((cls & {"annotation_version": version}).to_arrays("region_id"))
        rows = []
        for r in ont.to_dict("records"):
            if int(r["region_id"]) in have:
                continue
            rows.append(
                dict(
                    annotation_version=version,
                    region_id=int(r["region_id"]),
                    region_name=str(r["region_name"])[:255],
                    acronym=None
                    if r.get("acronym") in (None, "") or r.get("acronym") != r.get("acronym")
                    else str(r["acronym"])[:32],
                    parent_id=None
                    if r.get("parent_id") is None or r.get("parent_id") != r.get("parent_id")
                    else int(r["parent_id"]),
                    color_code=str(r.get("color_code") or "")[:6],
                    structure_id_path=str(r.get("structure_id_path") or "")[:255],
                )
            )
        with cls.connection.transaction:
            cls.insert(rows)
        return len(rows)


@schema
class CCFAnnotation(dj.Manual):
    """The annotation volume of a version, downsampled to 20 um: region id per voxel."""

    definition = """
    -> AnnotationVersion
    ---
    voxel_um : float64                 # voxel edge, um
    shape_ap : int32
    shape_dv : int32
    shape_ml : int32
    annotation : <npy@map>             # (AP, DV, ML) region ids (0 = outside the brain)
    source_file = '' : varchar(1024)
    """

    @classmethod
    def load_ccf_annotation(cls, paths: dict | None = None, step: int | None = None) -> bool:
        """Load ``annotation_nrrd`` at 20 um (the Allen 10 um volume keeps every 2nd voxel per axis; a
        20 um volume is stored as it is; ``step`` forces another stride). False if already loaded.
        What was read and stored is in :attr:`last_load` (for the message)."""
        from .io.ccf import _voxel_um, read_annotation, read_annotation_header

        paths = config.validate("ccf_data_paths", paths or config.get("ccf_data_paths") or {})
        if "annotation_nrrd" not in paths:
            raise config.ConfigError("ccf_data_paths: annotation_nrrd is needed to load the annotation")
        version = paths.get("version_name", "CCF_2017")
        stored = (cls & {"annotation_version": version}).proj("source_file").to_dicts()
        if stored:
            was, now = stored[0]["source_file"], str(paths["annotation_nrrd"])[:1024]
            if Path(was).resolve() != Path(now).resolve():
                raise InputError(
                    f"{now}: annotation version {version!r} is already loaded from {was}; the stored one is kept. "
                    f"Give the new file another version_name in ccf_data_paths (or delete the old version first)"
                )
            return False
        if step is None:
            header = read_annotation_header(paths["annotation_nrrd"])
            src = _voxel_um(Path(paths["annotation_nrrd"]), header) or TARGET_VOXEL_UM / 2
            step = max(1, int(round(TARGET_VOXEL_UM / src)))
        volume, voxel = read_annotation(paths["annotation_nrrd"], step=step)
        cls.last_load = dict(source_um=voxel / step, step=step, voxel_um=voxel, shape=volume.shape)
        AnnotationVersion.insert1(dict(annotation_version=version), skip_duplicates=True)
        key = dict(annotation_version=version)
        db.remove_store_objects(cls, key)  # left by an interrupted earlier load
        try:
            cls.insert1(
                dict(
                    key,
                    voxel_um=float(voxel),
                    shape_ap=volume.shape[0],
                    shape_dv=volume.shape[1],
                    shape_ml=volume.shape[2],
                    annotation=volume,
                    source_file=str(paths["annotation_nrrd"])[:1024],
                )
            )
        except BaseException:
            db.remove_store_objects(cls, key)
            raise
        return True


def ccfload(paths: dict | None = None):
    """``mapshell ccfload``: the regions and the annotation of ``ccf_data_paths``, two items of one
    summary (each loads or fails on its own; a bad annotation file does not stop the regions)."""
    from .errors import MapError
    from .ingest.summary import Summary

    summary = Summary(what="CCF items")
    paths = config.validate("ccf_data_paths", paths or config.get("ccf_data_paths") or {})
    version = paths.get("version_name", "CCF_2017")
    summary.look(f"ccf_data_paths: {', '.join(f'{k}={v}' for k, v in paths.items())}")
    items = [("regions", paths.get("region_csv"))]
    if "annotation_nrrd" in paths:
        items.append(("annotation", paths["annotation_nrrd"]))
    summary.found = len(items)
    for what, path in items:
        label = what  # the file is named in each line
        try:
            if what == "regions":
                n = CCFBrainRegion.load_regions(paths)
                total = len(CCFBrainRegion & {"annotation_version": version})
                summary.load(f"regions: {n} added ({total} in {version}) from {path}", group=f"ccf {version}")
                continue
            loaded = CCFAnnotation.load_ccf_annotation(paths)
            row = (CCFAnnotation & {"annotation_version": version}).fetch1()
            how = ""
            if loaded:
                ll = CCFAnnotation.last_load
                nth = {2: "2nd", 3: "3rd"}.get(ll["step"], f"{ll['step']}th")
                how = f" (read at {ll['source_um']:g} um, stored at {ll['voxel_um']:g} um" + (
                    f": every {nth} voxel per axis)" if ll["step"] > 1 else ")"
                )
            text = (
                f"annotation: {'loaded' if loaded else 'already loaded'}, {row['shape_ap']} x {row['shape_dv']} x "
                f"{row['shape_ml']} voxels of {row['voxel_um']:g} um{how} from {path}"
            )
            (summary.load(text, group=f"ccf {version}") if loaded else summary.skip(label, text))
        except MapError as e:
            summary.fail(label, str(e))
    summary.log_report()
    return summary


_volume_cache: dict = {}
TARGET_VOXEL_UM = 20.0  #: the resolution the pipeline stores (as the original did)


def annotation_volume(version: str = "CCF_2017") -> tuple[np.ndarray, float]:
    """The stored annotation volume (memory-mapped when the store allows) and its voxel size."""
    key = (CCFAnnotation.database, version)
    if key not in _volume_cache:
        row = (CCFAnnotation & {"annotation_version": version}).fetch1()
        _volume_cache[key] = (np.asarray(row["annotation"]), float(row["voxel_um"]))
    return _volume_cache[key]


def region_at(ccf_xyz_um: np.ndarray, version: str = "CCF_2017") -> np.ndarray:
    """Region id at each (ccf_x=ML, ccf_y=DV, ccf_z=AP) coordinate, um; 0 outside the brain."""
    from .io.ccf import region_lookup

    volume, voxel = annotation_volume(version)
    return region_lookup(volume, voxel, np.asarray(ccf_xyz_um, dtype=np.float64))


def descendants_of(acronym: str, version: str = "CCF_2017") -> np.ndarray:
    """Region ids of a region (by acronym) and every region below it in the ontology."""
    from .io.ccf import descendants

    ont = (CCFBrainRegion & {"annotation_version": version}).to_pandas().reset_index()
    return descendants(ont, acronym)


db.register("ccf", schema)
