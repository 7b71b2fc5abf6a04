"""``load-animal``: subjects and their water-restriction records from a spreadsheet.

Columns (header names are case-insensitive; spaces count as underscores):

=========================  ========  =================================================
column                     required  value
=========================  ========  =================================================
subject_id                 yes       integer animal id
water_restriction_number   yes       the h2o id used in rig file names, e.g. ``dl25``
wr_start_date              yes       date water restriction started
wr_start_weight            yes       grams, > 0
sex                        yes       M, F or Unknown (male/female/u accepted)
username                   no        lab.Person username (owner)
fullname                   no        creates the Person if ``username`` is new
cage_number                no        integer
date_of_birth              no        date
animal_source              no        one of lab.AnimalSource
animal_strain              no        one of lab.AnimalStrain
=========================  ========  =================================================

The whole file is checked first; if any row is bad, every bad row is reported (with its row
number in the sheet) and nothing is inserted. Rows already in the database with the same
values are skipped, so loading a file twice is a no-op; a row that contradicts the database
is an error, never a silent overwrite.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..io.spreadsheet import read_table
from .summary import Summary

REQUIRED = ("subject_id", "water_restriction_number", "wr_start_date", "wr_start_weight", "sex")
OPTIONAL = ("username", "fullname", "cage_number", "date_of_birth", "animal_source", "animal_strain")
SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "u": "Unknown", "unknown": "Unknown"}


class RowError(InputError):
    pass


def _blank(v: Any) -> bool:
    return (
        v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()) or v is pd.NaT
    )


def _int(v: Any, col: str) -> int:
    try:
        f = float(str(v).strip())
    except ValueError:
        raise RowError(f"{col} {v!r} is not a whole number") from None
    if not f.is_integer():
        raise RowError(f"{col} {v!r} is not a whole number")
    return int(f)


def _date(v: Any, col: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return pd.Timestamp(str(v).strip()).date()
    except (ValueError, TypeError):
        raise RowError(f"{col} {v!r} is not a date (use YYYY-MM-DD)") from None


def _weight(v: Any) -> Decimal:
    try:
        w = Decimal(str(v).strip())
    except InvalidOperation:
        raise RowError(f"wr_start_weight {v!r} is not a number") from None
    if not (0 < w < 1000):
        raise RowError(f"wr_start_weight {v!r} must be a weight in grams between 0 and 1000")
    return w.quantize(Decimal("0.001"))


def parse_row(raw: dict, sources: set[str], strains: set[str]) -> dict:
    """One sheet row -> {'subject': ..., 'water_restriction': ..., 'person': ..., 'strain': ...}."""
    missing = [c for c in REQUIRED if _blank(raw.get(c))]
    if missing:
        raise RowError(f"missing {', '.join(missing)}")
    subject_id = _int(raw["subject_id"], "subject_id")
    sex = SEX.get(str(raw["sex"]).strip().lower())
    if sex is None:
        raise RowError(f"sex {raw['sex']!r} is not M, F or Unknown")
    subject = dict(subject_id=subject_id, sex=sex)
    if not _blank(raw.get("cage_number")):
        subject["cage_number"] = _int(raw["cage_number"], "cage_number")
    if not _blank(raw.get("date_of_birth")):
        subject["date_of_birth"] = _date(raw["date_of_birth"], "date_of_birth")
    if not _blank(raw.get("animal_source")):
        src = str(raw["animal_source"]).strip()
        if src not in sources:
            raise RowError(f"animal_source {src!r} is not one of {', '.join(sorted(sources))}")
        subject["animal_source"] = src
    person = None
    if not _blank(raw.get("username")):
        subject["username"] = str(raw["username"]).strip()
        if not _blank(raw.get("fullname")):
            person = dict(username=subject["username"], fullname=str(raw["fullname"]).strip())
    strain = None
    if not _blank(raw.get("animal_strain")):
        strain = str(raw["animal_strain"]).strip()
        if strain not in strains:
            raise RowError(f"animal_strain {strain!r} is not one of {', '.join(sorted(strains))}")
    h2o = str(raw["water_restriction_number"]).strip()
    if len(h2o) > 16 or not h2o.replace("_", "").replace("-", "").isalnum():
        raise RowError(f"water_restriction_number {h2o!r} must be up to 16 letters/digits")
    wr = dict(
        subject_id=subject_id,
        water_restriction_number=h2o,
        wr_start_date=_date(raw["wr_start_date"], "wr_start_date"),
        wr_start_weight=_weight(raw["wr_start_weight"]),
    )
    return dict(subject=subject, water_restriction=wr, person=person, strain=strain)


def _same(existing: dict, new: dict) -> list[str]:
    """Names of fields whose values differ (comparing as text, so Decimal/date/int mix is fine)."""

    def norm(v):
        if isinstance(v, (Decimal, float)):
            return f"{Decimal(str(v)):.3f}"
        return "" if v is None else str(v)

    return [k for k, v in new.items() if norm(existing.get(k)) != norm(v)]


def load_animals(path: str | Path, sheet: str | int | None = None) -> Summary:
    """Load subjects and water restrictions from ``path``; see the module docstring for columns."""
    from .. import lab

    path = Path(path)
    summary = Summary(what=f"animals in {path.name}")
    df = read_table(path, sheet)
    absent = [c for c in REQUIRED if c not in df.columns]
    if absent:
        summary.fail(str(path), f"missing column(s) {', '.join(absent)}; required: {', '.join(REQUIRED)}")
        return summary
    summary.found = len(df)
    sources = set(lab.AnimalSource().to_arrays("animal_source"))
    strains = set(lab.AnimalStrain().to_arrays("animal_strain"))
    persons = set(lab.Person().to_arrays("username"))

    parsed: list[tuple[int, dict]] = []
    seen_subject: dict[int, int] = {}
    seen_h2o: dict[str, int] = {}
    for raw in df.to_dict("records"):
        rown = raw["row_number"]
        item = f"{path.name} row {rown}"
        try:
            p = parse_row(raw, sources, strains)
            sid, h2o = p["subject"]["subject_id"], p["water_restriction"]["water_restriction_number"]
            if sid in seen_subject:
                raise RowError(f"subject_id {sid} repeats row {seen_subject[sid]}")
            if h2o in seen_h2o:
                raise RowError(f"water_restriction_number {h2o!r} repeats row {seen_h2o[h2o]}")
            seen_subject[sid], seen_h2o[h2o] = rown, rown
            user = p["subject"].get("username")
            if user and user not in persons and not p["person"]:
                raise RowError(f"username {user!r} is not in lab.Person (add a fullname column to create it)")
            parsed.append((rown, p))
        except RowError as e:
            summary.fail(item, str(e))

    # compare with what the database already holds
    to_insert: list[tuple[int, dict]] = []
    for rown, p in parsed:
        item = f"{path.name} row {rown}"
        s, wr = p["subject"], p["water_restriction"]
        key = dict(subject_id=s["subject_id"])
        try:
            owner = lab.WaterRestriction & dict(water_restriction_number=wr["water_restriction_number"])
            if owner and owner.fetch1("subject_id") != s["subject_id"]:
                raise RowError(
                    f"water_restriction_number {wr['water_restriction_number']!r} already belongs "
                    f"to subject {owner.fetch1('subject_id')}"
                )
            if lab.Subject & key:
                diff = _same((lab.Subject & key).fetch1(), s)
                wr_rows = (lab.WaterRestriction & key).to_dicts()
                diff += _same(wr_rows[0], wr) if wr_rows else ["(no water restriction yet)"]
                if diff:
                    raise RowError(
                        f"subject {s['subject_id']} is already in the database with different "
                        f"{', '.join(diff)}; fix the sheet or update the database on purpose"
                    )
                summary.skip(f"subject {s['subject_id']}", "already loaded with the same values")
                continue
            to_insert.append((rown, p))
        except RowError as e:
            summary.fail(item, str(e))

    if not summary.ok:
        return summary  # nothing partial: a bad file inserts no row at all
    conn = lab.Subject.connection
    with conn.transaction:
        for rown, p in to_insert:
            if p["person"] and not (lab.Person & dict(username=p["person"]["username"])):
                lab.Person.insert1(p["person"])
            lab.Subject.insert1(p["subject"])
            if p["strain"]:
                lab.Subject.Strain.insert1(dict(subject_id=p["subject"]["subject_id"], animal_strain=p["strain"]))
            lab.WaterRestriction.insert1(p["water_restriction"])
    for rown, p in to_insert:
        summary.load(f"subject {p['subject']['subject_id']} ({p['water_restriction']['water_restriction_number']})")
    return summary
