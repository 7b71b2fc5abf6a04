"""The MAP navigator: a local web page to browse subjects, sessions, probes and units, served by
the pipeline on its own database (read-only).

    from pipeline import navigator
    navigator.serve()                      # http://127.0.0.1:8765/ until Ctrl-C

Pages are rendered on the server (HTML, one style sheet, a small script that sorts and filters
tables); figures are PNGs from the report store, or drawn on request with
:mod:`pipeline.figures` and kept in memory; every table is also JSON under ``/api/``. See
docs/navigator.md.

* :func:`serve` — blocking, prints nothing, returns on Ctrl-C;
* :func:`make_app` — the navigator without a socket (``app.handle("/subject/dm1")``);
* :func:`make_server` / :func:`running` — an HTTP server (port 0: any free port; ``.url``).
"""

from __future__ import annotations

from .data import BadRequest, NotFound
from .server import App, NavigatorServer, Response, bind, make_app, make_server, running, serve

__all__ = [
    "App",
    "BadRequest",
    "NavigatorServer",
    "NotFound",
    "Response",
    "bind",
    "make_app",
    "make_server",
    "running",
    "serve",
]
