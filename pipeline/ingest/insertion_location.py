"""``load-insertion-location``: where each probe went, from the lab's recording-notes sheet.

Columns (case-insensitive, spaces count as underscores; see docs/sheets.md):
``water_restriction_number`` (or ``subject_id``), ``session_date``, ``insertion_number``,
``skull_reference``, ``ap_location``, ``ml_location``, ``depth``, ``theta``, ``phi``, ``beta``,
``brain_area``, ``hemisphere``; optional ``behaviour_time`` (HHMMSS, when an animal had several
sessions that day), ``drift_presence``, ``alignment_confidence`` (yes/no),
``number_of_landmarks``, ``insertion_comment`` and ``good_period`` (``0-200;230-290;400-end``, s
on the probe clock from the first trial start). Any other column is refused (with the closest
known name) unless its header starts with ``#``; dates must be date cells or ISO text
(``YYYY-MM-DD``); numbers must be finite, whole where the column is an integer, and text must fit
the column (limits read from the DataJoint headings at run time).

Writes ProbeInsertion.InsertionLocation and .RecordableBrainRegion, and ProbeInsertionQuality
(+GoodPeriod, +GoodTrial: trials starting inside a good period) when quality columns are given.
The insertion must already be loaded by ingest-ephys. The whole sheet is checked first; any bad
row (reported with its row number and column) means nothing is written. A row equal to what is
stored is skipped; a different one is an error unless ``replace=True``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.spreadsheet import (
    CellError,
    blank,
    column_type,
    date_cell,
    float_cell,
    int_cell,
    read_table,
    sheet_label,
    show,
    text_cell,
    time_cell,
    unknown_columns,
    where,
)
from .summary import Summary

log = logging.getLogger(__name__)

REQUIRED = (
    "session_date",
    "insertion_number",
    "skull_reference",
    "ap_location",
    "ml_location",
    "depth",
    "brain_area",
    "hemisphere",
)
QUALITY = ("drift_presence", "alignment_confidence", "number_of_landmarks", "insertion_comment", "good_period")
OPTIONAL = ("water_restriction_number", "subject_id", "theta", "phi", "beta", "behaviour_time") + QUALITY
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}


class RowError(InputError):
    pass


def parse_good_periods(text: Any, row: Any = "?") -> list[tuple[float, float]]:
    """``'0-200;230-290;400-end'`` -> [(0, 200), (230, 290), (400, inf)] (sorted; no overlaps)."""
    if blank(text):
        return []
    out = []
    at = where(row, "good_period")
    for part in str(text).split(";"):
        if not part.strip():
            continue
        try:
            a, b = part.split("-")
            start = float(a)
            end = math.inf if b.strip().lower() == "end" else float(b)
            if not math.isfinite(start) or math.isnan(end):
                raise ValueError
        except ValueError:
            raise RowError(
                f"good_period part {part.strip()!r} is not 'start-end' (seconds >= 0, or 'end') {at}"
            ) from None
        if end <= start:
            raise RowError(f"good_period {part.strip()!r} ends before it starts {at}")
        out.append((start, end))
    out.sort()
    for (a0, b0), (a1, b1) in zip(out, out[1:]):
        if a1 < b0:
            raise RowError(f"good_period parts {a0:g}-{b0:g} and {a1:g}-{b1:g} overlap {at}")
    return out


def _session_key(raw: dict, h2o_to_subject: dict, sessions: pd.DataFrame, limits: dict | None = None) -> dict:
    row = raw.get("row_number", "?")
    limits = limits or {}
    subject = None
    if not blank(raw.get("subject_id")):
        try:
            subject = int_cell(raw["subject_id"], row, "subject_id", limits.get("subject_id"), lo=1)
        except CellError as e:
            raise RowError(str(e)) from None
    if not blank(raw.get("water_restriction_number")):
        h2o = str(raw["water_restriction_number"]).strip()
        if h2o not in h2o_to_subject:
            raise RowError(
                f"water_restriction_number {show(h2o)} is not in lab.WaterRestriction "
                f"{where(row, 'water_restriction_number')}"
            )
        if subject is not None and subject != h2o_to_subject[h2o]:
            raise RowError(
                f"subject_id {subject} {where(row, 'subject_id')} is not the subject of "
                f"water_restriction_number {h2o!r} ({h2o_to_subject[h2o]})"
            )
        subject = h2o_to_subject[h2o]
    elif subject is None:
        raise RowError(f"missing water_restriction_number (or subject_id) in row {row}")
    try:
        day = date_cell(raw["session_date"], row, "session_date")
    except CellError as e:
        raise RowError(str(e)) from None
    cand = sessions[(sessions.subject_id == subject) & (sessions.session_date == day)]
    at = ""
    if not blank(raw.get("behaviour_time")):
        try:
            hhmmss = time_cell(raw["behaviour_time"], row, "behaviour_time")
        except CellError as e:
            raise RowError(str(e)) from None
        cand = cand[cand.session_datetime.dt.strftime("%H%M%S") == hhmmss]
        at = f" at {hhmmss}"
    if len(cand) == 0:
        raise RowError(f"no session of subject {subject} on {day}{at} {where(row, 'session_date')}")
    if len(cand) > 1:
        raise RowError(
            f"subject {subject} has {len(cand)} sessions on {day} {where(row, 'behaviour_time')}; "
            "give behaviour_time (HHMMSS)"
        )
    return dict(subject_id=int(subject), session=int(cand.iloc[0].session))


def _limits() -> dict:
    """Column limits read from the table headings at run time (so they follow the definitions)."""
    from .. import ephys, lab

    return dict(
        subject_id=column_type(lab.Subject, "subject_id"),
        insertion_number=column_type(ephys.ProbeInsertion, "insertion_number"),
        number_of_landmarks=column_type(ephys.ProbeInsertionQuality, "number_of_landmarks"),
        insertion_comment=column_type(ephys.ProbeInsertionQuality, "insertion_comment"),
    )


def parse_row(
    raw: dict,
    h2o_to_subject: dict,
    sessions: pd.DataFrame,
    lookups: dict,
    limits: dict,
    is_loaded: Callable[[dict], bool] = lambda key: True,
) -> dict:
    """One sheet row -> key, loc, region, quality, periods; a :class:`RowError` lists every
    problem of the row, each naming its row and column."""
    row = raw.get("row_number", "?")
    problems: list[str] = []

    def attempt(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except (RowError, CellError) as e:
            problems.append(str(e))
            return None

    missing = [c for c in REQUIRED if blank(raw.get(c))]
    if missing:
        problems.append(f"missing {', '.join(missing)} in row {row}")
    key = None
    if not blank(raw.get("session_date")):
        key = attempt(_session_key, raw, h2o_to_subject, sessions, limits)
    number = None
    if not blank(raw.get("insertion_number")):
        number = attempt(int_cell, raw["insertion_number"], row, "insertion_number", limits["insertion_number"], lo=1)
    if key is not None and number is not None:
        key = dict(key, insertion_number=number)
        if not is_loaded(key):
            problems.append(
                f"insertion {number} of subject {key['subject_id']} session {key['session']} "
                f"{where(row, 'insertion_number')} is not loaded (run ingest-ephys first)"
            )
    loc: dict[str, Any] = {}
    names = {}
    for col in ("skull_reference", "brain_area", "hemisphere"):
        if blank(raw.get(col)):
            continue
        v = str(raw[col]).strip()
        if v not in lookups[col]:
            problems.append(f"{col} {show(v)} is not one of {', '.join(sorted(lookups[col]))} {where(row, col)}")
        names[col] = v
    for col in ("ap_location", "ml_location", "depth", "theta", "phi", "beta"):
        loc[col] = None if blank(raw.get(col)) else attempt(float_cell, raw[col], row, col)
    quality = None
    if any(not blank(raw.get(c)) for c in QUALITY):
        flags = {}
        for c in ("drift_presence", "alignment_confidence"):
            v = raw.get(c)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            text = "" if blank(v) else str(v).strip().lower()
            if text not in YES | NO:
                problems.append(f"{c} {show(v)} is not yes/no {where(row, c)}")
            flags[c] = text in YES
        landmarks = 0
        if not blank(raw.get("number_of_landmarks")):
            landmarks = attempt(
                int_cell, raw["number_of_landmarks"], row, "number_of_landmarks", limits["number_of_landmarks"], lo=0
            )
        comment = ""
        if not blank(raw.get("insertion_comment")):
            comment = attempt(
                text_cell, raw["insertion_comment"], row, "insertion_comment", limits["insertion_comment"]
            )
        quality = dict(flags, number_of_landmarks=landmarks, insertion_comment=comment)
    periods = attempt(parse_good_periods, raw.get("good_period"), row)
    if problems:
        raise RowError("; ".join(problems))
    loc = dict(key, skull_reference=names["skull_reference"], **loc)
    region = dict(key, brain_area=names["brain_area"], hemisphere=names["hemisphere"])
    return dict(
        key=key,
        loc=loc,
        region=region,
        quality=None if quality is None else dict(key, **quality),
        periods=periods or [],
    )


def load_insertion_locations(path: str | Path, sheet: str | int | None = None, replace: bool = False) -> Summary:
    from .. import ephys, experiment, lab

    path = Path(path)
    summary = Summary(what=f"insertion locations in {path.name}")
    df = read_table(path, sheet)
    label = sheet_label(path, sheet)
    absent = [c for c in REQUIRED if c not in df.columns]
    if "water_restriction_number" not in df.columns and "subject_id" not in df.columns:
        absent.append("water_restriction_number")
    problems = [f"missing column(s) {', '.join(absent)}; required: {', '.join(REQUIRED)}"] if absent else []
    unknown = unknown_columns(df, REQUIRED + OPTIONAL)
    if unknown:  # a misspelt required column is one problem: one line
        problems.append(unknown)
    if problems:
        summary.fail(label, "; ".join(problems))
        return summary
    summary.found = len(df)
    limits = _limits()
    h2o_to_subject = dict(zip(*lab.WaterRestriction().to_arrays("water_restriction_number", "subject_id")))
    sessions = experiment.Session.proj("session_date", "session_datetime").to_pandas().reset_index()
    sessions["session_datetime"] = pd.to_datetime(sessions["session_datetime"])
    lookups = dict(
        skull_reference=set(lab.SkullReference().to_arrays("skull_reference")),
        brain_area=set(lab.BrainArea().to_arrays("brain_area")),
        hemisphere=set(lab.Hemisphere().to_arrays("hemisphere")),
    )
    plans = []
    seen: dict[tuple, int] = {}
    for raw in df.to_dict("records"):
        rown = raw["row_number"]
        item = f"{path.name} row {rown}"
        try:
            p = parse_row(raw, h2o_to_subject, sessions, lookups, limits, lambda key: bool(ephys.ProbeInsertion & key))
            k = tuple(p["key"].values())
            if k in seen:
                raise RowError(f"same insertion as row {seen[k]} {where(rown, 'insertion_number')}")
            seen[k] = rown
            plans.append((item, p))
        except RowError as e:
            summary.fail(item, str(e))
    if not summary.ok:
        return summary

    todo = []
    for item, p in plans:
        key, loc = p["key"], p["loc"]
        stored = (ephys.ProbeInsertion.InsertionLocation & key).to_dicts()
        if stored:
            s = stored[0]
            same = all(
                (s[k] is None and v is None)
                or (s[k] is not None and v is not None and (s[k] == v if isinstance(v, str) else np.isclose(s[k], v)))
                for k, v in loc.items()
            )
            if same:
                summary.skip(item, "already loaded with the same values")
                continue
            if not replace:
                summary.fail(item, f"insertion {key} already has a different location; use --replace to update it")
                continue
        todo.append((item, p))
    if not summary.ok:
        return summary
    conn = ephys.ProbeInsertion.connection
    item = None
    try:
        with conn.transaction:
            for item, p in todo:
                key, quality, periods = p["key"], p["quality"], p["periods"]
                for part in (
                    ephys.ProbeInsertionQuality.GoodTrial,
                    ephys.ProbeInsertionQuality.GoodPeriod,
                    ephys.ProbeInsertion.RecordableBrainRegion,
                    ephys.ProbeInsertion.InsertionLocation,
                ):
                    (part & key).delete_quick()
                (ephys.ProbeInsertionQuality & key).delete_quick()
                ephys.ProbeInsertion.InsertionLocation.insert1(p["loc"])
                ephys.ProbeInsertion.RecordableBrainRegion.insert1(p["region"])
                if quality is not None or periods:
                    ephys.ProbeInsertionQuality.insert1(quality or dict(key))
                if periods:
                    ephys.ProbeInsertionQuality.GoodPeriod.insert(
                        [
                            dict(key, good_period_start=a, good_period_end=b if math.isfinite(b) else 1e12)
                            for a, b in periods
                        ]
                    )
                    trials = (ephys.Clustering.Trial & key).to_pandas().reset_index()
                    starts = trials["trial_start"].to_numpy()
                    good = np.zeros(len(starts), dtype=bool)
                    for a, b in periods:
                        good |= (starts >= a) & (starts < b)
                    ephys.ProbeInsertionQuality.GoodTrial.insert(
                        [dict(key, trial=int(t)) for t in trials["trial"].to_numpy()[good]]
                    )
    except Exception as e:  # a check above missed something: still one line, and nothing written
        log.debug("insert failed", exc_info=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        summary.fail(str(item), f"the database refused the row ({first}); nothing was written")
        return summary
    for item, p in todo:
        summary.load(f"{item}: insertion {p['key']['insertion_number']} of session {p['key']['session']}")
    return summary
