"""mapshell demo: end to end on the sample data, repeatable, in its own schemas."""

import re
import uuid

import datajoint as dj
from conftest import run_mapshell

from pipeline import db


def _leftover_demo_schema(prefix: str, backend) -> None:
    """The demo's lab schema under ``prefix`` with an animal the demo does not have: what ``--fresh``
    must drop (rebinds this process's lab module to it for the insert, then back)."""
    from pipeline import lab

    try:
        db.activate_all(prefix, backend.conn, modules=("lab",))
        lab.Subject.insert1(dict(subject_id=999001, sex="M"))
        lab.WaterRestriction.insert1(
            dict(subject_id=999001, water_restriction_number="stray", wr_start_date="2024-01-01", wr_start_weight=20)
        )
    finally:
        db.activate_all(backend.prefix, backend.conn, modules=("lab",))


def test_demo_runs_twice_and_reports(backend):
    """``demo --fresh`` over a demo schema holding an animal of an earlier run (one full demo run, not
    a full run to drop: the drop of a fully loaded demo is checked at the end), then ``demo`` again."""
    prefix = f"md{uuid.uuid4().hex[:6]}_"
    try:
        env = backend.env()
        env.pop("MAP_SCHEMA_PREFIX")
        _leftover_demo_schema(prefix, backend)
        r = run_mapshell(["demo", "--prefix", prefix, "--fresh"], env)
        assert r.returncode == 0, r.stderr
        assert "animals in animals.xlsx: 5 found, 5 loaded, 0 skipped, 0 failed" in r.stdout
        assert "behavior sessions: 7 found, 7 loaded, 0 skipped, 0 failed" in r.stdout
        assert "foraging sessions: 3 found, 3 loaded, 0 skipped, 0 failed" in r.stdout
        assert "probes: 1 found, 1 loaded, 0 skipped, 0 failed" in r.stdout
        assert "tracking sessions: 1 found, 1 loaded, 0 skipped, 0 failed" in r.stdout
        assert "probe insertions: 1 found, 1 loaded, 0 skipped, 0 failed" in r.stdout
        counts = {k: int(v) for k, v in re.findall(r"^\s+(\S+)\s+(\d+)$", r.stdout, flags=re.M)}
        assert counts["lab.Subject"] == 5 and counts["lab.WaterRestriction"] == 5
        from pipeline import probes

        assert (
            counts["lab.ProbeType.Electrode"]
            == sum(len(probes.electrode_table(p.probe_type)["electrode"]) for p in probes.PROBE_TYPES)
            > 960 * 2 + 1280 + 5120
        )
        # the rows really are in the demo's schemas, the short 11-trial session among them
        lab_v = dj.VirtualModule("demo_lab", f"{prefix}lab", connection=backend.conn)
        exp_v = dj.VirtualModule("demo_exp", f"{prefix}experiment", connection=backend.conn)
        assert len(lab_v.Subject()) == 5 and not lab_v.Subject & {"subject_id": 999001}  # the stray one dropped
        assert len(exp_v.Session()) == counts["experiment.Session"] == 10
        assert len(exp_v.SessionBlock()) == counts["experiment.SessionBlock"] > 0
        ephys_v = dj.VirtualModule("demo_ephys", f"{prefix}ephys", connection=backend.conn)
        assert len(ephys_v.Clustering.Unit()) == counts["ephys.Unit"] == 40
        assert len(ephys_v.ProbeInsertion.InsertionLocation()) == 1
        hist_v = dj.VirtualModule("demo_hist", f"{prefix}histology", connection=backend.conn)
        assert len(hist_v.ElectrodeCCFPosition.ElectrodePosition()) == counts["histology.ElectrodePosition"] == 384
        assert counts["histology.LabeledProbeTrack.Point"] == 12
        assert 0 < counts["histology.unit_ccf()"] <= 40
        assert counts["psth.UnitSelectivity.Unit"] > 0 and counts["report.figures"] > 20
        assert len(exp_v.SessionTrial()) == counts["experiment.SessionTrial"] > 11
        per_session = exp_v.SessionTrial.to_pandas().reset_index().groupby(["subject_id", "session"]).size()
        assert 11 in per_session.tolist()
        assert f"MAP_SCHEMA_PREFIX={prefix} mapshell navigator" in r.stdout
        r = run_mapshell(["demo", "--prefix", prefix], env)  # re-running is a no-op
        assert r.returncode == 0 and "5 found, 0 loaded, 5 skipped, 0 failed" in r.stdout
        assert "7 found, 0 loaded, 7 skipped, 0 failed" in r.stdout
        assert "3 found, 0 loaded, 3 skipped, 0 failed" in r.stdout
        assert "probe insertions: 1 found, 0 loaded, 1 skipped, 0 failed" in r.stdout
    finally:
        db.drop_prefix(prefix, backend.conn)
    assert not [s for s in dj.list_schemas(connection=backend.conn) if s.startswith(prefix)]
