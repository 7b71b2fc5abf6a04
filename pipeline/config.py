"""The pipeline's own settings: the seed's ``custom`` section.

DataJoint 2 removed ``dj.config['custom']`` and ``save_local()``, and does not read
``dj_local_conf.json``. Labs already have that file, written as the seed shows, so this
module reads it unchanged, validates every key, and writes it back (keeping the keys it
does not own, such as the old ``database.*`` entries) with :func:`save_local`.

Usage::

    from pipeline import config
    config.custom["behavior_data_paths"] = [["Rig1", "/data/rig1", 0]]
    config.save_local()
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG_FILENAME = "dj_local_conf.json"

#: Schema modules whose database name can be overridden with ``<module>.database``.
SCHEMA_MODULES = (
    "lab",
    "experiment",
    "ephys",
    "histology",
    "ccf",
    "tracking",
    "psth",
    "ingest_work",
    "ingest_behavior",
    "ingest_ephys",
    "ingest_tracking",
    "ingest_histology",
    "report",
    "publication",
    "migration",
)
DEFAULT_SCHEMA_PREFIX = "map_v2_"


from .errors import ConfigError  # noqa: E402  (re-exported: config.ConfigError)

# --- validators: each returns the (normalised) value or raises ConfigError -------------------


def _str(key: str, value: Any, what: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected {what}, got {value!r}")
    return value


def _rig_paths(with_priority: bool) -> Callable[[str, Any], list]:
    shape = "[rig name, path, priority]" if with_priority else "[rig name, path]"
    example = '["Rig1", "/data/rig1", 0]' if with_priority else '["Rig1", "/data/rig1"]'

    def check(key: str, value: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {shape} entries (e.g. [{example}]), got {value!r}")
        out = []
        for i, entry in enumerate(value):
            n = 3 if with_priority else 2
            ok = (
                isinstance(entry, (list, tuple))
                and len(entry) == n
                and isinstance(entry[0], str)
                and entry[0]
                and isinstance(entry[1], str)
                and entry[1]
            )
            if ok and with_priority:
                ok = isinstance(entry[2], int) and not isinstance(entry[2], bool)
            if not ok:
                raise ConfigError(f"{key}: entry {i} is {entry!r}; expected {shape}, e.g. {example}")
            out.append(list(entry))
        return out

    return check


def _path_list(key: str, value: Any) -> list:
    if isinstance(value, str):  # a single path is a common slip; accept it as a one-item list
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(f'{key}: expected a list of folder paths, e.g. ["/path/to/data"], got {value!r}')
    return list(value)


def _behavior_bpod(key: str, value: Any) -> dict:
    example = '{"meta_dir": "/path/to/Metadata", "project_paths": ["/path/to/bpod/Tower-1/Foraging"]}'
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object like {example}, got {value!r}")
    unknown = set(value) - {"meta_dir", "meta_lab_dir", "project_paths"}
    if unknown:
        raise ConfigError(f"{key}: unknown field(s) {sorted(unknown)}; allowed: meta_dir, meta_lab_dir, project_paths")
    if "meta_dir" not in value or "project_paths" not in value:
        raise ConfigError(f"{key}: needs both meta_dir and project_paths, e.g. {example}")
    out = dict(value)
    out["meta_dir"] = _str(f"{key}.meta_dir", value["meta_dir"], "a folder path")
    if "meta_lab_dir" in value:
        out["meta_lab_dir"] = _str(f"{key}.meta_lab_dir", value["meta_lab_dir"], "a folder path")
    out["project_paths"] = _path_list(f"{key}.project_paths", value["project_paths"])
    return out


def _ccf_paths(key: str, value: Any) -> dict:
    fields = ("version_name", "region_csv", "hexcode_csv", "annotation_nrrd")
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object with {', '.join(fields)}, got {value!r}")
    unknown = set(value) - set(fields)
    if unknown:
        raise ConfigError(f"{key}: unknown field(s) {sorted(unknown)}; allowed: {', '.join(fields)}")
    return {k: _str(f"{key}.{k}", v) for k, v in value.items()}


def _options(key: str, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{key}: expected an object of fsspec options, got {value!r}")
    return dict(value)


def _prefix(key: str, value: Any) -> str:
    value = _str(key, value)
    if not value.replace("_", "").isalnum() or not value[0].isalpha():
        raise ConfigError(f"{key}: {value!r} must be letters, digits and underscores, starting with a letter")
    return value


VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "behavior_data_paths": _rig_paths(with_priority=True),
    "behavior_bpod": _behavior_bpod,
    "tracking_data_paths": _rig_paths(with_priority=False),
    "ephys_data_paths": _path_list,
    "histology_data_paths": _path_list,
    "ccf_data_paths": _ccf_paths,
    "logfile": lambda k, v: _str(k, v, "a file path"),
    "schema_prefix": _prefix,
    "session.user": lambda k, v: _str(k, v, "a lab.Person username"),
    "recording_notes_spreadsheet": lambda k, v: _str(k, v, "a file path"),
    "recording_notes_sheet_name": _str,
    "store_location": lambda k, v: _str(k, v, "a folder path or fsspec URL"),
    "report_store_location": lambda k, v: _str(k, v, "a folder path"),
    "report_folder": lambda k, v: _str(k, v, "a folder path"),
    "ccf.r3_20um_path": lambda k, v: _str(k, v, "a file path"),
    "archive_url": lambda k, v: _str(k, v, "a folder path or fsspec URL"),
    "archive_options": _options,
    **{f"{m}.database": _str for m in SCHEMA_MODULES},
}

#: The shape of each setting, for people (docs, messages).
SHAPES = {
    "behavior_data_paths": '`[[rig, path, priority], ...]`, e.g. `[["Rig1", "/data/rig1", 0]]`',
    "behavior_bpod": '`{"meta_dir": path, "project_paths": [path, ...]}` (optional `meta_lab_dir`)',
    "tracking_data_paths": '`[[rig, path], ...]`, e.g. `[["RRig", "/data/rig1"]]`',
    "ephys_data_paths": "`[path, ...]`",
    "histology_data_paths": "`[path, ...]`",
    "ccf_data_paths": '`{"version_name", "region_csv", "hexcode_csv", "annotation_nrrd"}`',
    "logfile": "a file path (the log file, in addition to the console)",
    "schema_prefix": "schema name prefix, default `map_v2_`",
    "session.user": "the lab.Person owning new sessions (default: the animal's owner)",
    "recording_notes_spreadsheet": "the insertion-location sheet (xlsx/csv) for load-insertion-location",
    "recording_notes_sheet_name": "its sheet name",
    "store_location": "folder (or fsspec URL) of the `map` store when DataJoint's config names none",
    "report_store_location": "folder of the `report` store (figures) when DataJoint's config names none",
    "report_folder": "where `sync-report` copies the figures (default ./report)",
    "ccf.r3_20um_path": "the Allen CCF r3 20 um annotation TIFF stack (used when no annotation_nrrd is set)",
    "archive_url": "where `publish` copies raw files: a folder or fsspec URL such as `s3://bucket/map` "
    "(default `<data folder>/archive`)",
    "archive_options": 'fsspec options of the archive, e.g. `{"endpoint_url": "https://s3.example.org"}`',
}

#: Keys the original pipeline used that this one does not act on. They are kept when the
#: file is read and saved (a lab's existing file must load), but setting them does nothing.
LEGACY_KEYS = frozenset(
    {
        "single_unit_classification_dir",
        "allow_external_cleanup",
        "globus.token",
        "globus.storage_locations",
        "globus.local_endpoints",
        "oralfacial_analysis.database",
        "foraging_analysis.database",
        "foraging_model.database",
        "psth_foraging.database",
        "fixes.database",
        "mtl_analysis.database",
    }
)


def validate(key: str, value: Any) -> Any:
    """Return ``value`` checked (and normalised) for ``key``; raise ConfigError otherwise."""
    if key in LEGACY_KEYS:
        return value
    if key not in VALIDATORS:
        raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(sorted(VALIDATORS))}")
    return VALIDATORS[key](key, value)


_DELETED = object()
#: Keys changed in this process since the settings were loaded (key -> value, or _DELETED);
#: :func:`save_local` applies just these to the file as it is then, so that two processes
#: changing different keys never lose each other's change.
_changed: dict[str, Any] = {}
_changed_other: dict[str, Any] = {}


class CustomSettings(dict):
    """A dict of the ``custom`` settings that validates on assignment."""

    def __setitem__(self, key: str, value: Any) -> None:
        value = validate(key, value)
        super().__setitem__(key, value)
        _changed[key] = value

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        _changed[key] = _DELETED

    def pop(self, key, *default):
        if key in self:
            _changed[key] = _DELETED
        return super().pop(key, *default)

    def clear(self) -> None:
        for k in self:
            _changed[k] = _DELETED
        super().clear()

    def update(self, *args, **kwargs) -> None:  # noqa: D102 - same as dict.update, validated
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key, default=None):  # noqa: D102
        if key not in self:
            self[key] = default
        return self[key]


custom = CustomSettings()
#: Top-level keys of the loaded file other than ``custom`` (e.g. ``loglevel``, old
#: ``database.*`` entries). Kept so that :func:`save_local` does not lose them.
other: dict[str, Any] = {}
source: Path | None = None


def candidate_files() -> list[Path]:
    """Where the settings file is looked for, first found wins.

    ``MAP_CONFIG`` (explicit path), then ``./dj_local_conf.json`` (as DataJoint 0.x did), then
    ``~/dj_local_conf.json`` and ``~/.datajoint_config.json`` (0.x's global file).
    """
    out = []
    if os.environ.get("MAP_CONFIG"):
        out.append(Path(os.environ["MAP_CONFIG"]).expanduser())
    out.append(Path.cwd() / CONFIG_FILENAME)
    home = Path.home()
    out += [home / CONFIG_FILENAME, home / ".datajoint_config.json"]
    return out


def find_file() -> Path | None:
    for p in candidate_files():
        if p.is_file():
            return p
    return None


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def parse_json(text: str) -> Any:
    """``json.loads``, but forgiving the trailing comma the seed's own example has (``}, }``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        try:
            return json.loads(_TRAILING_COMMA.sub(r"\1", text))
        except json.JSONDecodeError:
            raise first from None


def load(path: str | Path | None = None) -> Path | None:
    """(Re)load settings from ``path`` or the first candidate file; returns the file used.

    The whole file is checked before anything changes, so a bad file leaves the current
    settings as they were.
    """
    global source
    p = Path(path).expanduser() if path is not None else find_file()
    new_custom: dict[str, Any] = {}
    new_other: dict[str, Any] = {}
    if p is not None:
        try:
            data = parse_json(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start}); save it as UTF-8 JSON") from None
        except FileNotFoundError:
            raise ConfigError(f"{p}: file not found") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a JSON object at the top level")
        section = data.get("custom", {})
        if not isinstance(section, dict):
            raise ConfigError(f'{p}: "custom" must be an object')
        for k, v in section.items():
            try:
                new_custom[k] = validate(k, v)
            except ConfigError as e:
                raise ConfigError(f"{p}: {e}") from None
        new_other = {k: v for k, v in data.items() if k != "custom"}
    dict.clear(custom)
    for k, v in new_custom.items():
        dict.__setitem__(custom, k, v)
    other.clear()
    other.update(new_other)
    _changed.clear()
    _changed_other.clear()
    source = p
    return p


