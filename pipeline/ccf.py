"""ccf: the Allen Common Coordinate Framework: region ontology and the annotation volume.

The original stored one row per 20 um voxel (tens of millions of rows) to map a coordinate to
a region. Here the 20 um annotation volume is one array (``<npy@map>``); a region lookup for any
number of coordinates is a single vectorised indexing of that array (:func:`region_at`).
Coordinates follow the original: ccf_x = ML, ccf_y = DV, ccf_z = AP, in um.

The annotation comes from one of two files: Allen's 10 um NRRD, ``ccf_data_paths.annotation_nrrd``
(every 2nd voxel per axis is kept), or Allen's CCF r3 20 um TIFF stack, the setting
``ccf.r3_20um_path`` of the original pipeline (stored as it is). Both give the same (AP, DV, ML) array
at 20 um. When both are set, the NRRD is loaded and the TIFF is not read (the run says so): the NRRD
is the file ``ccf_data_paths`` (with its ``version_name``) names, and reading one volume is enough.
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
    def load_ccf_annotation(
        cls, paths: dict | None = None, step: int | None = None, *, r3_20um_path: str | None = None
    ) -> bool:
        """Load the annotation at 20 um from :func:`annotation_source`: ``annotation_nrrd`` (the Allen
        10 um volume keeps every 2nd voxel per axis; a 20 um volume is stored as it is) or else the
        20 um TIFF stack ``r3_20um_path`` (default: the setting ``ccf.r3_20um_path``), stored as it is;
        ``step`` forces another stride. False if already loaded. What was read and stored is in
        :attr:`last_load` (for the message)."""
        from .io.ccf import _voxel_um, read_annotation, read_annotation_header, read_annotation_tiff

        paths = config.validate("ccf_data_paths", paths or config.get("ccf_data_paths") or {})
        source = annotation_source(paths, r3_20um_path)
        if source is None:
            raise config.ConfigError(
                "ccf_data_paths: annotation_nrrd (or the setting ccf.r3_20um_path, the 20 um TIFF stack) "
                "is needed to load the annotation"
            )
        kind, source_file = source
        version = paths.get("version_name", "CCF_2017")
        stored = (cls & {"annotation_version": version}).proj("source_file").to_dicts()
        if stored:
            was, now = stored[0]["source_file"], source_file[:1024]
            if Path(was).resolve() != Path(now).resolve():
                raise InputError(
                    f"{now}: annotation version {version!r} is already loaded from {was}; the stored one is kept. "
                    f"Give the new file another version_name in ccf_data_paths (or delete the old version first)"
                )
            return False
        if kind == "tiff":
            step = 1 if step is None else int(step)
            volume, voxel = read_annotation_tiff(source_file)
            if step > 1:
                volume = np.ascontiguousarray(volume[::step, ::step, ::step])
                voxel *= step
        else:
            if step is None:
                header = read_annotation_header(source_file)
                src = _voxel_um(Path(source_file), header) or TARGET_VOXEL_UM / 2
                step = max(1, int(round(TARGET_VOXEL_UM / src)))
            volume, voxel = read_annotation(source_file, step=step)
        cls.last_load = dict(source_um=voxel / step, step=step, voxel_um=voxel, shape=volume.shape, source=kind)
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
                    source_file=source_file[:1024],
                )
            )
        except BaseException:
            db.remove_store_objects(cls, key)
            raise
        return True


def annotation_source(paths: dict, r3_20um_path: str | None = None) -> tuple[str, str] | None:
    """Where the annotation comes from: ``('nrrd', ccf_data_paths.annotation_nrrd)`` if set, else
    ``('tiff', r3_20um_path)`` (default: the setting ``ccf.r3_20um_path``) if set, else None."""
    if paths.get("annotation_nrrd"):
        return "nrrd", str(paths["annotation_nrrd"])
    tiff = r3_20um_path if r3_20um_path is not None else config.get("ccf.r3_20um_path")
    if tiff is None:
        return None
    if not isinstance(tiff, (str, Path)) or not str(tiff):
        raise config.ConfigError(f"ccf.r3_20um_path: expected the path of the CCF r3 20 um TIFF stack, got {tiff!r}")
    return "tiff", str(tiff)


def ccfload(paths: dict | None = None, *, r3_20um_path: str | None = None):
    """``mapshell ccfload``: the regions and the annotation of ``ccf_data_paths``, two items of one
    summary (each loads or fails on its own; a bad annotation file does not stop the regions)."""
    from .errors import MapError
    from .ingest.summary import Summary

    summary = Summary(what="CCF items")
    paths = config.validate("ccf_data_paths", paths or config.get("ccf_data_paths") or {})
    version = paths.get("version_name", "CCF_2017")
    summary.look(f"ccf_data_paths: {', '.join(f'{k}={v}' for k, v in paths.items())}")
    items = [("regions", paths.get("region_csv"))]
    try:
        source = annotation_source(paths, r3_20um_path)
    except config.ConfigError as e:
        source = None
        summary.found += 1
        summary.fail("annotation", str(e))
    tiff = r3_20um_path if r3_20um_path is not None else config.get("ccf.r3_20um_path")
    if source is not None and source[0] == "tiff":
        summary.look(f"ccf.r3_20um_path={source[1]} (the 20 um TIFF stack)")
    elif source is not None and tiff:
        summary.look(f"ccf.r3_20um_path={tiff} not read: ccf_data_paths.annotation_nrrd is set and is used")
    if source is not None:
        items.append(("annotation", source[1]))
    summary.found += len(items)
    for what, path in items:
        label = what  # the file is named in each line
        try:
            if what == "regions":
                n = CCFBrainRegion.load_regions(paths)
                total = len(CCFBrainRegion & {"annotation_version": version})
                summary.load(f"regions: {n} added ({total} in {version}) from {path}", group=f"ccf {version}")
                continue
            loaded = CCFAnnotation.load_ccf_annotation(paths, r3_20um_path=r3_20um_path)
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
