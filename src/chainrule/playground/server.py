"""The playground's web server: the standard library's ``ThreadingHTTPServer`` in a thread.

Routes (every answer carries ``Cache-Control`` and ``X-Content-Type-Options: nosniff``)::

    GET  /  /static/app.js  /static/style.css  /favicon.ico    the page (works offline)
    GET  /api/state                  config, network layout, data points, current frame, losses
    GET  /api/events                 Server-Sent Events: "frame" events, ": keep-alive" comments
    GET  /api/model.npz              the current network as a chainrule model file
    GET  /api/trace.md|.html?split=train&index=0     explain trace of one sample
    POST /api/play  /api/pause  /api/step  /api/reset  (JSON)
    POST /api/config                 a partial config as JSON
    POST /api/backprop               {"split": "train", "index": 3}: backprop mode's walk
    POST /api/upload?filename=a.csv[&label=COLUMN]    the CSV file as the body (text/csv)

Safety (docs/playground.md, "Safety", says why): the server binds a loopback address; any
other raises ConfigError unless ``allow_remote=True``, which warns. Every request must carry one
Host header naming this server (127.0.0.1, localhost or ::1 and the right port; with a wildcard
bind, any IP address literal) and at most one Origin header, which must be such an origin:
others get 403, which defeats DNS rebinding and cross-site requests. POSTs need a JSON (or,
for uploads, text/csv) Content-Type, which a plain cross-site form cannot send (415). Bodies
are size-limited (413); JSON nested too deeply or with an over-long integer gets 400. Every
request that passes the guard gets an answer (500 for an unexpected error), and the listen
backlog takes a burst of hundreds of connections. ``close()`` shuts every connection and ends
every thread within a second.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
import time
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import ChainruleError, ConfigError
from .session import Session
from .upload import MAX_UPLOAD

MAX_JSON = 64 * 1024
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".ico": "image/x-icon", ".png": "image/png",
          ".svg": "image/svg+xml"}
CSP = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self';"
       " script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def load_static() -> dict[str, bytes]:
    """The front end's files (name -> bytes), from the package."""
    folder = resources.files("chainrule.playground") / "static"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and "." + entry.name.rsplit(".", 1)[-1] in _TYPES}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """"127.0.0.1:8000" -> ("127.0.0.1", 8000); "[::1]:80" -> ("::1", 80); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] if rest else None
    else:
        name, _, port = value.partition(":")
        if ":" in port:
            return None
        port = port if _ else None
    if port is not None and not port.isdigit():
        return None
    return name.lower(), int(port) if port is not None else None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # listen() backlog: the standard library's 5 makes the kernel drop the connections of a burst
    # of clients (a page opening, a test's threads), which then wait 1, 3, 7 s for a SYN retry.
    # The kernel caps it at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address, playground: Playground) -> None:
        self.playground = playground
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.connections_lock = threading.Lock()
        self.closing = False
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self.connections_lock:
            self.connections[conn] = threading.current_thread()
        if self.closing:  # arrived while closing: end it now
            _shut(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self.connections_lock:
            self.connections.pop(conn, None)

    def handle_error(self, request, client_address) -> None:
        if not self.closing and self.playground.verbose:
            super().handle_error(request, client_address)


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server_version = "chainrule-playground"
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is closed after this many seconds

    # --- plumbing -------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format, *args) -> None:
        if self.server.playground.verbose:
            sys.stderr.write("playground: " + (format % args) + "\n")

    @property
    def pg(self) -> Playground:
        return self.server.playground

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    # --- the guard ------------------------------------------------------------------------
    def _guard(self) -> bool:
        for name in ("Host", "Origin"):
            if len(self.headers.get_all(name, [])) > 1:
                self.close_connection = True
                self._error(400, f"bad request: more than one {name} header")
                return False
        host = self.headers.get("Host")
        if host is None or not self.pg.host_allowed(host):
            self.close_connection = True
            self._error(403, f"forbidden: the Host header {host!r} does not name this server")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and not self.pg.origin_allowed(origin):
            self.close_connection = True
            self._error(403, f"forbidden: requests from origin {origin!r} are not accepted")
            return False
        return True

    def _body(self, limit: int) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(411, "send the body with a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, "bad Content-Length")
            return None
        if length > limit:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._error(413, f"the body has {length:,} bytes; at most {limit:,} are accepted")
            return None
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, handler) -> None:
        """Guard, then handle; every request that passes the guard gets an answer."""
        if not self._guard():
            return
        self._started = False
        try:
            handler()
        except ChainruleError as exc:
            self._error(400, str(exc))
        except RecursionError:  # a value nested deeper than Python's stack (JSON is parsed earlier)
            self._error(400, "the request nests too deeply")
        except Exception as exc:
            if self._started:  # the answer is half sent: only closing the connection is left
                self.close_connection = True
                raise
            if self.pg.verbose:
                self.log_error("%s", traceback.format_exc())
            self._error(500, f"internal error ({type(exc).__name__}: {exc})")

    # --- GET ------------------------------------------------------------------------------
    def _get(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        static = self.pg.static
        if path in ("/", "/index.html"):
            self._send(200, static["index.html"], _TYPES[".html"], {"Content-Security-Policy": CSP})
        elif path == "/favicon.ico":
            self._send(200, static["favicon.ico"], _TYPES[".ico"])
        elif path.startswith("/static/") and path[8:] in static:
            name = path[8:]
            self._send(200, static[name], _TYPES["." + name.rsplit(".", 1)[-1]])
        elif path == "/api/state":
            self._json(200, self.pg.session.state())
        elif path == "/api/events":
            self._events()
        elif path == "/api/model.npz":
            body = self.pg.session.model_bytes()
            self._send(200, body, "application/octet-stream",
                       {"Content-Disposition": 'attachment; filename="playground.npz"'})
        elif path in ("/api/trace.md", "/api/trace.html"):
            fmt = "markdown" if path.endswith(".md") else "html"
            split = query.get("split", ["train"])[0]
            index = _int(query.get("index", ["0"])[0])
            text = self.pg.session.trace(split, index, fmt)
            kind = "text/markdown; charset=utf-8" if fmt == "markdown" else _TYPES[".html"]
            self._send(200, text.encode("utf-8"), kind,
                       {"Content-Disposition": f'attachment; filename="playground-trace{path[10:]}"'})
        else:
            self._error(404, f"no such page: {path}")

    # --- POST -----------------------------------------------------------------------------
    def _post(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        wanted = "text/csv" if path == "/api/upload" else "application/json"
        if kind != wanted:
            self.close_connection = True
            self._error(415, f"POST {path} takes Content-Type {wanted}, got {kind or 'none'!r}")
            return
        body = self._body(self.pg.max_upload if path == "/api/upload" else MAX_JSON)
        if body is None:
            return
        session = self.pg.session
        if path == "/api/upload":
            state = session.upload_csv(body, query.get("filename", [None])[0], query.get("label", [None])[0])
            self._json(200, state)
            return
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except RecursionError:
            self._error(400, "the body is not accepted: its JSON nests too deeply")
            return
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
            self._error(400, f"the body is not valid JSON ({exc})")
            return
        if not isinstance(data, dict):
            self._error(400, "the body must be a JSON object")
            return
        if path == "/api/play":
            session.play()
            self._json(200, {"playing": session.playing, "error": session.error})
        elif path == "/api/pause":
            self._json(200, session.pause())
        elif path == "/api/step":
            self._json(200, session.step())
        elif path == "/api/reset":
            self._json(200, session.reset())
        elif path == "/api/config":
            self._json(200, session.configure(data))
        elif path == "/api/backprop":
            self._json(200, session.backprop(data.get("split", "train"), data.get("index", 0)))
        else:
            self._error(404, f"no such action: {path}")

    # --- the event stream -----------------------------------------------------------------
    def _events(self) -> None:
        self.close_connection = True
        self._started = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        self.end_headers()
        hub, server = self.pg.session.hub, self.server
        self.connection.settimeout(self.pg.write_timeout)  # a stalled tab is dropped, never waited on
        seq = max(hub.seq - 1, 0)  # start with the newest frame
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not server.closing:
                new, text = hub.wait(seq, self.pg.keepalive)
                if server.closing:
                    break
                if text is None:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    seq = new
                    self.wfile.write(f"id: {new}\nevent: frame\ndata: {text}\n\n".encode())
                self.wfile.flush()
        except (OSError, ValueError):
            pass


def _int(text: str):
    try:
        return int(text)
    except ValueError:
        return text


class Playground:
    """A running playground (what :func:`serve` returns).

    Attributes
    ----------
    url : str
        The page's address, e.g. ``http://127.0.0.1:8765/``.
    host, port : str, int
    session : Session
        The data, network and training thread behind the page.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: dict | None = None, *,
                 keepalive: float = 15.0, frame_interval: float = 1 / 15, max_upload: int = MAX_UPLOAD,
                 write_timeout: float = 10.0, verbose: bool = False, allow_remote: bool = False) -> None:
        if not isinstance(host, str):
            raise ConfigError(f"playground host: expected an address to bind such as '127.0.0.1', got {host!r}")
        if not is_loopback(host):
            if not allow_remote:
                raise ConfigError(
                    f"playground host: expected a loopback address (127.0.0.1, localhost or ::1), got {host!r};"
                    " anyone who can reach another address can control the page and read its data. Pass"
                    " allow_remote=True (the command line's --allow-remote) to bind it anyway")
            warnings.warn(f"the playground listens on {host or '0.0.0.0'!r}: anyone who can reach this address"
                          " can control the page, read its data and use this machine's CPU", RuntimeWarning,
                          stacklevel=3)
        self.keepalive, self.max_upload = float(keepalive), int(max_upload)
        self.write_timeout, self.verbose = float(write_timeout), verbose
        self.static = load_static()
        self.session = Session(config, frame_interval=frame_interval)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_PlaygroundServer", (_Server,), {"address_family": family})
        try:
            self._server = server_class((host, port), self)
        except BaseException:
            self.session.close()
            raise
        self.host = host
        self.port = self._server.server_address[1]
        shown = "127.0.0.1" if host in WILDCARDS else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="chainrule-playground-server", daemon=True)
        self._thread.start()
        self._closed = False

    # --- the guard's rules ----------------------------------------------------------------
    def host_allowed(self, value: str) -> bool:
        parts = _split_host(value)
        if parts is None:
            return False
        name, port = parts
        if port != self.port:
            return False
        if name in LOCAL_NAMES or name == self.host.lower():
            return True
        if self.host in WILDCARDS:
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    def origin_allowed(self, value: str) -> bool:
        try:
            url = urlsplit(value)
        except ValueError:
            return False
        return url.scheme == "http" and not url.path.strip("/") and self.host_allowed(url.netloc)

    # --- life -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop training, close every connection and end every thread (within a second)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + 1.0
        server = self._server
        server.closing = True
        self.session.close()
        server.shutdown()
        with server.connections_lock:
            open_connections = dict(server.connections)
        for conn in open_connections:
            _shut(conn)
        server.server_close()
        self._thread.join(max(deadline - time.monotonic(), 0.01))
        for thread in open_connections.values():
            thread.join(max(deadline - time.monotonic(), 0.01))

    def __enter__(self) -> Playground:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Playground {self.url}{' (closed)' if self._closed else ''}>"


