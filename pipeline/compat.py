"""The contributors' guide's DataJoint 0.x lines, working on DataJoint 2.

DataJoint 2 removed ``dj.config['custom']`` and ``dj.config.save_local()`` and does not read
``dj_local_conf.json``. Every MAP lab has such a file (``database.host``, ``database.user``,
``database.password`` and a ``custom`` section), and the guide tells people to type::

    >>> dj.config['custom']['behavior_data_paths'] = [['Rig1', '/data/rig1', 0]]
    >>> dj.config.save_local()

:func:`install` (run when :mod:`pipeline.db` is imported, i.e. by any schema module; never by
``import pipeline`` or the readers) makes these work:

* ``dj.config['custom']`` is the pipeline's validated settings (:data:`pipeline.config.custom`);
  ``dj.config['custom.<key>']`` reads and sets one key.
* ``dj.config.save_local()`` saves them to ``dj_local_conf.json`` together with the connection
  settings in use (``database.host``/``port``/``user``/``password`` of a lab server, never of
  the embedded database), the way the guide saves credentials once.
* An old file's ``database.*`` keys choose the server (see :func:`legacy_database`). When
  DataJoint 2's own settings (``datajoint.json``, ``DJ_HOST``...) also name a server and
  disagree, DataJoint 2's win and one warning says so.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import datajoint as dj

from . import config

log = logging.getLogger(__name__)

#: The old file's connection keys and DataJoint 2's names for them.
LEGACY_DB_KEYS = ("database.host", "database.port", "database.user", "database.password")
_ENV = {
    "database.host": "DJ_HOST",
    "database.port": "DJ_PORT",
    "database.user": "DJ_USER",
    "database.password": "DJ_PASS",
}


def legacy_database() -> dict[str, Any]:
    """The ``database.*`` keys of the settings file (``dj_local_conf.json``), if any."""
    return {k: config.other[k] for k in LEGACY_DB_KEYS if config.other.get(k) not in (None, "")}


def dj2_configured() -> bool:
    """Whether DataJoint 2's own configuration names a server (datajoint.json or DJ_HOST/DJ_USER)."""
    return bool(os.environ.get("DJ_HOST") or os.environ.get("DJ_USER") or dj.settings.find_config_file())


def apply_legacy_database() -> str | None:
    """Use the old file's ``database.*`` keys for the connection, unless DataJoint 2's settings
    already name a server; returns a one-line warning when both exist and disagree."""
    legacy = legacy_database()
    if not legacy:
        return None
    if dj2_configured():
        current = {k: dj.config[k] for k in LEGACY_DB_KEYS}
        differ = [
            k
            for k, v in legacy.items()
            if current.get(k) not in (None, "") and str(current[k]) != str(v) and k != "database.password"
        ]
        if differ:
            return (
                f"{config.source} names {', '.join(f'{k}={legacy[k]}' for k in differ)}, but DataJoint 2's settings "
                f"({', '.join(filter(None, [str(dj.settings.find_config_file() or ''), *[v for v in _ENV.values() if os.environ.get(v)]]))}) "
                f"say otherwise; using DataJoint 2's"
            )
        for k, v in legacy.items():  # fill what DataJoint 2's settings leave open (e.g. the password)
            if current.get(k) in (None, ""):
                dj.config[k] = int(v) if k == "database.port" else v
        return None
    for k, v in legacy.items():
        dj.config[k] = int(v) if k == "database.port" else v
    if "database.port" not in legacy and dj.config.database.backend == "mysql":
        dj.config["database.port"] = 3306
    return None


def save_local(verbose: bool = False) -> str:
    """``dj.config.save_local()``: save the settings and the lab server's connection settings."""
    from . import db

    if not db.uses_embedded():
        dbs = dj.config.database
        password = dbs.password.get_secret_value() if dbs.password is not None else None
        for k, v in (
            ("database.host", dbs.host),
            ("database.port", dbs.port),
            ("database.user", dbs.user),
            ("database.password", password),
        ):
            if v not in (None, ""):
                config.set_other(k, v)
    path = config.save_local()
    if verbose:
        print(f"saved to {path}")
    return str(path)


def install() -> None:
    """Teach DataJoint 2's config object the guide's ``['custom']`` and ``save_local()``."""
    cls = type(dj.config)
    if getattr(cls, "_map_compat", False):
        return
    get, set_, delete = cls.__getitem__, cls.__setitem__, cls.__delitem__

    def __getitem__(self, key: str) -> Any:
        if key == "custom":
            return config.custom
        if key.startswith("custom."):
            return config.custom[key[len("custom.") :]]
        return get(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "custom":
            if not isinstance(value, dict):
                raise config.ConfigError(f"dj.config['custom'] must be a dict of settings, got {value!r}")
            checked = {k: config.validate(k, v) for k, v in value.items()}
            config.custom.clear()
            config.custom.update(checked)
        elif key.startswith("custom."):
            config.custom[key[len("custom.") :]] = value
        else:
            set_(self, key, value)

    def __delitem__(self, key: str) -> None:
        if key.startswith("custom."):
            del config.custom[key[len("custom.") :]]
        else:
            delete(self, key)

    def save_local_method(self, verbose: bool = False) -> str:
        return save_local(verbose)

    def save_global(self, verbose: bool = False) -> str:
        """DataJoint 0.x's global file: ``~/.datajoint_config.json``."""
        from pathlib import Path

        path = config.save_local(Path.home() / ".datajoint_config.json")
        return str(path)

    cls.__getitem__ = __getitem__
    cls.__setitem__ = __setitem__
    cls.__delitem__ = __delitem__
    cls.save_local = save_local_method
    cls.save_global = save_global
    cls._map_compat = True
