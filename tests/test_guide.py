"""The contributors' guide, verbatim: its shell lines, an old lab dj_local_conf.json, and every run
saying what it did (issue: "The contributors' guide works verbatim")."""

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_mapshell

from pipeline import experiment, lab
from pipeline.ingest.behavior import BehaviorIngest
from pipeline.ingest.behavior import ingest_behavior as ingest
from pipeline.synthetic.bpod_delay_response import write_session_file

pytestmark = pytest.mark.db


def _animal(subject_id, h2o, owner=None):
    if owner:
        lab.Person.insert1(dict(username=owner, fullname=owner.title()), skip_duplicates=True)
    lab.Subject.insert1(dict(subject_id=subject_id, sex="F", username=owner))
    lab.WaterRestriction.insert1(
        dict(subject_id=subject_id, water_restriction_number=h2o, wr_start_date="2021-01-01", wr_start_weight=22)
    )


# --- the guide's shell lines --------------------------------------------------------------------


def test_guide_shell_lines_work_as_printed(database, tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {}}))
    code = "\n".join(
        [
            "mypaths = [['Rig1', '/data/rig1', 0]]",
            "dj.config['custom']['behavior_data_paths'] = mypaths",
            "dj.config.save_local()",
            "print(len(ephys.Unit()), len(lab.Person()), ccf.CCFAnnotation.__name__)",
            "sys.exit()",
        ]
    )
    r = run_mapshell(["shell", "-c", code], database.env(MAP_CONFIG=str(conf)), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for m in ("ephys", "lab", "experiment", "ccf", "histology", "tracking"):
        assert f"- {m}" in r.stdout
    assert "0 0 CCFAnnotation" in r.stdout
    assert json.loads(conf.read_text())["custom"]["behavior_data_paths"] == [["Rig1", "/data/rig1", 0]]


@pytest.mark.embedded_only("a setting's validation (no query); test_guide_shell_lines_work_as_printed sets one")
def test_guide_shell_setting_is_validated(database, tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {}}))
    # validated as every other way of setting it
    r = run_mapshell(
        ["shell", "-c", "dj.config['custom']['behavior_data_paths'] = [['Rig1']]"],
        database.env(MAP_CONFIG=str(conf)),
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "[rig name, path, priority]" in r.stderr


def test_import_pipeline_has_no_side_effects():
    code = (
        "import logging, sys; before = logging.getLogger().level; "
        "import pipeline, pipeline.io.kilosort, pipeline.io.bpod_delay_response, pipeline.ingest.runner; "
        "print('datajoint' in sys.modules, 'pipeline.config' in sys.modules, logging.getLogger().level == before, "
        "logging.getLogger('datajoint').handlers == [])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split() == ["False", "False", "True", "True"], r.stdout + r.stderr


def test_importing_a_schema_module_does_not_connect():
    code = (
        "import pipeline.ephys, pipeline.ingest.ephys, datajoint.instance as i; "
        "print(i._singleton_connection is None, pipeline.ephys.Clustering.database is None)"
    )
    env = {**os.environ, "MAP_DATA_DIR": "/nonexistent/never/created"}  # connecting would fail loudly
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.stdout.split() == ["True", "True"], r.stdout + r.stderr


def test_help_imports_no_database_layer():
    code = (
        "import sys; from pipeline.shell import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in ('datajoint', 'numpy', 'pandas', 'pipeline.db') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_old_dj_local_conf_database_keys_are_used(tmp_path):
    """A lab's old file names its server: the pipeline connects there (here: nothing listens, so
    the one-line error names that server), never silently to the embedded database."""
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(
        json.dumps(
            {"database.host": "127.0.0.1", "database.port": 9, "database.user": "chris", "database.password": "s3cret"}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_") and k != "MAP_EMBEDDED"}
    env.update(MAP_CONFIG=str(conf), MAP_DATA_DIR=str(tmp_path / "data"))
    r = run_mapshell(["shell", "-c", "print(lab.Person())"], env, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "chris@127.0.0.1:9" in r.stdout + r.stderr and "embedded" not in r.stdout
    assert "s3cret" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "pgdata").exists()
    r = run_mapshell(["config", "show"], env, cwd=tmp_path)
    assert "s3cret" not in r.stdout and '"database.password": "***"' in r.stdout


def test_save_local_keeps_credentials_once(tmp_path):
    """The guide saves username and password once with dj.config.save_local(); the file then holds
    them (readable by its owner only) and they are never printed."""
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text("{}")
    code = (
        "import datajoint as dj, pipeline.db; "
        "dj.config['database.host'] = '127.0.0.1'; dj.config['database.user'] = 'chris'; "
        "dj.config['database.password'] = 'pw-42'; dj.config['database.port'] = 3306; dj.config.save_local()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update(MAP_CONFIG=str(conf), MAP_EMBEDDED="0")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(conf.read_text())
    assert data["database.user"] == "chris" and data["database.password"] == "pw-42"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"


def test_concurrent_config_set_keeps_every_key(tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {}}))
    env = {**os.environ, "MAP_CONFIG": str(conf)}
    keys = [f"{m}.database" for m in ("lab", "experiment", "ephys", "ccf", "histology", "tracking", "psth", "report")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "config", "set", k, f"db_{i}"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, k in enumerate(keys)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert json.loads(conf.read_text())["custom"] == {k: f"db_{i}" for i, k in enumerate(keys)}


def test_config_show_masks_every_secret(tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {"globus.token": "tok-123"}, "stores.s3.secret_key": "sk-9"}))
    r = run_mapshell(["config", "show"], {**os.environ, "MAP_CONFIG": str(conf)}, cwd=tmp_path)
    assert r.returncode == 0 and "tok-123" not in r.stdout and "sk-9" not in r.stdout


# --- behaviour ingest: copies, owner, what the run says -----------------------------------------


def test_copy_of_a_rig_file_is_loaded_once(database, tmp_path):
    _animal(3, "dm3")
    rig = tmp_path / "rig"
    truth = write_session_file(rig, h2o="dm3", when=dt.datetime(2022, 5, 2, 10, 25, 0), n_trials=11, seed=1)
    shutil.copy(truth.path, rig / "dm3_tw2_20220502_112300.mat")  # the same file under a later time
    s = ingest([["RRig", str(rig), 0]])
    assert s.ok, s.report()
    starts = (experiment.SessionTrial & {"subject_id": 3}).to_arrays("start_time")
    assert len(starts) == 11 and (starts[1:] > starts[:-1]).all()  # no second, overlapping copy of the trials
    assert any("same content" in n and "dm3_tw2_20220502_112300.mat" in n for n in s.notes), s.report()
    assert len(BehaviorIngest.BehaviorFile & {"subject_id": 3}) == 2  # both known: a re-run is a no-op
    again = ingest([["RRig", str(rig), 0]])
    assert again.ok and not again.loaded and again.skipped[0][1] == "already loaded"


def test_overlapping_rig_files_are_refused(database, tmp_path):
    _animal(4, "dm4")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm4", when=dt.datetime(2022, 5, 2, 10, 0, 0), n_trials=20, seed=1)
    write_session_file(rig, h2o="dm4", when=dt.datetime(2022, 5, 2, 10, 1, 0), n_trials=5, seed=2)
    s = ingest([["RRig", str(rig), 0]])
    assert not s.ok and "overlap" in s.failed[0][1] and "dm4_tw2_20220502_100100.mat" in s.failed[0][1]
    assert not (experiment.Session & {"subject_id": 4})


def test_session_owner_is_the_animals_owner(database, tmp_path):
    _animal(5, "dm5", owner="daveliu")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm5", when=dt.datetime(2022, 5, 3, 9, 0, 0), n_trials=8, seed=3)
    s = ingest([["RRig", str(rig), 0]])
    assert s.ok, s.report()
    assert (experiment.Session & {"subject_id": 5}).fetch1("username") == "daveliu"
    assert "of daveliu" in s.loaded[0] and "start 2022-05-03" in s.loaded[0]


def test_summary_groups_and_says_where_it_looked(database, tmp_path):
    _animal(6, "dm6")
    rig = tmp_path / "rig"
    for d in range(12):
        write_session_file(rig, h2o="dm6", when=dt.datetime(2022, 6, 1 + d, 9, 0, 0), n_trials=4, seed=d)
    (rig / "notes_2022.mat").write_bytes(b"not a rig file")
    s = ingest([["RRig", str(rig), 0]])
    text = s.report()
    assert s.ok and len(s.loaded) == 12, text
    assert "dm6: 12 behavior sessions (2022-06-01 .. 2022-06-12), 48 trials" in text
    assert "notes_2022.mat" in text and "<h2o>_<task>_<yyyymmdd>_<hhmmss>.mat" in text  # ignored, and why
    again = ingest([["RRig", str(rig), 0]]).report()
    assert "12 x already loaded:" in again and again.count("\n") < 8  # one grouped line, not 12
    verbose = ingest([["RRig", str(rig), 0]]).report(verbose=True)
    assert verbose.count("already loaded") == 12
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = ingest([["RRig", str(empty), 0]]).report()
    assert "0 found" in nothing and "looked in" in nothing and str(empty) in nothing


def test_cli_run_is_quiet_and_logs_the_summary(database, tmp_path):
    _animal(7, "dm7")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm7", when=dt.datetime(2022, 7, 1, 9, 0, 0), n_trials=6, seed=7)
    logfile = tmp_path / "map.log"
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {"logfile": str(logfile), "behavior_data_paths": [["RRig", str(rig), 0]]}}))
    r = run_mapshell(["ingest-behavior"], database.env(MAP_CONFIG=str(conf)), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no "connected" line, no store or SSL warning
    assert r.stdout.startswith("behavior sessions: 1 found, 1 loaded")
    log_text = logfile.read_text()
    assert "loaded dm7 2022-07-01" in log_text and "behavior sessions: 1 found, 1 loaded" in log_text
    assert "connected" not in log_text.lower().replace("disconnected", "")
    r = run_mapshell(["ingest-behavior", "--quiet"], database.env(MAP_CONFIG=str(conf)), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_bug_is_counted_failed_with_traceback_in_log(database, tmp_path, monkeypatch):
    """Input errors are one line; a genuine bug keeps its traceback (logged) and is counted as failed."""
    from pipeline.ingest.behavior import delay_response

    _animal(8, "dm8")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm8", when=dt.datetime(2022, 8, 1, 9, 0, 0), n_trials=6, seed=8)

    def broken(*a, **k):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(delay_response, "combine", broken)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("pipeline.ingest.runner").addHandler(handler)
    try:
        s = ingest([["RRig", str(rig), 0]])
    finally:
        logging.getLogger("pipeline.ingest.runner").removeHandler(handler)
    assert not s.ok and "ZeroDivisionError" in s.failed[0][1]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in records)


def test_other_bpod_protocols_are_skipped_not_failed(database, tmp_path, real_data):
    from pipeline.synthetic.bpod_delay_response import write_other_protocol_file

    _animal(9, "dm9")
    rig = tmp_path / "rig"
    write_session_file(rig, h2o="dm9", when=dt.datetime(2022, 9, 1, 9, 0, 0), n_trials=5, seed=9)
    write_other_protocol_file(rig, h2o="dm9", when=dt.datetime(2022, 9, 2, 9, 0, 0), trial_types=False, info=False)
    write_other_protocol_file(rig, h2o="dm9", when=dt.datetime(2022, 9, 3, 9, 0, 0), trial_types=True, info=True)
    for k, f in enumerate(sorted((real_data / "bpod_sessiondata_mat/w2t-bkin").glob("*.mat"))):  # Bpod Gen2 files
        shutil.copy(f, rig / f"dm9_other_2022091{k}_090000.mat")
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {"behavior_data_paths": [["RRig", str(rig), 0]]}}))
    r = run_mapshell(["ingest-behavior"], database.env(MAP_CONFIG=str(conf)), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 loaded" in r.stdout and "4 skipped, 0 failed" in r.stdout and "unsupported protocol" in r.stdout


def test_ephys_says_which_folders_it_ignored(database, tmp_path):
    from pipeline.ingest.ephys import ingest_ephys

    _animal(10, "dm10")
    write_session_file(tmp_path / "rig", h2o="dm10", when=dt.datetime(2022, 10, 4, 9, 0, 0), n_trials=5, seed=1)
    assert ingest([["RRig", str(tmp_path / "rig"), 0]]).ok
    root = tmp_path / "ephys"
    (root / "dm10" / "2022-10-05" / "1").mkdir(parents=True)  # a day without a session
    (root / "dm10" / "probe_data").mkdir(parents=True)  # not a date
    (root / "dm99").mkdir(parents=True)  # an animal the database does not know
    s = ingest_ephys([str(root)])
    ignored = dict(s.ignored)
    assert s.found == 0 and s.ok
    assert "matches no behaviour session date" in ignored[str(root / "dm10" / "2022-10-05")]
    assert str(root / "dm10" / "probe_data") in ignored and "water restriction id" in ignored[str(root / "dm99")]
    text = s.report()
    assert "looked in" in text and str(root) in text and "probe_data" in text


def test_ccfload_refuses_another_file_under_a_loaded_version(database, tmp_path):
    from pipeline import ccf
    from pipeline.errors import InputError
    from pipeline.synthetic.ccf import write_annotation_nrrd, write_ontology_csv

    paths = dict(version_name="CCF_2017", region_csv=str(write_ontology_csv(tmp_path / "tree.csv")))
    for name, vox in (("a.nrrd", 20), ("b.nrrd", 10)):
        write_annotation_nrrd(tmp_path / name, shape=(20, 12, 16), voxel_um=vox, seed=0)
    ccf.CCFBrainRegion.load_regions(paths)
    assert ccf.CCFAnnotation.load_ccf_annotation(dict(paths, annotation_nrrd=str(tmp_path / "a.nrrd")))
    assert ccf.CCFAnnotation.last_load["step"] == 1 and ccf.CCFAnnotation.fetch1("voxel_um") == 20  # 20 um kept
    with pytest.raises(InputError, match="already loaded from"):
        ccf.CCFAnnotation.load_ccf_annotation(dict(paths, annotation_nrrd=str(tmp_path / "b.nrrd")))
    assert ccf.CCFAnnotation.load_ccf_annotation(dict(paths, annotation_nrrd=str(tmp_path / "a.nrrd"))) is False


def test_failed_probe_leaves_no_store_objects(database, tmp_path, monkeypatch):
    """A probe whose write fails after its spike arrays went to the store leaves no files there, and a
    run killed after writing some leaves nothing that the next run does not clear."""
    from pipeline import db, ephys
    from pipeline.ingest.ephys import ingest_ephys
    from pipeline.ingest.ephys import step as ephys_step
    from pipeline.synthetic.sorting import write_kilosort
    from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

    _animal(11, "dm11")
    when = dt.datetime(2022, 11, 4, 9, 0, 0)
    truth = write_session_file(tmp_path / "rig", h2o="dm11", when=when, n_trials=12, seed=3)
    assert ingest([["RRig", str(tmp_path / "rig"), 0]]).ok
    codes = truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial")
    pdir = tmp_path / "ephys" / "dm11" / when.strftime("%Y%m%d") / "1"
    write_meta(pdir / "dm11_g0_tcat.imec0.ap.meta", probe="np1", seed=1)
    write_bitcode_mat(pdir / "dm11_g0_bitcode.mat", list(codes.trial_note), seed=2)
    write_kilosort(pdir / "ks", n_units=5, n_spikes=3000, seed=3, duration_s=200.0)
    folder = Path(db.store_location()) / db.store_prefix(ephys.Clustering.Unit, dict(subject_id=11, session=1))

    def files():
        return sorted(folder.rglob("*.npy")) if folder.exists() else []

    real_insert = ephys_step.insert_frame

    def fail_after_units(table, df):  # the units (and their arrays) are written, then the probe fails
        if table.__name__ == "ClusterMetric":
            raise ConnectionError("simulated crash after the spike arrays were stored")
        return real_insert(table, df)

    monkeypatch.setattr(ephys_step, "insert_frame", fail_after_units)
    s = ingest_ephys([str(tmp_path / "ephys")])
    assert not s.ok and "rolled back" in s.failed[0][1]
    assert not (ephys.Clustering.Unit & {"subject_id": 11}) and files() == []
    # a killed run: its objects are there but no rows; the next run clears them and loads
    leftover = folder / "insertion_number=1" / "unit=999" / "spike_times_killed.npy"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\x93NUMPY")
    monkeypatch.setattr(ephys_step, "insert_frame", real_insert)
    s = ingest_ephys([str(tmp_path / "ephys")])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert not leftover.exists() and len(files()) == 5 * 5  # times, trials, sites, depths, waveform per unit
