"""load-animal: generated sheets (known ground truth) in, exact rows out; bad sheets insert nothing."""

from decimal import Decimal

import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import lab
from pipeline.errors import UsageError
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
    with pytest.raises(UsageError, match="file not found"):  # a usage problem: exit status 2
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


@pytest.mark.embedded_only("a missing file is refused before anything is written; test_cli_exit_codes loads")
def test_cli_missing_file(database, tmp_path):
    r = run_mapshell(["load-animal", str(tmp_path / "missing.xlsx")], database.env())
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr


# --- strict checks: unknown columns, non-ISO dates, ranges and lengths (nothing inserted) ------


def _counts() -> tuple[int, int, int, int]:
    return len(lab.Subject()), len(lab.WaterRestriction()), len(lab.Person()), len(lab.Subject.Strain())


def test_misspelt_columns_refused_with_close_match(database, tmp_path):
    lab.Person.insert1(("demo", "Demo User"))
    before = _counts()
    truth = make_animals(n=3, seed=9).rename(columns={"cage_number": "cage_numbr", "animal_source": "Animal Sorce"})
    sheet = write_animals(tmp_path / "typo.xlsx", truth)
    s = load_animals(sheet)
    assert not s.ok and s.found == 0 and not s.loaded
    item, reason = s.failed[0]
    assert item == str(sheet)
    assert "unknown column 'cage_numbr' (did you mean 'cage_number'?)" in reason
    assert "'Animal Sorce' (read as 'animal_sorce') (did you mean 'animal_source'?)" in reason
    assert _counts() == before
    r = run_mapshell(["load-animal", str(sheet)], database.env())
    assert r.returncode == 1 and "did you mean 'cage_number'?" in r.stdout and "typo.xlsx" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    assert _counts() == before
    # a column of the user's own notes is fine when its header starts with #
    notes = make_animals(n=2, seed=9)
    notes["# remarks"] = "calm"
    s = load_animals(write_animals(tmp_path / "notes.csv", notes))
    assert s.ok and len(s.loaded) == 2, s.report()


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_ambiguous_and_invalid_dates_refused(database, tmp_path, suffix):
    lab.Person.insert1(("demo", "Demo User"))
    before = _counts()
    bad = make_animals(n=5, seed=10).astype(object)
    bad["wr_start_date"] = bad["wr_start_date"].map(lambda d: d.isoformat())  # text cells, valid ISO
    bad.loc[0, "wr_start_date"] = "03/04/2024"  # row 2: 3 April or 4 March?
    bad.loc[1, "wr_start_date"] = "13/04/2024"  # row 3: only one reading, still not ISO
    bad.loc[2, "date_of_birth"] = "02/03/2018"  # row 4
    bad.loc[3, "wr_start_date"] = "2024-13-45"  # row 5: not a date at all
    bad.loc[4, "date_of_birth"] = "April 3 2023"  # row 6
    sheet = write_animals(tmp_path / f"dates{suffix}", bad)
    s = load_animals(sheet)
    assert not s.ok and not s.loaded
    reasons = dict(s.failed)
    name = sheet.name
    assert "ambiguous or non-ISO date '03/04/2024' in row 2, column wr_start_date" in reasons[f"{name} row 2"]
    assert "2024-04-03 (day/month) or 2024-03-04 (month/day)" in reasons[f"{name} row 2"]
    assert "'13/04/2024' in row 3, column wr_start_date; write 2024-04-13" in reasons[f"{name} row 3"]
    assert "'02/03/2018' in row 4, column date_of_birth" in reasons[f"{name} row 4"]
    assert "invalid date '2024-13-45' in row 5, column wr_start_date" in reasons[f"{name} row 5"]
    assert "non-ISO date 'April 3 2023' in row 6, column date_of_birth" in reasons[f"{name} row 6"]
    assert _counts() == before


def test_iso_text_dates_and_date_cells_accepted(database, tmp_path):
    lab.Person.insert1(("demo", "Demo User"))
    truth = make_animals(n=3, seed=11).astype(object)
    truth.loc[0, "wr_start_date"] = "2025-06-03"
    truth.loc[1, "wr_start_date"] = "2025-06-04 09:30:00"
    truth.loc[2, "wr_start_date"] = pd.Timestamp("2025-06-05 10:00")  # a date-time cell
    s = load_animals(write_animals(tmp_path / "iso.xlsx", truth))
    assert s.ok and len(s.loaded) == 3, s.report()
    got = dict(zip(*lab.WaterRestriction().to_arrays("subject_id", "wr_start_date")))
    assert [str(got[int(i)]) for i in truth.subject_id] == ["2025-06-03", "2025-06-04", "2025-06-05"]


