"""Which database the pipeline talks to, and binding the schema modules to it.

* No DataJoint configuration (no ``datajoint.json`` found, no ``DJ_HOST``/``DJ_USER``):
  the embedded PostgreSQL (:mod:`pipeline.embedded`). ``MAP_EMBEDDED=1``/``0`` forces either way.
* Otherwise DataJoint's own configuration picks the server (MySQL/MariaDB or PostgreSQL).

Schema modules create an unactivated ``dj.Schema`` and call :func:`register`; it activates the
schema as ``<prefix><module>`` right away, unless ``auto_activate`` was switched off (tests do,
to bind every module to a fresh prefix of their own with :func:`activate_all`).
"""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datajoint as dj

from . import config, embedded

log = logging.getLogger(__name__)

#: Import order of the schema modules (each after the ones it references).
SCHEMA_MODULE_ORDER = (
    "lab",
    "experiment",
    "ingest_behavior",
    "ephys",
    "ingest_ephys",
    "tracking",
    "ccf",
    "histology",
    "ingest_histology",
)

#: MariaDB's default max_allowed_packet (16 MB) breaks large blob inserts.
MIN_ALLOWED_PACKET = 64 * 1024 * 1024
RAISE_PACKET_SQL = "SET GLOBAL max_allowed_packet=1073741824"

auto_activate = True

warnings.filterwarnings("ignore", message="MariaDB is not officially supported", category=UserWarning)


from .errors import ConnectionProblem  # noqa: E402  (re-exported: db.ConnectionProblem)


@dataclass
class _Registered:
    module: str
    schema: dj.Schema
    after_activate: Callable[[], None] | None = None


_registry: dict[str, _Registered] = {}
_embedded_server: embedded.EmbeddedServer | None = None


@dataclass
class Target:
    """A description of where we connect, for messages (never holds the password)."""

    backend: str
    host: str
    port: int | None
    user: str | None
    source: str
    embedded: bool = False
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.embedded:
            return f"embedded PostgreSQL ({self.host})"
        return f"{self.backend} {self.user}@{self.host}:{self.port} ({self.source})"


