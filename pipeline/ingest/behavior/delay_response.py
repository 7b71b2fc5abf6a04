"""``ingest-behavior``: Bpod rig files under ``behavior_data_paths`` -> sessions: the
delay-response task and the multi-target-licking (MTL) rig.

* **find**: files named ``<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat`` under every ``[rig, root,
  priority]`` entry, lowest priority number first (a file name seen under two rigs is taken from
  the first); other ``.mat`` files are listed as ignored. All files of one animal on one day are
  one item (one session).
* **build**: read each file (:mod:`pipeline.io.bpod_delay_response`, which tells the two tasks
  apart), drop exact copies (same content hash: loaded once, named in the summary), refuse files
  whose trials overlap in time or a day whose files are of different tasks, and number the trials
  (and MTL blocks) through in time order.
* **write**: the session, its trials and events (for MTL also
  ``experiment.MultiTargetLickingSessionBlock`` with its ``WaterPort`` and ``BlockTrial`` parts)
  and the record of its files (name, size, SHA-1), in one transaction. Re-runs skip loaded days;
  a day whose files changed is reported, not altered.

The session start is the first file's own start time as Bpod recorded it
(``BehaviorData.start_source`` says which field), not the time in the file name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ... import config
from ...errors import InputError
from ...io.bpod_delay_response import (
    BLOCK_COLUMNS,
    BLOCK_PORT_COLUMNS,
    BLOCK_TRIAL_COLUMNS,
    MTL_TASK,
    BehaviorData,
    parse_filename,
    read_rig_file,
)
from .. import runner
from ..bulk import insert_frame, with_key
from ..files import check_loaded, sha1
from ..summary import Summary
from . import common

log = logging.getLogger(__name__)

NAME_PATTERN = "<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat"


@dataclass(frozen=True)
class RigFile:
    rig: str
    root: Path
    path: Path
    priority: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class SessionRecord:
    """What build makes of one day: the session's tables and the record of its files."""

    h2o: str
    session_datetime: object
    start_source: str
    rig: str
    tables: dict[str, pd.DataFrame]
    files: list[dict]  # BehaviorFile rows without the session key
    n_trials: int
    notes: list[str] = field(default_factory=list)
    task: str = "audio delay"


def find_rig_files(paths: list | None = None, summary: Summary | None = None) -> list[RigFile]:
    """Every rig file under the configured roots (first root wins for a repeated file name)."""
    summary = summary if summary is not None else Summary()
    entries = paths if paths is not None else config.get("behavior_data_paths", [])
    entries = config.validate("behavior_data_paths", entries)
    if not entries:
        summary.look("behavior_data_paths is empty: set it (mapshell config set behavior_data_paths ...)")
    found: dict[str, RigFile] = {}
    for rig, root, priority in sorted(entries, key=lambda e: e[2]):
        root = Path(root).expanduser()
        summary.look(f"{root} (rig {rig}): **/{NAME_PATTERN}")
        if not root.is_dir():
            summary.fail(str(root), f"rig folder of {rig} does not exist or is not readable")
            continue
        for p in sorted(root.rglob("*.mat")):
            if parse_filename(p) is None:
                summary.ignore(str(p), f"a .mat file not named {NAME_PATTERN}")
                continue
            if p.name in found:
                summary.skip(str(p), f"same file name already found under rig {found[p.name].rig}")
                continue
            found[p.name] = RigFile(rig, root, p, priority)
    return list(found.values())


def group_by_day(files: list[RigFile]) -> dict[tuple[str, str], list[RigFile]]:
    """(h2o, yyyymmdd) -> that day's files in time order."""
    groups: dict[tuple[str, str], list[RigFile]] = {}
    for f in files:
        n = parse_filename(f.path)
        groups.setdefault((n["h2o"], n["date"]), []).append(f)
    for k in groups:
        groups[k].sort(key=lambda f: (parse_filename(f.path)["time"], f.name))
    return dict(sorted(groups.items()))


TRIAL_TABLES = ("trials", "notes", "events", "actions", "photostim_events")
BLOCK_TABLES = ("blocks", "block_ports", "block_trials")


