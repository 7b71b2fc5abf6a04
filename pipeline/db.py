"""Which database the pipeline talks to, and binding the schema modules to it.

* No DataJoint configuration (no ``datajoint.json`` found, no ``DJ_HOST``/``DJ_USER``):
  the embedded PostgreSQL (:mod:`pipeline.embedded`). ``MAP_EMBEDDED=1``/``0`` forces either way.
* Otherwise DataJoint's own configuration picks the server (MySQL/MariaDB or PostgreSQL).

Schema modules create an unactivated ``dj.Schema`` and call :func:`register`; importing one
connects to nothing. The schema is activated as ``<prefix><module>`` on the first use of one of
its tables (DataJoint 2's deferred activation: declaring on an unactivated schema only records
the classes), connecting then. Tests switch ``auto_activate`` off and bind every module to a
fresh prefix of their own with :func:`activate_all`.

Importing this module also makes the contributors' guide's lines work (``dj.config['custom']``,
``dj.config.save_local()``, an old ``dj_local_conf.json``'s ``database.*`` keys): see
:mod:`pipeline.compat`.
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

from . import compat, config, embedded
from . import log as map_log

log = logging.getLogger(__name__)
map_log.attach_datajoint()  # when an action configured logging before DataJoint was imported

compat.install()  # the guide's dj.config['custom'] and dj.config.save_local()

#: Import order of the schema modules (each after the ones it references).
SCHEMA_MODULE_ORDER = (
    "ingest_work",
    "lab",
    "experiment",
    "ingest_behavior",
    "ephys",
    "ingest_ephys",
    "tracking",
    "ccf",
    "histology",
    "ingest_histology",
    "psth",
    "report",
    "publication",
    "migration",
)

#: Where each schema module lives. The ingest bookkeeping tables live with their ingest step.
SCHEMA_MODULE_PATHS = {
    "ingest_work": "pipeline.ingest.work",
    "lab": "pipeline.lab",
    "experiment": "pipeline.experiment",
    "ingest_behavior": "pipeline.ingest.behavior.tables",
    "ephys": "pipeline.ephys",
    "ingest_ephys": "pipeline.ingest.ephys.tables",
    "tracking": "pipeline.tracking",
    "ccf": "pipeline.ccf",
    "histology": "pipeline.histology",
    "ingest_histology": "pipeline.ingest.histology.tables",
    "psth": "pipeline.psth",
    "report": "pipeline.report",
    "publication": "pipeline.publication",
    "migration": "pipeline.migration",
}

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
_warned: set[str] = set()
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
    if compat.legacy_database():  # an old dj_local_conf.json naming the lab server
        return False
    return dj.settings.find_config_file() is None


def _dj_config_source() -> str:
    path = dj.settings.find_config_file()
    parts = []
    if path:
        parts.append(str(path))
    if compat.legacy_database():
        parts.append(f"{config.source} database.*")
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
    map_log.ensure_setup()
    if not uses_embedded():
        disagreement = compat.apply_legacy_database()
        if disagreement and disagreement not in _warned:
            _warned.add(disagreement)
            log.warning("%s", disagreement)
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
REPORT_STORE = "report"  #: the store of the report figures: ``<blob@report>``


def store_location() -> str:
    """Where the ``map`` store keeps its files (for a file store), as configured or by default."""
    spec = dict(dj.config.stores).get(STORE)
    return spec.get("location") if isinstance(spec, dict) else ""


def ensure_store() -> None:
    """Configure the ``map`` store unless DataJoint's configuration already has one.

    Default: the ``store_location`` setting, else ``<data folder>/store``.
    """
    stores = dict(dj.config.stores)
    changed = False
    for name, setting, default in (
        (STORE, "store_location", "store"),
        (REPORT_STORE, "report_store_location", "report_store"),
    ):
        if name in stores:
            continue
        location = Path(config.get(setting) or embedded.data_dir() / default).expanduser()
        location.mkdir(parents=True, exist_ok=True)
        stores[name] = {"protocol": "file", "location": str(location)}
        changed = True
    if changed:
        dj.config.stores = stores


def warn_if_local_store() -> None:
    """Say once, when a step is about to write large arrays, that a lab server's arrays would go to a
    folder only this machine can read (no store configured for a shared database)."""
    if uses_embedded() or config.get("store_location") or "store" in _warned:
        return
    spec = dict(dj.config.stores).get(STORE) or {}
    if spec.get("protocol", "file") == "file" and str(spec.get("location", "")).startswith(str(embedded.data_dir())):
        _warned.add("store")
        log.warning(
            "large arrays (spike times, waveforms) are stored under %s, which only this machine can "
            "read; configure stores.%s in datajoint.json (a shared folder or s3) for a lab server",
            spec.get("location"),
            STORE,
        )


def store_prefix(table, key: dict) -> str:
    """The store folder that holds the objects of ``table``'s rows under ``key`` (a prefix of its
    primary key): DataJoint's schema-addressed layout ``_schema/<schema>/<table>/<attr>=<value>/...``."""
    from datajoint.storage import encode_pk_value

    spec = dj.config.get_store_spec(STORE)
    parts = [str(spec.get("schema_prefix", "_schema")).strip("/"), table.database, table.table_name]
    for attr in table.primary_key:
        if attr not in key:
            break
        parts.append(f"{attr}={encode_pk_value(key[attr])}")
    return "/".join(p for p in parts if p)


