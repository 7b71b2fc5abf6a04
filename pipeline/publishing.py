"""``mapshell publish``: copy the raw files of loaded sessions to an archive store and record them.

What is published, per loaded session (restricted by an optional key restriction):

* ``ephys/probe<N>``: the SpikeGLX files (``*.bin`` and ``*.meta``) in the folder insertion N was
  loaded from (``ingest_ephys.EphysIngest.probe_folder``);
* ``video``: the tracking videos (``*.avi``, ``*.mp4``, ``*.mov``, ``*.mkv``, at any depth) in the
  session's tracking folder under ``tracking_data_paths``, for sessions with tracking loaded.

The archive is the ``archive_url`` setting: a folder (default ``<data folder>/archive``) or any
fsspec URL, e.g. ``s3://bucket/map`` for an S3-compatible service; ``archive_options`` are passed
to fsspec (e.g. ``{"endpoint_url": "https://s3.example.org"}``), and credentials come from the
usual AWS settings (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``~/.aws``...). A set's files
go to ``<h2o>/<YYYY-MM-DD>_s<session>/<dataset>/<file>`` in the archive.

Each set is one item of the shared ingest runner (so it is claimed, and many workers can publish
at once without copying a set twice): every file is hashed (SHA-1), copied, then read back from the
archive and compared (size and SHA-1); only when all files of the set check out are the
``publication.DataSet`` and ``PhysicalFile`` rows written, in one transaction. An interrupted
publish leaves no rows; the re-run copies only the files that are not already in the archive with
the right size and SHA-1 (a file is copied to ``<name>.partial`` and renamed on a folder archive;
an S3 object appears only when complete). A published set is skipped on a re-run, unless its
source files changed since (its size, or its content when its modification time differs from the
recorded one), which is reported, never silently overwritten. ``mapshell publish --verify`` reads
every published file back from the archive and reports the missing and the corrupt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from pathlib import Path

from . import config
from .errors import ConfigError, ConnectionProblem, InputError, UsageError
from .ingest import runner
from .ingest.summary import Summary

log = logging.getLogger(__name__)

RAW_EPHYS_PATTERNS = ("*.bin", "*.meta")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
CHUNK = 8 << 20


# --- the archive ----------------------------------------------------------------------------------
def archive_url(url: str | None = None) -> str:
    """The archive's location: ``url``, else the ``archive_url`` setting, else ``<data folder>/archive``."""
    from . import embedded

    return str(url or config.get("archive_url") or (embedded.data_dir() / "archive"))


def open_archive(url: str | None = None):
    """``(filesystem, root path)`` of the archive (fsspec)."""
    import fsspec

    url = archive_url(url)
    options = dict(config.get("archive_options") or {})
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as e:
        raise UsageError(f"archive {url}: {e}") from None
    if fs.protocol in ("file", "local") or "file" in fs.protocol:
        fs.makedirs(root, exist_ok=True)
    return fs, root.rstrip("/")


