"""Test harness: real databases only.

The embedded PostgreSQL (a fresh data folder per test run) is always tested. MariaDB/MySQL and
a PostgreSQL server are tested too when ``MAP_TEST_MYSQL`` / ``MAP_TEST_POSTGRES`` hold URLs
such as ``mysql://root:@127.0.0.1:3306`` and ``postgresql://postgres:@127.0.0.1:5432``.
Each backend gets its own schema prefix (``mt<random>_``), dropped at the end; each test that
uses the database starts from empty tables (lookup contents stay).
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"

# Isolate from the developer's own settings and data before anything imports the pipeline.
_RUN_DIR = Path(tempfile.mkdtemp(prefix="maptest_"))
os.environ["MAP_DATA_DIR"] = str(_RUN_DIR / "data")
os.environ["MAP_CONFIG"] = str(_RUN_DIR / "dj_local_conf.json")
(_RUN_DIR / "dj_local_conf.json").write_text("{}")
for var in ("MAP_SCHEMA_PREFIX", "MAP_LOGLEVEL", "MAP_EMBEDDED"):
    os.environ.pop(var, None)

import datajoint as dj  # noqa: E402

from pipeline import db  # noqa: E402

db.auto_activate = False
dj.config["safemode"] = False


def _server_backends() -> list[tuple[str, str]]:
    out = []
    for name, var in (("mysql", "MAP_TEST_MYSQL"), ("postgres", "MAP_TEST_POSTGRES")):
        if os.environ.get(var):
            out.append((name, os.environ[var]))
    return out


BACKENDS = ["embedded"] + [name for name, _ in _server_backends()]


def backend_env(name: str) -> dict[str, str]:
    """Environment for a subprocess (mapshell) to reach the same database as the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    if name == "embedded":
        env["MAP_EMBEDDED"] = "1"
        return env
    url = urlparse(dict(_server_backends())[name])
    env.update(
        MAP_EMBEDDED="0",
        DJ_HOST=url.hostname or "127.0.0.1",
        DJ_USER=url.username or "root",
        DJ_PASS=url.password or "",
        DJ_PORT=str(url.port or (3306 if name == "mysql" else 5432)),
        DJ_BACKEND="mysql" if name == "mysql" else "postgresql",
        DJ_USE_TLS="false",
    )
    return env


def _configure(name: str) -> None:
    for k in ("DJ_HOST", "DJ_USER", "DJ_PASS", "DJ_PORT", "DJ_BACKEND"):
        os.environ.pop(k, None)
    env = backend_env(name)
    os.environ["MAP_EMBEDDED"] = env["MAP_EMBEDDED"]
    if name != "embedded":
        dj.config["database.backend"] = env["DJ_BACKEND"]
        dj.config["database.host"] = env["DJ_HOST"]
        dj.config["database.port"] = int(env["DJ_PORT"])
        dj.config["database.user"] = env["DJ_USER"]
        dj.config["database.password"] = env["DJ_PASS"]
        dj.config["database.use_tls"] = False


class Backend:
    def __init__(self, name: str, prefix: str, conn):
        self.name, self.prefix, self.conn = name, prefix, conn

    def env(self, **extra) -> dict[str, str]:
        return {**backend_env(self.name), "MAP_SCHEMA_PREFIX": self.prefix, **extra}

    def __repr__(self) -> str:
        return f"Backend({self.name}, {self.prefix})"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    """A database with every schema module bound to a fresh prefix."""
    _configure(request.param)
    conn = db.connect(reset=True)
    prefix = f"mt{uuid.uuid4().hex[:8]}_"
    db.activate_all(prefix, conn)
    yield Backend(request.param, prefix, conn)
    db.drop_prefix(prefix, conn)


#: per connection: (the dependency graph's tables, the tables to clear children first)
_CLEAR_PLAN: dict[int, tuple[frozenset, list[str]]] = {}


