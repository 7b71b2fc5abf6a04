"""``load-meta-foraging``: the foraging lab's people, rigs, animals and water restrictions from its
metadata sheets (spec 3.2; the ``behavior_bpod`` setting; file layouts in :mod:`pipeline.io.meta_foraging`).

=====================================  ==========================================================
sheet                                  loaded into
=====================================  ==========================================================
``{meta_lab_dir}/Experimenter.csv``    lab.Person (``username``, ``fullname``)
``{meta_lab_dir}/Rig.csv``             lab.Rig (``rig``, ``room``, ``rig_description``)
``{meta_dir}/Surgery.csv``             lab.Subject: ``animal#`` -> subject_id, ``cage#`` -> cage_number,
                                       ``DOB`` -> date_of_birth, ``sex``, ``experimenter`` -> username
                                       (the owner; a lab.Person or a row of Experimenter.csv)
``ID`` + first row of ``{meta_dir}/{ID}.csv``  lab.WaterRestriction: ``ID`` -> water_restriction_number,
                                       its Date -> wr_start_date, its Weight -> wr_start_weight
=====================================  ==========================================================

Only Surgery.csv rows of project ``foraging`` with status ``training`` or ``sacrificed`` are loaded
(the original's rule); the others are listed as skipped. A row with a blank ``ID`` gives a subject
without a water restriction; so does an ``ID`` whose ``{ID}.csv`` does not exist yet (said in the
summary; a later run adds the water restriction once the sheet exists). Without ``meta_lab_dir``
Experimenter.csv and Rig.csv are not read (the experimenters must then be in lab.Person).

The checks are those of ``load-animal``: every sheet is checked first, every bad row is reported
(file, row number, column, what is wrong) and if anything is wrong **nothing** is inserted; rows
already in the database with the same values are skipped (a re-run is a no-op); a row that
contradicts the database (another sex or owner, an h2o id of another subject, another fullname)
is an error, never an overwrite. One exception: a rig that an ingest step added on its own (room
empty, description ``added by ingest-...``) takes the room and description of Rig.csv. Everything
is inserted in one transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import config
from ..errors import ConfigError, InputError
from ..io.meta_foraging import (
    EXPERIMENTER,
    RIG,
    SURGERY,
    MetaSheet,
    MetaSheetError,
    not_loaded_reason,
    read_experimenters,
    read_rigs,
    read_surgery,
    restriction_start,
    slash_date,
)
from ..io.spreadsheet import CellError, blank, column_type, date_cell, decimal_cell, int_cell, show, text_cell, where
from .animals import SEX, RowError, _same
from .summary import Summary

log = logging.getLogger(__name__)

#: the description ingest steps give a rig they add on their own (see ingest/behavior/common.py)
AUTO_RIG = "added by ingest-"


def _limits() -> dict:
    from .. import lab

    return dict(
        subject_id=column_type(lab.Subject, "subject_id"),
        cage_number=column_type(lab.Subject, "cage_number"),
        username=column_type(lab.Person, "username"),
        fullname=column_type(lab.Person, "fullname"),
        rig=column_type(lab.Rig, "rig"),
        room=column_type(lab.Rig, "room"),
        rig_description=column_type(lab.Rig, "rig_description"),
        water_restriction_number=column_type(lab.WaterRestriction, "water_restriction_number"),
        wr_start_weight=column_type(lab.WaterRestriction, "wr_start_weight"),
    )


class _Row:
    """Collects the problems of one sheet row while its cells are read."""

    def __init__(self, raw: dict):
        self.raw, self.n, self.problems = raw, raw["row_number"], []

    def given(self, col: str) -> bool:
        return not blank(self.raw.get(col))

    def cell(self, fn, col: str, *args, value: Any = None, **kw) -> Any:
        try:
            return fn(self.raw[col] if value is None else value, self.n, col, *args, **kw)
        except CellError as e:
            self.problems.append(str(e))
            return None

    def require(self, *cols: str) -> None:
        missing = [c for c in cols if not self.given(c)]
        if missing:
            self.problems.append(f"missing {', '.join(missing)} in row {self.n}")

    def done(self) -> None:
        if self.problems:
            raise RowError("; ".join(self.problems))


def _people(sheet: MetaSheet, limits: dict, summary: Summary) -> dict[str, tuple[str, int]]:
    """username -> (fullname, row) of Experimenter.csv (bad rows reported)."""
    out: dict[str, tuple[str, int]] = {}
    for raw in sheet.rows:
        r = _Row(raw)
        try:
            r.require(*EXPERIMENTER.required)
            user = r.cell(text_cell, "username", limits["username"]) if r.given("username") else None
            full = r.cell(text_cell, "fullname", limits["fullname"]) if r.given("fullname") else None
            if user in out and full is not None and out[user][0] != full:
                r.problems.append(
                    f"username {user!r} repeats row {out[user][1]} with another fullname {where(r.n, 'fullname')}"
                )
            r.done()
            out.setdefault(user, (full, r.n))
        except RowError as e:
            summary.fail(f"{sheet.path.name} row {r.n}", str(e))
    return out


def _rigs(sheet: MetaSheet, limits: dict, summary: Summary) -> dict[str, tuple[dict, int]]:
    """rig -> (row to insert, sheet row) of Rig.csv (bad rows reported)."""
    out: dict[str, tuple[dict, int]] = {}
    for raw in sheet.rows:
        r = _Row(raw)
        try:
            r.require(*RIG.required)
            rig = dict(rig=r.cell(text_cell, "rig", limits["rig"]) if r.given("rig") else None)
            for col in RIG.optional:
                if r.given(col):
                    rig[col] = r.cell(text_cell, col, limits[col])
            if rig["rig"] in out and out[rig["rig"]][0] != rig:
                r.problems.append(
                    f"rig {rig['rig']!r} repeats row {out[rig['rig']][1]} with other values {where(r.n, 'rig')}"
                )
            r.done()
            out.setdefault(rig["rig"], (rig, r.n))
        except RowError as e:
            summary.fail(f"{sheet.path.name} row {r.n}", str(e))
    return out


def parse_surgery_row(raw: dict, meta_dir: Path, limits: dict, people: set[str]) -> dict:
    """One loaded Surgery.csv row -> {'subject': ..., 'water_restriction': ... or None, 'no_sheet': path or None}.

    Raises :class:`RowError` with every problem of the row (each naming its row and column, or the
    ``{ID}.csv`` file and line)."""
    r = _Row(raw)
    r.require("animal#", "sex")
    subject: dict[str, Any] = {}
    if r.given("animal#"):
        subject["subject_id"] = r.cell(int_cell, "animal#", limits["subject_id"], lo=1)
    if r.given("sex"):
        sex = SEX.get(str(raw["sex"]).strip().lower())
        if sex is None:
            r.problems.append(f"sex {show(raw['sex'])} is not M, F or Unknown {where(r.n, 'sex')}")
        subject["sex"] = sex
    if r.given("cage#"):
        subject["cage_number"] = r.cell(int_cell, "cage#", limits["cage_number"], lo=0)
    if r.given("dob"):
        subject["date_of_birth"] = r.cell(date_cell, "dob", value=slash_date(raw["dob"]))
    if r.given("experimenter"):
        user = r.cell(text_cell, "experimenter", limits["username"])
        if user is not None and user not in people:
            r.problems.append(
                f"experimenter {user!r} is not in lab.Person nor in Experimenter.csv {where(r.n, 'experimenter')}"
            )
        subject["username"] = user
    wr, no_sheet = None, None
    if r.given("id"):
        h2o = r.cell(text_cell, "id", limits["water_restriction_number"])
        if h2o is not None and not h2o.replace("_", "").replace("-", "").isalnum():
            r.problems.append(f"ID {show(h2o)} must be letters, digits, _ or - {where(r.n, 'id')}")
        elif h2o is not None:
            sheet = meta_dir / f"{h2o}.csv"
            if not sheet.is_file():
                no_sheet = sheet
            else:
                try:
                    start = restriction_start(sheet)
                    weight = decimal_cell(start.weight, start.line, "Weight", limits["wr_start_weight"], gt=0)
                    wr = dict(
                        subject_id=subject.get("subject_id"),
                        water_restriction_number=h2o,
                        wr_start_date=start.date,
                        wr_start_weight=weight,
                    )
                except CellError as e:
                    r.problems.append(f"{sheet.name}: {e} (the water restriction's start weight, from the first row)")
                except InputError as e:
                    r.problems.append(str(e))
    born, started = subject.get("date_of_birth"), wr and wr["wr_start_date"]
    if born and started and born > started:
        r.problems.append(
            f"DOB {born} is after the water restriction's start {started} (first row of {h2o}.csv) {where(r.n, 'dob')}"
        )
    r.done()
    return dict(subject=subject, water_restriction=wr, no_sheet=no_sheet)


def load_meta_foraging(bpod: dict | None = None) -> Summary:
    """Load Experimenter.csv, Rig.csv, Surgery.csv and the first rows of the ``{ID}.csv`` sheets
    named by the ``behavior_bpod`` setting (or ``bpod``); see the module docstring."""
    from .. import lab

    settings = bpod if bpod is not None else config.get("behavior_bpod")
    if not settings:
        raise ConfigError(
            "behavior_bpod setting is missing; load-meta-foraging reads meta_dir (Surgery.csv, <ID>.csv) "
            "and meta_lab_dir (Experimenter.csv, Rig.csv); see docs/sheets.md"
        )
    settings = config.validate("behavior_bpod", settings)
    meta_dir = Path(settings["meta_dir"]).expanduser()
    lab_dir = Path(settings["meta_lab_dir"]).expanduser() if settings.get("meta_lab_dir") else None
    summary = Summary(what="foraging metadata rows")

    sheets: dict[str, MetaSheet | None] = {"experimenter": None, "rig": None, "surgery": None}
    readers = [("surgery", read_surgery, meta_dir)]
    if lab_dir is not None:
        readers = [("experimenter", read_experimenters, lab_dir), ("rig", read_rigs, lab_dir)] + readers
    else:
        summary.note("meta_lab_dir is not set: Experimenter.csv and Rig.csv were not read")
    for name, reader, folder in readers:
        summary.look(f"{folder}: {dict(experimenter=EXPERIMENTER, rig=RIG, surgery=SURGERY)[name].file}")
        try:
            sheets[name] = reader(folder)
        except InputError as e:
            summary.fail(str(folder / dict(experimenter=EXPERIMENTER, rig=RIG, surgery=SURGERY)[name].file), str(e))
    summary.look(f"{meta_dir}: <ID>.csv (first row: water restriction start date and weight)")
    if not summary.ok:
        return summary
    for sheet in sheets.values():
        if sheet is not None:
            summary.found += len(sheet.rows)
            if sheet.unused_columns:
                summary.note(f"{sheet.path.name}: columns not read: {', '.join(sheet.unused_columns)}")

    limits = _limits()
    stored_people = {str(u): str(f) for u, f in zip(*lab.Person().to_arrays("username", "fullname"))}
    people = _people(sheets["experimenter"], limits, summary) if sheets["experimenter"] else {}
    rigs = _rigs(sheets["rig"], limits, summary) if sheets["rig"] else {}

    # --- subjects (parsed, checked against each other)
    parsed: list[tuple[int, dict]] = []
    seen_subject: dict[int, tuple[int, dict]] = {}
    seen_h2o: dict[str, tuple[int, int]] = {}
    surgery = sheets["surgery"]
    for raw in surgery.rows:
        rown = raw["row_number"]
        item = f"{surgery.path.name} row {rown}"
        reason = not_loaded_reason(raw)
        if reason:
            summary.skip(item, reason)
            continue
        try:
            p = parse_surgery_row(raw, meta_dir, limits, set(stored_people) | set(people))
            sid = p["subject"]["subject_id"]
            wr = p["water_restriction"]
            h2o = wr["water_restriction_number"] if wr else None
            if sid in seen_subject:
                first, earlier = seen_subject[sid]
                if earlier != p:
                    raise RowError(
                        f"animal# {sid} repeats row {first} with other values {where(rown, 'animal#')}; "
                        "one row per animal (or the same values)"
                    )
                summary.skip(item, f"repeats row {first} with the same values")
                continue
            if h2o in seen_h2o and seen_h2o[h2o][1] != sid:
                raise RowError(f"ID {h2o!r} repeats row {seen_h2o[h2o][0]} (another animal#) {where(rown, 'id')}")
            seen_subject[sid] = (rown, p)
            if h2o:
                seen_h2o[h2o] = (rown, sid)
            parsed.append((rown, p))
        except RowError as e:
            summary.fail(item, str(e))

    # --- compare with the database
    new_people, new_rigs, fill_rigs, new_subjects, new_wrs = [], [], [], [], []
    for user, (full, rown) in people.items():
        known = stored_people.get(user)
        if known is None:
            new_people.append(dict(username=user, fullname=full))
        elif known != full:
            summary.fail(
                f"{EXPERIMENTER.file} row {rown}",
                f"username {user!r} is already in lab.Person with fullname {known!r}, not {full!r} "
                f"{where(rown, 'fullname')}; fix the sheet or update the database on purpose",
            )
        else:
            summary.skip(f"person {user}", "already loaded with the same values")
    for name, (rig, rown) in rigs.items():
        stored = (lab.Rig & dict(rig=name)).to_dicts()
        if not stored:
            new_rigs.append(rig)
            continue
        diff = _same(stored[0], rig)
        if not diff:
            summary.skip(f"rig {name}", "already loaded with the same values")
        elif not stored[0]["room"] and str(stored[0]["rig_description"]).startswith(AUTO_RIG):
            fill_rigs.append(rig)
        else:
            summary.fail(
                f"{RIG.file} row {rown}",
                f"rig {name!r} is already in lab.Rig with different {', '.join(diff)}; "
                "fix the sheet or update the database on purpose",
            )
    for rown, p in parsed:
        item = f"{surgery.path.name} row {rown}"
        s, wr = p["subject"], p["water_restriction"]
        key = dict(subject_id=s["subject_id"])
        try:
            if wr:
                holder = lab.WaterRestriction & dict(water_restriction_number=wr["water_restriction_number"])
                if holder and holder.fetch1("subject_id") != s["subject_id"]:
                    raise RowError(
                        f"ID {wr['water_restriction_number']!r} {where(rown, 'id')} is already the "
                        f"water_restriction_number of subject {holder.fetch1('subject_id')}"
                    )
            if p["no_sheet"] is not None:
                summary.note(
                    f"subject {s['subject_id']}: no {p['no_sheet'].name} in {meta_dir}, so no water restriction "
                    "yet (a later run adds it once the sheet exists)"
                )
            stored_wr = (lab.WaterRestriction & key).to_dicts()
            if lab.Subject & key:
                diff = _same((lab.Subject & key).fetch1(), s)
                if wr and stored_wr:
                    diff += _same(stored_wr[0], wr)
                if diff:
                    raise RowError(
                        f"subject {s['subject_id']} (row {rown}) is already in the database with different "
                        f"{', '.join(diff)}; fix the sheet or update the database on purpose"
                    )
                if wr and not stored_wr:
                    new_wrs.append(wr)
                else:
                    summary.skip(f"subject {s['subject_id']}", "already loaded with the same values")
                continue
            new_subjects.append(s)
            if wr:
                new_wrs.append(wr)
        except RowError as e:
            summary.fail(item, str(e))

    if not summary.ok:
        return summary  # nothing partial: a bad sheet inserts no row at all
    conn = lab.Subject.connection
    try:
        with conn.transaction:
            for row in new_people:
                lab.Person.insert1(row)
            for row in new_rigs:
                lab.Rig.insert1(row)
            for row in fill_rigs:
                lab.Rig.update1(dict(dict(room="", rig_description=""), **row))
            for row in new_subjects:
                lab.Subject.insert1(row)
            for row in new_wrs:
                lab.WaterRestriction.insert1(row)
    except Exception as e:  # a check above missed something: still one line, and nothing inserted
        log.debug("insert failed", exc_info=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        summary.fail("foraging metadata", f"the database refused a row ({first}); nothing was inserted")
        return summary
    subjects = {s["subject_id"] for s in new_subjects}
    for row in new_people:
        summary.load(f"person {row['username']} ({row['fullname']})", group="people")
    for row in new_rigs:
        summary.load(f"rig {row['rig']}", group="rigs")
    for row in fill_rigs:
        summary.load(f"rig {row['rig']} (room and description from {RIG.file})", group="rigs")
    h2o_of = {w["subject_id"]: w["water_restriction_number"] for w in new_wrs}
    for s in new_subjects:
        sid = s["subject_id"]
        summary.load(
            f"subject {sid}" + (f" ({h2o_of[sid]})" if sid in h2o_of else " (no water restriction)"), group="subjects"
        )
    for w in new_wrs:
        if w["subject_id"] not in subjects:
            summary.load(
                f"water restriction {w['water_restriction_number']} of subject {w['subject_id']}", group="subjects"
            )
    return summary


__all__ = ["load_meta_foraging", "parse_surgery_row", "MetaSheetError"]
