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
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..io.pybpod import (
    ForagingSession,
    PybpodError,
    find_sessions,
    read_foraging_day,
    read_session_info,
    read_subject_meta,
)
from .bulk import insert_frame, with_key
from .files import check_loaded, sha1
from .progress import track
from .summary import Summary

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


def _frames(s: ForagingSession, skey: dict) -> dict[str, pd.DataFrame]:
    """The session's rows per table, as DataFrames keyed like the tables."""

    def df(rows, cols):
        return with_key(pd.DataFrame(rows, columns=cols), skey)

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


def _insert(s: ForagingSession, subject_id: int, user: str, meta: dict, project_of: dict[Path, str]) -> dict:
    from .. import experiment, ingest_behavior, lab

    if not (lab.Rig & {"rig": s.rig}):
        lab.Rig.insert1(dict(rig=s.rig, rig_description=f"added by ingest-foraging (pybpod setup {s.setup})"))
    conn = experiment.Session.connection
    with conn.transaction:
        existing = (experiment.Session & {"subject_id": subject_id}).to_arrays("session")
        skey = dict(subject_id=subject_id, session=int(max(existing, default=0)) + 1)
        when = s.session_datetime
        experiment.Session.insert1(
            dict(skey, session_date=when.date(), session_datetime=when, username=user, rig=s.rig)
        )
        f = _frames(s, skey)
        insert_frame(experiment.SessionTrial, f["trials"])
        insert_frame(experiment.BehaviorTrial, f["behavior"])
        insert_frame(experiment.WaterPortChoice, f["choice"])
        insert_frame(experiment.TrialEvent, f["events"])
        insert_frame(experiment.ActionEvent, f["licks"])
        insert_frame(experiment.TrialNote, f["notes"])
        insert_frame(experiment.SessionBlock, f["blocks"])
        insert_frame(experiment.SessionBlock.WaterPortRewardProbability, f["probs"])
        insert_frame(experiment.SessionBlock.BlockTrial, f["block_trials"])
        insert_frame(experiment.TrialAvailableReward, f["reward"])
        insert_frame(experiment.WaterPortSetting, f["setting"])
        insert_frame(experiment.WaterPortSetting.OpenDuration, f["valve"])
        details = {
            k: meta.get(c)
            for k, c in (
                ("session_weight", "Weight"),
                ("session_water_earned", "Water during training"),
                ("session_water_extra", "Extra water"),
            )
        }
        details = {k: float(v) for k, v in details.items() if v is not None and not pd.isna(v)}
        experiment.SessionDetails.insert1(dict(skey, **details))
        if str(meta.get("Notes") or "").strip():
            experiment.SessionComment.insert1(dict(skey, session_comment=str(meta["Notes"]).strip()[:2048]))
        ingest_behavior.BehaviorBpodIngest.insert1(skey)
        ingest_behavior.BehaviorBpodIngest.BehaviorFile.insert(
            [
                dict(
                    skey,
                    behavior_file=p.stem,
                    project_path=str(project_of[p]),
                    relative_path=str(p.relative_to(project_of[p])),
                    file_size=p.stat().st_size,
                    file_sha1=sha1(p),
                )
                for p in s.files
            ]
        )
    return dict(skey, n_trials=len(s.trials))


def ingest_foraging(bpod: dict | None = None, progress: bool | None = None) -> Summary:
    """Load every new foraging session (default settings: ``behavior_bpod``)."""
    from .. import ingest_behavior, lab
    from .behavior import session_user

    summary = Summary(what="foraging sessions")
    settings = bpod if bpod is not None else config.get("behavior_bpod")
    if not settings:
        summary.fail("behavior_bpod", "setting is missing; see README (meta_dir and project_paths)")
        return summary
    settings = config.validate("behavior_bpod", settings)
    meta_dir = Path(settings["meta_dir"]).expanduser()
    projects = [str(Path(p).expanduser()) for p in settings["project_paths"]]
    if not meta_dir.is_dir():
        summary.fail(str(meta_dir), "meta_dir does not exist or is not readable")
        return summary
    index = index_bpod_sessions(projects, summary)
    project_of = {
        p: Path(proj)
        for proj in projects
        for files in index.values()
        for p in files
        if str(p).startswith(str(Path(proj)) + "/")
    }
    h2o_to_subject = dict(zip(*lab.WaterRestriction().to_arrays("water_restriction_number", "subject_id")))
    candidates: dict[tuple[str, dt.date], dict] = {}
    for sheet in sorted(meta_dir.glob("*.csv")):
        h2o = sheet.stem
        try:
            meta = read_subject_meta(sheet)
        except PybpodError as e:
            summary.fail(str(sheet), str(e))
            continue
        for row in meta[meta["is_session"]].to_dict("records"):
            candidates[(h2o, row["Date"].date())] = row
    keys = sorted(set(candidates) | {k for k in index if k[0] in h2o_to_subject})
    summary.found = len(keys)
    user = session_user()
    for h2o, day in track(keys, "ingest-foraging", total=len(keys), enabled=progress):
        item = f"{h2o} {day}"
        files = index.get((h2o, day), [])
        if h2o not in h2o_to_subject:
            summary.skip(
                item, f"water restriction id {h2o!r} is not in lab.WaterRestriction (load it with load-animal)"
            )
            continue
        if not files:
            summary.skip(item, f"metadata lists a session but no pybpod session of {h2o} that day is in project_paths")
            continue
        if (h2o, day) not in candidates:
            summary.skip(
                item,
                f"pybpod session(s) {', '.join(p.stem for p in files)} but no session row for "
                f"that day in {meta_dir / (h2o + '.csv')}",
            )
            continue
        state = check_loaded(ingest_behavior.BehaviorBpodIngest.BehaviorFile, {p.stem: p for p in files})
        if state is not None:
            (summary.skip if state[0] == "skip" else summary.fail)(item, state[1])
            continue
        try:
            session = read_foraging_day(files, h2o)
        except PybpodError as e:
            summary.fail(item, str(e))
            continue
        try:
            result = _insert(session, int(h2o_to_subject[h2o]), user, candidates[(h2o, day)], project_of)
        except Exception as e:  # rolled back: nothing of this session is in the database
            log.exception("inserting %s failed", item)
            summary.fail(item, f"database insert failed and was rolled back: {type(e).__name__}: {e}")
            continue
        note = f" ({len(session.skipped_trials)} trials without a go cue left out)" if session.skipped_trials else ""
        summary.load(f"{item} -> session {result['session']}, {result['n_trials']} trials{note}")
    return summary
