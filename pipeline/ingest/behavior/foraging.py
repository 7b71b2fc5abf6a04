"""``ingest-foraging``: pybpod foraging sessions (``behavior_bpod`` setting) -> sessions.

The subject metadata sheets (``{meta_dir}/{h2o}.csv``, one row per training day) say which days
were behavior sessions; the pybpod project folders hold the session logs. All pybpod sessions of
one subject on one day make one session (trials numbered through). Per session, in one
transaction: Session, SessionTrial, BehaviorTrial, WaterPortChoice, TrialEvent, ActionEvent,
TrialNote, SessionBlock (+reward probabilities, trials), TrialAvailableReward, WaterPortSetting
(+valve open times), SessionDetails and SessionComment from the metadata row, and the
BehaviorBpodIngest record of the files (re-runs skip them; a changed file is reported).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ... import config
from ...io.pybpod import (
    ForagingSession,
    PybpodError,
    find_sessions,
    read_foraging_day,
    read_session_info,
    read_subject_meta,
)
from .. import runner
from ..bulk import insert_frame, with_key
from ..files import check_loaded, sha1
from ..summary import Summary
from . import common

log = logging.getLogger(__name__)


def index_bpod_sessions(project_paths: list[str], summary: Summary) -> dict[tuple[str, dt.date], list[Path]]:
    """(h2o, date) -> session logs, from every project folder (subjects read from the log heads)."""
    index: dict[tuple[str, dt.date], list[Path]] = {}
    for proj in project_paths:
        if not Path(proj).is_dir():
            summary.fail(str(proj), "pybpod project folder does not exist or is not readable")
            continue
        for p in find_sessions(proj):
            try:
                day = dt.datetime.strptime(p.stem[:8], "%Y%m%d").date()
            except ValueError:
                continue
            try:
                subjects = read_session_info(p).get("SUBJECT-NAME", "")
            except PybpodError as e:
                summary.fail(str(p), str(e))
                continue
            for h2o in _subject_names(subjects):
                index.setdefault((h2o, day), []).append(p)
    return index


def _subject_names(text: str) -> list[str]:
    """SUBJECT-NAME is written as ``['FOR01', '<uuid>']`` (or a list of such); take the names."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text.strip()] if text.strip() else []
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return [str(v[0]) for v in value]
    if isinstance(value, (list, tuple)) and value:
        return [str(value[0])]
    return [str(value)]


def frames(s: ForagingSession) -> dict[str, pd.DataFrame]:
    """The session's rows per table, as DataFrames (without the session key; pure)."""

    def df(rows, cols):
        return pd.DataFrame(rows, columns=cols)

    t = s.trials
    trials = df([(x.trial, x.start_time, x.stop_time) for x in t], ["trial", "start_time", "stop_time"])
    behavior = df(
        [(x.trial, x.task, x.task_protocol, "none", x.early_lick, x.outcome, x.auto_water, x.free_water) for x in t],
        ["trial", "task", "task_protocol", "trial_instruction", "early_lick", "outcome", "auto_water", "free_water"],
    )
    choice = df([(x.trial, x.choice) for x in t], ["trial", "water_port"])
    events = df(
        [(x.trial, e[0], e[1], e[2]) for x in t for e in x.events],
        ["trial", "trial_event_type", "trial_event_time", "duration"],
    )
    events.insert(3, "trial_event_id", np.arange(1, len(events) + 1))
    licks = df([(x.trial, a[0], a[1]) for x in t for a in x.licks], ["trial", "action_event_type", "action_event_time"])
    licks.insert(3, "action_event_id", np.arange(1, len(licks) + 1))
    notes = df(
        [(x.trial, k, str(v)[:255]) for x in t for k, v in x.notes.items()], ["trial", "trial_note_type", "trial_note"]
    )
    reward = df(
        [(x.trial, port, bool(v)) for x in t for port, v in x.available_reward.items()],
        ["trial", "water_port", "reward_available"],
    )
    pos_names = {
        "lateral": "water_port_lateral_pos",
        "rostrocaudal": "water_port_rostrocaudal_pos",
        "dorsoventral": "water_port_dorsoventral_pos",
    }
    setting = df(
        [(x.trial, *[(x.lickport_position or {}).get(k, np.nan) for k in pos_names]) for x in t],
        ["trial", *pos_names.values()],
    )
    valve = df(
        [(x.trial, port, v) for x in t for port, v in x.valve_open_duration.items()],
        ["trial", "water_port", "open_duration"],
    )
    blocks = df([(b.block, b.start_time) for b in s.blocks], ["block", "block_start_time"])
    probs = df(
        [(b.block, port, p) for b in s.blocks for port, p in b.reward_probability.items()],
        ["block", "water_port", "reward_probability"],
    )
    block_trials = df([(x.block, x.trial) for x in t], ["block", "trial"])
    return dict(
        trials=trials,
        behavior=behavior,
        choice=choice,
        events=events,
        licks=licks,
        notes=notes,
        reward=reward,
        setting=setting,
        valve=valve,
        blocks=blocks,
        probs=probs,
        block_trials=block_trials,
    )


