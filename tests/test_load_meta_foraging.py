"""load-meta-foraging: generated lab sheets (known ground truth) in, exact rows out; bad sheets insert
nothing; re-runs are no-ops; rows contradicting the database are errors."""

import csv
import json

import pytest
from conftest import run_mapshell

from pipeline import lab
from pipeline.errors import ConfigError
from pipeline.ingest.meta_foraging import load_meta_foraging
from pipeline.io.meta_foraging import (
    EXPERIMENTER,
    RIG,
    SURGERY,
    MetaSheetError,
    read_meta_sheet,
    read_surgery,
    restriction_start,
)
from pipeline.synthetic.meta_foraging import SURGERY_HEADER, write_meta_foraging


def _rewrite(path, change):
    """Rewrite a CSV sheet after ``change(rows)`` edits its rows (header = rows[0])."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    change(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


# --- the reader (no database) ------------------------------------------------------------


def test_reader_gives_the_generated_first_rows(tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=3, other_rows=2)
    sheet = read_surgery(g.meta_dir)
    assert len(sheet.rows) == 5 and sheet.unused_columns == ["surgery date", "virus"]
    for wr in g.water_restrictions:
        start = restriction_start(g.meta_dir / f"{wr['water_restriction_number']}.csv")
        assert (start.date, start.line) == (wr["wr_start_date"], 2)
        assert f"{start.weight:.3f}" == str(wr["wr_start_weight"])


def test_reader_refuses_missing_columns_and_an_unusable_first_row(tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=1, other_rows=0)
    _rewrite(g.surgery, lambda rows: rows[0].__setitem__(SURGERY_HEADER.index("ID"), "IDs"))
    with pytest.raises(MetaSheetError, match=r"Surgery.csv: missing column\(s\) 'id' \(found 'IDs'\)"):
        read_meta_sheet(g.surgery, SURGERY)
    sheet = g.meta_dir / "FOR01.csv"
    _rewrite(sheet, lambda rows: rows[1].__setitem__(5, ""))  # the first row's Weight
    with pytest.raises(MetaSheetError, match=r"FOR01.csv: line 2 \(the first row\) has no Weight"):
        restriction_start(sheet)
    _rewrite(sheet, lambda rows: rows[3].__setitem__(0, "2020-13-45"))
    with pytest.raises(MetaSheetError, match=r"FOR01.csv: line 4, column 'Date'"):
        restriction_start(sheet)
    with pytest.raises(MetaSheetError, match="file not found"):
        read_meta_sheet(tmp_path / "nowhere" / "Rig.csv", RIG)
    assert EXPERIMENTER.required == ("username", "fullname")


def test_real_sample_sheets(real_data):
    found = {name: sorted(real_data.rglob(name)) for name in ("Surgery.csv", "Experimenter.csv", "Rig.csv")}
    if not any(found.values()):
        pytest.skip("no foraging metadata sheets (Surgery.csv, Experimenter.csv, Rig.csv) in the real sample data")
    for name, layout in (("Surgery.csv", SURGERY), ("Experimenter.csv", EXPERIMENTER), ("Rig.csv", RIG)):
        for path in found[name]:
            assert read_meta_sheet(path, layout).rows


# --- the loader --------------------------------------------------------------------------


def _subjects() -> dict:
    return {r["subject_id"]: r for r in lab.Subject().to_dicts()}


def test_load_read_back_and_rerun(database, tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=4, other_rows=2, missing_sheet=True)
    s = load_meta_foraging(g.settings)
    assert s.ok, s.report()
    assert s.found == 3 + 4 + 6
    assert {(r["username"], r["fullname"]) for r in lab.Person().to_dicts()} == {
        (p["username"], p["fullname"]) for p in g.people
    }
    assert sorted(lab.Rig().to_dicts(), key=lambda r: r["rig"]) == sorted(g.rigs, key=lambda r: r["rig"])
    got = _subjects()
    assert set(got) == {t["subject_id"] for t in g.subjects}
    for t in g.subjects:
        row = got[t["subject_id"]]
        assert {k: row[k] for k in t} == t
        assert row["animal_source"] is None
    wrs = {r["subject_id"]: r for r in lab.WaterRestriction().to_dicts()}
    assert len(wrs) == 3 and g.without_sheet[0] not in wrs
    for t in g.water_restrictions:
        assert wrs[t["subject_id"]] == t
    skipped = dict(s.skipped)
    for row in g.skipped_rows:
        assert "only project 'foraging'" in skipped[f"Surgery.csv row {row}"]
    assert any("no FOR04.csv" in n and "no water restriction yet" in n for n in s.notes)
    assert any("Surgery.csv: columns not read: surgery date, virus" in n for n in s.notes)

    again = load_meta_foraging(g.settings)  # a re-run is a no-op
    assert again.ok and not again.loaded, again.report()
    assert len(lab.Subject()) == 4 and len(lab.WaterRestriction()) == 3

    # the missing daily sheet appears: the next run adds only its water restriction
    import datetime as dt

    from pipeline.synthetic.pybpod import write_subject_meta

    write_subject_meta(g.meta_dir, "FOR04", [dt.date(2020, 10, 1)], seed=9)
    third = load_meta_foraging(g.settings)
    assert third.ok and third.loaded == [f"water restriction FOR04 of subject {g.without_sheet[0]}"], third.report()
    assert len(lab.WaterRestriction()) == 4


def test_bad_rows_reported_and_nothing_inserted(database, tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=5, other_rows=0)
    col = {c: i for i, c in enumerate(SURGERY_HEADER)}

    def spoil(rows):
        rows[1][col["sex"]] = "X"  # row 2
        rows[2][col["DOB"]] = "03/04/2020"  # row 3
        rows[3][col["experimenter"]] = "nobody"  # row 4
        rows[5][col["animal#"]] = rows[4][col["animal#"]]  # row 6 repeats row 5's animal# with other values

    _rewrite(g.surgery, spoil)
    _rewrite(g.meta_dir / "FOR02.csv", lambda rows: rows[1].__setitem__(5, "heavy"))
    _rewrite(g.lab_dir / "Experimenter.csv", lambda rows: rows.append(["toolongname" * 4, "X"]))
    s = load_meta_foraging(g.settings)
    assert not s.ok
    reasons = dict(s.failed)
    assert "sex 'X' is not M, F or Unknown in row 2, column sex" in reasons["Surgery.csv row 2"]
    assert "ambiguous or non-ISO date '03/04/2020' in row 3, column dob" in reasons["Surgery.csv row 3"]
    assert "FOR02.csv: line 2, column 'Weight': 'heavy' is not a number" in reasons["Surgery.csv row 3"]
    assert "experimenter 'nobody' is not in lab.Person nor in Experimenter.csv" in reasons["Surgery.csv row 4"]
    assert "animal# 482004 repeats row 5 with other values" in reasons["Surgery.csv row 6"]
    assert "Surgery.csv row 5" not in reasons
    assert "at most 32 fit" in reasons["Experimenter.csv row 5"]
    assert len(lab.Person()) == 0 and len(lab.Rig()) == 0 and len(lab.Subject()) == 0


def test_contradictions_are_errors_and_auto_rigs_are_filled(database, tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=2, other_rows=0)
    lab.Rig.insert1(dict(rig="Ephys-Han", rig_description="added by ingest-foraging (pybpod setup ephys_han)"))
    s = load_meta_foraging(g.settings)
    assert s.ok and "rig Ephys-Han (room and description from Rig.csv)" in s.loaded, s.report()
    assert (lab.Rig & {"rig": "Ephys-Han"}).fetch1("room") == "2W.336"
    col = {c: i for i, c in enumerate(SURGERY_HEADER)}

    def change(rows):
        rows[1][col["sex"]] = "F" if rows[1][col["sex"]] == "M" else "M"
        rows[1][col["ID"]] = ""  # row 2: no water restriction to compare
        rows[2][col["ID"]] = "FOR01"  # row 3: the h2o id of row 2's subject in the database

    _rewrite(g.surgery, change)
    _rewrite(g.lab_dir / "Experimenter.csv", lambda rows: rows[1].__setitem__(1, "Someone Else"))
    before = _subjects()
    s = load_meta_foraging(g.settings)
    reasons = dict(s.failed)
    assert "already in the database with different sex" in reasons["Surgery.csv row 2"]
    assert (
        "ID 'FOR01' in row 3, column id is already the water_restriction_number of subject"
        in reasons["Surgery.csv row 3"]
    )
    assert "already in lab.Person with fullname 'Han Hou', not 'Someone Else'" in reasons["Experimenter.csv row 2"]
    assert _subjects() == before


def test_mapshell_load_meta_foraging(database, tmp_path):
    g = write_meta_foraging(tmp_path, n_animals=2, other_rows=1)
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {"behavior_bpod": g.settings}}))
    r = run_mapshell(["load-meta-foraging"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 0, r.stderr
    assert "foraging metadata rows: 10 found, 9 loaded, 1 skipped, 0 failed" in r.stdout
    assert len(lab.Subject()) == 2
    with pytest.raises(ConfigError):
        load_meta_foraging({"meta_dir": str(g.meta_dir)})


@pytest.mark.embedded_only("a missing setting: nothing is read or written; test_mapshell_load_meta_foraging loads")
def test_mapshell_load_meta_foraging_without_setting(database, tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text("{}")
    r = run_mapshell(["load-meta-foraging"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 2 and "behavior_bpod setting is missing" in r.stderr
