"""The zero-configuration database: first start, persistence, reuse by a second process,
recovery after a process was killed, and the server stopping when its last user exits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    for k in ("MAP_EMBEDDED", "MAP_SCHEMA_PREFIX"):
        env.pop(k, None)
    env["MAP_DATA_DIR"] = str(data_dir)
    return env


def _shell(code: str, env, cwd, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "shell", "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def _postmaster_pid(data_dir: Path) -> int | None:
    f = data_dir / "pgdata" / "postmaster.pid"
    if not f.exists():
        return None
    pid = int(f.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) else None


def _wait_until(cond, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_fresh_start_persists_and_stops(tmp_path):
    data = tmp_path / "data"
    env = _env(data)
    r = _shell("lab.Person.insert1(('ada', 'Ada L')); print('inserted')", env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Connecting embedded PostgreSQL" in r.stdout and "inserted" in r.stdout
    assert (data / "pgdata" / "PG_VERSION").exists()
    assert _wait_until(lambda: _postmaster_pid(data) is None), "server still running after its only user exited"
    r = _shell("print(lab.Person().to_dicts())", env, tmp_path)
    assert r.returncode == 0 and "Ada L" in r.stdout  # data survived a server restart


def _start_holder(env, cwd, seconds=60):
    """A mapshell process that connects, says so, and stays connected."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "shell",
            "-c",
            f"import time; print('ready', len(lab.Person()), flush=True); time.sleep({seconds})",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in p.stdout:
        if line.startswith("ready"):
            return p
    raise AssertionError(f"holder did not connect: {p.stderr.read()}")


def test_second_process_reuses_running_server(tmp_path):
    data = tmp_path / "data"
    env = _env(data)
    holder = _start_holder(env, tmp_path)
    try:
        server = _postmaster_pid(data)
        assert server is not None
        r = _shell("lab.Person.insert1(('bob', 'Bob')); print('ok')", env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert _postmaster_pid(data) == server  # same server, not a second one
        assert json.loads((data / "pgdata" / ".handle_pids.json").read_text()) == [holder.pid]
    finally:
        holder.terminate()
        holder.wait(30)
        left = _postmaster_pid(data)  # a terminated holder cannot stop its server: stop it here
        if left is not None:
            psutil.Process(left).terminate()


def test_killed_process_is_recovered_from(tmp_path):
    data = tmp_path / "data"
    env = _env(data)
    victim = _start_holder(env, tmp_path)
    server = _postmaster_pid(data)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    handles = data / "pgdata" / ".handle_pids.json"
    assert victim.pid in json.loads(handles.read_text())  # the killed process could not deregister
    r = _shell("print('alive', len(lab.Person()))", env, tmp_path)
    assert r.returncode == 0 and "alive 0" in r.stdout, r.stderr
    assert victim.pid not in json.loads(handles.read_text())
    # with the dead handle gone, the last real user stops the server as usual
    assert _wait_until(lambda: _postmaster_pid(data) is None), "server left running after recovery"
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE


def test_unwritable_data_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = _env(blocker / "data")
    r = _shell("print(1)", env, tmp_path)
    assert r.returncode == 2
    assert "could not start the embedded PostgreSQL" in r.stderr and "MAP_DATA_DIR" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("var", ["DJ_HOST"])
def test_dj_config_disables_embedded(tmp_path, var):
    env = _env(tmp_path / "data")
    env.update(DJ_HOST="127.0.0.1", DJ_PORT="1", DJ_USER="u", DJ_PASS="p", DJ_BACKEND="postgresql")
    r = _shell("print(1)", env, tmp_path)
    assert r.returncode == 2 and "postgresql u@127.0.0.1:1" in r.stderr
    assert not (tmp_path / "data" / "pgdata").exists()
