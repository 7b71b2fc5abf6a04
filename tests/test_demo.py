"""mapshell demo: end to end on the sample data, repeatable, in its own schemas."""

import re
import uuid

import datajoint as dj

from conftest import run_mapshell
from pipeline import db


def test_demo_runs_twice_and_reports(backend):
    prefix = f"md{uuid.uuid4().hex[:6]}_"
    try:
        env = backend.env()
        env.pop("MAP_SCHEMA_PREFIX")
        r = run_mapshell(["demo", "--prefix", prefix], env)
        assert r.returncode == 0, r.stderr
        assert "4 found, 4 loaded, 0 skipped, 0 failed" in r.stdout
        counts = dict(re.findall(r"^\s+(\S+)\s+(\d+)$", r.stdout, flags=re.M))
        assert counts["lab.Subject"] == "4" and counts["lab.WaterRestriction"] == "4"
        assert counts["lab.ProbeType.Electrode"] == str(960 * 2 + 1280 + 5120)
        # the rows really are in the demo's schemas
        lab_v = dj.VirtualModule("demo_lab", f"{prefix}lab", connection=backend.conn)
        assert len(lab_v.Subject()) == 4
        r = run_mapshell(["demo", "--prefix", prefix], env)  # re-running is a no-op
        assert r.returncode == 0 and "4 found, 0 loaded, 4 skipped, 0 failed" in r.stdout
        r = run_mapshell(["demo", "--prefix", prefix, "--fresh"], env)
        assert r.returncode == 0 and "4 found, 4 loaded" in r.stdout
    finally:
        db.drop_prefix(prefix, backend.conn)
    assert not [s for s in dj.list_schemas(connection=backend.conn) if s.startswith(prefix)]
