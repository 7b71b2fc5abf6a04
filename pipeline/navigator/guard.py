"""One gate in front of the database connection while the navigator runs.

DataJoint shares one connection per process; the server answers requests in threads. The gate
(installed on the connection's ``query``) serialises the statements (PyMySQL connections must not
be used by two threads at once; each statement's rows are read before the next one starts, both
drivers buffer them), refuses any statement that could change something while a request is being
answered, and can record the statements of a request (the benchmark replays them to time the
database alone).
"""

from __future__ import annotations

import re
import threading

#: Statements a request may run: reads, and what DataJoint sends around them.
_ALLOWED = re.compile(r"^\s*\(?\s*(select|show|describe|desc|explain|with|set|begin|start|commit|rollback)\b", re.I)


class ReadOnlyViolation(PermissionError):
    """A statement that could write was sent while the navigator answered a request."""


_state = threading.local()
_install_lock = threading.Lock()


def in_request() -> bool:
    return getattr(_state, "request", False)


class request_scope:
    """Marks the current thread as answering a request (writes are refused inside)."""

    def __enter__(self):
        _state.request = True
        return self

    def __exit__(self, *exc):
        _state.request = False
        return False


class Gate:
    """What :func:`install` puts on a connection."""

    def __init__(self, original):
        self.original = original
        self.lock = threading.RLock()
        self.recording: list[tuple[str, tuple]] | None = None

    def __call__(self, query, args=(), **kwargs):
        if in_request() and not _ALLOWED.match(query):
            raise ReadOnlyViolation(f"the navigator only reads; refused: {query.strip()[:80]}")
        with self.lock:
            if self.recording is not None and in_request():
                self.recording.append((query, args))
            return self.original(query, args, **kwargs)


def install(conn) -> Gate:
    """Put the gate on ``conn`` (once; later calls return the same gate)."""
    with _install_lock:
        gate = conn.__dict__.get("query")
        if isinstance(gate, Gate):
            return gate
        gate = Gate(conn.query)
        conn.query = gate
        return gate


def uninstall(conn) -> None:
    """Take the gate off ``conn`` again."""
    with _install_lock:
        if isinstance(conn.__dict__.get("query"), Gate):
            del conn.query