def serve(host: str = "127.0.0.1", port: int = 0, config: dict | None = None, *, open_browser: bool = False,
          **options) -> Playground:
    """Start the playground in background threads and return its handle (``.url``, ``.close()``).

    Parameters
    ----------
    host : str
        Address to bind: 127.0.0.1 (the default) keeps the page to this machine; other loopback
        addresses (localhost, ::1, 127.x.y.z) are accepted, any other needs ``allow_remote=True``.
    port : int
        0 picks a free port.
    config : dict, optional
        Initial settings (see :data:`chainrule.playground.DEFAULTS`).
    open_browser : bool
        Open the page in the default web browser.
    **options
        ``keepalive`` (seconds between keep-alive comments of an idle event stream, 15),
        ``frame_interval`` (seconds between frames while playing, 1/15), ``max_upload`` (bytes),
        ``write_timeout`` (seconds a stalled client may block a write), ``verbose`` (log requests),
        ``allow_remote`` (bind a ``host`` other than a loopback address, with a ``RuntimeWarning``;
        without it such a host raises :class:`chainrule.ConfigError`).

    Examples
    --------
    >>> from chainrule.playground import serve
    >>> with serve(port=0) as pg:                       # doctest: +SKIP
    ...     print(pg.url)
    """
    playground = Playground(host, port, config, **options)
    if open_browser:
        import webbrowser

        webbrowser.open(playground.url)
    return playground