TABLES = (  # frame name -> experiment table, in insert order
    ("trials", "SessionTrial"),
    ("behavior", "BehaviorTrial"),
    ("choice", "WaterPortChoice"),
    ("events", "TrialEvent"),
    ("licks", "ActionEvent"),
    ("notes", "TrialNote"),
    ("blocks", "SessionBlock"),
    ("probs", "SessionBlock.WaterPortRewardProbability"),
    ("block_trials", "SessionBlock.BlockTrial"),
    ("reward", "TrialAvailableReward"),
    ("setting", "WaterPortSetting"),
    ("valve", "WaterPortSetting.OpenDuration"),
)


#: Sheets of ``meta_dir`` that are not an animal's daily sheet (read by ``load-meta-foraging``).
META_SHEETS = frozenset({"Surgery.csv", "Experimenter.csv", "Rig.csv"})


@dataclass
class ForagingRecord:
    session: ForagingSession
    frames: dict[str, pd.DataFrame]
    details: dict
    comment: str
    files: list[dict]


def build_session(files: list[Path], h2o: str, meta: dict, project_of: dict[Path, Path]) -> ForagingRecord:
    """Read one day's pybpod sessions and make the session's rows (pure: no database)."""
    session = read_foraging_day(files, h2o)
    details = {
        k: meta.get(c)
        for k, c in (
            ("session_weight", "Weight"),
            ("session_water_earned", "Water during training"),
            ("session_water_extra", "Extra water"),
        )
    }
    details = {k: float(v) for k, v in details.items() if v is not None and not pd.isna(v)}
    file_rows = [
        dict(
            behavior_file=p.stem,
            project_path=str(project_of[p]),
            relative_path=str(p.relative_to(project_of[p])),
            file_size=p.stat().st_size,
            file_sha1=sha1(p),
        )
        for p in session.files
    ]
    comment = str(meta.get("Notes") or "").strip()[:2048]
    return ForagingRecord(session, frames(session), details, comment, file_rows)


def write_session(rec: ForagingRecord, subject_id: int, user: str) -> dict:
    from ... import experiment
    from .tables import BehaviorBpodIngest

    s = rec.session
    common.ensure_rig(s.rig, f"added by ingest-foraging (pybpod setup {s.setup})")
    with common.transaction():
        skey = common.insert_session(subject_id, s.session_datetime, user, s.rig)
        for name, table in TABLES:
            target = experiment
            for part in table.split("."):
                target = getattr(target, part)
            insert_frame(target, with_key(rec.frames[name], skey))
        experiment.SessionDetails.insert1(dict(skey, **rec.details))
        if rec.comment:
            experiment.SessionComment.insert1(dict(skey, session_comment=rec.comment))
        BehaviorBpodIngest.insert1(skey)
        BehaviorBpodIngest.BehaviorFile.insert([dict(skey, **f) for f in rec.files])
    return skey


