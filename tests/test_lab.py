"""lab and experiment schemas on a real database: lookup contents, geometry, constraints."""

import datetime as dt

import numpy as np
import pytest

from pipeline import experiment, lab, probes


def test_lookup_contents(database):
    assert set(experiment.Task().to_arrays("task")) == {
        "audio delay",
        "audio mem",
        "s1 stim",
        "foraging",
        "foraging 3lp",
        "multi-target-licking",
    }
    assert len(experiment.TaskProtocol()) == 13
    assert set(experiment.Outcome().to_arrays("outcome")) == {"hit", "miss", "ignore", "N/A"}
    assert set(experiment.TrialInstruction().to_arrays("trial_instruction")) == {"left", "right", "middle", "none"}
    assert len(experiment.TrialEventType()) == 14
    assert set(experiment.WaterPort().to_arrays("water_port")) >= {"left", "right", "middle", "mtl-9"}
    assert set(lab.Hemisphere().to_arrays("hemisphere")) == {"left", "right", "both"}
    assert "ALM" in set(lab.BrainArea().to_arrays("brain_area"))
    assert set(lab.ProbeType().to_arrays("probe_type")) == {p.probe_type for p in probes.PROBE_TYPES}
    period = (experiment.Period & "period = 'response'").fetch1()
    assert period["period_start"] == "go" and period["period_end_shift"] == pytest.approx(1.2)


def test_probe_electrodes_in_database_match_builder(database):
    for p in probes.PROBE_TYPES:
        rows = (lab.ProbeType.Electrode & {"probe_type": p.probe_type}).to_pandas().reset_index()
        ref = probes.electrode_table(p.probe_type)
        assert len(rows) == len(ref["electrode"])
        if len(rows):
            rows = rows.sort_values("electrode")
            np.testing.assert_allclose(rows["x_coord"], ref["x_coord"])
            np.testing.assert_allclose(rows["y_coord"], ref["y_coord"])
            np.testing.assert_array_equal(rows["shank_row"], ref["shank_row"])
    assert lab.ProbeType.fill_geometry() == 0  # idempotent


def test_photostim_protocol_locations(database):
    locs = (experiment.PhotostimProtocol.Location & "photostim_protocol = 6").to_arrays("ml_location")
    assert sorted(float(x) for x in locs) == [-1500.0, 1500.0]
    assert len(experiment.PhotostimProtocol.Location()) == 4


def test_session_and_unique_water_restriction(database):
    lab.Person.insert1(("daveliu", "Dave Liu"))
    lab.Rig.insert1(dict(rig="RRig", room="2W.336", rig_description="ephys rig"))
    lab.Subject.insert1(dict(subject_id=1, username="daveliu", sex="M", date_of_birth="2020-01-01"))
    lab.Subject.insert1(dict(subject_id=2, sex="F"))
    lab.WaterRestriction.insert1(
        dict(subject_id=1, water_restriction_number="dl25", wr_start_date="2020-03-01", wr_start_weight=22.5)
    )
    with pytest.raises(Exception):
        lab.WaterRestriction.insert1(
            dict(subject_id=2, water_restriction_number="dl25", wr_start_date="2020-03-01", wr_start_weight=20)
        )
    when = dt.datetime(2018, 2, 25, 11, 23, 28)
    experiment.Session.insert1(
        dict(subject_id=1, session=1, session_date=when.date(), session_datetime=when, username="daveliu", rig="RRig")
    )
    got = experiment.Session.fetch1()
    assert got["session_datetime"] == when and got["session_date"] == when.date()
    with pytest.raises(Exception):  # same subject, same start: the unique index refuses it
        experiment.Session.insert1(
            dict(
                subject_id=1, session=2, session_date=when.date(), session_datetime=when, username="daveliu", rig="RRig"
            )
        )
    assert len(experiment.Session()) == 1
    # a transaction that fails leaves nothing behind
    with pytest.raises(RuntimeError):
        with lab.Subject.connection.transaction:
            lab.Subject.insert1(dict(subject_id=3, sex="M"))
            raise RuntimeError("abort")
    assert not (lab.Subject & "subject_id = 3")


def test_small_max_allowed_packet_is_reported(database, monkeypatch, caplog):
    from pipeline import db

    if database.conn.adapter.backend != "mysql":
        pytest.skip("max_allowed_packet is a MySQL/MariaDB setting")
    actual = int(database.conn.query("SELECT @@max_allowed_packet").fetchone()[0])
    assert db.check_packet_size(database.conn) == actual
    monkeypatch.setattr(db, "MIN_ALLOWED_PACKET", actual + 1)  # as if the server had too small a value
    import logging

    lg = logging.getLogger("pipeline")
    lg.addHandler(caplog.handler)
    try:
        db.check_packet_size(database.conn)
    finally:
        lg.removeHandler(caplog.handler)
    assert "max_allowed_packet" in caplog.text and "SET GLOBAL max_allowed_packet=1073741824" in caplog.text
