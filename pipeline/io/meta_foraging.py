"""Read the foraging lab's metadata sheets (spec 3.2, ``load-meta-foraging``), without a database.

Where they are (the ``behavior_bpod`` setting):

=================================  ======================================================================
``{meta_lab_dir}/Experimenter.csv``  one row per lab member: ``username``, ``fullname``
``{meta_lab_dir}/Rig.csv``           one row per rig: ``rig``, optional ``room``, ``rig_description``
``{meta_dir}/Surgery.csv``           one row per animal: ``animal#``, ``cage#``, ``DOB``, ``sex``,
                                     ``experimenter``, ``ID``, ``project``, ``status``
``{meta_dir}/{ID}.csv``              the animal's daily sheet (Date, Time, Time-end, Training type,
                                     Water during training, Weight, Extra water, Notes), the same
                                     sheet ``ingest-foraging`` reads (:func:`pipeline.io.pybpod.read_subject_meta`)
=================================  ======================================================================

Headers are read as in every sheet of the pipeline (case-insensitive, spaces count as underscores:
``DOB`` is ``dob``, and ``Animal #`` reads as ``animal#``). A missing required column is refused with the
closest header found; columns these readers do not use (a surgery log has many) are returned in
:attr:`MetaSheet.unused_columns` so the loader can name them. Each row keeps its ``row_number`` as
the sheet shows it (header = row 1).

:func:`restriction_start` reads the start of the water restriction from the **first row** of
``{ID}.csv`` (its Date and Weight), checking the whole sheet the way ``ingest-foraging`` does.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .pybpod import PybpodError, read_subject_meta
from .spreadsheet import blank, read_table

__all__ = [
    "MetaSheetError",
    "MetaSheet",
    "RestrictionStart",
    "EXPERIMENTER",
    "RIG",
    "SURGERY",
    "read_meta_sheet",
    "read_experimenters",
    "read_rigs",
    "read_surgery",
    "not_loaded_reason",
    "restriction_start",
    "slash_date",
]


class MetaSheetError(InputError):
    """A metadata sheet cannot be used as a whole; the message starts with the file path."""


@dataclass(frozen=True)
class SheetLayout:
    file: str  # file name in its folder
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


EXPERIMENTER = SheetLayout("Experimenter.csv", ("username", "fullname"))
RIG = SheetLayout("Rig.csv", ("rig",), ("room", "rig_description"))
SURGERY = SheetLayout("Surgery.csv", ("animal#", "sex", "id", "project", "status"), ("cage#", "dob", "experimenter"))

#: Surgery.csv rows that are loaded: project 'foraging' with status 'training' or 'sacrificed'
#: (the original's rule; case and surrounding spaces do not matter).
LOADED_PROJECT = "foraging"
LOADED_STATUS = ("training", "sacrificed")


@dataclass
class MetaSheet:
    path: Path
    rows: list[dict]  # normalised column -> cell, plus 'row_number'
    unused_columns: list[str] = field(default_factory=list)  # headers as written


def read_meta_sheet(path: str | Path, layout: SheetLayout) -> MetaSheet:
    """The rows of one metadata sheet (cells as read, blanks as NaN/None); raises
    :class:`MetaSheetError` if a required column is missing, or the file is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise MetaSheetError(f"{path}: file not found")
    df = read_table(path)  # SpreadsheetError (an InputError) names the file
    headers = df.attrs.get("headers", {})
    renamed = {c: c.replace("_#", "#") for c in df.columns if c.endswith("_#")}
    if renamed and not set(renamed.values()) & set(df.columns):
        df = df.rename(columns=renamed)
        headers = {renamed.get(c, c): h for c, h in headers.items()}
    present = [c for c in df.columns if c != "row_number"]
    missing = [c for c in layout.required if c not in present]
    if missing:
        hints = []
        for c in missing:
            close = difflib.get_close_matches(c, [p for p in present if p not in layout.columns], n=1, cutoff=0.5)
            hints.append(f"{c!r}" + (f" (found {headers.get(close[0], close[0])!r})" if close else ""))
        raise MetaSheetError(
            f"{path}: missing column(s) {', '.join(hints)}; required: {', '.join(layout.required)}"
            + (f"; optional: {', '.join(layout.optional)}" if layout.optional else "")
        )
    unused = [headers.get(c, c) for c in present if c not in layout.columns]
    rows = df[[c for c in df.columns if c in layout.columns or c == "row_number"]].to_dict("records")
    for r in rows:
        for c in layout.columns:
            r.setdefault(c, None)
    return MetaSheet(path, rows, unused)