def _clear_plan(conn) -> list[str]:
    """The tables that have no fixed contents, and everything below them, children first. Computed
    again only when the dependency graph changed (a table was declared or dropped)."""
    import inspect

    import networkx as nx

    conn.dependencies.load()
    nodes = frozenset(conn.dependencies.nodes)
    cached = _CLEAR_PLAN.get(id(conn))
    if cached is not None and cached[0] == nodes:
        return cached[1]
    targets: set[str] = set()
    for m in reversed(db.SCHEMA_MODULE_ORDER):
        mod = db.import_module(m)
        for cls in vars(mod).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, dj.Table)
                and not issubclass(cls, dj.Part)
                and cls.__module__ == mod.__name__
                and not getattr(cls, "contents", None)
            ):
                targets.update(conn.dependencies.descendants(cls.full_table_name))
    order = [n for n in reversed(list(nx.topological_sort(conn.dependencies))) if n in targets and not n.isdigit()]
    _CLEAR_PLAN[id(conn)] = (nodes, order)
    return order


def _clear_tables() -> None:
    """Delete the rows of every table that has no fixed contents, and of everything below them.

    Plain DELETEs, children first: DataJoint's cascading ``delete`` took 7-11 s per test. One query
    finds the tables that have rows (EXISTS on each), and only those get a DELETE: most tables of a
    test are empty, and a DELETE per table was most of the 50 ms this took before every test."""
    conn = db.connect()
    order = _clear_plan(conn)
    if order:
        probe = " UNION ALL ".join(
            f"SELECT {i} AS i FROM (SELECT 1 AS one) AS d WHERE EXISTS (SELECT 1 FROM {name})"
            for i, name in enumerate(order)
        )
        filled = {int(row[0]) for row in conn.query(probe).fetchall()}
        for i, name in enumerate(order):
            if i in filled:
                conn.query(f"DELETE FROM {name}")
    from pipeline.ingest import work

    jobs = work.Ingested().jobs  # the ingest claims (not in the dependency graph)
    if jobs.is_declared:
        jobs.delete_quick()


@pytest.fixture
def database(backend):
    """The backend, with empty (non-lookup) tables before and after the test."""
    _clear_tables()
    yield backend
    _clear_tables()


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sample data not found at {REAL_DATA}")
    return REAL_DATA


def run_mapshell(
    args: list[str], env: dict[str, str], cwd: Path | None = None, input: str | None = None, timeout: float = 300
):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: Test modules that start mapshell or the embedded server in subprocesses: database tests too.
DB_MODULES = {"test_embedded", "test_shell", "test_demo", "test_erd", "test_guide"}


#: Test modules that run on the embedded database only (the issue that asked for them says so, and
#: running them three times would add minutes without testing more of the pipeline).
EMBEDDED_ONLY = {"test_damaged_inputs"}


def _embedded_only(item) -> bool:
    """A test of an embedded-only module, or one marked ``@pytest.mark.embedded_only("why")``: what it
    checks is not database-dialect specific (an S3 object store, killing a file copy), and the same
    step or action is tested on every backend by another test of its module."""
    return item.module.__name__ in EMBEDDED_ONLY or item.get_closest_marker("embedded_only") is not None


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs a database ``db``, so ``pytest -m "not db"`` runs the rest alone;
    run the embedded-only modules and tests on the embedded database only."""
    keep, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if _embedded_only(item) and params.get("backend", "embedded") != "embedded":
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    for item in items:
        if {"backend", "database"} & set(getattr(item, "fixturenames", ())) or item.module.__name__ in DB_MODULES:
            item.add_marker(pytest.mark.db)


def _fold_real_data_skip(report) -> None:
    """Without the real sample data, every test that reads it skips for that one reason: give
    their skip reports one place and reason, so ``-ra`` lists them as one line with their count
    (with the data present, a test skipping for a particular missing file still says which)."""
    if REAL_DATA.is_dir() or not report.skipped or not isinstance(report.longrepr, tuple):
        return
    if "real" in str(report.longrepr[2]).lower():
        report.longrepr = (__file__, None, f"real sample data not found at {REAL_DATA}: the tests that read it skip")


def pytest_runtest_logreport(report):
    _fold_real_data_skip(report)


def pytest_collectreport(report):
    _fold_real_data_skip(report)
