"""``ingest-behavior``: delay-response rig files under ``behavior_data_paths`` -> sessions.

Files are found by name (``<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat``) under every
``[rig, root, priority]`` entry, lowest priority number first (a file name seen under two rigs
is taken from the first). All files of one subject on one day make one session, in time order,
with trials numbered through. Each session is written in one transaction together with the
record of its files (name, size, SHA-1): re-running skips them, a crashed run is simply re-run,
and a day whose files changed after loading is reported, never silently altered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..io.bpod_delay_response import (
    BehaviorData,
    BehaviorFileError,
    UnsupportedProtocol,
    parse_filename,
    read_delay_response,
)
from .bulk import insert_frame, with_key
from .files import check_loaded, sha1
from .progress import track
from .summary import Summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RigFile:
    rig: str
    root: Path
    path: Path
    priority: int

    @property
    def name(self) -> str:
        return self.path.name


def find_rig_files(paths: list | None = None, summary: Summary | None = None) -> list[RigFile]:
    """Every rig file under the configured roots (first root wins for a repeated file name)."""
    entries = paths if paths is not None else config.get("behavior_data_paths", [])
    entries = config.validate("behavior_data_paths", entries)
    found: dict[str, RigFile] = {}
    for rig, root, priority in sorted(entries, key=lambda e: e[2]):
        root = Path(root).expanduser()
        if not root.is_dir():
            if summary is not None:
                summary.fail(str(root), f"rig folder of {rig} does not exist or is not readable")
            continue
        for p in sorted(root.rglob("*.mat")):
            if parse_filename(p) is None:
                continue
            if p.name in found:
                if summary is not None:
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


def session_user() -> str:
    """``session.user`` setting, else the database user if a lab.Person, else 'unknown'."""
    import datajoint as dj

    from .. import lab

    user = config.get("session.user") or dj.config.database.user
    if user and (lab.Person & {"username": user}):
        return user
    lab.Person.insert1(dict(username="unknown", fullname="unknown"), skip_duplicates=True)
    return "unknown"


def _combine(datas: list[BehaviorData]) -> dict[str, pd.DataFrame]:
    """Several files of a day -> one session's tables (trials renumbered, times from the first start)."""
    t0 = datas[0].session_datetime
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("trials", "notes", "events", "actions", "photostim_events")}
    first_trials, next_trial = [], 1
    for d in datas:
        offset = (d.session_datetime - t0).total_seconds()
        renumber = dict(zip(d.trials["trial"], range(next_trial, next_trial + len(d.trials))))
        first_trials.append(next_trial)
        next_trial += len(d.trials)
        trials = d.trials.copy()
        trials["trial"] = trials["trial"].map(renumber)
        trials["start_time"] += offset
        trials["stop_time"] += offset
        parts["trials"].append(trials)
        for k in ("notes", "events", "actions", "photostim_events"):
            df = getattr(d, k)
            df = df[df["trial"].isin(renumber)].copy()
            df["trial"] = df["trial"].map(renumber)
            parts[k].append(df)
    out = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    out["first_trials"] = first_trials
    return out