def set_other(key: str, value: Any) -> None:
    """Set (or with None remove) a top-level key of the settings file, e.g. ``database.user``."""
    if value is None:
        other.pop(key, None)
        _changed_other[key] = _DELETED
    else:
        other[key] = value
        _changed_other[key] = value


def save_local(path: str | Path | None = None) -> Path:
    """Write the settings to ``path``, else the file they came from, else ``./dj_local_conf.json``.

    Every value is validated again first (lists may have been edited in place). Saving to the
    file the settings came from re-reads it under a lock and applies only the keys changed in
    this process, so concurrent writers of different keys all keep theirs; the file is replaced
    atomically (never half-written). A file holding a password is made readable by its owner only.
    """
    import fcntl
    import tempfile

    for k, v in list(custom.items()):
        validate(k, v)
    target = Path(path).expanduser() if path is not None else (source or Path.cwd() / CONFIG_FILENAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing: dict[str, Any] = {}
        if target.is_file():
            try:
                loaded = parse_json(target.read_text(encoding="utf-8"))
                existing = loaded if isinstance(loaded, dict) else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                existing = {}
        same_file = source is not None and target.resolve() == Path(source).resolve()
        if same_file:  # merge: the file as it is now + what this process changed
            data = {k: v for k, v in existing.items() if k != "custom"}
            section = dict(existing.get("custom") or {}) if isinstance(existing.get("custom"), dict) else {}
            for k, v in _changed_other.items():
                data.pop(k, None) if v is _DELETED else data.__setitem__(k, v)
            for k, v in _changed.items():
                section.pop(k, None) if v is _DELETED else section.__setitem__(k, v)
        else:  # another file: keep what it holds outside our section, write all of ours
            data = {**{k: v for k, v in existing.items() if k != "custom"}, **other}
            section = dict(custom)
        data["custom"] = section
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, indent=4) + "\n")
            if any("password" in k.lower() for k in data):
                os.chmod(tmp, 0o600)
            elif target.exists():
                os.chmod(tmp, target.stat().st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    if same_file:  # now in step with the file
        dict.clear(custom)
        for k, v in section.items():
            dict.__setitem__(custom, k, v)
        other.clear()
        other.update({k: v for k, v in data.items() if k != "custom"})
    _changed.clear()
    _changed_other.clear()
    return target


def get(key: str, default: Any = None) -> Any:
    return custom.get(key, default)


def schema_prefix() -> str:
    """``MAP_SCHEMA_PREFIX`` if set, else the ``schema_prefix`` setting, else ``map_v2_``."""
    env = os.environ.get("MAP_SCHEMA_PREFIX")
    if env:
        return _prefix("MAP_SCHEMA_PREFIX", env)
    return custom.get("schema_prefix", DEFAULT_SCHEMA_PREFIX)


def redacted(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with anything that looks like a secret replaced by ``'***'``."""
    secret_words = ("password", "passwd", "secret", "token", "key")
    if isinstance(value, dict):
        return {k: redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, key) for v in value]
    if key and any(w in key.lower() for w in secret_words) and value not in (None, ""):
        return "***"
    return value


def show() -> dict[str, Any]:
    """The settings as a JSON-able dict for display, secrets redacted."""
    return {"file": str(source) if source else None, "custom": redacted(dict(custom)), **redacted(other)}


load()
