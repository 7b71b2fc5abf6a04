"""Several ingest workers at once: every item loaded exactly once (claims through DataJoint's job
reservation), and a worker killed mid-item taken over after the claim timeout."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

from pipeline import experiment, lab
from pipeline.ingest import work
from pipeline.synthetic.bpod_delay_response import write_session_file

N_ANIMALS, N_DAYS = 3, 4


def _sessions(tmp_path):
    rig = tmp_path / "rig"
    truths = {}
    for a in range(N_ANIMALS):
        h2o = f"wk{a}"
        lab.Subject.insert1(dict(subject_id=800 + a, sex="F"))
        lab.WaterRestriction.insert1(
            dict(subject_id=800 + a, water_restriction_number=h2o, wr_start_date="2022-01-01", wr_start_weight=21)
        )
        for d in range(N_DAYS):
            t = write_session_file(
                rig, h2o=h2o, when=dt.datetime(2022, 2, 1 + d, 9, 0, 0), n_trials=12, seed=10 * a + d
            )
            truths[(800 + a, d)] = len(t.trials)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {"behavior_data_paths": [["RRig", str(rig), 0]]}}))
    return conf, truths


def _worker(env, conf, cwd, **extra):
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest-behavior", "--verbose"],
        env={**env, "MAP_CONFIG": str(conf), **extra},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_workers_load_every_day_once(database, tmp_path):
    conf, truths = _sessions(tmp_path)
    procs = [_worker(database.env(), conf, tmp_path) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "Traceback" not in err and "Duplicate" not in out + err
        assert ", 0 failed" in out.splitlines()[0] and "  failed:" not in out, out
    loaded = sum(int(out.split(" loaded")[0].rsplit(" ", 1)[1]) for out, _ in outs)
    assert loaded == N_ANIMALS * N_DAYS  # between them, each day once
    sessions = experiment.Session & [{"subject_id": 800 + a} for a in range(N_ANIMALS)]
    assert len(sessions) == N_ANIMALS * N_DAYS
    assert len(experiment.SessionTrial & sessions) == sum(truths.values())
    assert not (work.Ingested().jobs & "status = 'reserved'")  # no claim left behind


def test_killed_worker_is_taken_over(database, tmp_path):
    conf, truths = _sessions(tmp_path)
    victim = _worker(database.env(), conf, tmp_path, MAP_PAUSE_BEFORE_WRITE="60")
    jobs = work.Ingested().jobs
    end = time.time() + 60
    while time.time() < end and not (jobs & "status = 'reserved'"):
        time.sleep(0.2)
    assert jobs & "status = 'reserved'", "the worker never claimed an item"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    # a second worker before the timeout leaves the claimed day alone ...
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest-behavior"],
        env={**database.env(), "MAP_CONFIG": str(conf)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "being loaded by" in r.stdout, r.stdout + r.stderr
    assert len(experiment.Session & [{"subject_id": 800 + a} for a in range(N_ANIMALS)]) == N_ANIMALS * N_DAYS - 1
    # ... and one after it takes the dead worker's claim over and finishes the job
    time.sleep(1.5)
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest-behavior"],
        env={**database.env(), "MAP_CONFIG": str(conf), "MAP_CLAIM_TIMEOUT": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "1 loaded" in r.stdout, r.stdout + r.stderr
    sessions = experiment.Session & [{"subject_id": 800 + a} for a in range(N_ANIMALS)]
    assert len(sessions) == N_ANIMALS * N_DAYS
    assert len(experiment.SessionTrial & sessions) == sum(truths.values())  # equal to an uninterrupted run


def test_four_auto_ingest_workers_share_every_kind(database, tmp_path):
    """12 days waiting with rig files, a probe folder and DeepLabCut files each: four `auto-ingest`
    workers at once (two rounds, as workers run) load every item exactly once, with no failure."""
    from pipeline import ephys, tracking
    from pipeline.synthetic.dlc import write_tracking_session
    from pipeline.synthetic.sorting import write_kilosort
    from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

    rig, root, video = tmp_path / "rig", tmp_path / "ephys", tmp_path / "video"
    n_trials = {}
    for a in range(N_ANIMALS):
        h2o = f"wk{a}"
        lab.Subject.insert1(dict(subject_id=800 + a, sex="F"))
        lab.WaterRestriction.insert1(
            dict(subject_id=800 + a, water_restriction_number=h2o, wr_start_date="2022-01-01", wr_start_weight=21)
        )
        for d in range(N_DAYS):
            when = dt.datetime(2022, 2, 1 + d, 9, 0, 0)
            t = write_session_file(rig, h2o=h2o, when=when, n_trials=12, seed=10 * a + d)
            n_trials[(800 + a, when.date())] = len(t.trials)
            codes = t.notes[t.notes.trial_note_type == "bitcode"].sort_values("trial")
            pdir = root / h2o / when.strftime("%Y%m%d") / "1"
            write_meta(pdir / f"{h2o}_g0_tcat.imec0.ap.meta", probe="np1", seed=d)
            write_bitcode_mat(pdir / f"{h2o}_g0_bitcode.mat", list(codes.trial_note), seed=d)
            write_kilosort(pdir / "kilosort2", n_units=4, n_spikes=3000, seed=d, duration_s=300.0)
            write_tracking_session(
                video, h2o, when.date(), trials=list(range(1, len(t.trials) + 1)), positions=("side",), seed=d
            )
    conf = tmp_path / "c.json"
    conf.write_text(
        json.dumps(
            {
                "custom": {
                    "behavior_data_paths": [["RRig", str(rig), 0]],
                    "ephys_data_paths": [str(root)],
                    "tracking_data_paths": [["RRig", str(video)]],
                }
            }
        )
    )
    outs = []
    for _ in range(2):  # two rounds: a worker's ephys step may look before another's sessions committed
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "auto-ingest", "--once", "--verbose"],
                env={**database.env(), "MAP_CONFIG": str(conf)},
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for p in procs:
            out, err = p.communicate(timeout=900)
            assert p.returncode == 0, out + err
            assert "Traceback" not in err and "Duplicate" not in out + err and "  failed:" not in out, out + err
            outs.append(out)
    text = "\n".join(outs)
    n = N_ANIMALS * N_DAYS
    for what, line in (
        ("behavior sessions", "behavior sessions:"),
        ("probes", "probes:"),
        ("tracking", "tracking sessions:"),
    ):
        loaded = sum(int(x.split(" loaded")[0].rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line))
        assert loaded == n, (what, loaded, text)  # between them, each item once
    sessions = experiment.Session & [{"subject_id": 800 + a} for a in range(N_ANIMALS)]
    assert len(sessions) == n and len(experiment.SessionTrial & sessions) == sum(n_trials.values())
    assert len(ephys.ProbeInsertion & sessions) == n and len(ephys.Unit & sessions) == 4 * n
    assert len(tracking.Tracking & sessions) == sum(n_trials.values())  # one camera
    assert not (work.Ingested().jobs & "status = 'reserved'")
