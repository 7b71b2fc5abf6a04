"""The foraging lab's metadata sheets for ``load-meta-foraging``, with known ground truth.

:func:`write_meta_foraging` writes ``{lab_dir}/Experimenter.csv``, ``{lab_dir}/Rig.csv``,
``{meta_dir}/Surgery.csv`` (the spec's columns plus a few of the lab's own, which the loader does
not read) and one ``{ID}.csv`` daily sheet per animal (written by
:func:`pipeline.synthetic.pybpod.write_subject_meta`, the sheets ``ingest-foraging`` reads). Some
Surgery.csv rows are of another project or status, so they must be skipped. The returned
:class:`GeneratedMeta` holds the rows the database must then contain.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from .pybpod import write_subject_meta

__all__ = ["GeneratedMeta", "write_meta_foraging", "SURGERY_HEADER"]

#: Surgery.csv header as the lab writes it (spec columns, then columns of the lab's own)
SURGERY_HEADER = ["animal#", "cage#", "DOB", "sex", "experimenter", "ID", "project", "status", "surgery date", "virus"]
PEOPLE = [("hh", "Han Hou"), ("mr", "Marton Rozsa"), ("kc", "Kayvon Daie")]
RIGS = [
    ("Training-Tower-1", "2W.330", "foraging training tower, box 1"),
    ("Training-Tower-2", "2W.330", "foraging training tower, box 2"),
    ("Training-Tower-3", "2W.332", "foraging training tower, box 3"),
    ("Ephys-Han", "2W.336", "foraging ephys rig"),
]


@dataclass
class GeneratedMeta:
    meta_dir: Path
    lab_dir: Path
    people: list[dict]  # lab.Person rows
    rigs: list[dict]  # lab.Rig rows
    subjects: list[dict]  # lab.Subject rows (loaded animals only)
    water_restrictions: list[dict]  # lab.WaterRestriction rows (wr_start_weight Decimal, 3 places)
    skipped_rows: list[int] = field(default_factory=list)  # Surgery.csv rows not loaded (project/status)
    without_sheet: list[int] = field(default_factory=list)  # subject ids whose {ID}.csv is not written
    surgery: Path | None = None

    @property
    def settings(self) -> dict:
        """The ``behavior_bpod`` setting that points at these sheets."""
        return dict(meta_dir=str(self.meta_dir), meta_lab_dir=str(self.lab_dir), project_paths=[])


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _first_row(sheet: Path) -> tuple[dt.date, Decimal]:
    """Date and Weight of the first data row, read with the csv module (not the reader under test)."""
    with sheet.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    cells = dict(zip(rows[0], rows[1]))
    return dt.date.fromisoformat(cells["Date"].replace("/", "-")), Decimal(cells["Weight"]).quantize(Decimal("0.001"))


def write_meta_foraging(
    root: str | Path,
    n_animals: int = 4,
    *,
    seed: int = 0,
    first_subject: int = 482001,
    h2o_prefix: str = "FOR",
    other_rows: int = 2,
    missing_sheet: bool = False,
    days_per_animal: int = 2,
) -> GeneratedMeta:
    """Write the sheets under ``root/Metadata`` (meta_dir) and ``root/LabMetadata`` (meta_lab_dir).

    ``n_animals`` foraging animals (training or sacrificed) are loaded; ``other_rows`` more rows
    (another project, or status 'surgery') must be skipped. With ``missing_sheet`` the last
    animal's ``{ID}.csv`` is not written (the animal is loaded without a water restriction)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    meta_dir, lab_dir = root / "Metadata", root / "LabMetadata"
    _write(lab_dir / "Experimenter.csv", ["username", "fullname"], [list(p) for p in PEOPLE])
    _write(lab_dir / "Rig.csv", ["rig", "room", "rig_description"], [list(r) for r in RIGS])
    truth = GeneratedMeta(
        meta_dir=meta_dir,
        lab_dir=lab_dir,
        people=[dict(username=u, fullname=f) for u, f in PEOPLE],
        rigs=[dict(rig=r, room=room, rig_description=d) for r, room, d in RIGS],
        subjects=[],
        water_restrictions=[],
    )
    rows: list[list] = []
    for i in range(n_animals + other_rows):
        sid = first_subject + i
        h2o = f"{h2o_prefix}{i + 1:02d}"
        dob = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 200)))
        cage = int(rng.integers(100000, 200000))
        sex = str(rng.choice(["M", "F"]))
        user = PEOPLE[i % len(PEOPLE)][0]
        loaded = i < n_animals
        if loaded:
            project, status = "foraging", ("training", "sacrificed")[i % 2]
        else:
            project, status = (("ephys", "training"), ("foraging", "surgery"))[i % 2]
        # the lab wrote dates both ways
        dob_text = dob.isoformat() if i % 2 == 0 else dob.strftime("%Y/%m/%d")
        rows.append(
            [sid, cage, dob_text, sex, user, h2o, project, status, (dob + dt.timedelta(days=60)).isoformat(), "AAV"]
        )
        if not loaded:
            truth.skipped_rows.append(len(rows) + 1)
            continue
        truth.subjects.append(dict(subject_id=sid, cage_number=cage, date_of_birth=dob, sex=sex, username=user))
        if missing_sheet and i == n_animals - 1:
            truth.without_sheet.append(sid)
            continue
        first_day = dob + dt.timedelta(days=90 + int(rng.integers(0, 30)))
        days = [first_day + dt.timedelta(days=k) for k in range(days_per_animal)]
        sheet = write_subject_meta(meta_dir, h2o, days, seed=seed * 100 + i)
        start, weight = _first_row(sheet)
        truth.water_restrictions.append(
            dict(subject_id=sid, water_restriction_number=h2o, wr_start_date=start, wr_start_weight=weight)
        )
    truth.surgery = _write(meta_dir / "Surgery.csv", SURGERY_HEADER, rows)
    return truth
