"""Numbered data and schema migrations (``mapshell migrate``), replacing the original's one-off
``fixes/fix_00NN_*.py`` scripts.

A migration is a module ``mNNNN_<name>.py`` in this package: a docstring (its first line says what
it does) and ``apply(dry_run: bool) -> list[str]``, which returns one line per change it made (or,
with ``dry_run``, would make) and an empty list when the database needs nothing. It must find out
itself whether there is anything to do (``apply`` may meet a database that never needed it).

:func:`migrate` runs the pending ones (not in ``migration.Migration``) in number order: as a dry
run by default (nothing written), or with ``apply=True`` each in one transaction, recorded with
its number, name, time, the code version and what it changed. A failed migration is rolled back
and stops the run (later ones depend on the earlier). Re-running is a no-op. See docs/migrate.md.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import MapError
from ..ingest.summary import Summary

log = logging.getLogger(__name__)

#: mNNNN_<name>: four digits, then lower-case words joined by _
MODULE_NAME = re.compile(r"m(\d{4})_([a-z0-9_]+)")


class MigrationError(MapError):
    """The migrations themselves are malformed (two with one number, no ``apply``, no docstring)."""


@dataclass(frozen=True)
class Available:
    number: int
    name: str
    module: str  # importable name

    @property
    def label(self) -> str:
        return f"m{self.number:04d} {self.name}"

    def load(self) -> ModuleType:
        mod = importlib.import_module(self.module)
        if not callable(getattr(mod, "apply", None)):
            raise MigrationError(f"{self.module}: no apply(dry_run) function")
        if not (mod.__doc__ or "").strip():
            raise MigrationError(f"{self.module}: no docstring (say what it does and why)")
        return mod


def available(package: str = __name__) -> list[Available]:
    """The migrations of ``package`` in number order; other modules there (``_helpers``) are ignored
    unless they look like a misnamed migration."""
    pkg = importlib.import_module(package)
    found: dict[int, Available] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        m = MODULE_NAME.fullmatch(info.name)
        if not m:
            if re.match(r"m\d", info.name):
                raise MigrationError(f"{package}.{info.name}: a migration is named mNNNN_<name> (four digits)")
            continue
        number = int(m.group(1))
        if number in found:
            raise MigrationError(
                f"{package}: migrations {found[number].module.rsplit('.', 1)[-1]} and {info.name} have the same number"
            )
        found[number] = Available(number, m.group(2), f"{package}.{info.name}")
    return [found[n] for n in sorted(found)]


def code_version() -> str:
    """``pipeline.__version__``, with the git commit of the source tree when there is one."""
    from .. import __version__

    version = str(__version__)
    try:
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode == 0 and sha.stdout.strip():
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "pipeline"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            version += f" git {sha.stdout.strip()}" + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return version[:64]


def applied() -> dict[int, dict]:
    """number -> the Migration row of every migration applied to this database."""
    from ..migration import Migration

    return {int(r["number"]): r for r in Migration().to_dicts()}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _changes_text(changes) -> str:
    changes = [str(c) for c in (changes or [])]
    return "; ".join(changes) if changes else "nothing to change"


def migrate(apply: bool = False, package: str = __name__) -> Summary:
    """Dry run (default): list the pending migrations and what each would change. ``apply``: apply
    them in order, each in one transaction, recorded in ``migration.Migration``; stop at the first
    failure (rolled back)."""
    from .. import db
    from ..migration import Migration

    summary = Summary(what="migrations")
    todo = available(package)
    summary.found = len(todo)
    db.load_modules()  # every schema activated: migrations use the tables of any module
    done = applied()
    pending = []
    for m in todo:
        rec = done.get(m.number)
        if rec is None:
            pending.append(m)
            continue
        if rec["name"] != m.name:
            summary.note(f"m{m.number:04d} is recorded as {rec['name']!r} but is now named {m.name!r}")
        summary.skip(m.label, f"applied {str(rec['applied_at'])[:19]} by {rec['code_version']}")
    conn = db.connect()
    version = code_version()
    for i, m in enumerate(pending):
        try:
            mod = m.load()
        except MigrationError as e:
            summary.fail(m.label, str(e))
            break
        what = mod.__doc__.strip().splitlines()[0].rstrip(".")
        if not apply:
            try:
                changes = mod.apply(dry_run=True)
            except Exception as e:
                log.debug("dry run of %s failed", m.module, exc_info=True)
                summary.fail(m.label, f"the dry run failed ({_first_line(e)})")
                break
            summary.skip(
                m.label, f"pending ({what}): " + (f"would {_changes_text(changes)}" if changes else "nothing to change")
            )
            continue
        try:
            with conn.transaction:
                if Migration & dict(number=m.number):  # another process applied it meanwhile
                    summary.skip(m.label, "applied by another process meanwhile")
                    continue
                text = _changes_text(mod.apply(dry_run=False))
                Migration.insert1(dict(number=m.number, name=m.name, code_version=version, summary=text[:2000]))
        except Exception as e:
            log.debug("migration %s failed", m.module, exc_info=True)
            later = len(pending) - i - 1
            summary.fail(
                m.label,
                f"failed and was rolled back ({_first_line(e)})"
                + (f"; {later} later migration(s) not run" if later else ""),
            )
            break
        summary.load(f"{m.label}: {text}")
    if not apply and pending and summary.ok:
        summary.note(f"dry run: nothing was changed; `mapshell migrate --apply` applies {len(pending)} pending")
    return summary


__all__ = ["MigrationError", "Available", "available", "applied", "code_version", "migrate"]