def archive_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable, unauthorised or failing archive raises (fsspec, s3fs/botocore)."""
    errors: tuple[type[BaseException], ...] = (OSError, RuntimeError)
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return errors
    return (*errors, BotoCoreError)


def _mtime(path: Path) -> dt.datetime:
    """A file's modification time, to the microsecond (as a datetime(6) column keeps it)."""
    ns = path.stat().st_mtime_ns
    return dt.datetime.fromtimestamp(ns // 10**9).replace(microsecond=(ns // 1000) % 10**6)


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def sha1_of(fileobj) -> str:
    """SHA-1 of an open binary file, read in chunks."""
    h = hashlib.sha1()
    while chunk := fileobj.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def local_sha1(path: Path) -> str:
    with open(path, "rb") as f:
        return sha1_of(f)


def archived(fs, path: str) -> tuple[int, str] | None:
    """``(size, sha1)`` of an archive object, None if it is not there."""
    try:
        size = int(fs.size(path))
    except FileNotFoundError:
        return None
    with fs.open(path, "rb", block_size=CHUNK) as f:
        return size, sha1_of(f)


def _copy(fs, src: Path, dest: str) -> None:
    parent = dest.rsplit("/", 1)[0]
    if _is_local(fs):
        fs.makedirs(parent, exist_ok=True)
        partial = dest + ".partial"
        fs.put_file(str(src), partial)
        fs.mv(partial, dest)
    else:
        fs.put_file(str(src), dest)


# --- finding the sets -----------------------------------------------------------------------------
def _session_folder_name(h2o: str, day, session: int) -> str:
    return f"{h2o}/{day:%Y-%m-%d}_s{session}"


def _ephys_sets(sessions, summary: Summary) -> list[runner.Item]:
    from .ingest.ephys.tables import EphysIngest

    items = []
    loaded = (EphysIngest * sessions).proj("probe_folder", "water_restriction_number", "session_date").to_dicts()
    summary.look("ephys: the folder each insertion was loaded from, *.bin and *.meta (SpikeGLX)")
    for row in sorted(loaded, key=lambda r: (r["water_restriction_number"], r["session"], r["insertion_number"])):
        folder = Path(row["probe_folder"])
        name = f"ephys/probe{row['insertion_number']}"
        label = f"{row['water_restriction_number']} session {row['session']} {name}"
        if not folder.is_dir():
            summary.skip(label, f"its probe folder {folder} is not there any more")
            continue
        files = sorted({p for pattern in RAW_EPHYS_PATTERNS for p in folder.glob(pattern) if p.is_file()})
        if not files:
            summary.skip(label, f"no SpikeGLX .bin/.meta files in {folder}")
            continue
        items.append(_item(row, name, label, folder, files))
    return items


def _video_sets(sessions, summary: Summary, paths: list | None) -> list[runner.Item]:
    from . import tracking
    from .ingest.tracking.step import camera_folders

    entries = config.validate(
        "tracking_data_paths", paths if paths is not None else config.get("tracking_data_paths", [])
    )
    if not entries:
        summary.look("video: tracking_data_paths is empty, no videos looked for")
        return []
    tracked = {(int(a), int(b)) for a, b in zip(*(sessions & tracking.Tracking).to_arrays("subject_id", "session"))}
    if not tracked:
        return []
    # the n-th session of an animal's day names its folder <...>_n (as the tracking ingest finds it)
    from . import experiment, lab

    every = (experiment.Session * lab.WaterRestriction).proj(
        "session_date", "session_datetime", "rig", "water_restriction_number"
    )
    frame = every.to_pandas().reset_index().sort_values(["subject_id", "session_datetime"])
    frame["n"] = frame.groupby(["subject_id", "session_date"]).cumcount() + 1
    rows = [r for r in frame.to_dict("records") if (int(r["subject_id"]), int(r["session"])) in tracked]
    items = []
    for rig, root in entries:
        root = Path(root).expanduser()
        summary.look(f"video: {root} (rig {rig}), the session's tracking folder, *{'|*'.join(VIDEO_SUFFIXES)}")
        for r in sorted(rows, key=lambda r: (r["water_restriction_number"], r["session"])):
            if r["rig"] != rig:
                continue
            label = f"{r['water_restriction_number']} session {r['session']} video"
            found = camera_folders(root, r["water_restriction_number"], r["session_date"], r["n"])
            if found is None:
                continue
            # one folder, or one per camera on the multi-target-licking rig: their common parent
            folders = sorted(set(found[0].values()))
            folder = Path(os.path.commonpath(folders)) if len(folders) > 1 else folders[0]
            files = sorted(
                p for f in folders for p in f.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            if files:
                items.append(_item(r, "video", label, folder, files))
            else:
                summary.skip(label, f"no videos in {', '.join(map(str, folders))}")
    return items


def _item(row: dict, name: str, label: str, folder: Path, files: list[Path]) -> runner.Item:
    base = f"{_session_folder_name(row['water_restriction_number'], row['session_date'], row['session'])}/{name}"
    return runner.Item(
        label=label,
        group=f"{row['water_restriction_number']} {row['session_date']}",
        key=dict(subject_id=int(row["subject_id"]), session=int(row["session"]), dataset=name),
        data=dict(folder=folder, files=[p.relative_to(folder).as_posix() for p in files], base=base),
    )


# --- the step -------------------------------------------------------------------------------------
class PublishStep(runner.Step):
    name = "publish"
    what = "raw data sets"

    def __init__(self, restriction=None, url: str | None = None, tracking_paths: list | None = None):
        self.restriction = restriction
        self.url = archive_url(url)
        self.tracking_paths = tracking_paths

    def find(self, summary: Summary) -> list[runner.Item]:
        from . import experiment, lab, publication  # noqa: F401  (declares its tables on first use)

        sessions = (experiment.Session * lab.WaterRestriction).proj(
            "session_date", "session_datetime", "rig", "water_restriction_number"
        )
        if self.restriction is not None:
            sessions = sessions & self.restriction
        self.fs, self.root = open_archive(self.url)
        summary.look(f"archive: {self.url}")
        return _ephys_sets(sessions, summary) + _video_sets(sessions, summary, self.tracking_paths)

    def check(self, item: runner.Item):
        from . import publication

        published = publication.DataSet & item.key
        if not published:
            return None
        recorded = {
            r["source_file"]: (int(r["file_size"]), r["file_sha1"], r["source_mtime"])
            for r in (publication.DataSet.PhysicalFile & item.key).to_dicts()
        }
        folder, changed = item.data["folder"], []
        for rel in item.data["files"]:
            path = folder / rel
            if rel not in recorded:
                changed.append(f"{rel} (new)")
                continue
            size, sha1, mtime = recorded[rel]
            st = path.stat()
            if st.st_size != size:
                changed.append(f"{rel} (size {size} -> {st.st_size})")
            elif _mtime(path) != mtime and local_sha1(path) != sha1:  # touched: hash it again
                changed.append(f"{rel} (content)")
        if changed:
            return "fail", (
                f"already published, but these files changed since: {', '.join(changed)}; "
                "delete its publication.DataSet row to publish it again"
            )
        return "skip", "already published"

    def build(self, item: runner.Item, inputs) -> dict:
        """Copy (or find already copied) and check every file of the set; no database."""
        folder, base = item.data["folder"], item.data["base"]
        files, copied, present = [], 0, 0
        for rel in item.data["files"]:
            src = folder / rel
            size, sha1 = src.stat().st_size, local_sha1(src)
            dest = f"{self.root}/{base}/{rel}"
            try:
                if archived(self.fs, dest) == (size, sha1):
                    present += 1
                else:
                    _copy(self.fs, src, dest)
                    got = archived(self.fs, dest)
                    if got != (size, sha1):
                        raise InputError(
                            f"{src}: the archive's copy {dest} reads back as {got} instead of ({size}, {sha1})"
                        )
                    copied += 1
            except TypeError as e:  # fsspec met an option it does not know (at its first call)
                raise ConfigError(f"archive_options {config.get('archive_options')}: {e}") from None
            except archive_errors() as e:  # the archive cannot be written or read
                if isinstance(e, FileNotFoundError) and not src.exists():
                    raise InputError(f"{src}: disappeared while publishing") from None
                raise ConnectionProblem(f"archive {self.url}: {type(e).__name__}: {e}") from None
            files.append(
                dict(
                    file_path=f"{base}/{rel}",
                    source_file=rel,
                    source_mtime=_mtime(src),
                    file_size=size,
                    file_sha1=sha1,
                )
            )
        return dict(files=files, copied=copied, present=present)

    def write(self, item: runner.Item, record: dict, inputs) -> runner.Done:
        from . import db, publication

        files = record["files"]
        total = sum(f["file_size"] for f in files)
        with db.connect().transaction:
            publication.DataSet.insert1(
                dict(
                    item.key,
                    archive_url=self.url,
                    dataset_path=item.data["base"],
                    source_folder=str(item.data["folder"]),
                    n_files=len(files),
                    total_bytes=total,
                )
            )
            publication.DataSet.PhysicalFile.insert([dict(item.key, **f) for f in files])
        again = f", {record['present']} already in the archive" if record["present"] else ""
        return runner.Done(
            text=f"{item.label}: {len(files)} files, {total / 1e6:.1f} MB ({record['copied']} copied{again})",
            counts=dict(files=len(files)),
        )


def publish(
    restriction=None, url: str | None = None, tracking_paths: list | None = None, progress: bool | None = None
) -> Summary:
    """Publish the raw files of every loaded session (matching ``restriction``) to the archive
    (default: the ``archive_url`` setting; videos under ``tracking_paths``, default the
    ``tracking_data_paths`` setting)."""
    return runner.run(PublishStep(restriction, url, tracking_paths), progress=progress)


def verify(restriction=None, progress: bool | None = None) -> Summary:
    """Read every published file back from its archive: size and SHA-1 as recorded. One item per set."""
    from . import publication
    from .ingest.progress import track

    summary = Summary(what="published data sets")
    sets = publication.DataSet * publication.DataSet.PhysicalFile
    if restriction is not None:
        sets = sets & restriction
    rows = sets.to_dicts()
    by_set: dict[tuple, list[dict]] = {}
    for r in rows:
        by_set.setdefault((r["subject_id"], r["session"], r["dataset"]), []).append(r)
    summary.found = len(by_set)
    for (subject, session, name), files in track(list(by_set.items()), "publish --verify", enabled=progress):
        url = files[0]["archive_url"]
        summary.look(f"archive: {url}")
        label = f"subject {subject} session {session} {name}"
        try:
            fs, root = open_archive(url)
            bad = []
            for f in files:
                got = archived(fs, f"{root}/{f['file_path']}")
                if got is None:
                    bad.append(f"{f['file_path']} (missing)")
                elif got != (f["file_size"], f["file_sha1"]):
                    bad.append(f"{f['file_path']} (size or SHA-1 differs)")
        except archive_errors() as e:
            summary.fail(label, f"archive {url}: {type(e).__name__}: {e}")
            continue
        if bad:
            summary.fail(label, f"{len(bad)} of {len(files)} files bad: {', '.join(bad)}")
        else:
            summary.load(f"{label}: {len(files)} files verified", group=f"subject {subject} session {session}")
    summary.log_report()
    return summary
