"""The playground's local HTTP server: the page, a JSON API, and a Server-Sent Events stream.

The standard library's threaded HTTP server, one thread per connection: the page is a
single user's, on this machine, and SSE needs nothing more than a response that keeps
writing. Routes::

    GET  /                          the page            GET /static/NAME   its script, style
    GET  /api/info                  what can be chosen (data, optimizers, devices, limits)
    POST /api/runs                  settings -> a new run (paused), its data points
    GET  /api/runs/ID/events        the run's pictures and epoch records, as they come (SSE)
    POST /api/runs/ID/control       {"action": "play" | "pause" | "step" | "stop"}
    POST /api/runs/ID/settings      {"lr", "l1", "l2"}: changed while it trains
    POST /api/runs/ID/checkpoint    the run as a .safetensors file

A local server is still reachable by any web page the user opens: it answers only
requests whose ``Host`` is its own address (DNS rebinding), takes state-changing requests
only as POST with a JSON body from its own ``Origin`` (cross-site forms cannot send
JSON), bounds every body and value and the time a request may take to arrive
(:data:`REQUEST_S`), reads no file but its own page and the DATA it was started with, and
runs at most :data:`~.session.LIMITS` ``["runs"]`` runs at once.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from .. import __version__, activations, optimizers
from . import views
from .session import DEFAULTS, LIMITS, BadRequest, Session, Source, check_settings, devices

MAX_BODY = 64 * 1024
HEARTBEAT_S = 1.0  # a silent stream still writes this often, so a vanished page is noticed
REQUEST_S = 30.0
"""The most a connection may take to send one request (waiting, line, headers and body),
however slowly it trickles: then it is closed and its thread freed."""
STATIC = {"index.html": "text/html; charset=utf-8", "playground.js": "text/javascript; charset=utf-8",
          "playground.css": "text/css; charset=utf-8"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_RUN_PATH = re.compile(r"^/api/runs/([A-Za-z0-9_-]{1,64})/(events|control|settings|checkpoint)$")


class PlaygroundServer(ThreadingHTTPServer):
    """The server and what it holds: the data source and the runs by id."""

    daemon_threads = True  # a stream left open never keeps the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], source: Source) -> None:
        # an IPv6 literal (::1, ::) needs an IPv6 socket; names and IPv4 addresses an IPv4 one
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)
        self.source = source
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        host, port = self.server_address[:2]
        self.port = port
        self.local = host in LOOPBACK
        # Names this server answers to besides IP literals (a DNS-rebinding page reaches it
        # under a domain name of the attacker's, never under an address): loopback only, or
        # on another address also this machine's own names.
        self.names = {"localhost"} if self.local else {"localhost", socket.gethostname().lower(),
                                                      socket.getfqdn().lower()}

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a page closed mid-answer: nothing to report
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def new_session(self, payload: Any) -> Session:
        settings = check_settings(payload, self.source)
        with self.lock:
            self.sessions = {k: s for k, s in self.sessions.items() if s.thread.is_alive()}
            if len(self.sessions) >= LIMITS["runs"]:
                raise BadRequest(f"{LIMITS['runs']} runs are going already: close another playground tab "
                                 "(or wait a few seconds for a closed one to stop)", 429)
            sid = secrets.token_urlsafe(9)
            session = Session(sid, settings, self.source)
            self.sessions[sid] = session
        return session

    def session(self, sid: str) -> Session:
        with self.lock:
            found = self.sessions.get(sid)
        if found is None:
            raise BadRequest("no such run (it has ended): reset to start another", 404)
        return found

    def stop_all(self) -> None:
        with self.lock:
            sessions = list(self.sessions.values())
        for s in sessions:
            try:
                s.control("stop")
            except BadRequest:
                pass  # ended already
        for s in sessions:
            s.thread.join(timeout=5)

    def answers_to(self, host_header: str) -> bool:
        """Whether a request's ``Host`` names this server: its port, and an IP literal (a
        loopback one when listening on loopback) or one of :attr:`names`."""
        name, _, port = host_header.rpartition(":")
        if port != str(self.port) or not name:
            return False
        name = name.lower()
        if name in self.names:
            return True
        try:
            address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return address.is_loopback or not self.local

    def info(self) -> dict:
        return {"version": __version__, "data": self.source.describe(), "optimizers": list(optimizers.NAMES),
                "full_batch": list(optimizers.names(full_batch=True)),
                "activations": list(activations.HIDDEN), "devices": devices(),
                "limits": LIMITS, "defaults": DEFAULTS, "class_colours": views.CLASS_COLOURS}


class Handler(BaseHTTPRequestHandler):
    server: PlaygroundServer
    protocol_version = "HTTP/1.1"
    server_version = f"backprop-playground/{__version__}"
    timeout = 30  # a client that stops sending mid-request frees its thread

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # read through the deadline instead (the socket stays open)
        self.rfile = io.BufferedReader(_Deadline(self))

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + REQUEST_S  # for this request, the wait for it included
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the address and errors, not every request

    # -- answers --------------------------------------------------------------------
    def _send(self, status: int, body: bytes, kind: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                                    "frame-ancestors 'none'")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        # no NaN or Infinity: browsers refuse them (a value that has one is a bug: a 500)
        self._send(status, json.dumps(value, default=str, allow_nan=False).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True
        self._json(status, {"error": message})

    def _bug(self) -> None:
        traceback.print_exc()
        kind = sys.exc_info()[0].__name__
        try:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"the server failed ({kind}): see its terminal")
        except OSError:
            pass  # the page has gone too

    # -- checks -----------------------------------------------------------------------
    def _allowed(self) -> bool:
        if not self.server.answers_to(self.headers.get("Host", "")):
            self._error(HTTPStatus.MISDIRECTED_REQUEST,
                        f"this server answers to its own address only: open {self.server.url}")
            return False
        return True

    def _body(self) -> Any:
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{self.headers.get('Host', '').lower()}":
            raise BadRequest(f"requests from {origin[:100]} are refused: use the playground's own page", 403)
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise BadRequest("send the body as application/json", 415)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest("a Content-Length is needed", 411)
        if int(length) > MAX_BODY:
            raise BadRequest(f"the body is over {MAX_BODY} bytes", 413)
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON") from None
        except RecursionError:  # the parser recurses once per [ or {: settings nest two deep
            raise BadRequest("the body nests too deeply: send the settings object") from None

    # -- methods ------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._answer(self._get)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route) -> None:
        """Checks the Host, then ``route(path)``; its refusals as 4xx, a bug as a 500."""
        if not self._allowed():
            return
        try:
            try:
                route(self.path.split("?", 1)[0])
            except BadRequest as exc:
                self._error(exc.status, str(exc))
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the page went away, or took too long to send: nobody to tell
        except Exception:  # noqa: BLE001 - a bug: its traceback on the terminal, a 500 to the page
            self._bug()

    def _get(self, path: str) -> None:
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/info":
            return self._json(200, self.server.info())
        m = _RUN_PATH.match(path)
        if m and m.group(2) == "events":
            return self._stream(self.server.session(m.group(1)))
        if m:
            raise BadRequest(f"{path} takes POST", 405)
        raise BadRequest(f"no such page: {path[:100]}", 404)

    def _post(self, path: str) -> None:
        payload = self._body()
        if path == "/api/runs":
            return self._json(201, self.server.new_session(payload).describe())
        m = _RUN_PATH.match(path)
        if not m or m.group(2) == "events":
            raise BadRequest(f"no such action: {path[:100]}", 404)
        session = self.server.session(m.group(1))
        if m.group(2) == "control":
            if not isinstance(payload, dict) or set(payload) != {"action"}:
                raise BadRequest('send {"action": "play" | "pause" | "step" | "stop"}')
            session.control(payload["action"])
            return self._json(200, {"state": session.state})
        if m.group(2) == "settings":
            return self._json(200, session.change(payload))
        data = session.checkpoint()
        name = f"playground-{session.settings['data']}.safetensors"
        return self._send(200, data, "application/octet-stream",
                          {"Content-Disposition": f'attachment; filename="{name}"'})

    def do_PUT(self) -> None:
        self._refuse()

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def _refuse(self) -> None:
        if self._allowed():
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not used here: GET or POST")

    # -- files and the stream ---------------------------------------------------------
    def _static(self, name: str) -> None:
        if name not in STATIC:  # a fixed list: no path reaches another file
            raise BadRequest(f"no such file: {name[:100]}", 404)
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        self._send(200, body, STATIC[name])

    def _stream(self, session: Session) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if self.command == "HEAD":
            return  # the headers only: a HEAD neither streams nor takes the run over
        token = session.attach()
        seen = -1
        try:
            while True:
                try:
                    seen, event = session.next_event(token, seen, HEARTBEAT_S)
                except LookupError as gone:
                    self.wfile.write(f"event: end\ndata: {json.dumps(str(gone))}\n\n".encode())
                    self.wfile.flush()
                    return
                self.wfile.write(b": beat\n\n" if event is None else f"data: {event}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the page went away
        finally:
            session.detach(token)


class _Deadline(io.RawIOBase):
    """A handler's connection, read with an overall deadline (``handler.deadline``) besides the
    per-read timeout: a client trickling a byte at a time cannot hold a thread for long."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock, timeout = self.handler.connection, self.handler.timeout
        left = self.handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"a request took over {REQUEST_S:g} s to arrive")
        sock.settimeout(min(left, timeout))
        try:
            return sock.recv_into(buffer)
        finally:
            sock.settimeout(timeout)  # writes (a stream) keep the plain timeout


def make_server(host: str, port: int, data: str | None, target: str | None = None) -> PlaygroundServer:
    """A server bound to ``host:port`` (port 0: a free one) offering ``data`` besides the
    generated sets (``target``: its target column, as ``backprop train --target``)."""
    return PlaygroundServer((host, port), Source(data, target))
