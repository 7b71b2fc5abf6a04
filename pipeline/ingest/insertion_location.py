"""``load-insertion-location``: where each probe went, from the lab's recording-notes sheet.

Columns (case-insensitive, spaces count as underscores): ``water_restriction_number`` (or
``subject_id``), ``session_date``, ``insertion_number``, ``skull_reference``, ``ap_location``,
``ml_location``, ``depth``, ``theta``, ``phi``, ``beta``, ``brain_area``, ``hemisphere``; optional
``behaviour_time`` (HHMMSS, when an animal had several sessions that day), ``drift_presence``,
``alignment_confidence`` (yes/no), ``number_of_landmarks``, ``insertion_comment`` and
``good_period`` (``0-200;230-290;400-end``, s on the probe clock from the first trial start).

Writes ProbeInsertion.InsertionLocation and .RecordableBrainRegion, and ProbeInsertionQuality
(+GoodPeriod, +GoodTrial: trials starting inside a good period) when quality columns are given.
The insertion must already be loaded by ingest-ephys. The whole sheet is checked first; any bad
row (reported with its row number) means nothing is written. A row equal to what is stored is
skipped; a different one is an error unless ``replace=True``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.spreadsheet import read_table
from .summary import Summary

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
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}


class RowError(InputError):
    pass


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _num(v: Any, col: str, required: bool = True) -> float | None:
    if _blank(v):
        if required:
            raise RowError(f"missing {col}")
        return None
    try:
        return float(str(v).strip())
    except ValueError:
        raise RowError(f"{col} {v!r} is not a number") from None


def parse_good_periods(text: Any) -> list[tuple[float, float]]:
    """``'0-200;230-290;400-end'`` -> [(0, 200), (230, 290), (400, inf)]."""
    if _blank(text):
        return []
    out = []
    for part in str(text).split(";"):
        if not part.strip():
            continue
        try:
            a, b = part.split("-")
            start = float(a)
            end = math.inf if b.strip().lower() == "end" else float(b)
        except ValueError:
            raise RowError(f"good_period part {part.strip()!r} is not 'start-end' (seconds, or 'end')") from None
        if end <= start:
            raise RowError(f"good_period {part.strip()!r} ends before it starts")
        out.append((start, end))
    return out


def _session_key(raw: dict, h2o_to_subject: dict, sessions: pd.DataFrame) -> dict:
    if not _blank(raw.get("water_restriction_number")):
        h2o = str(raw["water_restriction_number"]).strip()
        if h2o not in h2o_to_subject:
            raise RowError(f"water_restriction_number {h2o!r} is not in lab.WaterRestriction")
        subject = h2o_to_subject[h2o]
    elif not _blank(raw.get("subject_id")):
        subject = int(float(raw["subject_id"]))
    else:
        raise RowError("missing water_restriction_number (or subject_id)")
    day = pd.Timestamp(str(raw["session_date"]).strip()).date()
    cand = sessions[(sessions.subject_id == subject) & (sessions.session_date == day)]
    if not _blank(raw.get("behaviour_time")):
        hhmmss = str(raw["behaviour_time"]).strip().replace(":", "").split(".")[0].zfill(6)
        cand = cand[cand.session_datetime.dt.strftime("%H%M%S") == hhmmss]
    if len(cand) == 0:
        raise RowError(
            f"no session of subject {subject} on {day}"
            + (f" at {raw['behaviour_time']}" if not _blank(raw.get("behaviour_time")) else "")
        )
    if len(cand) > 1:
        raise RowError(f"subject {subject} has {len(cand)} sessions on {day}; give behaviour_time (HHMMSS)")
    return dict(subject_id=int(subject), session=int(cand.iloc[0].session))


def load_insertion_locations(path: str | Path, sheet: str | int | None = None, replace: bool = False) -> Summary:
    from .. import ephys, experiment, lab

    path = Path(path)
    summary = Summary(what=f"insertion locations in {path.name}")
    df = read_table(path, sheet)
    absent = [c for c in REQUIRED if c not in df.columns]
    if "water_restriction_number" not in df.columns and "subject_id" not in df.columns:
        absent.append("water_restriction_number")
    if absent:
        summary.fail(str(path), f"missing column(s) {', '.join(absent)}; required: {', '.join(REQUIRED)}")
        return summary
    summary.found = len(df)
    h2o_to_subject = dict(zip(*lab.WaterRestriction().to_arrays("water_restriction_number", "subject_id")))
    sessions = experiment.Session.proj("session_date", "session_datetime").to_pandas().reset_index()
    sessions["session_datetime"] = pd.to_datetime(sessions["session_datetime"])
    refs = set(lab.SkullReference().to_arrays("skull_reference"))
    areas = set(lab.BrainArea().to_arrays("brain_area"))
    hemis = set(lab.Hemisphere().to_arrays("hemisphere"))
    plans = []
    seen: dict[tuple, int] = {}
    for raw in df.to_dict("records"):
        item = f"{path.name} row {raw['row_number']}"
        try:
            missing = [c for c in REQUIRED if _blank(raw.get(c))]
            if missing:
                raise RowError(f"missing {', '.join(missing)}")
            key = dict(
                _session_key(raw, h2o_to_subject, sessions),
                insertion_number=int(_num(raw["insertion_number"], "insertion_number")),
            )
            k = tuple(key.values())
            if k in seen:
                raise RowError(f"same insertion as row {seen[k]}")
            seen[k] = raw["row_number"]
            if not (ephys.ProbeInsertion & key):
                raise RowError(f"insertion {key} is not loaded (run ingest-ephys first)")
            ref, area, hemi = (str(raw[c]).strip() for c in ("skull_reference", "brain_area", "hemisphere"))
            for v, allowed, col in (
                (ref, refs, "skull_reference"),
                (area, areas, "brain_area"),
                (hemi, hemis, "hemisphere"),
            ):
                if v not in allowed:
                    raise RowError(f"{col} {v!r} is not one of {', '.join(sorted(allowed))}")
            loc = dict(
                key,
                skull_reference=ref,
                ap_location=_num(raw["ap_location"], "ap_location"),
                ml_location=_num(raw["ml_location"], "ml_location"),
                depth=_num(raw["depth"], "depth"),
                theta=_num(raw.get("theta"), "theta", False),
                phi=_num(raw.get("phi"), "phi", False),
                beta=_num(raw.get("beta"), "beta", False),
            )
            quality = None
            if any(
                c in df.columns and not _blank(raw.get(c))
                for c in (
                    "drift_presence",
                    "alignment_confidence",
                    "number_of_landmarks",
                    "insertion_comment",
                    "good_period",
                )
            ):
                flags = {}
                for c in ("drift_presence", "alignment_confidence"):
                    v = "" if _blank(raw.get(c)) else str(raw[c]).strip().lower()
                    if v not in YES | NO:
                        raise RowError(f"{c} {raw[c]!r} is not yes/no")
                    flags[c] = v in YES
                quality = dict(
                    key,
                    **flags,
                    number_of_landmarks=int(_num(raw.get("number_of_landmarks"), "number_of_landmarks", False) or 0),
                    insertion_comment=""
                    if _blank(raw.get("insertion_comment"))
                    else str(raw["insertion_comment"]).strip()[:1000],
                )
            periods = parse_good_periods(raw.get("good_period"))
            plans.append((item, key, loc, dict(key, brain_area=area, hemisphere=hemi), quality, periods))
        except RowError as e:
            summary.fail(item, str(e))
        except (ValueError, TypeError) as e:
            summary.fail(item, f"unreadable value ({e})")
    if not summary.ok:
        return summary

    todo = []
    for item, key, loc, region, quality, periods in plans:
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
        todo.append((item, key, loc, region, quality, periods))
    if not summary.ok:
        return summary
    conn = ephys.ProbeInsertion.connection
    with conn.transaction:
        for item, key, loc, region, quality, periods in todo:
            for part in (
                ephys.ProbeInsertionQuality.GoodTrial,
                ephys.ProbeInsertionQuality.GoodPeriod,
                ephys.ProbeInsertion.RecordableBrainRegion,
                ephys.ProbeInsertion.InsertionLocation,
            ):
                (part & key).delete_quick()
            (ephys.ProbeInsertionQuality & key).delete_quick()
            ephys.ProbeInsertion.InsertionLocation.insert1(loc)
            ephys.ProbeInsertion.RecordableBrainRegion.insert1(region)
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
            summary.load(f"{item}: insertion {key['insertion_number']} of session {key['session']}")
    return summary
