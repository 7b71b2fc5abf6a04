"""load-animal: generated sheets (known ground truth) in, exact rows out; bad sheets insert nothing."""

from decimal import Decimal

import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import lab
from pipeline.ingest.animals import load_animals
from pipeline.io.spreadsheet import SpreadsheetError, read_table
from pipeline.synthetic.animals import make_animals, write_animals


def _as_loaded(truth: pd.DataFrame) -> dict:
    """Ground truth keyed by subject_id, in the types the database returns."""
    return {int(r.subject_id): r for r in truth.itertuples()}


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_load_good_sheet_and_read_back(database, tmp_path, suffix):
    lab.Person.insert1(("demo", "Demo User"))
    truth = make_animals(n=6, seed=3)
    sheet = write_animals(tmp_path / f"animals{suffix}", truth)
    s = load_animals(sheet)
    assert s.ok and s.found == 6 and len(s.loaded) == 6, s.report()
    got = (lab.Subject * lab.WaterRestriction).to_dicts()
    assert len(got) == 6
    expected = _as_loaded(truth)
    for row in got:
        e = expected[row["subject_id"]]
        assert row["sex"] == e.sex
        assert row["water_restriction_number"] == e.water_restriction_number
        assert row["date_of_birth"] == e.date_of_birth
        assert row["wr_start_date"] == e.wr_start_date
        assert row["wr_start_weight"] == Decimal(str(e.wr_start_weight)).quantize(Decimal("0.001"))
        assert row["cage_number"] == int(e.cage_number)
        assert row["animal_source"] == e.animal_source
        assert row["username"] == "demo"
    again = load_animals(sheet)  # idempotent
    assert again.ok and not again.loaded and len(again.skipped) == 6
    assert len(lab.Subject()) == 6


def test_bad_rows_reported_and_nothing_inserted(database, tmp_path):
    truth = make_animals(n=5, seed=4, username="nobody")
    bad = truth.astype(object).copy()
    bad.loc[1, "sex"] = "X"  # sheet row 3
    bad.loc[2, "wr_start_weight"] = "heavy"  # row 4
    bad.loc[3, "water_restriction_number"] = bad.loc[0, "water_restriction_number"]  # row 5 repeats row 2
    bad.loc[4, "wr_start_date"] = None  # row 6
    sheet = write_animals(tmp_path / "bad.xlsx", bad)
    s = load_animals(sheet)
    assert not s.ok
    reasons = dict(s.failed)
    assert "sex 'X'" in reasons["bad.xlsx row 3"]
    assert "wr_start_weight 'heavy'" in reasons["bad.xlsx row 4"]
    assert "repeats row 2" in reasons["bad.xlsx row 5"]
    assert "missing wr_start_date" in reasons["bad.xlsx row 6"]
    assert "username 'nobody' is not in lab.Person" in reasons["bad.xlsx row 2"]
    assert len(lab.Subject()) == 0 and len(lab.WaterRestriction()) == 0


def test_fullname_creates_person_and_conflicts_are_errors(database, tmp_path):
    truth = make_animals(n=2, seed=5, username="newbie")
    truth["fullname"] = "New Person"
    sheet = write_animals(tmp_path / "a.csv", truth)
    assert load_animals(sheet).ok
    assert (lab.Person & {"username": "newbie"}).fetch1("fullname") == "New Person"
    changed = truth.copy()
    changed.loc[0, "sex"] = "F" if truth.loc[0, "sex"] == "M" else "M"
    s = load_animals(write_animals(tmp_path / "b.csv", changed))
    assert not s.ok
    assert "different sex" in dict(s.failed)["b.csv row 2"]
    assert len(lab.Subject()) == 2
    stolen = make_animals(n=1, seed=6, username="newbie", first_subject=555)
    stolen.loc[0, "water_restriction_number"] = truth.loc[0, "water_restriction_number"]
    s = load_animals(write_animals(tmp_path / "c.csv", stolen))
    assert "already belongs to subject" in dict(s.failed)["c.csv row 2"]
    assert not (lab.Subject & "subject_id = 555")


def test_missing_columns_and_unreadable_files(database, tmp_path):
    f = tmp_path / "few.csv"
    f.write_text("subject_id,sex\n1,M\n")
    s = load_animals(f)
    assert not s.ok and "missing column(s) water_restriction_number" in s.failed[0][1]
    with pytest.raises(SpreadsheetError, match="file not found"):
        load_animals(tmp_path / "none.xlsx")
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(SpreadsheetError, match="junk.xlsx"):
        load_animals(junk)


def test_header_normalisation_and_row_numbers(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("Subject ID , Water Restriction Number\n1,dl1\n,\n2,dl2\n")
    df = read_table(f)
    assert list(df.columns) == ["subject_id", "water_restriction_number", "row_number"]
    assert list(df["row_number"]) == [2, 4]  # the blank sheet row 3 is dropped, numbering kept


def test_cli_exit_codes(database, tmp_path):
    lab.Person.insert1(("demo", "Demo User"))
    good = write_animals(tmp_path / "g.xlsx", make_animals(n=3, seed=7))
    r = run_mapshell(["load-animal", str(good)], database.env())
    assert r.returncode == 0, r.stderr
    assert "3 found, 3 loaded" in r.stdout
    assert len(lab.Subject()) == 3
    bad = make_animals(n=2, seed=8, first_subject=900)
    bad.loc[1, "sex"] = "?"
    r = run_mapshell(["load-animal", str(write_animals(tmp_path / "b.csv", bad))], database.env())
    assert r.returncode == 1 and "b.csv row 3" in r.stdout
    assert len(lab.Subject()) == 3
    r = run_mapshell(["load-animal", str(tmp_path / "missing.xlsx")], database.env())
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
