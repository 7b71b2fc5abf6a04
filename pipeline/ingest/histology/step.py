"""``ingest-histology``: electrode CCF positions, brain regions and probe tracks per insertion.

For each probe insertion without histology, the files are looked for (spec 3.5), under each
``histology_data_paths`` root:

* MAP's track finder, in ``{root}/{h2o}/histology/``: ``landmarks_{h2o}_{YYYYMMDD}[_{HHMMSS}]_
  {probe}[_{shank}]_siteInfo.mat`` (electrode positions) and the ``.csv`` of the same name (BigWarp
  landmarks: warp rows -> SubjectToCCFTransformation, track rows -> LabeledProbeTrack). HHMMSS
  picks the session when the animal had several that day.
* else IBL's alignment GUI output, ``*channel_locations*.json`` (+ ``xyz_picks*.json``), in the
  insertion's probe folder (as ingest-ephys recorded it) or ``{root}/{h2o}/{YYYYMMDD}_{probe}/``.
* ``*_pts.csv`` Lasagna track points in ``{root}/{h2o}/histology/`` whose name holds the session
  date (YYYY-MM-DD or YYYYMMDD) and the probe (``probe00`` = insertion 1, or
  ``{YYYYMMDD}_{insertion}``; see :func:`pipeline.io.histology.parse_track_points_filename`).

Every electrode gets its CCF position (20 um grid) and the region the loaded annotation gives
there; the regions the files name are compared and disagreements reported. One insertion is one
transaction: a file that does not parse, a channel/site count that disagrees with the probe, a
coordinate outside the annotation volume, or two files for one shank fail that insertion with
the file named, and nothing of it is written. Re-runs skip loaded insertions (and report files
that changed since). A re-alignment (``mapshell ingest-histology --replace [RESTRICTION]``): an
insertion whose histology files changed is loaded again in place of the loaded histology, which is
archived first, in one transaction (``ingest_histology.ArchivedHistology``; ``mapshell archive
list``, ``mapshell archive restore --histology``; see ``pipeline.ingest.archive``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ... import config
from ...errors import InputError, SkipItem
from ...io import histology as hio
from ...io.ccf import CCFError
from .. import runner
from ..files import readable_roots, sha1
from ..summary import Summary

log = logging.getLogger(__name__)


class HistologyIngestError(InputError):
    """An insertion's histology cannot be loaded; the message names the file."""


@dataclass
class Found:
    """The histology files of one insertion, by role and shank (None: the file names no shank)."""

    site_info: dict = field(default_factory=dict)
    landmarks: dict = field(default_factory=dict)
    channel_locations: dict = field(default_factory=dict)
    xyz_picks: dict = field(default_factory=dict)
    track_points: dict = field(default_factory=dict)

    def files(self) -> dict[Path, str]:
        out = {}
        for role in ("site_info", "landmarks", "channel_locations", "xyz_picks", "track_points"):
            for p in getattr(self, role).values():
                out[p] = role
        return out

    @property
    def format(self) -> str | None:
        return "siteInfo" if self.site_info else "ibl" if self.channel_locations else None


def _add(where: dict, shank, path: Path) -> None:
    if shank in where and where[shank] != path:
        raise HistologyIngestError(
            f"two files for shank {shank if shank is not None else '(unnamed)'}: {where[shank]} and {path}"
        )
    where[shank] = path