def test_ranges_types_and_lengths_checked_before_insert(database, tmp_path):
    lab.Person.insert1(("demo", "Demo User"))
    before = _counts()
    bad = make_animals(n=10, seed=12).astype(object)
    bad["fullname"] = None
    bad.loc[0, "subject_id"] = 0  # row 2
    bad.loc[1, "subject_id"] = -5  # row 3
    bad.loc[2, "subject_id"] = 2**31  # row 4: beyond int32
    bad.loc[3, "username"] = "u" * 33  # row 5: varchar(32)
    bad.loc[3, "fullname"] = "Long Name"
    bad.loc[4, "wr_start_weight"] = 0  # row 6
    bad.loc[5, "wr_start_weight"] = -3  # row 7
    bad.loc[6, "wr_start_weight"] = 1000  # row 8: decimal(6, 3) holds < 1000
    bad.loc[7, "water_restriction_number"] = "h" * 17  # row 9: varchar(16)
    bad.loc[8, "cage_number"] = 2.5  # row 10
    bad.loc[9, "subject_id"] = "12a"  # row 11, with more problems in the same row
    bad.loc[9, "sex"] = "?"
    sheet = write_animals(tmp_path / "range.csv", bad)
    s = load_animals(sheet)
    assert not s.ok and not s.loaded
    r = dict(s.failed)
    assert "subject_id 0 is not a positive whole number" not in r["range.csv row 2"]  # it is whole: range
    assert "subject_id 0 is out of range in row 2, column subject_id" in r["range.csv row 2"]
    assert "between 1 and 2147483647" in r["range.csv row 2"]
    assert "subject_id -5 is out of range in row 3, column subject_id" in r["range.csv row 3"]
    assert "subject_id 2147483648 is out of range in row 4, column subject_id" in r["range.csv row 4"]
    assert "is 33 characters long in row 5, column username; at most 32 fit" in r["range.csv row 5"]
    assert "wr_start_weight 0 is out of range in row 6, column wr_start_weight" in r["range.csv row 6"]
    assert "wr_start_weight -3 is out of range in row 7" in r["range.csv row 7"]
    assert "wr_start_weight 1000 is out of range in row 8" in r["range.csv row 8"]
    assert "17 characters long in row 9, column water_restriction_number; at most 16" in r["range.csv row 9"]
    assert "cage_number 2.5 is not a whole number in row 10, column cage_number" in r["range.csv row 10"]
    assert "subject_id '12a' is not a positive whole number in row 11, column subject_id" in r["range.csv row 11"]
    assert "sex '?' is not M, F or Unknown in row 11, column sex" in r["range.csv row 11"]
    assert len(s.failed) == 10
    assert _counts() == before  # not even the new Person of row 5
    cli = run_mapshell(["load-animal", str(sheet)], database.env())
    assert cli.returncode == 1
    out = cli.stdout + cli.stderr
    assert "Traceback" not in out and "character varying" not in out and "value too long" not in out
    line = [ln for ln in cli.stdout.splitlines() if "range.csv row 5" in ln]
    assert len(line) == 1 and "column username" in line[0]
    assert _counts() == before


def test_database_refusal_is_one_line_and_rolls_back(database, tmp_path, monkeypatch):
    """Should a check ever miss a limit, the database's refusal is one line and nothing stays."""
    import pipeline.ingest.animals as animals
    from pipeline.io.spreadsheet import parse_sql_type

    real = animals._limits

    def lax():
        return dict(real(), username=parse_sql_type("varchar(100)", "Person", "username"))

    monkeypatch.setattr(animals, "_limits", lax)
    sheet = make_animals(n=3, seed=13, username="ok").astype(object)
    sheet["fullname"] = "Some One"
    sheet.loc[2, "username"] = "x" * 40  # the last row: rows 2 and 3 were inserted when it fails
    s = load_animals(write_animals(tmp_path / "lax.csv", sheet))
    assert not s.ok and not s.loaded
    assert "the database refused the row" in s.failed[0][1] and "\n" not in s.failed[0][1]
    assert _counts() == (0, 0, 0, 0)


def test_owner_is_stored_on_the_subject(database, tmp_path):
    truth = make_animals(n=2, seed=14, username="owner1")
    truth["fullname"] = "Owner One"
    assert load_animals(write_animals(tmp_path / "own.csv", truth)).ok
    sid, h2o = int(truth.subject_id[0]), truth.water_restriction_number[0]
    assert (lab.Subject & {"subject_id": sid}).fetch1("username") == "owner1"
    assert (lab.Subject * lab.WaterRestriction & {"water_restriction_number": h2o}).fetch1("username") == "owner1"
    # another owner for a loaded animal is a conflict, not a silent change
    lab.Person.insert1(("owner2", "Owner Two"))
    moved = truth.drop(columns="fullname").assign(username="owner2")
    s = load_animals(write_animals(tmp_path / "moved.csv", moved))
    assert not s.ok and "different username" in dict(s.failed)["moved.csv row 2"]
    assert (lab.Subject & {"subject_id": sid}).fetch1("username") == "owner1"
    # a fullname that contradicts lab.Person is refused, and so is a fullname without a username
    clash = make_animals(n=2, seed=15, username="owner2", first_subject=700, h2o_prefix="cl")
    clash["fullname"] = "Someone Else"
    clash = clash.astype(object)
    clash.loc[1, "username"] = None
    s = load_animals(write_animals(tmp_path / "clash.csv", clash))
    r = dict(s.failed)
    assert "fullname 'Someone Else' of username 'owner2' in row 2, column fullname" in r["clash.csv row 2"]
    assert "fullname without a username in row 3, column username" in r["clash.csv row 3"]
    assert not (lab.Subject & "subject_id < 1000")
