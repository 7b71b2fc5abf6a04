"""The errors a user can fix, with one common base.

Every error a reader or loader raises for bad *input* (a file, a sheet row, a setting, an
unreachable server) derives from :class:`MapError`; its message says what and where in one
line. The ingest runner reports a ``MapError`` as a failure of that item with its message and
goes on; anything else is a bug in the pipeline: it is counted as failed too, but logged with
its traceback. The command line prints a ``MapError`` as one line and never a traceback.

This module imports nothing, so the command line can report errors even when loading the
settings itself failed.
"""

from __future__ import annotations


class MapError(Exception):
    """Something the user can fix; ``str(e)`` is the whole message (one line)."""


class InputError(MapError, ValueError):
    """A file or row is malformed or inconsistent. The message names the file (or row), the field
    and what is wrong. Readers raise subclasses of this, one per format."""


class SkipItem(MapError):
    """Not an error: the item is of a kind this step does not load (e.g. another Bpod protocol).
    The runner counts it as skipped with the message as the reason."""


class UsageError(MapError):
    """The command line names something that is not there (a file, a table); exit status 2."""


class ConfigError(MapError, ValueError):
    """A setting has the wrong shape; the message names the key (and file) and what is expected."""


class ConnectionProblem(MapError, RuntimeError):
    """The database cannot be reached; the message says which one and what to check."""