def _renumbered(df: pd.DataFrame, column: str, old: np.ndarray, first: int) -> pd.DataFrame:
    """``df`` without the rows whose ``column`` is not one of ``old``, the others numbered
    ``first``, ``first`` + 1, ... in the order of ``old`` (``df`` itself if that changes nothing)."""
    values = df[column].to_numpy()
    if first == 1 and np.array_equal(old, np.arange(1, len(old) + 1)):
        if not len(values) or (values.min() >= 1 and values.max() <= len(old)):
            return df
    at = pd.Index(old).get_indexer(values)
    df = df[at >= 0].reset_index(drop=True)
    df[column] = at[at >= 0] + first
    return df


def combine(datas: list[BehaviorData]) -> dict[str, pd.DataFrame]:
    """Several files of a day -> one session's tables (trials renumbered, times from the first start).
    Raises InputError when a file's trials start before the previous file's last trial ended."""
    tasks = {d.task for d in datas}
    if len(tasks) > 1:
        raise InputError(
            f"{datas[0].path.parent}: the day's files are of different tasks ("
            + ", ".join(f"{d.path.name}: {d.task}" for d in datas)
            + "): one session is one task; move the other files away"
        )
    t0 = datas[0].session_datetime
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in (*TRIAL_TABLES, *BLOCK_TABLES)}
    first_trials, next_trial, next_block, last_stop, last_name = [], 1, 1, -np.inf, None
    for d in datas:
        offset = (d.session_datetime - t0).total_seconds()
        first_trials.append(next_trial)
        in_file = d.trials["trial"].to_numpy()
        for k in (*TRIAL_TABLES, "block_trials"):
            parts[k].append(_renumbered(getattr(d, k), "trial", in_file, next_trial))
        next_trial += len(in_file)
        trials = parts["trials"][-1]
        if offset:  # a later file (its tables renumbered: copies)
            trials["start_time"] += offset
            trials["stop_time"] += offset
        if len(trials):
            if trials["start_time"].iloc[0] < last_stop:
                raise InputError(
                    f"{d.path}: its trials start {trials['start_time'].iloc[0]:.1f} s after the session start, "
                    f"before the last trial of {last_name} ended ({last_stop:.1f} s): the files overlap in time "
                    f"and are not merged; remove the wrong one"
                )
            last_stop, last_name = float(trials["stop_time"].max()), d.path.name
        # multi-target licking: blocks are numbered through the day's files too
        blocks = d.blocks["block"].to_numpy()
        for k in BLOCK_TABLES:
            df = _renumbered(parts[k].pop() if k == "block_trials" else getattr(d, k), "block", blocks, next_block)
            if k == "blocks" and offset:
                df["block_start_time"] += offset
            parts[k].append(df)
        next_block += len(blocks)
    out = {k: v[0] if len(v) == 1 else pd.concat(v, ignore_index=True) for k, v in parts.items()}
    out["first_trials"] = first_trials
    return out


def build_session(day_files: list[RigFile]) -> SessionRecord:
    """Read one day's files and make the session's rows (pure: no database)."""
    hashes = {f.path: sha1(f.path) for f in day_files}
    notes, unique, copies = [], [], []
    seen: dict[str, RigFile] = {}
    for f in day_files:
        h = hashes[f.path]
        if h in seen:
            copies.append(f)
            notes.append(f"{f.name} has the same content as {seen[h].name} (a copy): loaded once")
        else:
            seen[h] = f
            unique.append(f)
    datas = [read_rig_file(f.path) for f in unique]
    for d in datas:
        for w in d.warnings:
            notes.append(f"{d.path.name}: {w}")
    tables = combine(datas)
    skipped = sum(len(d.skipped_trials) for d in datas)
    if skipped and datas[0].task == MTL_TASK:
        notes.append(f"{skipped} trials left out (MATLABStartTimes 0: never ran; or aborted before TrialEnd)")
    elif skipped:
        notes.append(f"{skipped} incomplete trials left out (aborted, or training stages with ProtocolType < 3)")
    files = [
        dict(
            behavior_file=f.name,
            rig=f.rig,
            relative_path=str(f.path.relative_to(f.root)),
            file_size=f.path.stat().st_size,
            file_sha1=hashes[f.path],
            n_trials_in_file=d.n_trials_in_file,
            first_trial=first,
        )
        for f, d, first in zip(unique, datas, tables["first_trials"])
    ]
    files += [  # copies are recorded too (0 trials), so a re-run knows them
        dict(
            behavior_file=f.name,
            rig=f.rig,
            relative_path=str(f.path.relative_to(f.root)),
            file_size=f.path.stat().st_size,
            file_sha1=hashes[f.path],
            n_trials_in_file=0,
            first_trial=0,
        )
        for f in copies
    ]
    d0 = datas[0]
    return SessionRecord(
        h2o=d0.h2o,
        session_datetime=d0.session_datetime,
        start_source=getattr(d0, "start_source", None) or "the file's own start time",
        rig=unique[0].rig,
        tables=tables,
        files=files,
        n_trials=len(tables["trials"]),
        notes=notes,
        task=d0.task,
    )


