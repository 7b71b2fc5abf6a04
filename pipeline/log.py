"""Logging as the seed describes: ``MAP_LOGLEVEL`` (or ``loglevel`` / ``dj.config['loglevel']``)
and an optional log file (``logfile`` setting).

Only the ``pipeline`` and ``datajoint`` loggers are configured, and only when an action runs or
the database is first used (never at import): the root logger and other libraries are left
alone. The console is quiet by default (warnings and errors of the pipeline; DataJoint's own
chatter, such as its "connected" line, only at WARNING and above); the log file gets everything
at the chosen level, including each item of every run and the run's summary. A filter removes
secrets from every record, because connection strings and settings do get logged.
"""

from __future__ import annotations

import logging
import os
import re
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SECRET_WORDS = ("password", "passwd", "secret", "token", "key")
_SECRET = re.compile(
    r"(?i)((?:[a-z_.]*)(?:password|passwd|pass|secret|token|access_key|secret_key|api_key)['\"]?\s*[:=]\s*['\"]?)"
    r"([^'\"\s,}&]+)"
)
_URL_PW = re.compile(r"(://[^:/@\s]+:)([^@/\s]+)(@)")


def redact(text: str) -> str:
    """Replace secrets in ``text`` (``password=...``, ``"token": "..."``, ``user:pw@host``)."""
    return _URL_PW.sub(r"\1***\3", _SECRET.sub(r"\1***", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class _NotReport(logging.Filter):
    """The per-item ``pipeline.report`` lines go to the log file only (the console gets the summary)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("pipeline.report")


class _NoSSLFallback(logging.Filter):
    """DataJoint warns on every connection to a server without TLS that it fell back to a plain
    connection; that is the normal case on a lab network (and for the embedded database)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("datajoint"):
            return True
        msg = record.getMessage()
        # DataJoint's own jobs tables are declared with native types and it warns about its own
        # declaration; neither concerns what the action does
        return "Falling back to non-SSL" not in msg and not msg.startswith("Native type")


class ConsoleHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr``, so that a progress bar (which redirects it while it
    is drawn) prints log lines above the bar instead of breaking it."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def level_name(explicit: str | None = None) -> tuple[str, bool]:
    """(level, whether it was asked for): ``explicit``, ``MAP_LOGLEVEL``, ``loglevel`` in the settings
    file, else INFO (not asked for: the console then shows warnings only)."""
    from . import config

    raw = explicit or os.environ.get("MAP_LOGLEVEL") or config.other.get("loglevel")
    if not raw:
        return "INFO", False
    name = str(raw).upper()
    if name not in LEVELS:
        where = "MAP_LOGLEVEL" if os.environ.get("MAP_LOGLEVEL") and not explicit else f"loglevel in {config.source}"
        if explicit:
            where = "--loglevel"
        raise config.ConfigError(f"{where}: {raw!r} is not one of {', '.join(LEVELS)}")
    return name, True


_handlers: list[logging.Handler] = []
configured = False


def setup(level: str | None = None) -> str:
    """Configure the pipeline's logging; safe to call more than once (handlers are replaced)."""
    global configured
    from . import config

    name, asked = level_name(level)
    lvl = logging.getLevelName(name)
    loggers = [logging.getLogger("pipeline"), logging.getLogger("datajoint")]
    for lg in loggers:
        for h in _handlers:
            if h in lg.handlers:
                lg.removeHandler(h)
    _handlers.clear()
    console = ConsoleHandler()
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.setLevel(lvl if asked else logging.WARNING)
    console.addFilter(_NotReport())
    _handlers.append(console)
    logfile = config.get("logfile")
    if logfile:
        fh = logging.FileHandler(os.path.expanduser(logfile))
        fh.setFormatter(logging.Formatter(FORMAT))
        fh.setLevel(lvl)
        _handlers.append(fh)
    for h in _handlers:
        h.addFilter(RedactingFilter())
        h.addFilter(_NoSSLFallback())
    pipeline_logger = loggers[0]
    pipeline_logger.setLevel(lvl)
    pipeline_logger.propagate = False
    for h in list(pipeline_logger.handlers):
        pipeline_logger.removeHandler(h)
    for h in _handlers:
        pipeline_logger.addHandler(h)
    global _level
    _level = lvl
    configured = True
    attach_datajoint()
    return name


_level = logging.INFO


def attach_datajoint() -> None:
    """Route DataJoint's logger through the pipeline's handlers at WARNING and above (its INFO and
    DEBUG are SQL and its "connected" line). DataJoint installs its own stdout handler when it is
    imported, so this runs again once it is (see pipeline.db)."""
    if not configured or "datajoint" not in sys.modules:
        return
    lg = logging.getLogger("datajoint")
    lg.setLevel(max(_level, logging.WARNING))
    lg.propagate = False
    for h in list(lg.handlers):
        lg.removeHandler(h)
    for h in _handlers:
        lg.addHandler(h)


def ensure_setup() -> None:
    """Configure logging once, if no action did (e.g. when the pipeline is used from Python)."""
    if not configured:
        setup()
