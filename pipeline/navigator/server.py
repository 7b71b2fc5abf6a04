"""The navigator's web server: routing, validation of the URL, errors, and the HTTP server
(the standard library's ``ThreadingHTTPServer``: a local, read-only page for a few users needs
no framework).

:class:`App` turns a path and query into a :class:`Response` (testable without a socket);
:func:`make_server` puts it behind an HTTP server; :func:`serve` runs that until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .. import db
from ..errors import MapError, UsageError
from . import assets, data, guard, pages
from .data import BadRequest, NotFound
from .plots import Figures

log = logging.getLogger(__name__)

_H2O = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_INT = re.compile(r"^[0-9]{1,9}$")
_NAME = re.compile(r"^[a-z_]{1,48}$")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict = field(default_factory=dict)


def _html(text: str | bytes, status: int = 200) -> Response:
    body = text if isinstance(text, bytes) else text.encode("utf-8")
    return Response(status, "text/html; charset=utf-8", body, {"Cache-Control": "no-store"})


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":"))


def _json(value, status: int = 200, text: str | None = None) -> Response:
    body = (_dumps(value) if text is None else text).encode("utf-8")
    return Response(status, "application/json; charset=utf-8", body, {"Cache-Control": "no-store"})


def _png(png: bytes) -> Response:
    return Response(200, "image/png", png, {"Cache-Control": "no-cache", "ETag": f'"{hashlib.sha1(png).hexdigest()}"'})


def _h2o(text: str) -> str:
    if not _H2O.match(text):
        raise BadRequest(f"{text!r} is not a water-restriction id (letters, digits, '_', '-', '.')")
    return text


def _int(text: str, what: str) -> int:
    if not _INT.match(text):
        raise BadRequest(f"{what} must be a whole number, not {text!r}")
    return int(text)


def _params(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ValueError as e:
        raise BadRequest(f"malformed query string: {e}") from e
    out = {}
    for k, v in parsed.items():
        if len(v) > 1:
            raise BadRequest(f"parameter {k!r} given {len(v)} times")
        out[k] = v[0]
    return out


def _page(params: dict) -> int:
    if "page" not in params:
        return 1
    page = _int(params["page"], "page")
    if page < 1:
        raise BadRequest("page must be 1 or more")
    return page


def _condition(params: dict, conditions: list[dict]) -> str | None:
    from ..analysis.conditions import CONDITIONS

    if "condition" in params:
        c = params["condition"]
        if c not in CONDITIONS:
            raise BadRequest(f"unknown trial condition {c!r} (one of: {', '.join(CONDITIONS)})")
        return c
    with_trials = [c["name"] for c in conditions if c["trials"] > 0]
    return with_trials[0] if with_trials else (conditions[0]["name"] if conditions else None)


def where_label() -> str:
    """'embedded PostgreSQL · map_v2_': where the pages come from (no password in it)."""
    lab = db.import_module("lab")
    schema = lab.Subject.database or ""
    prefix = schema[: -len("lab")] if schema.endswith("lab") else schema
    target = db.target()
    name = "embedded PostgreSQL" if target.embedded else f"{target.backend} {target.host}"
    return f"{name} · {prefix}"


class App:
    """The navigator without a socket: :meth:`handle` answers one GET."""

    def __init__(self, figure_cache_mb: int = 256):
        bind()
        self.gate = guard.install(db.connect())
        self.figures = Figures(max_bytes=figure_cache_mb * 2**20)
        self.where = where_label()
        self.routes = [
            (re.compile(r"^/$"), self.subjects_page),
            (re.compile(r"^/subject/([^/]+)$"), self.subject_page),
            (re.compile(r"^/subject/([^/]+)/session/([^/]+)$"), self.session_page),
            (re.compile(r"^/subject/([^/]+)/session/([^/]+)/figure/([^/]+)\.png$"), self.session_figure),
            (re.compile(r"^/subject/([^/]+)/session/([^/]+)/probe/([^/]+)$"), self.probe_page),
            (re.compile(r"^/subject/([^/]+)/session/([^/]+)/probe/([^/]+)/figure/([^/]+)\.png$"), self.probe_figure),
            (re.compile(r"^/subject/([^/]+)/session/([^/]+)/probe/([^/]+)/unit/([^/]+)$"), self.unit_page),
            (
                re.compile(r"^/subject/([^/]+)/session/([^/]+)/probe/([^/]+)/unit/([^/]+)/figure/([^/]+)\.png$"),
                self.unit_figure,
            ),
            (re.compile(r"^/api/subjects$"), self.api_subjects),
            (re.compile(r"^/api/subject/([^/]+)$"), self.api_subject),
            (re.compile(r"^/api/subject/([^/]+)/sessions$"), self.api_subject),
            (re.compile(r"^/api/subject/([^/]+)/session/([^/]+)$"), self.api_session),
            (re.compile(r"^/api/subject/([^/]+)/session/([^/]+)/trials$"), self.api_trials),
            (re.compile(r"^/api/subject/([^/]+)/session/([^/]+)/probe/([^/]+)$"), self.api_probe),
            (re.compile(r"^/api/subject/([^/]+)/session/([^/]+)/probe/([^/]+)/units$"), self.api_units),
            (re.compile(r"^/api/subject/([^/]+)/session/([^/]+)/probe/([^/]+)/unit/([^/]+)$"), self.api_unit),
            (re.compile(r"^/static/nav\.css$"), lambda p: _static(assets.CSS, "text/css; charset=utf-8")),
            (re.compile(r"^/static/nav\.js$"), lambda p: _static(assets.JS, "text/javascript; charset=utf-8")),
            (re.compile(r"^/favicon\.ico$"), lambda p: Response(204, "image/x-icon", b"")),
        ]

    # -- dispatch ----------------------------------------------------------------------------------

    def handle(self, target: str) -> Response:
        """Answer ``GET target`` (path and query); never raises."""
        api = False
        try:
            parts = urlsplit(target)
            path = parts.path
            api = path.startswith("/api/")
            if len(path) > 1 and path.endswith("/"):  # one address per page (relative links rely on it)
                canonical = (path.rstrip("/") or "/") + (f"?{parts.query}" if parts.query else "")
                return Response(301, "text/plain; charset=utf-8", b"", {"Location": canonical})
            params = _params(parts.query)
            for pattern, handler in self.routes:
                m = pattern.match(path)
                if m:
                    args = [unquote(a, errors="strict") for a in m.groups()]
                    with guard.request_scope():
                        return handler(params, *args)
            raise NotFound(f"no page at {path}")
        except NotFound as e:
            return self.error(404, str(e), api)
        except BadRequest as e:
            return self.error(400, str(e), api)
        except UnicodeDecodeError:
            return self.error(400, "the address is not valid UTF-8", api)
        except Exception:
            log.exception("navigator: %s failed", target)
            return self.error(500, "Something went wrong on the server; the details are in its log.", api)

    def error(self, status: int, message: str, api: bool) -> Response:
        if api:
            return _json({"error": message, "status": status}, status)
        return _html(pages.error_page(status, message, self.where), status)

    # -- pages -------------------------------------------------------------------------------------

    def subjects_page(self, params):
        return _html(pages.subjects_page(data.subjects(), self.where))

    def subject_page(self, params, h2o):
        return _html(pages.subject_page(data.subject_sessions(_h2o(h2o)), self.where))

    def session_page(self, params, h2o, n):
        h2o, n, page = _h2o(h2o), _int(n, "session"), _page(params)
        d = data.session_detail(h2o, n, page)
        return _html(pages.session_page(d, d["trials"], self.where))

    def probe_page(self, params, h2o, n, i):
        h2o, n, i = _h2o(h2o), _int(n, "session"), _int(i, "probe")
        d = data.probe_detail(h2o, n, i, units=True)
        return _html(pages.probe_page(d, d["units"], self.where))

    def unit_page(self, params, h2o, n, i, u):
        h2o, n, i, u = _h2o(h2o), _int(n, "session"), _int(i, "probe"), _int(u, "unit")
        d = data.unit_detail(h2o, n, i, u)
        return _html(pages.unit_page(d, _condition(params, d["conditions"]), self.where))

    # -- figures -----------------------------------------------------------------------------------

    def session_figure(self, params, h2o, n, name):
        h2o, n, name = _h2o(h2o), _int(n, "session"), _figure_name(name)
        _, row = data._session_row(h2o, n)
        return _png(self.figures.session(row, name))

    def probe_figure(self, params, h2o, n, i, name):
        h2o, n, i, name = _h2o(h2o), _int(n, "session"), _int(i, "probe"), _figure_name(name)
        return _png(self.figures.probe(data.probe_key(h2o, n, i), name))

    def unit_figure(self, params, h2o, n, i, u, name):
        h2o, n, i, u, name = _h2o(h2o), _int(n, "session"), _int(i, "probe"), _int(u, "unit"), _figure_name(name)
        key = data.probe_key(h2o, n, i)
        condition = None
        if name == "condition":
            if "condition" not in params:
                raise BadRequest("the condition figure needs ?condition=<trial condition>")
            condition = _condition(params, [])
        return _png(self.figures.unit(key, u, name, condition))

    # -- JSON --------------------------------------------------------------------------------------

    def api_subjects(self, params):
        return _json(data.subjects())

    def api_subject(self, params, h2o):
        return _json(data.subject_sessions(_h2o(h2o)))

    def api_session(self, params, h2o, n):
        return _json(data.session_detail(_h2o(h2o), _int(n, "session")))

    def api_trials(self, params, h2o, n):
        return _json(data.session_trials(_h2o(h2o), _int(n, "session"), _page(params)))

    def api_probe(self, params, h2o, n, i):
        return _json(data.probe_detail(_h2o(h2o), _int(n, "session"), _int(i, "probe")))

    def api_units(self, params, h2o, n, i):
        d = data.probe_units(_h2o(h2o), _int(n, "session"), _int(i, "probe"))
        # {"probe": ..., "units": [...]}, the units written column by column (see data.UnitTable.json)
        return _json(None, text=f'{{"probe":{_dumps(d["probe"])},"units":{d["units"].json()}}}')

    def api_unit(self, params, h2o, n, i, u):
        return _json(data.unit_detail(_h2o(h2o), _int(n, "session"), _int(i, "probe"), _int(u, "unit")))


def _figure_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(f"{name!r} is not a figure name")
    return name


def _static(text: str, content_type: str) -> Response:
    return Response(200, content_type, text.encode("utf-8"), {"Cache-Control": "max-age=300"})


# --- binding to the database, read-only -------------------------------------------------------------


def bind() -> list[str]:
    """Bind every schema module whose schema exists on the configured database (never creating a
    schema or a table); returns the modules that have none (their tables count as empty).

    Raises :class:`~pipeline.errors.UsageError` when there is no ``lab``/``experiment`` schema:
    nothing to browse."""
    import datajoint as dj

    conn = db.connect()
    missing = [m for m in db.SCHEMA_MODULE_ORDER if _bound(m) is None]
    if missing:
        existing = set(dj.list_schemas(connection=conn))
        for m in list(missing):
            name = db.schema_name(m)
            if name in existing:
                db.schemas()[m].activate(name, connection=conn, create_schema=False, create_tables=False)
                missing.remove(m)
        if missing:
            db.auto_activate = False  # using a missing module's table must not create its schema
    if {"lab", "experiment"} & set(missing):
        raise UsageError(
            f"no MAP pipeline schemas '{db.schema_name('lab')}', '{db.schema_name('experiment')}' on {db.target()}: "
            "nothing to browse (check the schema prefix: --prefix, MAP_SCHEMA_PREFIX or the schema_prefix setting; "
            "`mapshell demo` makes sample data under map_demo_)"
        )
    return missing


def _bound(module: str):
    db.import_module(module)
    return db.schemas()[module].database


def _read_only_session() -> None:
    """Ask the server itself to refuse writes on this connection (PostgreSQL and MySQL/MariaDB)."""
    conn = db.connect()
    sql = (
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
        if conn.adapter.backend == "postgresql"
        else "SET SESSION TRANSACTION READ ONLY"
    )
    conn.query(sql)


# --- HTTP -----------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "MAPNavigator/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802  (http.server's naming)
        self._answer(head=False)

    def do_HEAD(self):  # noqa: N802
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        srv: NavigatorServer = self.server  # type: ignore[assignment]
        if not srv.host_allowed(self.headers.get("Host", "")):
            r = srv.app.error(400, "unexpected Host header (the navigator answers only its own address)", False)
        elif len(self.path) > 2048:
            r = srv.app.error(400, "address too long", False)
        else:
            r = srv.app.handle(self.path)
        etag = r.headers.get("ETag")
        if etag and self.headers.get("If-None-Match") == etag:
            r = Response(304, r.content_type, b"", {"ETag": etag, "Cache-Control": r.headers.get("Cache-Control", "")})
        self.send_response(r.status)
        self.send_header("Content-Type", r.content_type)
        self.send_header("Content-Length", str(len(r.body)))
        for k, v in {**SECURITY_HEADERS, **r.headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and r.status != 304:
            self.wfile.write(r.body)

    def log_message(self, format, *args):  # noqa: A002  (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class NavigatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that carries the :class:`App`; ``url`` is its address."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, app: App):
        self.app = app
        super().__init__(address, Handler)
        host, port = self.server_address[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        self._loopback = _is_loopback(host)
        self._names = {"localhost", "127.0.0.1", "[::1]", host.lower(), f"[{host.lower()}]"}

    def handle_error(self, request, client_address):
        """A browser that went away mid-answer is normal; anything else goes to the log (not stderr)."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("navigator: %s closed the connection early", client_address[0])
        else:
            log.error("navigator: request from %s failed", client_address[0], exc_info=True)

    def host_allowed(self, header: str) -> bool:
        """Bound to loopback, only requests addressed to it (no DNS rebinding from a web page)."""
        if not self._loopback:
            return True
        name = header.strip().lower()
        if name.startswith("["):
            name = name.split("]")[0] + "]"
        else:
            name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        return name in self._names


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def make_app(figure_cache_mb: int = 256) -> App:
    """The navigator on the configured database (schemas bound read-only), without a socket."""
    return App(figure_cache_mb=figure_cache_mb)


def make_server(host: str = "127.0.0.1", port: int = 8765, app: App | None = None) -> NavigatorServer:
    """An HTTP server for the navigator (not yet serving; port 0: any free port, see ``.url``)."""
    app = app or make_app()
    try:
        return NavigatorServer((host, int(port)), app)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another --port/--host)") from e


@contextlib.contextmanager
def running(host: str = "127.0.0.1", port: int = 0, app: App | None = None):
    """A navigator serving in a background thread for the duration of a ``with`` (tests, benchmarks)."""
    server = make_server(host, port, app)
    thread = threading.Thread(target=server.serve_forever, name="navigator", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def serve(host: str = "127.0.0.1", port: int = 8765, ready=None) -> None:
    """Serve the navigator until Ctrl-C (then return). Prints nothing; ``ready(url)`` is called once
    it listens. Raises :class:`~pipeline.errors.MapError` (one line) when the database cannot be
    reached, has no pipeline schemas, or the port is taken."""
    app = make_app()
    try:
        _read_only_session()
    except MapError:
        raise
    except Exception as e:  # an old server without the statement: the gate still refuses writes
        log.warning("navigator: could not make the database session read-only (%s)", e)
    server = make_server(host, port, app)
    try:
        if ready is not None:
            ready(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
