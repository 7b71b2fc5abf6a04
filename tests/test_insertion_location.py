"""load-insertion-location's strict checks: unknown columns, non-ISO dates, ranges and lengths.

Every bad row is reported with its row and column, and nothing is written. (The happy path with
real ephys ingest is in test_ingest_ephys.py::test_load_insertion_location.) The insertion is
inserted directly here, so these tests need no synthetic recording.
"""

import datetime as dt

import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ephys, experiment, lab
from pipeline.ingest.insertion_location import load_insertion_locations

WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)
KEY = dict(subject_id=55, session=1, insertion_number=1)


@pytest.fixture
def insertion(database):
    """Subject 55 (dm5) with one session on 2023-05-04, one probe insertion and 10 trials at 0, 10, ... s."""
    lab.Person.insert1(("tester", "Test Er"))
    lab.Rig.insert1(dict(rig="RRig"))
    lab.Subject.insert1(dict(subject_id=55, sex="F", username="tester"))
    lab.WaterRestriction.insert1(
        dict(subject_id=55, water_restriction_number="dm5", wr_start_date="2023-01-01", wr_start_weight=21)
    )
    experiment.Session.insert1(
        dict(subject_id=55, session=1, session_date=WHEN.date(), session_datetime=WHEN, username="tester", rig="RRig")
    )
    experiment.SessionTrial.insert(
        [
            dict(subject_id=55, session=1, trial=t, start_time=10.0 * (t - 1), stop_time=10.0 * t - 1)
            for t in range(1, 11)
        ]
    )
    ptype = "neuropixels 1.0 - 3B"
    lab.Probe.insert1(dict(probe="P123", probe_type=ptype))
    lab.ElectrodeConfig.insert1(dict(probe_type=ptype, electrode_config_name="1-384", electrode_config_hash="0" * 32))
    ephys.ProbeInsertion.insert1(dict(KEY, probe="P123", probe_type=ptype, electrode_config_name="1-384"))
    ephys.Clustering.insert1(
        dict(
            KEY,
            clustering_method="kilosort2",
            clustering_time=WHEN,
            quality_control=False,
            manual_curation=False,
            sampling_rate=30000.0,
        )
    )
    ephys.Clustering.Trial.insert([dict(KEY, trial=t, trial_start=10.0 * (t - 1)) for t in range(1, 11)])
    return database


def _row(**kw) -> dict:
    row = dict(
        water_restriction_number="dm5",
        session_date="2023-05-04",
        insertion_number=1,
        skull_reference="Bregma",
        ap_location=2500,
        ml_location=-1500,
        depth=3000,
        theta=15,
        phi=0,
        beta=None,
        brain_area="ALM",
        hemisphere="left",
        drift_presence="no",
        alignment_confidence="yes",
        number_of_landmarks=3,
        insertion_comment="fine",
        good_period="0-20;30-end",
    )
    row.update(kw)
    return row