def read_experimenters(meta_lab_dir: str | Path) -> MetaSheet:
    """``{meta_lab_dir}/Experimenter.csv``."""
    return read_meta_sheet(Path(meta_lab_dir) / EXPERIMENTER.file, EXPERIMENTER)


def read_rigs(meta_lab_dir: str | Path) -> MetaSheet:
    """``{meta_lab_dir}/Rig.csv``."""
    return read_meta_sheet(Path(meta_lab_dir) / RIG.file, RIG)


def read_surgery(meta_dir: str | Path) -> MetaSheet:
    """``{meta_dir}/Surgery.csv``."""
    return read_meta_sheet(Path(meta_dir) / SURGERY.file, SURGERY)


def _text(v) -> str:
    return "" if blank(v) else str(v).strip()


def not_loaded_reason(row: dict) -> str | None:
    """Why a Surgery.csv row is not an animal to load (None: load it)."""
    project, status = _text(row.get("project")), _text(row.get("status"))
    if project.lower() != LOADED_PROJECT or status.lower() not in LOADED_STATUS:
        shown = f"project {project or '(blank)'!r}, status {status or '(blank)'!r}"
        return f"{shown}: only project 'foraging' with status 'training' or 'sacrificed' is loaded"
    return None


_SLASH = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")


def slash_date(v):
    """``YYYY/MM/DD`` text (unambiguous, used by the lab's sheets) as ``YYYY-MM-DD``; anything else
    unchanged (the strict date check of :func:`pipeline.io.spreadsheet.date_cell` follows)."""
    if isinstance(v, str):
        m = _SLASH.fullmatch(v.strip())
        if m:
            y, mo, d = m.groups()
            return f"{y}-{int(mo):02d}-{int(d):02d}"
    return v


@dataclass(frozen=True)
class RestrictionStart:
    """The start of an animal's water restriction: the first row of its ``{ID}.csv``."""

    path: Path
    line: int  # line of that row in the file (header = line 1)
    date: dt.date
    weight: float  # grams, as written


def _first_data_line(text: str) -> int | None:
    for i, cells in enumerate(csv.reader(io.StringIO(text))):
        if i > 0 and any(c.strip() for c in cells):
            return i + 1
    return None


def restriction_start(path: str | Path) -> RestrictionStart:
    """Date and weight of the first row of ``{meta_dir}/{ID}.csv``.

    The whole sheet is checked as ``ingest-foraging`` checks it (a bad date, time or amount
    anywhere is an error naming the line); the first row must have both a Date and a Weight.
    Raises :class:`MetaSheetError` (also for a missing file)."""
    path = Path(path)
    try:
        meta = read_subject_meta(path)
    except PybpodError as e:
        raise MetaSheetError(str(e)) from None
    line = _first_data_line(path.read_bytes().decode("utf-8-sig"))
    if meta.empty or line is None:
        raise MetaSheetError(f"{path}: no rows; the water restriction's start date and weight come from the first row")
    first = meta.iloc[0]
    missing = [c for c in ("Date", "Weight") if pd.isna(first[c])]
    if missing:
        raise MetaSheetError(
            f"{path}: line {line} (the first row) has no {' or '.join(missing)}; the water restriction's "
            "start date and weight are read from the first row"
        )
    return RestrictionStart(path, line, first["Date"].date(), float(first["Weight"]))