class ForagingStep(runner.Step):
    name = "ingest-foraging"
    what = "foraging sessions"

    def __init__(self, bpod: dict | None = None):
        self.bpod = bpod

    def find(self, summary: Summary) -> list[runner.Item]:
        settings = self.bpod if self.bpod is not None else config.get("behavior_bpod")
        if not settings:
            summary.fail(
                "behavior_bpod", "setting is missing; see docs/ingest-foraging.md (meta_dir and project_paths)"
            )
            return []
        settings = config.validate("behavior_bpod", settings)
        meta_dir = Path(settings["meta_dir"]).expanduser()
        projects = [str(Path(p).expanduser()) for p in settings["project_paths"]]
        summary.look(f"{meta_dir}: <h2o>.csv metadata sheets (one row per training day)")
        for proj in projects:
            summary.look(f"{proj}: pybpod session logs (experiments/*/setups/*/sessions/<yyyymmdd-hhmmss>/*.csv)")
        if not meta_dir.is_dir():
            summary.fail(str(meta_dir), "meta_dir does not exist or is not readable")
            return []
        index = index_bpod_sessions(projects, summary)
        self.project_of = {
            p: Path(proj)
            for proj in projects
            for files in index.values()
            for p in files
            if str(p).startswith(str(Path(proj)) + "/")
        }
        self.animals = common.animals()
        candidates: dict[tuple[str, dt.date], dict] = {}
        for sheet in sorted(meta_dir.glob("*.csv")):
            if sheet.name in META_SHEETS:  # the lab's own sheets (load-meta-foraging), not an animal's
                continue
            try:
                meta = read_subject_meta(sheet)
            except PybpodError as e:
                summary.fail(str(sheet), str(e))
                continue
            for row in meta[meta["is_session"]].to_dict("records"):
                candidates[(sheet.stem, row["Date"].date())] = row
        keys = sorted(set(candidates) | {k for k in index if k[0] in self.animals})
        self.meta_dir = meta_dir
        return [
            runner.Item(
                label=f"{h2o} {day}",
                group=f"{h2o} {day}",
                key=dict(h2o=h2o, date=day.isoformat()),
                data=(index.get((h2o, day), []), candidates.get((h2o, day))),
            )
            for h2o, day in keys
        ]

    def check(self, item: runner.Item):
        from .tables import BehaviorBpodIngest

        h2o = item.key["h2o"]
        files, meta = item.data
        if h2o not in self.animals:
            return "skip", common.UNKNOWN_H2O.format(h2o=h2o)
        if not files:
            return "skip", f"metadata lists a session but no pybpod session of {h2o} that day is in project_paths"
        if meta is None:
            return "skip", (
                f"pybpod session(s) {', '.join(p.stem for p in files)} but no session row for "
                f"that day in {self.meta_dir / (h2o + '.csv')}"
            )
        return check_loaded(BehaviorBpodIngest.BehaviorFile, {p.stem: p for p in files})

    def inputs(self, item: runner.Item):
        subject_id, owner = self.animals[item.key["h2o"]]
        return subject_id, common.session_owner(owner)

    def build(self, item: runner.Item, inputs) -> ForagingRecord:
        files, meta = item.data
        return build_session(files, item.key["h2o"], meta, self.project_of)

    def write(self, item: runner.Item, record: ForagingRecord, inputs) -> runner.Done:
        subject_id, user = inputs
        skey = write_session(record, subject_id, user)
        n = len(record.session.trials)
        skipped = record.session.skipped_trials
        return runner.Done(
            text=f"{item.label} -> session {skey['session']} of {user}, {n} trials",
            counts=dict(trials=n),
            notes=[f"{len(skipped)} trials without a go cue left out"] if skipped else [],
        )


def ingest_foraging(bpod: dict | None = None, progress: bool | None = None) -> Summary:
    """Load every new foraging session (default settings: ``behavior_bpod``)."""
    return runner.run(ForagingStep(bpod), progress=progress)
