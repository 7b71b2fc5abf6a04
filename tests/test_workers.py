"""automate-computation on several worker processes (DataJoint job reservation), jobs, and the
cleanup of orphaned store objects."""

import re
import subprocess
import sys
from pathlib import Path

from test_psth import KEY, planted  # noqa: F401  (the fixture)

from pipeline import db, ephys, psth, report
from pipeline.workers import cleanup, jobs_status


def test_two_workers_compute_every_key_once(planted, database, tmp_path):  # noqa: F811
    env = database.env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "automate-computation", "--once", "--verbose"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    # a figure whose inputs another worker was still computing goes back to the queue: a second
    # round (as the loop makes) finishes it
    again = subprocess.run(
        [sys.executable, "-m", "pipeline", "automate-computation", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "Traceback" not in err and "Duplicate" not in out + err
    # every key computed, none twice: the work was split between the two
    assert len(psth.UnitPsth & KEY) == len(psth.TrialCondition())
    assert len(ephys.UnitStat.Unit & KEY) == len(ephys.Unit & KEY)
    assert len(report.ProbeReport & KEY) == 1 and len(psth.UnitSelectivity & KEY) == 1
    computed = [int(m) for out, _ in outs for m in re.findall(r"^computed keys: \d+ found, (\d+) loaded", out, re.M)]
    n_keys = len(psth.TrialCondition()) + 3 + 1 + 4 + 3  # psth conditions, periods, unit sel., ephys, reports
    assert len(computed) == 2 and sum(computed) >= n_keys - 3  # between them, nearly every key, each once
    status = {r["table"]: r for r in jobs_status()}
    assert all(not r["reserved"] and not r["errors"] for r in status.values())
    assert status["psth.UnitPsth"]["pending"] == 0 and status["psth.UnitPsth"]["done"] == len(psth.TrialCondition())
    r = subprocess.run([sys.executable, "-m", "pipeline", "jobs"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "psth.UnitPsth" in r.stdout


def test_cleanup_removes_exactly_the_orphaned_objects(planted, database, tmp_path):  # noqa: F811
    store = Path(db.store_location())
    mine = store / "_schema" / f"{database.prefix}ephys"

    def count():
        return len(list(mine.rglob("*.npy")))

    assert cleanup(folder=tmp_path / "figures").ok  # earlier tests' rows were deleted, their objects not
    in_use = count()
    assert in_use >= len(ephys.Unit & KEY)  # this probe's arrays survived it
    orphan = mine / "clustering__unit" / "subject_id=71" / "session=1" / "insertion_number=9" / "unit=1"
    orphan.mkdir(parents=True)
    (orphan / "spike_times_orphan.npy").write_bytes(b"\x93NUMPY")
    assert count() == in_use + 1
    s = cleanup(folder=tmp_path / "figures")
    assert s.ok, s.report()
    assert count() == in_use and not (orphan / "spike_times_orphan.npy").exists()
    for u in (ephys.Unit & KEY).to_dicts():  # every array in use is still there and readable
        assert len(u["spike_times"]) == u["n_spikes"] and len(u["spike_trials"]) == u["n_spikes"]