def uses_embedded() -> bool:
    forced = os.environ.get("MAP_EMBEDDED", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    if os.environ.get("DJ_HOST") or os.environ.get("DJ_USER"):
        return False
    return dj.settings.find_config_file() is None


def _dj_config_source() -> str:
    path = dj.settings.find_config_file()
    parts = []
    if path:
        parts.append(str(path))
    env = [k for k in ("DJ_HOST", "DJ_USER", "DJ_BACKEND", "DJ_PORT") if os.environ.get(k)]
    if env:
        parts.append("env " + ",".join(env))
    return "; ".join(parts) or "DataJoint defaults"


def target() -> Target:
    """Describe the database that :func:`connect` would use."""
    if uses_embedded():
        return Target("postgresql", str(embedded.pgdata_dir()), None, "postgres", "embedded", embedded=True)
    db = dj.config.database
    return Target(db.backend, db.host, db.port, db.user, _dj_config_source())


def _configure_embedded() -> None:
    global _embedded_server
    if _embedded_server is None:
        try:
            _embedded_server = embedded.start()
        except Exception as e:  # pgserver raises several kinds; one line is what the user needs
            raise ConnectionProblem(
                f"could not start the embedded PostgreSQL in {embedded.pgdata_dir()}: {e}. "
                f"Check that the folder is writable (set MAP_DATA_DIR to use another), "
                f"or configure a database server with datajoint.json / DJ_HOST."
            ) from e
    s = _embedded_server
    dj.config["database.backend"] = "postgresql"
    dj.config["database.host"] = str(s.socket_dir)
    dj.config["database.port"] = s.port
    dj.config["database.user"] = s.user
    dj.config["database.password"] = ""
    dj.config["database.use_tls"] = False


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def connect(reset: bool = False) -> dj.Connection:
    """Connect DataJoint's shared connection to the configured database (starting the embedded
    one if that is what is configured) and return it.

    Raises :class:`ConnectionProblem` with one readable line if that fails.
    """
    import datajoint.instance as dj_instance

    if dj_instance._singleton_connection is not None and not reset:
        return dj_instance._singleton_connection
    t = target()
    if t.embedded:
        _configure_embedded()
    else:
        db = dj.config.database
        if db.user is None or db.password is None:
            if sys.stdin is not None and sys.stdin.isatty():  # the seed's shell prompts for them
                if db.user is None:
                    dj.config["database.user"] = input("Please enter DataJoint username: ")
                if db.password is None:
                    dj.config["database.password"] = getpass.getpass("Please enter DataJoint password: ")
            else:
                missing = "user" if db.user is None else "password"
                raise ConnectionProblem(
                    f"no database {missing} for {db.backend} server {db.host}:{db.port} "
                    f"(configured by {t.source}); set DJ_USER/DJ_PASS or datajoint.json + .secrets/, "
                    f"or unset DJ_HOST and remove datajoint.json to use the embedded database"
                )
        t = target()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conn = dj.conn(reset=True)
    except Exception as e:
        hint = (
            "is the server running and reachable, and are user/password right?"
            if not t.embedded
            else "see the server log in the data folder"
        )
        raise ConnectionProblem(f"cannot connect to {t}: {_short(e)}; {hint}") from e
    if conn.adapter.backend == "mysql":
        check_packet_size(conn)
    ensure_store()
    return conn


STORE = "map"  #: the DataJoint store large arrays (spike times, waveforms) go to: ``<npy@map>``


def store_location() -> str:
    """Where the ``map`` store keeps its files (for a file store), as configured or by default."""
    spec = dict(dj.config.stores).get(STORE)
    return spec.get("location") if isinstance(spec, dict) else ""


def ensure_store() -> None:
    """Configure the ``map`` store unless DataJoint's configuration already has one.

    Default: the ``store_location`` setting, else ``<data folder>/store``. With a shared lab
    database that default is only readable on this machine, so say so.
    """
    stores = dict(dj.config.stores)
    if STORE in stores:
        return
    location = Path(config.get("store_location") or embedded.data_dir() / "store").expanduser()
    location.mkdir(parents=True, exist_ok=True)
    stores[STORE] = {"protocol": "file", "location": str(location)}
    dj.config.stores = stores
    if not uses_embedded() and not config.get("store_location"):
        log.warning(
            "large arrays (spike times, waveforms) are stored under %s, which only this machine can "
            "read; configure stores.%s in datajoint.json (a shared folder or s3) for a lab server",
            location,
            STORE,
        )


def check_packet_size(conn: dj.Connection) -> int:
    """Warn when MySQL/MariaDB's max_allowed_packet is too small for spike arrays."""
    size = int(conn.query("SELECT @@max_allowed_packet").fetchone()[0])
    if size < MIN_ALLOWED_PACKET:
        log.warning(
            "max_allowed_packet on this MySQL/MariaDB server is %d MB; inserting spike arrays needs at "
            "least %d MB or the server drops the connection ('server has gone away'). As root run: %s "
            "(and set max_allowed_packet=1G in the server config to keep it).",
            size // 2**20,
            MIN_ALLOWED_PACKET // 2**20,
            RAISE_PACKET_SQL,
        )
    return size


# --- schema modules --------------------------------------------------------------------------


def schema_name(module: str, prefix: str | None = None) -> str:
    """``<module>.database`` from the settings, else ``<prefix><module>`` (prefix ``map_v2_``)."""
    if prefix is None:
        override = config.get(f"{module}.database")
        if override:
            return override
        prefix = config.schema_prefix()
    return f"{prefix}{module}"


def register(module: str, schema: dj.Schema, after_activate: Callable[[], None] | None = None) -> None:
    """Called at the bottom of each schema module; activates it unless activation is deferred."""
    _registry[module] = _Registered(module, schema, after_activate)
    if auto_activate:
        _activate(_registry[module], schema_name(module), connect())


def _activate(reg: _Registered, name: str, conn: dj.Connection) -> None:
    schema = reg.schema
    if schema.database is not None and (schema.database != name or schema.connection is not conn):
        schema.database = None  # rebinding to another prefix or server (tests do this)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema.activate(name, connection=conn)
    if reg.after_activate is not None:
        reg.after_activate()


def activate_all(
    prefix: str | None = None, conn: dj.Connection | None = None, modules: tuple[str, ...] = SCHEMA_MODULE_ORDER
) -> dict[str, str]:
    """Import every schema module and (re)bind it to ``prefix`` on ``conn``; returns module -> schema."""
    conn = conn or connect()
    for m in modules:
        importlib.import_module(f"pipeline.{m}")
    names = {}
    for m in modules:
        name = schema_name(m, prefix)
        _activate(_registry[m], name, conn)
        names[m] = name
    return names


def load_modules(modules: tuple[str, ...] = SCHEMA_MODULE_ORDER) -> None:
    """Import the schema modules (each activates itself unless activation is deferred)."""
    for m in modules:
        importlib.import_module(f"pipeline.{m}")


def drop_all(modules: tuple[str, ...] = SCHEMA_MODULE_ORDER) -> None:
    """Drop the activated schemas of ``modules`` (dependents first). For tests and demo resets."""
    for m in reversed(modules):
        reg = _registry.get(m)
        if reg is not None and reg.schema.database is not None and reg.schema.exists:
            reg.schema.drop(prompt=False)


def drop_prefix(prefix: str, conn: dj.Connection | None = None) -> list[str]:
    """Drop every schema named ``<prefix><module>`` on the server (even ones this process never
    activated), dependents first; returns the names dropped."""
    conn = conn or connect()
    existing = set(dj.list_schemas(connection=conn))
    dropped = []
    for m in reversed(SCHEMA_MODULE_ORDER):
        name = f"{prefix}{m}"
        if name in existing:
            conn.query(conn.adapter.drop_schema_sql(name))
            dropped.append(name)
    location = store_location()
    for name in dropped:  # the store's files of those schemas (file stores only)
        folder = Path(location) / "_schema" / name if location else None
        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    for reg in _registry.values():  # forget bindings to what no longer exists
        if reg.schema.database in dropped:
            reg.schema.database = None
    return dropped


def schemas() -> dict[str, dj.Schema]:
    return {m: r.schema for m, r in _registry.items()}