def find_files(
    roots: list[Path],
    h2o: str,
    day: dt.date,
    session_time: dt.time | None,
    n_that_day: int,
    insertion_number: int,
    probe_folder: Path | None,
) -> Found:
    """The histology files of one insertion (see the module docstring for the rules)."""
    found = Found()
    for root in roots:
        folder = root / h2o / "histology"
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            info = hio.parse_histology_filename(p.name)
            if info is None or info["h2o"] != h2o or info["date"] != day or info["probe"] != insertion_number:
                continue
            if info["time"] is not None:
                if session_time is None or info["time"] != session_time.replace(microsecond=0):
                    continue
            elif n_that_day > 1:
                raise HistologyIngestError(
                    f"{p}: {h2o} has {n_that_day} sessions on {day}; name the file "
                    f"with the session's time (landmarks_{h2o}_{day:%Y%m%d}_HHMMSS_...)"
                )
            _add(found.site_info if info["kind"] == "siteInfo" else found.landmarks, info["shank"], p)
        for p in sorted(folder.glob("*_pts.csv")):
            info = hio.parse_track_points_filename(p.name)
            if info is None or info["insertion_number"] != insertion_number:
                continue
            if f"{day:%Y-%m-%d}" not in p.name and f"{day:%Y%m%d}" not in p.name:
                continue
            if n_that_day > 1:
                raise HistologyIngestError(
                    f"{p}: {h2o} has {n_that_day} sessions on {day}; a track-points "
                    f"file cannot say which one it belongs to"
                )
            _add(found.track_points, info["shank"], p)
    if found.site_info:
        return found
    folders = [probe_folder] if probe_folder is not None else []
    folders += [root / h2o / f"{day:%Y%m%d}_{insertion_number}" for root in roots]
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for p in sorted(folder.glob("*channel_locations*.json")):
            shank = _shank(p, "channel_locations")
            _add(found.channel_locations, shank, p)
            picks = sorted(folder.glob(f"*xyz_picks{p.stem.split('channel_locations', 1)[1]}.json"))
            if len(picks) > 1:
                raise HistologyIngestError(
                    f"{folder}: several xyz_picks files for {p.name}: {', '.join(q.name for q in picks)}"
                )
            if picks:
                _add(found.xyz_picks, shank, picks[0])
        if found.channel_locations:
            break
    return found


def _shank(path: Path, stem_word: str) -> int | None:
    """IBL's per-shank suffix (``channel_locations_shank2.json`` -> 2), None without one."""
    rest = path.stem.split(stem_word, 1)[1]
    digits = "".join(ch for ch in rest if ch.isdigit())
    return int(digits) if digits else None


# ---------------------------------------------------------------------------- electrode matching
def _shank_of(key, zero_based: bool, configured: pd.DataFrame, path: Path) -> int:
    """Which of the probe's shanks (1-based) a file is for. File names number shanks from 1 (MAP)
    unless some file of the insertion says shank 0 (then all count from 0)."""
    shanks = sorted(int(s) for s in configured.shank.unique())
    if key is None:
        if len(shanks) > 1:
            raise HistologyIngestError(
                f"{path}: the file names no shank, but the insertion recorded from shanks "
                f"{shanks}; name one file per shank"
            )
        return shanks[0]
    shank = int(key) + (1 if zero_based else 0)
    if shank not in shanks:
        raise HistologyIngestError(f"{path}: is for shank {shank}, but the insertion recorded from shank(s) {shanks}")
    return shank


def site_info_positions(
    path: Path, shank: int, shank_electrodes: pd.DataFrame, configured: pd.DataFrame
) -> pd.DataFrame:
    """Rows of a siteInfo file -> electrodes: one row per site of the shank in electrode order (or per
    recorded electrode of the shank); keeps the sites in the brain that were recorded."""
    site = hio.read_site_info(path)
    n = len(site.pos)
    if n == len(shank_electrodes):
        electrodes = shank_electrodes.electrode.to_numpy()
    elif n == len(configured):
        electrodes = configured.electrode.to_numpy()
    else:
        raise HistologyIngestError(
            f"{path}: {n} sites, but shank {shank} of the probe has {len(shank_electrodes)} "
            f"electrodes ({len(configured)} recorded)"
        )
    keep = site.in_brain & np.isin(electrodes, configured.electrode.to_numpy())
    return pd.DataFrame(
        {
            "electrode": electrodes[keep],
            "ccf_x": site.ccf[keep, 0],
            "ccf_y": site.ccf[keep, 1],
            "ccf_z": site.ccf[keep, 2],
            "file_region": site.ont_id[keep],
            "source": str(path),
        }
    )


