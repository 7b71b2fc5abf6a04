"""Logging as the seed describes: ``MAP_LOGLEVEL`` (or ``loglevel``) and an optional log file.

The root logger stays at ERROR so third-party chatter is quiet; the chosen level applies to
the ``pipeline`` and ``datajoint`` loggers. A filter removes passwords from every record,
because connection strings and settings do get logged.
"""

from __future__ import annotations

import logging
import os
import re

from . import config

FORMAT = "%(asctime)s:%(levelname)s:%(module)s:%(funcName)s:%(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SECRET = re.compile(r"(?i)(password|passwd|pass|secret|token)(['\"]?\s*[:=]\s*['\"]?)([^'\"\s,}&]+)")
_URL_PW = re.compile(r"(://[^:/@\s]+:)([^@/\s]+)(@)")


def redact(text: str) -> str:
    """Replace secrets in ``text`` (``password=...``, ``"password": "..."``, ``user:pw@host``)."""
    return _URL_PW.sub(r"\1***\3", _SECRET.sub(r"\1\2***", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def level_name() -> str:
    """``MAP_LOGLEVEL``, else ``loglevel`` from the settings file, else INFO."""
    raw = os.environ.get("MAP_LOGLEVEL") or config.other.get("loglevel") or "INFO"
    name = str(raw).upper()
    if name not in LEVELS:
        raise config.ConfigError(f"MAP_LOGLEVEL/loglevel: {raw!r} is not one of {', '.join(LEVELS)}")
    return name


_handlers: list[logging.Handler] = []


def setup(level: str | None = None) -> str:
    """Configure logging; safe to call more than once (handlers are replaced, not added)."""
    import datajoint  # noqa: F401  (it installs its own handler at import; replace it after)

    name = (level or level_name()).upper()
    root = logging.getLogger()
    root.setLevel(logging.ERROR)
    for h in _handlers:
        for lg in (root, logging.getLogger("pipeline"), logging.getLogger("datajoint")):
            if h in lg.handlers:
                lg.removeHandler(h)
    _handlers.clear()
    fmt = logging.Formatter(FORMAT)
    console = logging.StreamHandler()
    console.setFormatter(fmt)
    _handlers.append(console)
    logfile = config.get("logfile")
    if logfile:
        fh = logging.FileHandler(os.path.expanduser(logfile))
        fh.setFormatter(fmt)
        _handlers.append(fh)
    for h in _handlers:
        h.addFilter(RedactingFilter())
    for lname in ("pipeline", "datajoint"):
        lg = logging.getLogger(lname)
        lg.setLevel(name)
        lg.propagate = False
        for h in list(lg.handlers):
            lg.removeHandler(h)
        for h in _handlers:
            lg.addHandler(h)
    return name
