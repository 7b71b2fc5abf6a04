"""The zero-configuration database: a PostgreSQL server from the ``pgserver`` package.

The server's files live in a per-user data folder (``MAP_DATA_DIR`` overrides it) so data
persists between runs. Every process that uses it registers its pid with pgserver; the server
stops when the last one exits. A process killed with SIGKILL cannot deregister, which would
keep the server running forever and (worse) make pgserver believe someone still uses it; we
drop such dead pids before attaching and again at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "map-pipeline"


def data_dir() -> Path:
    """``MAP_DATA_DIR`` or the platform's per-user data folder (e.g. ~/.local/share/map-pipeline)."""
    env = os.environ.get("MAP_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)).resolve()


def pgdata_dir() -> Path:
    return data_dir() / "pgdata"


@dataclass(frozen=True)
class EmbeddedServer:
    """Where to reach the running embedded server."""

    pgdata: Path
    socket_dir: Path
    port: int
    pid: int
    user: str = "postgres"


def _pgserver():
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, cron)
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.postgres_server import PostgresServer

    return pgserver, PostgresServer


def _prune_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of processes that no longer exist from pgserver's handle list."""
    import psutil

    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return []
    try:
        pids = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        pids = []
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return [p for p in pids if p not in alive]


def start() -> EmbeddedServer:
    """Start the embedded server, or attach to the one already running on the same folder."""
    pgserver, PostgresServer = _pgserver()
    pgdata = pgdata_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        with PostgresServer._lock:
            _prune_dead_handles(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")

    def _prune_at_exit() -> None:
        # Registered after pgserver's own exit hook, so it runs first (atexit is LIFO).
        try:
            with PostgresServer._lock:
                _prune_dead_handles(pgdata)
        except Exception:  # never let cleanup mask the real exit status
            pass

    atexit.register(_prune_at_exit)
    info = server.get_postmaster_info()
    return EmbeddedServer(pgdata=pgdata, socket_dir=Path(info.socket_dir), port=int(info.port), pid=int(info.pid))
