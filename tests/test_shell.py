"""mapshell: the listed actions are exactly the working ones; shell works without a terminal."""

import re

import pytest
from conftest import run_mapshell

from pipeline import lab
from pipeline.shell import ACTIONS, build_parser

EXPECTED_ACTIONS = {
    "shell",
    "erd",
    "load-animal",
    "load-meta-foraging",
    "migrate",
    "config",
    "demo",
    "ingest-behavior",
    "ingest-foraging",
    "ingest-ephys",
    "archive",
    "load-insertion-location",
    "ingest-tracking",
    "ccfload",
    "ingest-histology",
    "populate-psth",
    "generate-report",
    "sync-report",
    "export-recording",
    "publish",
    "auto-ingest",
    "automate-computation",
    "automate-sync-and-cleanup",
    "jobs",
    "navigator",
}


def test_help_lists_exactly_the_actions(tmp_path):
    r = run_mapshell(["--help"], env=None, cwd=tmp_path)
    assert r.returncode == 0
    listed = set(re.findall(r"^    ([a-z][a-z-]+)\s", r.stdout, flags=re.M))
    assert listed == EXPECTED_ACTIONS == set(ACTIONS)
    assert "not implemented" not in r.stdout.lower()


@pytest.mark.parametrize("action", sorted(EXPECTED_ACTIONS))
def test_each_action_has_help(action):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([action, "--help"])
    assert e.value.code == 0


def test_unknown_action_is_usage_error(tmp_path):
    r = run_mapshell(["ingest-everything"], env=None, cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_shell_non_interactive(database):
    lab.Person.insert1(("daveliu", "Dave Liu"))
    r = run_mapshell(["shell", "-c", "print(lab.Person())"], database.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Connecting ")
    assert "schema modules:" in r.stdout and "- lab" in r.stdout and "- experiment" in r.stdout
    assert "daveliu" in r.stdout and "Dave Liu" in r.stdout and "(Total: 1)" in r.stdout
    # a script on stdin (not a tty) runs too; its errors give exit status 1
    r = run_mapshell(["shell"], database.env(), input="n = len(lab.Person())\nprint('count', n)\n")
    assert r.returncode == 0 and "count 1" in r.stdout


@pytest.mark.embedded_only("a script's own error (Python, not a query); test_shell_non_interactive queries")
def test_shell_script_error_is_exit_status_1(database):
    r = run_mapshell(["shell", "-c", "raise ValueError('boom')"], database.env())
    assert r.returncode == 1 and "ValueError: boom" in r.stderr


def test_connection_failure_is_one_clear_line(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update(
        MAP_EMBEDDED="0", DJ_HOST="127.0.0.1", DJ_PORT="1", DJ_USER="root", DJ_PASS="pw-not-shown", DJ_BACKEND="mysql"
    )
    r = run_mapshell(["shell", "-c", "print(1)"], env, cwd=tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("mapshell shell: cannot connect to mysql root@127.0.0.1:1")
    assert "Traceback" not in r.stderr and "pw-not-shown" not in r.stderr
