"""``ingest-tracking``: DeepLabCut output per trial and camera, for sessions without tracking.

For each ``[rig, root]`` of ``tracking_data_paths`` and each session recorded on that rig, the
session's folder is ``<root>/<h2o>/<h2o>_<mmddyy>[_n]`` (``_n`` for the n-th session of that
day, n > 1), or the older ``<root>/<h2o>/<YYYYMMDD>[_n]/tracking``. Per camera position (side,
bottom, body; also side_face, bottom_face, side_body) the files are
``<h2o>*_<position>_<index>-*.csv`` (or ``.h5``), one per trial; the index is the trial number
unless ``<h2o>_<date>_<position>.txt`` maps ``index<TAB>trial``. Cameras 0/1/2 (3/4/5 on
RRig-MTL). A file for a trial the session does not have, or a number of files different from the
session's trials without a trial map, is an error; body parts that are not one of the pipeline's
features are kept under their own names and listed in the summary.

The multi-target-licking rig's layout (looked for when neither of the above exists) has one
folder per camera position, ``<root>/<position>/<h2o>/<YYYY_mm_dd>[_n]``, holding
``<h2o>*_<position>_<index>.csv`` (or ``.h5``; no ``-...`` after the index) numbered from 0: the
index is trial - 1 unless that folder's ``<h2o>_<date>_<position>.txt`` maps ``index<TAB>trial``
(date as ``mmddyy``, ``YYYYMMDD`` or ``YYYY_mm_dd``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import numpy as np

from ... import config
from ...errors import InputError, SkipItem
from .. import runner
from ..summary import Summary

log = logging.getLogger(__name__)

POSITIONS = {"side": ("side", "side_face"), "bottom": ("bottom", "bottom_face"), "body": ("body", "side_body")}
CAMERAS = {"side": "Camera 0", "bottom": "Camera 1", "body": "Camera 2"}
MTL_CAMERAS = {"side": "Camera 3", "bottom": "Camera 4", "body": "Camera 5"}


class TrackingIngestError(InputError):
    pass


def session_folders(root: Path, h2o: str, day: dt.date, n: int) -> list[Path]:
    suffix = f"_{n}" if n > 1 else ""
    return [
        p
        for p in (root / h2o / f"{h2o}_{day:%m%d%y}{suffix}", root / h2o / f"{day:%Y%m%d}{suffix}" / "tracking")
        if p.is_dir()
    ]


def mtl_session_folders(root: Path, h2o: str, day: dt.date, n: int) -> dict[str, Path]:
    """The multi-target-licking rig's layout: one folder per camera position,
    ``<root>/<position>/<h2o>/<YYYY_mm_dd>[_n]`` (any alias of the position); {} if none exists."""
    suffix = f"_{n}" if n > 1 else ""
    out: dict[str, Path] = {}
    for position, aliases in POSITIONS.items():
        for alias in aliases:
            p = root / alias / h2o / f"{day:%Y_%m_%d}{suffix}"
            if p.is_dir():
                out[position] = p
                break
    return out


def camera_folders(root: Path, h2o: str, day: dt.date, n: int) -> tuple[dict[str, Path], bool] | None:
    """(camera position -> folder, is it the MTL layout) of the first layout found, else None."""
    for folder in session_folders(root, h2o, day, n):
        return {position: folder for position in POSITIONS}, False
    mtl = mtl_session_folders(root, h2o, day, n)
    return (mtl, True) if mtl else None


def trial_files(folder: Path, h2o: str, position: str, mtl: bool = False) -> dict[int, Path]:
    """File index -> file for one camera position (any of its aliases): ``<h2o>*_<position>_<index>-*``,
    or in the MTL layout (``mtl``) ``<h2o>*_<position>_<index>`` (.csv or .h5)."""
    out: dict[int, Path] = {}
    for alias in POSITIONS[position]:
        tail = r"\." if mtl else r"-.*\."
        pattern = re.compile(rf"^{re.escape(h2o)}.*_{alias}_(\d+){tail}(csv|h5)$")
        for p in sorted(folder.iterdir()):
            m = pattern.match(p.name)
            if m:
                idx = int(m.group(1))
                if idx in out and out[idx] != p:
                    raise TrackingIngestError(
                        f"{folder}: two files for {position} index {idx}: {out[idx].name}, {p.name}"
                    )
                out[idx] = p
    return out


def trial_map_file(folder: Path, h2o: str, day: dt.date, position: str) -> Path | None:
    """The ``<h2o>_<date>_<position>.txt`` mapping file index -> trial, if there is one."""
    for alias in POSITIONS[position]:
        for date_text in (f"{day:%m%d%y}", f"{day:%Y%m%d}", f"{day:%Y_%m_%d}"):
            p = folder / f"{h2o}_{date_text}_{alias}.txt"
            if p.exists():
                return p
    return None


def trial_map(folder: Path, h2o: str, day: dt.date, position: str) -> dict[int, int] | None:
    for alias in POSITIONS[position]:
        for date_text in (f"{day:%m%d%y}", f"{day:%Y%m%d}", f"{day:%Y_%m_%d}"):
            p = folder / f"{h2o}_{date_text}_{alias}.txt"
            if p.exists():
                out = {}
                for i, line in enumerate(p.read_text().splitlines(), start=1):
                    if not line.strip():
                        continue
                    try:
                        idx, trial = (int(x) for x in line.split())
                    except ValueError:
                        raise TrackingIngestError(f"{p} line {i}: expected 'index<TAB>trial', got {line!r}") from None
                    out[idx] = trial
                return out
    return None


def build_session(
    folder: Path | dict[str, Path],
    h2o: str,
    day: dt.date,
    rig: str,
    trials: set[int],
    devices: dict,
    mtl: bool = False,
) -> tuple[list, list, set]:
    """Rows of one session's tracking. ``folder``: the session folder, or camera position -> folder;
    ``mtl``: the MTL layout (files ``..._<index>.csv``, index = trial - 1 without a trial map)."""
    from ...io.dlc import map_bodyparts, read_dlc

    tracking_rows, feature_rows, unknown = [], [], set()
    cams = MTL_CAMERAS if rig == "RRig-MTL" else CAMERAS
    folders = folder if isinstance(folder, dict) else {position: folder for position in POSITIONS}
    for position in POSITIONS:
        if position not in folders:
            continue
        folder = folders[position]
        files = trial_files(folder, h2o, position, mtl=mtl)
        if not files:
            continue
        mapping = trial_map(folder, h2o, day, position)
        if mapping is None:
            if len(files) != len(trials):
                map_name = f"{h2o}_{day:%Y_%m_%d}_{position}.txt" if mtl else f"{h2o}_{day:%m%d%y}_{position}.txt"
                raise TrackingIngestError(
                    f"{folder}: {len(files)} {position} files but the session has {len(trials)} trials "
                    f"(add {map_name} mapping file index to trial)"
                )
            shift = 1 if mtl else 0  # the MTL rig numbers its files from 0
            mapping = {i: i + shift for i in files}
        device = cams[position]
        rate = devices[device]
        for idx, path in files.items():
            trial = mapping.get(idx)
            if trial is None or trial not in trials:
                map_file = trial_map_file(folder, h2o, day, position)
                if map_file is not None:
                    raise TrackingIngestError(
                        f"{map_file}: maps file index {idx} ({path.name}) to trial {trial}, which the session lacks"
                    )
                raise TrackingIngestError(f"{path}: file index {idx} is not a trial of the session")
            d = read_dlc(path)
            features, extra = map_bodyparts(d.bodyparts)
            unknown |= set(extra)
            n = len(d.x)
            key = dict(trial=trial, tracking_device=device)
            tracking_rows.append(
                dict(
                    key,
                    tracking_samples=n,
                    frame_time=(np.asarray(d.frame_index, dtype=np.float64) / rate).astype(np.float32),
                )
            )
            for j, bp in enumerate(d.bodyparts):
                # a whisker keeps its own name (several per camera); others their feature's name
                feature = (bp if features.get(bp) == "whisker" else features.get(bp, bp))[:24]
                feature_rows.append(
                    dict(
                        key,
                        feature=feature,
                        bodypart=bp[:64],
                        x=np.asarray(d.x[:, j], dtype=np.float32),
                        y=np.asarray(d.y[:, j], dtype=np.float32),
                        likelihood=None if d.likelihood is None else np.asarray(d.likelihood[:, j], dtype=np.float32),
                    )
                )
    return tracking_rows, feature_rows, unknown


class TrackingStep(runner.Step):
    name = "ingest-tracking"
    what = "tracking sessions"

    def __init__(self, paths: list | None = None):
        self.paths = paths

    def find(self, summary: Summary) -> list[runner.Item]:
        from ... import db, experiment, lab, tracking

        entries = config.validate(
            "tracking_data_paths", self.paths if self.paths is not None else config.get("tracking_data_paths", [])
        )
        if not entries:
            summary.look("tracking_data_paths is empty: set it (mapshell config set tracking_data_paths ...)")
        self.devices = dict(zip(*tracking.TrackingDevice().to_arrays("tracking_device", "sampling_rate")))
        sessions = (
            (experiment.Session * lab.WaterRestriction)
            .proj("session_date", "session_datetime", "rig", "water_restriction_number")
            .to_pandas()
            .reset_index()
        )
        sessions = sessions.sort_values(["subject_id", "session_datetime"])
        sessions["n"] = sessions.groupby(["subject_id", "session_date"]).cumcount() + 1
        done = {(int(a), int(b)) for a, b in zip(*tracking.Tracking.to_arrays("subject_id", "session"))}
        items = []
        for rig, root in entries:
            root = Path(root).expanduser()
            summary.look(
                f"{root} (rig {rig}): <h2o>/<h2o>_<mmddyy>[_n]/ or <h2o>/<YYYYMMDD>[_n]/tracking/ with "
                f"<h2o>*_<side|bottom|body>_<trial>-*.csv|.h5, or <side|bottom|body>/<h2o>/<YYYY_mm_dd>[_n]/ "
                f"with <h2o>*_<position>_<trial - 1>.csv|.h5 (MTL), for sessions recorded on {rig}"
            )
            if not root.is_dir():
                summary.fail(str(root), f"tracking folder of rig {rig} does not exist or is not readable")
                continue
            for s in sessions[sessions.rig == rig].to_dict("records"):
                if (int(s["subject_id"]), int(s["session"])) in done:
                    continue
                found = camera_folders(root, s["water_restriction_number"], s["session_date"], s["n"])
                if found is None:
                    continue
                folders, mtl = found
                where = ", ".join(sorted({str(f) for f in folders.values()}))
                items.append(
                    runner.Item(
                        label=f"{s['water_restriction_number']} session {s['session']} ({where})",
                        group=f"{s['water_restriction_number']} {s['session_date']}",
                        key=dict(subject_id=int(s["subject_id"]), session=int(s["session"])),
                        data=(s, folders, mtl),
                    )
                )
        if items:
            db.warn_if_local_store()
        return items

    def check(self, item: runner.Item):
        from ... import tracking

        return ("skip", "already loaded") if tracking.Tracking & item.key else None

    def inputs(self, item: runner.Item) -> set[int]:
        from ... import experiment

        return {int(t) for t in (experiment.SessionTrial & item.key).to_arrays("trial")}

    def build(self, item: runner.Item, trials: set[int]):
        s, folders, mtl = item.data
        rows, features, unknown = build_session(
            folders, s["water_restriction_number"], s["session_date"], s["rig"], trials, self.devices, mtl=mtl
        )
        if not rows:
            raise SkipItem("no DeepLabCut files for any camera in the folder")
        return rows, features, unknown

    def write(self, item: runner.Item, record, inputs) -> runner.Done:
        from ... import db, tracking

        rows, features, unknown = record
        with db.connect().transaction:
            tracking.Tracking.insert([dict(item.key, **r) for r in rows])
            tracking.Tracking.Feature.insert([dict(item.key, **f) for f in features])
        note = f"; body parts kept under their own names: {', '.join(sorted(unknown))}" if unknown else ""
        whiskers = sorted({f["feature"] for f in features if "whisker" in f["bodypart"].lower()})
        if whiskers:
            note += f"; whiskers: {', '.join(whiskers)} (say which whisker each is in tracking.TrackedWhisker)"
        return runner.Done(
            text=f"{item.label}: {len(rows)} trial-camera files{note}",
            counts=dict(trials=len({r["trial"] for r in rows})),
        )


def ingest_tracking(paths: list | None = None, progress: bool | None = None) -> Summary:
    """Load DeepLabCut tracking for every session without it (default: the tracking_data_paths setting)."""
    return runner.run(TrackingStep(paths), progress=progress)