def ibl_positions(path: Path, shank: int, configured: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Channels of a channel_locations file -> recorded electrodes of the shank, by position on the probe."""
    loc = hio.read_channel_locations(path)
    ch = loc.channels
    if len(ch) != len(configured):
        raise HistologyIngestError(
            f"{path}: {len(ch)} channels, but the insertion recorded {len(configured)} electrodes on shank {shank}"
        )
    try:
        idx = hio.match_ibl_channels(ch.lateral, ch.axial, configured.x_coord, configured.y_coord)
    except hio.HistologyError as e:
        raise HistologyIngestError(f"{path}: {e} (shank {shank})") from None
    ccf = hio.ibl_to_ccf(loc)
    return pd.DataFrame(
        {
            "electrode": configured.electrode.to_numpy()[idx],
            "ccf_x": ccf[:, 0],
            "ccf_y": ccf[:, 1],
            "ccf_z": ccf[:, 2],
            "file_region": ch.brain_region_id.to_numpy(),
            "source": str(path),
        }
    ), loc.origin


def read_insertion(found: Found, electrodes: pd.DataFrame, configured: pd.DataFrame):
    """All of one insertion's histology, checked, as table rows (no database access).

    ``electrodes``: the probe type's electrodes (electrode, shank, x_coord, y_coord);
    ``configured``: the insertion's recorded electrodes (same columns + electrode_group)."""
    positions, points, landmarks = [], [], []
    zero_based = any(
        k == 0 for role in (found.site_info, found.landmarks, found.channel_locations, found.track_points) for k in role
    )
    if found.site_info:
        for key, path in found.site_info.items():
            shank = _shank_of(key, zero_based, configured, path)
            positions.append(
                site_info_positions(
                    path, shank, electrodes[electrodes.shank == shank], configured[configured.shank == shank]
                )
            )
    else:
        for key, path in found.channel_locations.items():
            shank = _shank_of(key, zero_based, configured, path)
            df, origin = ibl_positions(path, shank, configured[configured.shank == shank])
            positions.append(df)
            if key in found.xyz_picks:
                picks = hio.read_xyz_picks(found.xyz_picks[key])
                points.append((shank, hio.ibl_xyz_to_ccf(picks, origin, round_to=None), found.xyz_picks[key]))
    for key, path in found.landmarks.items():  # BigWarp landmarks can come with either format
        shank = _shank_of(key, zero_based, configured, path)
        lm = hio.read_landmarks_csv(path)
        landmarks.append(lm[lm.warp])
        trk = lm[~lm.warp][["ccf_x", "ccf_y", "ccf_z"]].to_numpy(dtype=np.float64)
        if len(trk):
            points.append((shank, trk, path))
    for key, path in found.track_points.items():
        shank = _shank_of(key, zero_based, configured, path)
        points.append((shank, hio.lasagna_to_ccf(hio.read_track_points(path)), path))
    pos = (
        pd.concat(positions, ignore_index=True)
        if positions
        else pd.DataFrame(columns=["electrode", "ccf_x", "ccf_y", "ccf_z", "file_region", "source"])
    )
    dup = pos.electrode[pos.electrode.duplicated()]
    if len(dup):
        raise HistologyIngestError(f"electrode {int(dup.iloc[0])} has positions in two files")
    shanks_with_track: dict[int, Path] = {}
    for shank, _, path in points:
        if shank in shanks_with_track:
            raise HistologyIngestError(f"two probe tracks for shank {shank}: {shanks_with_track[shank]} and {path}")
        shanks_with_track[shank] = path
    lms = pd.concat(landmarks, ignore_index=True) if landmarks else None
    return pos, points, lms


# ----------------------------------------------------------------------------------- the loader
def _annotation_version() -> str:
    paths = config.get("ccf_data_paths") or {}
    return paths.get("version_name", "CCF_2017") if isinstance(paths, dict) else "CCF_2017"


def _changed(key: dict) -> list[str]:
    from .tables import HistologyIngest

    out = []
    for r in (HistologyIngest.HistologyFile & key).to_dicts():
        p = Path(r["file_path"])
        if not p.exists():
            out.append(f"{r['histology_file']} (gone)")
        elif p.stat().st_size != r["file_size"] or sha1(p) != r["file_sha1"]:
            out.append(r["histology_file"])
    return out


@dataclass
class InsertionInputs:
    """What build needs from the database for one insertion."""

    electrodes: pd.DataFrame  # the probe type's electrodes
    configured: pd.DataFrame  # the insertion's electrode configuration
    stored_landmarks: dict  # landmark name -> row already stored for the subject
    volume: np.ndarray  # the CCF annotation
    voxel_um: float
    version: str


@dataclass
class HistologyRecord:
    format: str
    positions: pd.DataFrame  # ElectrodePosition rows without the insertion key
    points: list[dict]
    landmarks: list[dict]
    files: list[dict]
    regions: int
    disagree: int


def build_insertion(ikey: dict, ins: dict, found: Found, inputs: InsertionInputs) -> HistologyRecord:
    """Read and check one insertion's histology files and place its electrodes (pure: no database)."""
    from ...io.ccf import region_lookup

    configured, electrodes = inputs.configured, inputs.electrodes
    pos, points, landmarks = read_insertion(found, electrodes, configured)
    region = np.zeros(len(pos), dtype=np.int64)
    for source, rows_of in pos.groupby("source", sort=False).groups.items():
        xyz = pos.loc[rows_of, ["ccf_x", "ccf_y", "ccf_z"]].to_numpy(dtype=np.float64)
        try:
            region[np.asarray(rows_of)] = region_lookup(inputs.volume, inputs.voxel_um, xyz)
        except CCFError as e:  # names the first bad coordinates
            raise HistologyIngestError(f"{source}: {e}") from None
    for _shank, trk, path in points:
        if not np.isfinite(trk).all():
            raise HistologyIngestError(f"{path}: probe-track points with non-finite coordinates")
    pos["region_id"] = np.asarray(region, dtype=np.int64)
    group = configured.set_index("electrode").electrode_group
    rows = pd.DataFrame(
        {
            "probe_type": ins["probe_type"],
            "electrode_config_name": ins["electrode_config_name"],
            "electrode_group": group.loc[pos.electrode].to_numpy(),
            "electrode": pos.electrode,
            "ccf_x": pos.ccf_x,
            "ccf_y": pos.ccf_y,
            "ccf_z": pos.ccf_z,
            "region_id": pos.region_id,
        }
    )
    point_rows = [
        dict(shank=int(shank), point_order=i, ccf_x=float(p[0]), ccf_y=float(p[1]), ccf_z=float(p[2]))
        for shank, trk, _ in points
        for i, p in enumerate(trk)
    ]
    new_landmarks = []
    if landmarks is not None and len(landmarks):
        cols = ["subj_x", "subj_y", "subj_z", "ccf_x", "ccf_y", "ccf_z"]
        landmarks = landmarks[np.isfinite(landmarks[cols].to_numpy(dtype=np.float64)).all(axis=1)]  # BigWarp: unmatched
        if (landmarks.groupby("landmark_name")[cols].nunique() > 1).any(axis=None):
            raise HistologyIngestError("the insertion's landmark files give one landmark name different coordinates")
        landmarks = landmarks.drop_duplicates("landmark_name", keep="first")
        for r in landmarks.to_dict("records"):
            old = inputs.stored_landmarks.get(r["landmark_name"])
            if old is None:
                new_landmarks.append(dict(landmark_name=r["landmark_name"][:64], **{c: r[c] for c in cols}))
            elif not np.allclose([old[c] for c in cols], [r[c] for c in cols], equal_nan=True):
                raise HistologyIngestError(
                    f"landmark {r['landmark_name']!r} differs from the one stored for subject "
                    f"{ikey['subject_id']} (from an earlier insertion's landmark file)"
                )
    file_rows = [
        dict(
            histology_file=p.name[:255],
            file_path=str(p.resolve())[:1024],
            file_role=role,
            file_size=p.stat().st_size,
            file_sha1=sha1(p),
        )
        for p, role in found.files().items()
    ]
    file_part = pos.file_region.to_numpy(dtype=np.int64)
    disagree = int(((file_part > 0) & (file_part != pos.region_id.to_numpy())).sum())
    return HistologyRecord(
        format=found.format,
        positions=rows,
        points=point_rows,
        landmarks=new_landmarks,
        files=file_rows,
        regions=int(len(np.unique(region[region > 0]))),
        disagree=disagree,
    )


def write_insertion(ikey: dict, rec: HistologyRecord, version: str) -> None:
    """Insert one insertion's histology in one transaction."""
    from ... import db

    with db.connect().transaction:
        insert_histology_rows(ikey, rec, version)


def insert_histology_rows(ikey: dict, rec: HistologyRecord, version: str) -> None:
    """The inserts of :func:`write_insertion`, inside the caller's transaction."""
    from ... import histology
    from .tables import HistologyIngest

    subject = {"subject_id": ikey["subject_id"]}
    histology.ElectrodeCCFPosition.insert1(dict(ikey, annotation_version=version))
    if len(rec.positions):
        histology.ElectrodeCCFPosition.ElectrodePosition.insert(
            [dict(ikey, **r) for r in rec.positions.to_dict("records")]
        )
    if rec.points:
        histology.LabeledProbeTrack.insert1(dict(ikey))
        histology.LabeledProbeTrack.Point.insert([dict(ikey, **p) for p in rec.points])
    if rec.landmarks:
        histology.SubjectToCCFTransformation.insert1(subject, skip_duplicates=True)
        histology.SubjectToCCFTransformation.Landmark.insert([dict(subject, **lm) for lm in rec.landmarks])
    HistologyIngest.insert1(dict(ikey, histology_format=rec.format))
    HistologyIngest.HistologyFile.insert([dict(ikey, **f) for f in rec.files])


class HistologyStep(runner.Step):
    name = "ingest-histology"
    what = "probe insertions"

    def __init__(self, paths: list | None = None, replace=False):
        self.paths = paths
        #: False, or the insertions (True: any; else a restriction) whose changed histology files are
        #: loaded as a re-alignment, the loaded one archived (see pipeline.ingest.archive)
        self.replace = replace

    def find(self, summary: Summary) -> list[runner.Item]:
        from ... import ccf, ephys, experiment, lab
        from ..ephys.tables import EphysIngest
        from .tables import HistologyIngest

        self.roots = roots = readable_roots("histology_data_paths", self.paths, summary, "histology")
        for r in roots:
            summary.look(
                f"{r}: <h2o>/histology/landmarks_<h2o>_<YYYYMMDD>[_<HHMMSS>]_<probe>[_<shank>]_siteInfo.mat (+ .csv), "
                f"<h2o>/histology/*_pts.csv, and IBL *channel_locations*.json + xyz_picks*.json in the probe folder "
                f"or <h2o>/<YYYYMMDD>_<probe>/"
            )
        self.version = version = _annotation_version()
        if not (ccf.CCFAnnotation & {"annotation_version": version}):
            summary.fail(
                f"ccf annotation {version}",
                "not loaded: run `mapshell ccfload` (ccf_data_paths) first; electrode regions come from it",
            )
            return []
        ccf._volume_cache.pop((ccf.CCFAnnotation.database, version), None)  # a reloaded volume is re-read
        sessions = (
            (experiment.Session * lab.WaterRestriction)
            .proj("session_date", "session_datetime", "water_restriction_number")
            .to_pandas()
            .reset_index()
        )
        sessions["n_that_day"] = sessions.groupby(["subject_id", "session_date"]).session.transform("count")
        sessions = sessions.set_index(["subject_id", "session"])
        folders = {
            (r["subject_id"], r["session"], r["insertion_number"]): Path(r["probe_folder"])
            for r in EphysIngest.to_dicts()
        }
        self.claimed = {Path(p).resolve() for p in HistologyIngest.HistologyFile.to_arrays("file_path")}
        items = []
        for ins in ephys.ProbeInsertion.to_dicts():
            ikey = dict(subject_id=ins["subject_id"], session=ins["session"], insertion_number=ins["insertion_number"])
            if (ins["subject_id"], ins["session"]) not in sessions.index:
                summary.skip(
                    f"subject {ins['subject_id']} session {ins['session']} probe {ins['insertion_number']}",
                    "the subject has no water restriction number, so no histology folder",
                )
                continue
            s = sessions.loc[(ins["subject_id"], ins["session"])]
            items.append(
                runner.Item(
                    label=f"{s.water_restriction_number} session {ins['session']} probe {ins['insertion_number']}",
                    group=f"{s.water_restriction_number} {pd.Timestamp(s.session_date).date()}",
                    key=ikey,
                    data=(ins, s, folders.get(tuple(ikey.values()))),
                )
            )
        return items

    def check(self, item: runner.Item):
        from .tables import HistologyIngest

        if HistologyIngest & item.key:
            changed = _changed(item.key)
            if changed and self._replaceable(item.key):
                return None  # loaded again as a re-alignment; the loaded one is archived
            if changed:
                return "fail", (
                    f"already loaded, but these files changed since: {', '.join(changed)}; "
                    f"load the re-alignment with `mapshell ingest-histology --replace` (the loaded one is archived)"
                )
            return "skip", "already loaded"
        return None

    def _replaceable(self, key: dict) -> bool:
        from ... import ephys

        if self.replace is False:
            return False
        return self.replace is True or bool(ephys.ProbeInsertion & key & self.replace)

    def inputs(self, item: runner.Item) -> tuple[Found, InsertionInputs]:
        from ... import ccf, histology, lab

        ins, s, folder = item.data
        when = pd.Timestamp(s.session_datetime)
        found = find_files(
            self.roots,
            s.water_restriction_number,
            pd.Timestamp(s.session_date).date(),
            None if pd.isna(when) else when.time(),
            int(s.n_that_day),
            ins["insertion_number"],
            folder,
        )
        self.claimed |= {p.resolve() for p in found.files()}
        if found.format is None:
            others = sorted(p.name for p in found.files())
            raise SkipItem(
                "no electrode positions (siteInfo .mat or channel_locations .json)"
                + (f"; not loaded without them: {', '.join(others)}" if others else "")
            )
        ptype = {"probe_type": ins["probe_type"]}
        electrodes = (lab.ProbeType.Electrode & ptype).to_pandas().reset_index()
        configured = (
            (
                lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
                & ptype
                & {"electrode_config_name": ins["electrode_config_name"]}
            )
            .to_pandas()
            .reset_index()
        )
        subject = {"subject_id": item.key["subject_id"]}
        stored = {r["landmark_name"]: r for r in (histology.SubjectToCCFTransformation.Landmark & subject).to_dicts()}
        volume, voxel = ccf.annotation_volume(self.version)
        return found, InsertionInputs(
            electrodes=electrodes.sort_values("electrode", ignore_index=True),
            configured=configured.sort_values("electrode", ignore_index=True),
            stored_landmarks=stored,
            volume=volume,
            voxel_um=voxel,
            version=self.version,
        )

    def build(self, item: runner.Item, inputs) -> HistologyRecord:
        found, ctx = inputs
        return build_insertion(item.key, item.data[0], found, ctx)

    def write(self, item: runner.Item, record: HistologyRecord, inputs) -> runner.Done:
        from ..archive import HISTOLOGY, replace
        from .tables import HistologyIngest

        if HistologyIngest & item.key:
            number = replace(
                HISTOLOGY,
                item.key,
                "ingest-histology --replace: its files changed",
                lambda: insert_histology_rows(item.key, record, self.version),
            )
            item.label += f" (replaced the loaded histology, archived as number {number})"
        else:
            write_insertion(item.key, record, self.version)
        note = (
            f"; {record.disagree} electrodes where the file's region differs from the annotation's"
            if record.disagree
            else ""
        )
        return runner.Done(
            text=f"{item.label}: {record.format}, {len(record.positions)} electrodes, {len(record.points)} track "
            f"points, {record.regions} regions{note}",
            counts=dict(probes=1, electrodes=len(record.positions)),
        )


def ingest_histology(paths: list | None = None, progress: bool | None = None, replace=False) -> Summary:
    """Load the histology of every probe insertion that has none (roots: ``histology_data_paths``).
    ``replace``: True, or a restriction of the insertions whose changed histology files are loaded
    as a re-alignment in place of the loaded one (archived first)."""
    step = HistologyStep(paths, replace)
    summary = runner.run(step, progress=progress)
    for path in unclaimed_files(getattr(step, "roots", []), getattr(step, "claimed", set())):
        summary.fail(
            str(path),
            "matches no probe insertion (no session of that animal, date and time with that "
            "probe number; load the ephys first or fix the name)",
        )
    return summary


def unclaimed_files(roots: list[Path], claimed: set[Path]) -> list[Path]:
    """Histology files named for an insertion (landmarks_*, *_pts.csv) in ``{root}/*/histology/``
    that no insertion took: a typo in a name must not go unnoticed."""
    out = []
    for root in roots:
        for folder in sorted(root.glob("*/histology")):
            for p in sorted(folder.iterdir()):
                named = hio.parse_histology_filename(p.name) is not None or (
                    p.name.endswith("_pts.csv") and hio.parse_track_points_filename(p.name) is not None
                )
                if named and p.resolve() not in claimed:
                    out.append(p)
    return out
