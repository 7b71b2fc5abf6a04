"""The seed's ``custom`` settings: read as the seed writes them, validated, saved, used by mapshell."""

import json
import os
import sys

import pytest
from conftest import run_mapshell

from pipeline import config

# The seed's dj_local_conf.json fragments, verbatim (including the trailing comma after
# behavior_bpod), merged into one file the way a lab would.
SEED_FILE = """{
"database.host": "localhost",
"database.user": "chris",
"database.password": "s3cret-pw",
"loglevel": "INFO",
"custom": { "behavior_data_paths": [ ["Rig1", "/data/rig1", 0], ["RRig2", "/data/rig2", 1], ["Tower-3", "/data/tower3", 2] ],
 "behavior_bpod": { "meta_dir": "path/to/Metadata", "project_paths": [ "/path/to/bpod/Tower-1/Foraging", "/path/to/bpod/Tower-2/Foraging", "/path/to/bpod/Tower-2/Foraging_homecage" ] },
 "tracking_data_paths": [ ["RRig1", "/data/rig1"], ["RRig2", "/data/rig2"] ],
 "ephys_data_paths": ["/path/to/ephys", "/path/to/ephys2"],
 "histology_data_paths": ["/path/to/histology"],
 "ccf_data_paths": {"version_name": "CCF_2017", "region_csv": "/data/ccf/mousebrainontology_2.csv", "hexcode_csv": "/data/ccf/hexcode.csv", "annotation_nrrd": "/data/ccf/annotation_10.nrrd"}, }
}"""


@pytest.fixture
def restore_config():
    saved = (dict(config.custom), dict(config.other), config.source)
    yield
    dict.clear(config.custom)
    dict.update(config.custom, saved[0])
    config.other.clear()
    config.other.update(saved[1])
    config.source = saved[2]


def test_seed_file_reads_unchanged(tmp_path, restore_config):
    f = tmp_path / "dj_local_conf.json"
    f.write_text(SEED_FILE)
    assert config.load(f) == f
    c = config.custom
    assert c["behavior_data_paths"] == [
        ["Rig1", "/data/rig1", 0],
        ["RRig2", "/data/rig2", 1],
        ["Tower-3", "/data/tower3", 2],
    ]
    assert c["behavior_bpod"]["meta_dir"] == "path/to/Metadata"
    assert len(c["behavior_bpod"]["project_paths"]) == 3
    assert c["tracking_data_paths"] == [["RRig1", "/data/rig1"], ["RRig2", "/data/rig2"]]
    assert c["ephys_data_paths"] == ["/path/to/ephys", "/path/to/ephys2"]
    assert c["histology_data_paths"] == ["/path/to/histology"]
    assert c["ccf_data_paths"]["annotation_nrrd"] == "/data/ccf/annotation_10.nrrd"
    assert config.other["database.user"] == "chris"


def test_each_seed_fragment_alone(tmp_path, restore_config):
    fragments = [
        '"custom": { "behavior_data_paths": [ ["Rig1", "/data/rig1", 0], ["RRig2", "/data/rig2", 1], '
        '["Tower-3", "/data/tower3", 2] ] }',
        '"custom": { "behavior_bpod": { "meta_dir": "path/to/Metadata", "project_paths": [ '
        '"/path/to/bpod/Tower-1/Foraging", "/path/to/bpod/Tower-2/Foraging", '
        '"/path/to/bpod/Tower-2/Foraging_homecage" ] }, }',
        '"custom": { "tracking_data_paths": [ ["RRig1", "/data/rig1"], ["RRig2", "/data/rig2"] ] }',
        '"custom": { "ephys_data_paths": ["/path/to/ephys", "/path/to/ephys2"] }',
        '"custom": { "histology_data_paths": ["/path/to/histology"] }',
    ]
    for i, frag in enumerate(fragments):
        f = tmp_path / f"frag{i}.json"
        f.write_text("{" + frag + "}")
        config.load(f)
        assert len(config.custom) == 1


def test_python_round_trip_keeps_other_keys(tmp_path, restore_config):
    f = tmp_path / "dj_local_conf.json"
    f.write_text(SEED_FILE)
    config.load(f)
    config.custom["behavior_data_paths"] = [["Rig9", "/data/rig9", 5]]
    config.custom["logfile"] = str(tmp_path / "map.log")
    assert config.save_local() == f
    data = json.loads(f.read_text())
    assert data["custom"]["behavior_data_paths"] == [["Rig9", "/data/rig9", 5]]
    assert data["database.password"] == "s3cret-pw"  # not ours to drop
    config.load(f)
    assert config.custom["behavior_data_paths"] == [["Rig9", "/data/rig9", 5]]
    assert config.custom["logfile"] == str(tmp_path / "map.log")


def test_show_hides_password(tmp_path, restore_config):
    f = tmp_path / "dj_local_conf.json"
    f.write_text(SEED_FILE)
    config.load(f)
    text = json.dumps(config.show())
    assert "s3cret-pw" not in text and '"database.password": "***"' in text