def _write(path, rows, **rename):
    df = pd.DataFrame(rows, dtype=object).rename(columns=rename)
    if path.suffix == ".xlsx":
        df.to_excel(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _written() -> tuple[int, ...]:
    return (
        len(ephys.ProbeInsertion.InsertionLocation()),
        len(ephys.ProbeInsertion.RecordableBrainRegion()),
        len(ephys.ProbeInsertionQuality()),
        len(ephys.ProbeInsertionQuality.GoodPeriod()),
        len(ephys.ProbeInsertionQuality.GoodTrial()),
    )


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_good_sheet_with_date_cells_or_iso_text(insertion, tmp_path, suffix):
    date = WHEN.date() if suffix == ".xlsx" else "2023-05-04 00:00:00"  # a date cell / ISO text with time
    s = load_insertion_locations(_write(tmp_path / f"ok{suffix}", [_row(session_date=date)]))
    assert s.ok and len(s.loaded) == 1, s.report()
    loc = (ephys.ProbeInsertion.InsertionLocation & KEY).fetch1()
    assert loc["ml_location"] == -1500 and loc["beta"] is None
    q = (ephys.ProbeInsertionQuality & KEY).fetch1()
    assert q["number_of_landmarks"] == 3 and q["insertion_comment"] == "fine"
    assert sorted((ephys.ProbeInsertionQuality.GoodTrial & KEY).to_arrays("trial")) == [1, 2, 4, 5, 6, 7, 8, 9, 10]


def test_misspelt_columns_refused_with_close_match(insertion, database, tmp_path):
    sheet = _write(
        tmp_path / "notes.xlsx",
        [_row()],
        insertion_comment="insertion_coment",
        good_period="Good Perod",
    )
    s = load_insertion_locations(sheet)
    assert not s.ok and not s.loaded
    item, reason = s.failed[0]
    assert item == str(sheet)
    assert "unknown column 'insertion_coment' (did you mean 'insertion_comment'?)" in reason
    assert "'Good Perod' (read as 'good_perod') (did you mean 'good_period'?)" in reason
    assert _written() == (0, 0, 0, 0, 0)
    r = run_mapshell(["load-insertion-location", str(sheet)], database.env())
    assert r.returncode == 1 and "did you mean 'good_period'?" in r.stdout and "notes.xlsx" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    assert _written() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_ambiguous_and_invalid_dates_refused(insertion, tmp_path, suffix):
    rows = [
        _row(),  # row 2 is fine, but nothing may be written while other rows are bad
        _row(insertion_number=2, session_date="04/05/2023"),  # row 3: 4 May or 5 April?
        _row(insertion_number=3, session_date="2023-13-45"),  # row 4
        _row(insertion_number=4, session_date="13/05/2023"),  # row 5
    ]
    s = load_insertion_locations(_write(tmp_path / f"dates{suffix}", rows))
    assert not s.ok and not s.loaded
    r = dict(s.failed)
    name = f"dates{suffix}"
    assert f"{name} row 2" not in r
    assert "ambiguous or non-ISO date '04/05/2023' in row 3, column session_date" in r[f"{name} row 3"]
    assert "2023-05-04 (day/month) or 2023-04-05 (month/day)" in r[f"{name} row 3"]
    assert "invalid date '2023-13-45' in row 4, column session_date" in r[f"{name} row 4"]
    assert "'13/05/2023' in row 5, column session_date; write 2023-05-13" in r[f"{name} row 5"]
    assert _written() == (0, 0, 0, 0, 0)


def test_ranges_types_and_lengths_checked_before_writing(insertion, database, tmp_path):
    rows = [
        _row(),  # row 2: fine
        _row(insertion_number=0),  # row 3
        _row(insertion_number=40000),  # row 4: beyond int16
        _row(insertion_number=1.5),  # row 5
        _row(number_of_landmarks=-1),  # row 6
        _row(number_of_landmarks=2.7),  # row 7
        _row(insertion_comment="x" * 1001),  # row 8: varchar(1000)
        _row(ap_location="inf", depth="deep"),  # row 9: two problems, both reported
        _row(alignment_confidence="maybe"),  # row 10
        _row(good_period="0-100;50-200"),  # row 11
        _row(behaviour_time="256000"),  # row 12
        _row(subject_id=56),  # row 13: disagrees with dm5
    ]
    sheet = _write(tmp_path / "range.csv", rows)
    s = load_insertion_locations(sheet)
    assert not s.ok and not s.loaded
    r = dict(s.failed)
    assert "range.csv row 2" not in r
    assert "insertion_number 0 is out of range in row 3, column insertion_number" in r["range.csv row 3"]
    assert "between 1 and 32767" in r["range.csv row 4"] and "column insertion_number" in r["range.csv row 4"]
    assert "insertion_number 1.5 is not a positive whole number in row 5" in r["range.csv row 5"]
    assert "number_of_landmarks -1 is out of range in row 6, column number_of_landmarks" in r["range.csv row 6"]
    assert "number_of_landmarks 2.7 is not a whole number in row 7" in r["range.csv row 7"]
    assert "1001 characters long in row 8, column insertion_comment; at most 1000 fit" in r["range.csv row 8"]
    assert "ap_location 'inf' is not a number in row 9, column ap_location" in r["range.csv row 9"]
    assert "depth 'deep' is not a number in row 9, column depth" in r["range.csv row 9"]
    assert "alignment_confidence 'maybe' is not yes/no in row 10, column alignment_confidence" in r["range.csv row 10"]
    assert "overlap in row 11, column good_period" in r["range.csv row 11"]
    assert "behaviour_time 256000 is not a time of day in row 12, column behaviour_time" in r["range.csv row 12"]
    assert "subject_id 56 in row 13, column subject_id is not the subject of" in r["range.csv row 13"]
    assert len(s.failed) == 11
    assert _written() == (0, 0, 0, 0, 0)
    cli = run_mapshell(["load-insertion-location", str(sheet)], database.env())
    out = cli.stdout + cli.stderr
    assert cli.returncode == 1 and "Traceback" not in out and "character varying" not in out
    assert len([ln for ln in cli.stdout.splitlines() if "range.csv row 8" in ln]) == 1
    assert _written() == (0, 0, 0, 0, 0)