def write_session(rec: SessionRecord, subject_id: int, user: str, known: dict | None = None) -> dict:
    """Insert one session in one transaction; returns its key. ``known``: what a run has looked up
    already (rigs present, photostim protocols), for its next sessions."""
    from ... import experiment
    from .tables import BehaviorIngest

    known = {} if known is None else known
    if rec.rig not in known.setdefault("rigs", set()):
        common.ensure_rig(rec.rig, "added by ingest-behavior (behavior_data_paths)")
        known["rigs"].add(rec.rig)
    tables = rec.tables
    with common.transaction():
        skey = common.insert_session(subject_id, rec.session_datetime, user, rec.rig)

        def frame(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
            return with_key(df if list(df.columns) == cols else df[cols], skey)

        trials = tables["trials"]
        insert_frame(experiment.SessionTrial, frame(trials, ["trial", "start_time", "stop_time"]))
        insert_frame(
            experiment.BehaviorTrial,
            frame(
                trials,
                [
                    "trial",
                    "task",
                    "task_protocol",
                    "trial_instruction",
                    "early_lick",
                    "outcome",
                    "auto_water",
                    "free_water",
                ],
            ),
        )
        # in primary-key order, as the other tables' rows are: each goes to the end of the index
        notes = tables["notes"].sort_values(["trial", "trial_note_type"], kind="stable")
        insert_frame(experiment.TrialNote, frame(notes, ["trial", "trial_note_type", "trial_note"]))
        ev = frame(tables["events"], ["trial", "trial_event_type", "trial_event_time", "duration"])
        ev.insert(3, "trial_event_id", np.arange(1, len(ev) + 1))
        insert_frame(experiment.TrialEvent, ev)
        ac = frame(tables["actions"], ["trial", "action_event_type", "action_event_time"])
        ac.insert(3, "action_event_id", np.arange(1, len(ac) + 1))
        insert_frame(experiment.ActionEvent, ac)
        ps = tables["photostim_events"]
        if len(ps):
            used = sorted(set(ps["photostim_protocol"].tolist()))
            protocols = _photostim_protocols(known)
            unknown = [p for p in used if p not in protocols]
            if unknown:
                raise InputError(f"photostim protocol(s) {unknown} not in experiment.PhotostimProtocol")
            stims = [
                dict(skey, photo_stim=p, **{k: protocols[p][0][k] for k in ("photostim_device", "duration")})
                for p in used
            ]
            insert_frame(experiment.Photostim, pd.DataFrame(stims))
            locations = [dict(skey, photo_stim=p, **loc) for p in used for loc in protocols[p][1]]
            insert_frame(experiment.Photostim.PhotostimLocation, pd.DataFrame(locations))
            insert_frame(experiment.PhotostimTrial, frame(ps.drop_duplicates("trial"), ["trial"]))
            pe = frame(
                ps.rename(columns={"photostim_protocol": "photo_stim"}),
                ["trial", "photo_stim", "photostim_event_time", "power"],
            )
            pe.insert(3, "photostim_event_id", np.arange(1, len(pe) + 1))
            insert_frame(experiment.PhotostimEvent, pe)
        if len(tables["blocks"]):
            insert_frame(experiment.MultiTargetLickingSessionBlock, frame(tables["blocks"], list(BLOCK_COLUMNS)))
            insert_frame(
                experiment.MultiTargetLickingSessionBlock.WaterPort,
                frame(tables["block_ports"], list(BLOCK_PORT_COLUMNS)),
            )
            insert_frame(
                experiment.MultiTargetLickingSessionBlock.BlockTrial,
                frame(tables["block_trials"], list(BLOCK_TRIAL_COLUMNS)),
            )
        insert_frame(BehaviorIngest, pd.DataFrame([skey]))
        insert_frame(BehaviorIngest.BehaviorFile, pd.DataFrame([dict(skey, **f) for f in rec.files]))
    return skey


def _photostim_protocols(known: dict) -> dict[int, tuple[dict, list[dict]]]:
    """protocol -> (its experiment.PhotostimProtocol row, its locations without the protocol), read
    once per run (into ``known``)."""
    from ... import experiment

    if "photostim" not in known:
        locations: dict[int, list[dict]] = {}
        for loc in experiment.PhotostimProtocol.Location.to_dicts():
            locations.setdefault(loc.pop("photostim_protocol"), []).append(loc)
        known["photostim"] = {
            r["photostim_protocol"]: (r, locations.get(r["photostim_protocol"], []))
            for r in experiment.PhotostimProtocol.to_dicts()
        }
    return known["photostim"]


class DelayResponseStep(runner.Step):
    name = "ingest-behavior"
    what = "behavior sessions"

    def __init__(self, paths: list | None = None):
        self.paths = paths
        self._animals: dict | None = None
        self._items: list[runner.Item] = []
        self._next: tuple[str, object] | None = None  # (label, future) of the item read ahead
        self._owners: dict[str | None, str] = {}  # animal owner -> session owner, this run
        self._known: dict = {}  # what write_session looked up, this run

    def animals(self) -> dict:
        if self._animals is None:
            self._animals = common.animals()
        return self._animals

    def find(self, summary: Summary) -> list[runner.Item]:
        self._items = items = []
        for (h2o, day), day_files in group_by_day(find_rig_files(self.paths, summary)).items():
            iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
            items.append(
                runner.Item(
                    label=f"{h2o} {iso} ({', '.join(f.name for f in day_files)})",
                    group=f"{h2o} {iso}",
                    key=dict(h2o=h2o, date=iso),
                    data=day_files,
                )
            )
        return items

    def check(self, item: runner.Item):
        from .tables import BehaviorIngest

        if item.key["h2o"] not in self.animals():
            return "skip", common.UNKNOWN_H2O.format(h2o=item.key["h2o"])
        return check_loaded(BehaviorIngest.BehaviorFile, {f.name: f.path for f in item.data})

    def inputs(self, item: runner.Item):
        subject_id, owner = self.animals()[item.key["h2o"]]
        if owner not in self._owners:
            self._owners[owner] = common.session_owner(owner)
        return subject_id, self._owners[owner]

    def build(self, item: runner.Item, inputs) -> SessionRecord:
        """The item's record; the next item to load is read meanwhile in a thread, while this one is
        written (the database works on the write, the reading goes on beside it)."""
        ahead, self._next = self._next, None
        if ahead is not None and ahead[0] == item.label:
            record = ahead[1].result()  # its error, if any, is raised here as if read now
        else:
            record = build_session(item.data)
        self._read_ahead(item)
        return record

    def _read_ahead(self, item: runner.Item) -> None:
        from concurrent.futures import ThreadPoolExecutor

        try:
            at = next(i for i, x in enumerate(self._items) if x.label == item.label)
        except StopIteration:
            return
        for following in self._items[at + 1 :]:
            try:
                if self.check(following) is not None:  # skipped or failed: try the one after
                    continue
            except Exception:  # the runner reports it when it gets there
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-behavior-read")
            self._next = (following.label, self._pool.submit(build_session, following.data))
            return

    _pool = None

    def write(self, item: runner.Item, record: SessionRecord, inputs) -> runner.Done:
        subject_id, user = inputs
        skey = write_session(record, subject_id, user, self._known)
        n_blocks = len(record.tables["blocks"])
        task = f" in {n_blocks} blocks (multi-target licking)" if record.task == MTL_TASK else ""
        return runner.Done(
            text=f"{item.label} -> session {skey['session']} of {user}, {record.n_trials} trials{task}, "
            f"start {record.session_datetime:%Y-%m-%d %H:%M:%S} (from {record.start_source})",
            counts=dict(trials=record.n_trials),
            notes=record.notes,
        )


def ingest_behavior(paths: list | None = None, progress: bool | None = None) -> Summary:
    """Load every new delay-response session under ``paths`` (default: the behavior_data_paths setting)."""
    return runner.run(DelayResponseStep(paths), progress=progress)