def _insert_session(files: list[RigFile], datas: list[BehaviorData], subject_id: int, user: str) -> dict:
    from .. import experiment, ingest_behavior, lab

    tables = _combine(datas)
    rig = files[0].rig
    if not (lab.Rig & {"rig": rig}):
        lab.Rig.insert1(dict(rig=rig, rig_description="added by ingest-behavior (behavior_data_paths)"))
    when = datas[0].session_datetime
    conn = experiment.Session.connection
    with conn.transaction:
        existing = (experiment.Session & {"subject_id": subject_id}).to_arrays("session")
        session = int(max(existing, default=0)) + 1
        skey = dict(subject_id=subject_id, session=session)
        experiment.Session.insert1(dict(skey, session_date=when.date(), session_datetime=when, username=user, rig=rig))
        trials = tables["trials"]
        n = len(trials)

        def frame(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
            return with_key(df[cols], skey)

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
        insert_frame(experiment.TrialNote, frame(tables["notes"], ["trial", "trial_note_type", "trial_note"]))
        ev = frame(tables["events"], ["trial", "trial_event_type", "trial_event_time", "duration"])
        ev.insert(3, "trial_event_id", np.arange(1, len(ev) + 1))
        insert_frame(experiment.TrialEvent, ev)
        ac = frame(tables["actions"], ["trial", "action_event_type", "action_event_time"])
        ac.insert(3, "action_event_id", np.arange(1, len(ac) + 1))
        insert_frame(experiment.ActionEvent, ac)
        ps = tables["photostim_events"]
        if len(ps):
            for protocol in sorted(set(ps["photostim_protocol"])):
                proto = (experiment.PhotostimProtocol & {"photostim_protocol": protocol}).fetch1()
                experiment.Photostim.insert1(
                    dict(
                        skey,
                        photo_stim=protocol,
                        photostim_device=proto["photostim_device"],
                        duration=proto["duration"],
                    )
                )
                locs = (experiment.PhotostimProtocol.Location & {"photostim_protocol": protocol}).to_dicts()
                experiment.Photostim.PhotostimLocation.insert(
                    [
                        dict(skey, photo_stim=protocol, **{k: v for k, v in loc.items() if k != "photostim_protocol"})
                        for loc in locs
                    ]
                )
            insert_frame(experiment.PhotostimTrial, frame(ps.drop_duplicates("trial"), ["trial"]))
            pe = frame(
                ps.rename(columns={"photostim_protocol": "photo_stim"}),
                ["trial", "photo_stim", "photostim_event_time", "power"],
            )
            pe.insert(3, "photostim_event_id", np.arange(1, len(pe) + 1))
            insert_frame(experiment.PhotostimEvent, pe)
        ingest_behavior.BehaviorIngest.insert1(skey)
        ingest_behavior.BehaviorIngest.BehaviorFile.insert(
            [
                dict(
                    skey,
                    behavior_file=f.name,
                    rig=f.rig,
                    relative_path=str(f.path.relative_to(f.root)),
                    file_size=f.path.stat().st_size,
                    file_sha1=sha1(f.path),
                    n_trials_in_file=d.n_trials_in_file,
                    first_trial=first,
                )
                for f, d, first in zip(files, datas, tables["first_trials"])
            ]
        )
    return dict(skey, n_trials=n)


def ingest_behavior(paths: list | None = None, progress: bool | None = None) -> Summary:
    """Load every new delay-response session under ``paths`` (default: the behavior_data_paths setting)."""
    from .. import ingest_behavior as ingest_behavior_schema
    from .. import lab

    summary = Summary(what="behavior sessions")
    files = find_rig_files(paths, summary)
    groups = group_by_day(files)
    summary.found = len(groups)
    h2o_to_subject = dict(zip(*lab.WaterRestriction().to_arrays("water_restriction_number", "subject_id")))
    user = session_user()
    for (h2o, day), day_files in track(groups.items(), "ingest-behavior", total=len(groups), enabled=progress):
        item = f"{h2o} {day} ({', '.join(f.name for f in day_files)})"
        if h2o not in h2o_to_subject:
            summary.skip(
                item, f"water restriction id {h2o!r} is not in lab.WaterRestriction (load it with load-animal)"
            )
            continue
        state = check_loaded(ingest_behavior_schema.BehaviorIngest.BehaviorFile, {f.name: f.path for f in day_files})
        if state is not None:
            (summary.skip if state[0] == "skip" else summary.fail)(item, state[1])
            continue
        try:
            datas = [read_delay_response(f.path) for f in day_files]
        except UnsupportedProtocol as e:
            summary.skip(item, str(e))
            continue
        except BehaviorFileError as e:
            summary.fail(item, str(e))
            continue
        for d in datas:
            for w in d.warnings:
                log.warning("%s: %s", d.path.name, w)
        try:
            result = _insert_session(day_files, datas, int(h2o_to_subject[h2o]), user)
        except Exception as e:  # the transaction rolled back: nothing of this session is in the database
            log.exception("inserting %s failed", item)
            summary.fail(item, f"database insert failed and was rolled back: {type(e).__name__}: {e}")
            continue
        skipped = sum(len(d.skipped_trials) for d in datas)
        summary.load(
            f"{item} -> session {result['session']}, {result['n_trials']} trials"
            + (f" ({skipped} incomplete trials left out)" if skipped else "")
        )
    return summary