def remove_store_objects(table, key: dict) -> None:
    """Remove the store objects of ``table`` under ``key``. Only for keys that have no rows: the
    objects a rolled-back or killed load left behind (DataJoint writes them before the transaction
    commits, and a rollback does not remove them)."""
    from datajoint.hash_registry import get_store_backend

    get_store_backend(STORE).remove_folder(store_prefix(table, key))


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
    """Called at the bottom of each schema module. Connects to nothing: the schema is activated on
    the first use of one of its tables (see :func:`ensure_active`)."""
    _registry[module] = _Registered(module, schema, after_activate)
    for cls in table_classes(module):
        _install_activation_hook(cls, module)


def table_classes(module: str) -> list[type]:
    """The table classes of a registered schema module, each master followed by its part tables."""
    out = []
    for cls, _context in _registry[module].schema.declare_list:
        out.append(cls)
        out += [p for n, p in vars(cls).items() if n[:1].isupper() and isinstance(p, type) and issubclass(p, dj.Part)]
    return out


def _install_activation_hook(cls: type, module: str) -> None:
    """Make ``cls()`` (which every class-level DataJoint call goes through: ``Table & key``,
    ``Table.insert``, ``Table()``...) activate the module's schema first if it is not yet."""

    def __init__(self, *args, **kwargs):
        if type(self).database is None:
            ensure_active(module)

    cls.__init__ = __init__


_activating: set[str] = set()


def ensure_active(module: str) -> None:
    """Activate ``module``'s schema (and the schema modules before it that are imported) on the
    configured database, connecting if needed. A no-op when it is active already."""
    reg = _registry[module]
    if reg.schema.database is not None or module in _activating:
        return
    if not auto_activate:
        from .errors import MapError

        raise MapError(f"schema module {module!r} is not bound to a database (call db.activate_all first)")
    conn = connect()
    for m in SCHEMA_MODULE_ORDER:  # parents first: a table's foreign keys need them declared
        if m == module:
            break
        if m in _registry and _registry[m].schema.database is None:
            ensure_active(m)
    _activating.add(module)
    try:
        _activate(reg, schema_name(module), conn)
    finally:
        _activating.discard(module)


def _activate(reg: _Registered, name: str, conn: dj.Connection) -> None:
    schema = reg.schema
    if schema.database is not None and (schema.database != name or schema.connection is not conn):
        schema.database = None  # rebinding to another prefix or server (tests do this)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema.activate(name, connection=conn)
    if reg.after_activate is not None:
        reg.after_activate()


def import_module(module: str):
    """The Python module of schema module ``module`` (e.g. ``ingest_ephys``), imported."""
    return importlib.import_module(SCHEMA_MODULE_PATHS[module])


def activate_all(
    prefix: str | None = None, conn: dj.Connection | None = None, modules: tuple[str, ...] = SCHEMA_MODULE_ORDER
) -> dict[str, str]:
    """Import every schema module and (re)bind it to ``prefix`` on ``conn``; returns module -> schema."""
    conn = conn or connect()
    for m in modules:
        import_module(m)
    names = {}
    for m in modules:
        name = schema_name(m, prefix)
        _activating.add(m)
        try:
            _activate(_registry[m], name, conn)
        finally:
            _activating.discard(m)
        names[m] = name
    return names


def load_modules(modules: tuple[str, ...] = SCHEMA_MODULE_ORDER, activate: bool = True) -> dict:
    """Import the schema modules (and activate them unless ``activate`` is False); returns
    module name -> Python module."""
    out = {m: import_module(m) for m in modules}
    if activate and auto_activate:
        for m in modules:
            ensure_active(m)
    return out


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
