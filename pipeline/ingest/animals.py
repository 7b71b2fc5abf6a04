"""``load-animal``: subjects and their water-restriction records from a spreadsheet.

Columns (header names are case-insensitive; spaces count as underscores; see docs/sheets.md):

=========================  ========  =================================================
column                     required  value
=========================  ========  =================================================
subject_id                 yes       positive whole number (within lab.Subject.subject_id)
water_restriction_number   yes       the h2o id used in rig file names, e.g. ``dl25``
wr_start_date              yes       date water restriction started
wr_start_weight            yes       grams, > 0 (decimal(6, 3): below 1000)
sex                        yes       M, F or Unknown (male/female/u accepted)
username                   no        lab.Person username: the animal's owner
fullname                   no        creates the Person if ``username`` is new
cage_number                no        whole number >= 0
date_of_birth              no        date
animal_source              no        one of lab.AnimalSource
animal_strain              no        one of lab.AnimalStrain
=========================  ========  =================================================

Dates are date cells or ISO text (``YYYY-MM-DD``, optionally with a time); ``03/04/2024`` is
refused as ambiguous. Any other column is refused (with the closest known name), unless its
header starts with ``#``. Text lengths and number ranges are checked against the table
definitions (read from the DataJoint headings at run time).

The owner (``username``) is stored as ``lab.Subject.username``; the behaviour loaders can take
it as the session owner.

The whole file is checked first; if any row is bad, every bad row is reported (with its row
number and column in the sheet) and nothing is inserted. Rows already in the database with the
same values are skipped, so loading a file twice is a no-op; a row that contradicts the database
is an error, never a silent overwrite.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.spreadsheet import (
    CellError,
    blank,
    column_type,
    date_cell,
    decimal_cell,
    int_cell,
    read_table,
    sheet_label,
    show,
    text_cell,
    unknown_columns,
    where,
)
from .summary import Summary

REQUIRED = ("subject_id", "water_restriction_number", "wr_start_date", "wr_start_weight", "sex")
OPTIONAL = ("username", "fullname", "cage_number", "date_of_birth", "animal_source", "animal_strain")
SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "u": "Unknown", "unknown": "Unknown"}


log = logging.getLogger(__name__)


class RowError(InputError):
    pass


def _limits() -> dict:
    """Column limits read from the table headings at run time (so they follow lab.py): text
    lengths, integer ranges, decimal places."""
    from .. import lab

    return dict(
        subject_id=column_type(lab.Subject, "subject_id"),
        cage_number=column_type(lab.Subject, "cage_number"),
        username=column_type(lab.Person, "username"),
        fullname=column_type(lab.Person, "fullname"),
        water_restriction_number=column_type(lab.WaterRestriction, "water_restriction_number"),
        wr_start_weight=column_type(lab.WaterRestriction, "wr_start_weight"),
    )


def parse_row(raw: dict, sources: set[str], strains: set[str], limits: dict | None = None) -> dict:
    """One sheet row -> {'subject': ..., 'water_restriction': ..., 'person': ..., 'strain': ...}.

    Every problem of the row is collected; a :class:`RowError` lists them all (each naming its
    row and column)."""
    limits = limits if limits is not None else _limits()
    row = raw.get("row_number", "?")
    problems: list[str] = []

    def cell(fn, col: str, *args, **kw) -> Any:
        try:
            return fn(raw[col], row, col, *args, **kw)
        except CellError as e:
            problems.append(str(e))
            return None

    def given(col: str) -> bool:
        return not blank(raw.get(col))

    missing = [c for c in REQUIRED if not given(c)]
    if missing:
        problems.append(f"missing {', '.join(missing)} in row {row}")
    subject: dict[str, Any] = {}
    if given("subject_id"):
        subject["subject_id"] = cell(int_cell, "subject_id", limits["subject_id"], lo=1)
    if given("sex"):
        sex = SEX.get(str(raw["sex"]).strip().lower())
        if sex is None:
            problems.append(f"sex {show(raw['sex'])} is not M, F or Unknown {where(row, 'sex')}")
        subject["sex"] = sex
    if given("cage_number"):
        subject["cage_number"] = cell(int_cell, "cage_number", limits["cage_number"], lo=0)
    if given("date_of_birth"):
        subject["date_of_birth"] = cell(date_cell, "date_of_birth")
    if given("animal_source"):
        src = str(raw["animal_source"]).strip()
        if src not in sources:
            problems.append(
                f"animal_source {show(src)} is not one of {', '.join(sorted(sources))} {where(row, 'animal_source')}"
            )
        subject["animal_source"] = src
    person = None
    if given("username"):
        subject["username"] = cell(text_cell, "username", limits["username"])
        if given("fullname"):
            fullname = cell(text_cell, "fullname", limits["fullname"])
            person = dict(username=subject["username"], fullname=fullname)
    elif given("fullname"):
        problems.append(f"fullname without a username {where(row, 'username')}")
    strain = None
    if given("animal_strain"):
        strain = str(raw["animal_strain"]).strip()
        if strain not in strains:
            problems.append(
                f"animal_strain {show(strain)} is not one of {', '.join(sorted(strains))} {where(row, 'animal_strain')}"
            )
    wr: dict[str, Any] = dict(subject_id=subject.get("subject_id"))
    if given("water_restriction_number"):
        h2o = cell(text_cell, "water_restriction_number", limits["water_restriction_number"])
        if h2o is not None and not h2o.replace("_", "").replace("-", "").isalnum():
            problems.append(
                f"water_restriction_number {show(h2o)} must be letters, digits, _ or - "
                f"{where(row, 'water_restriction_number')}"
            )
        wr["water_restriction_number"] = h2o
    if given("wr_start_date"):
        wr["wr_start_date"] = cell(date_cell, "wr_start_date")
    if given("wr_start_weight"):
        wr["wr_start_weight"] = cell(decimal_cell, "wr_start_weight", limits["wr_start_weight"], gt=0)
    born, start = subject.get("date_of_birth"), wr.get("wr_start_date")
    if born and start and born > start:
        problems.append(f"date_of_birth {born} is after wr_start_date {start} {where(row, 'date_of_birth')}")
    if problems:
        raise RowError("; ".join(problems))
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
    label = sheet_label(path, sheet)
    absent = [c for c in REQUIRED if c not in df.columns]
    problems = [f"missing column(s) {', '.join(absent)}; required: {', '.join(REQUIRED)}"] if absent else []
    unknown = unknown_columns(df, REQUIRED + OPTIONAL)
    if unknown:  # a misspelt required column is one problem: one line
        problems.append(unknown)
    if problems:
        summary.fail(label, "; ".join(problems))
        return summary
    summary.found = len(df)
    limits = _limits()
    sources = set(lab.AnimalSource().to_arrays("animal_source"))
    strains = set(lab.AnimalStrain().to_arrays("animal_strain"))
    persons = {str(u): str(f) for u, f in zip(*lab.Person().to_arrays("username", "fullname"))}

    parsed: list[tuple[int, dict]] = []
    seen_subject: dict[int, int] = {}
    seen_h2o: dict[str, int] = {}
    new_people: dict[str, tuple[str, int]] = {}  # username -> (fullname, row) of people to create
    for raw in df.to_dict("records"):
        rown = raw["row_number"]
        item = f"{path.name} row {rown}"
        try:
            p = parse_row(raw, sources, strains, limits)
            sid, h2o = p["subject"]["subject_id"], p["water_restriction"]["water_restriction_number"]
            problems = []
            if sid in seen_subject:
                problems.append(f"subject_id {sid} repeats row {seen_subject[sid]} {where(rown, 'subject_id')}")
            if h2o in seen_h2o:
                problems.append(
                    f"water_restriction_number {h2o!r} repeats row {seen_h2o[h2o]} "
                    f"{where(rown, 'water_restriction_number')}"
                )
            seen_subject.setdefault(sid, rown)
            seen_h2o.setdefault(h2o, rown)
            user, person = p["subject"].get("username"), p["person"]
            if user and user not in persons and not person:
                problems.append(
                    f"username {user!r} is not in lab.Person {where(rown, 'username')} "
                    "(add a fullname column to create it)"
                )
            if person:
                known = persons.get(user)
                if known is None and user in new_people:
                    known = new_people[user][0]
                if known is not None and known != person["fullname"]:
                    problems.append(
                        f"fullname {person['fullname']!r} of username {user!r} {where(rown, 'fullname')} "
                        f"differs from {known!r} (in lab.Person or an earlier row)"
                    )
                new_people.setdefault(user, (person["fullname"], rown))
            if problems:
                raise RowError("; ".join(problems))
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
            holder = lab.WaterRestriction & dict(water_restriction_number=wr["water_restriction_number"])
            if holder and holder.fetch1("subject_id") != s["subject_id"]:
                raise RowError(
                    f"water_restriction_number {wr['water_restriction_number']!r} "
                    f"{where(rown, 'water_restriction_number')} already belongs "
                    f"to subject {holder.fetch1('subject_id')}"
                )
            if lab.Subject & key:
                diff = _same((lab.Subject & key).fetch1(), s)
                wr_rows = (lab.WaterRestriction & key).to_dicts()
                diff += _same(wr_rows[0], wr) if wr_rows else ["(no water restriction yet)"]
                if p["strain"] and not (lab.Subject.Strain & dict(key, animal_strain=p["strain"])):
                    diff.append("animal_strain")
                if diff:
                    raise RowError(
                        f"subject {s['subject_id']} (row {rown}) is already in the database with different "
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
    rown = None
    try:
        with conn.transaction:
            for rown, p in to_insert:
                if p["person"] and not (lab.Person & dict(username=p["person"]["username"])):
                    lab.Person.insert1(p["person"])
                lab.Subject.insert1(p["subject"])
                if p["strain"]:
                    lab.Subject.Strain.insert1(dict(subject_id=p["subject"]["subject_id"], animal_strain=p["strain"]))
                lab.WaterRestriction.insert1(p["water_restriction"])
    except Exception as e:  # a check above missed something: still one line, and nothing inserted
        log.debug("insert failed", exc_info=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        summary.fail(f"{path.name} row {rown}", f"the database refused the row ({first}); nothing was inserted")
        return summary
    for rown, p in to_insert:
        summary.load(f"subject {p['subject']['subject_id']} ({p['water_restriction']['water_restriction_number']})")
    return summary