@pytest.mark.parametrize(
    "key,value,expect",
    [
        ("behavior_data_paths", [["Rig1", "/data/rig1"]], "expected [rig name, path, priority]"),
        ("behavior_data_paths", [["Rig1", "/data/rig1", "0"]], "entry 0"),
        ("tracking_data_paths", [["Rig1", "/data/rig1", 0]], "expected [rig name, path]"),
        ("behavior_bpod", {"meta_dir": "/m"}, "needs both meta_dir and project_paths"),
        ("behavior_bpod", {"meta_dir": "/m", "project_paths": [], "x": 1}, "unknown field"),
        ("ccf_data_paths", {"annotation": "/a"}, "unknown field"),
        ("ephys_data_paths", [3], "expected a list of folder paths"),
        ("behaviour_data_paths", [], "unknown setting 'behaviour_data_paths'"),
        ("schema_prefix", "1bad-", "must be letters"),
    ],
)
def test_bad_values_are_rejected_with_key_and_shape(key, value, expect, restore_config):
    before = dict(config.custom)
    with pytest.raises(config.ConfigError) as e:
        config.custom[key] = value
    assert key in str(e.value) and expect in str(e.value)
    assert dict(config.custom) == before


def test_bad_file_names_file_and_key_and_changes_nothing(tmp_path, restore_config):
    good = tmp_path / "good.json"
    good.write_text('{"custom": {"ephys_data_paths": ["/e"]}}')
    config.load(good)
    bad = tmp_path / "bad.json"
    bad.write_text('{"custom": {"behavior_data_paths": [["Rig1", "/data/rig1"]]}}')
    with pytest.raises(config.ConfigError) as e:
        config.load(bad)
    assert str(bad) in str(e.value) and "behavior_data_paths" in str(e.value)
    assert config.custom["ephys_data_paths"] == ["/e"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"custom": {')
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load(broken)


def test_legacy_keys_are_kept(tmp_path, restore_config):
    f = tmp_path / "c.json"
    f.write_text('{"custom": {"globus.token": ["abc"], "ccf.r3_20um_path": "/x"}}')
    config.load(f)
    config.save_local()
    assert json.loads(f.read_text())["custom"]["ccf.r3_20um_path"] == "/x"


def test_mapshell_config_set_show_save(tmp_path):
    env = {**os.environ, "MAP_CONFIG": str(tmp_path / "nonexistent.json")}
    r = run_mapshell(["config", "set", "behavior_data_paths", '[["Rig1", "/data/rig1", 0]]'], env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "dj_local_conf.json").read_text())
    assert saved["custom"]["behavior_data_paths"] == [["Rig1", "/data/rig1", 0]]
    r = run_mapshell(["config", "set", "logfile", str(tmp_path / "m.log")], env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_mapshell(["config", "show"], env, cwd=tmp_path)
    shown = json.loads(r.stdout)
    assert shown["custom"]["logfile"] == str(tmp_path / "m.log")
    assert shown["file"] == str(tmp_path / "dj_local_conf.json")
    r = run_mapshell(["config", "save", str(tmp_path / "copy.json")], env, cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads((tmp_path / "copy.json").read_text())["custom"]["behavior_data_paths"][0][0] == "Rig1"
    r = run_mapshell(["config", "set", "tracking_data_paths", '[["Rig1"]]'], env, cwd=tmp_path)
    assert r.returncode == 2
    assert "tracking_data_paths" in r.stderr and "[rig name, path]" in r.stderr and "Traceback" not in r.stderr
    r = run_mapshell(["config", "unset", "logfile"], env, cwd=tmp_path)
    assert "logfile" not in json.loads((tmp_path / "dj_local_conf.json").read_text())["custom"]


def test_broken_settings_file_is_one_line_error(tmp_path):
    (tmp_path / "dj_local_conf.json").write_text('{"custom": {"ephys_data_paths": 5}}')
    env = {**os.environ, "MAP_CONFIG": str(tmp_path / "dj_local_conf.json")}
    r = run_mapshell(["config", "show"], env, cwd=tmp_path)
    assert r.returncode == 2
    assert "ephys_data_paths" in r.stderr and "dj_local_conf.json" in r.stderr and "Traceback" not in r.stderr


def test_loglevel_and_logfile_with_redaction(tmp_path):
    logfile = tmp_path / "map.log"
    (tmp_path / "c.json").write_text(json.dumps({"custom": {"logfile": str(logfile)}}))
    env = {**os.environ, "MAP_CONFIG": str(tmp_path / "c.json"), "MAP_LOGLEVEL": "DEBUG"}
    code = (
        "import logging; lg = logging.getLogger('pipeline.test'); "
        "lg.debug('debug line'); lg.info('connecting with password=hunter2 to mysql://u:pw123@h:3306')"
    )
    r = __import__("subprocess").run(
        [sys.executable, "-c", "import pipeline.log; pipeline.log.setup(); " + code],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    text = logfile.read_text()
    assert "debug line" in text and " DEBUG pipeline.test: " in text
    assert "hunter2" not in text and "pw123" not in text and "password=***" in text
    env["MAP_LOGLEVEL"] = "WARNING"
    logfile.unlink()
    r = __import__("subprocess").run(
        [sys.executable, "-c", "import pipeline.log; pipeline.log.setup(); " + code],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert not logfile.exists() or "debug line" not in logfile.read_text()
    env["MAP_LOGLEVEL"] = "LOUD"
    r = run_mapshell(["config", "show"], env, cwd=tmp_path)
    assert r.returncode == 2 and "MAP_LOGLEVEL" in r.stderr
