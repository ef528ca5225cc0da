"""A strict local stand-in for a SaaS HTTP API: validates, records, answers like the real one.

``FakeService`` runs a threading HTTP server on 127.0.0.1 (a free port). A subclass
implements ``handle(request) -> Reply``; whatever the request gets wrong against the
documented wire format is answered with the service's real error *and* recorded in
``violations``, so a test can assert that guardrail sent nothing invalid. Tests script
failures with ``fail_next(...)`` (answered before validation, like an overloaded or
rate-limiting service), take it down with ``down = True`` (503) or make it hang
(``hang = True``: it reads the request and never answers).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        return (self.body or "").encode(), "text/plain; charset=utf-8"


class Invalid(Exception):
    """A request that breaks the wire format; carries the service's own error reply."""

    def __init__(self, reply: Reply, why: str):
        super().__init__(why)
        self.reply, self.why = reply, why


class FakeService:
    name = "fake"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.scripted: list[tuple[Reply, Any]] = []
        self.down = False
        self.hang = False
        self._release = threading.Event()
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                reply = service._dispatch(request)
                if reply is None:  # hanging: hold the connection until the test ends
                    service._release.wait(600)
                    return
                data, ctype = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- scripting -------------------------------------------------------------------

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1,
                  when: Any = None) -> None:
        """The next ``times`` requests (those for which ``when(request)`` is true, if
        given) get this answer, whatever they are."""
        with self._lock:
            self.scripted += [(Reply(status, body, dict(headers or {})), when) for _ in range(times)]

    def _dispatch(self, request: Request) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            index = next((i for i, (_, when) in enumerate(self.scripted) if when is None or when(request)), None)
            scripted = self.scripted.pop(index)[0] if index is not None else None
        if self.hang:
            return None
        if scripted is not None:
            return scripted
        if self.down:
            return Reply(503, "service unavailable")
        try:
            return self.handle(request)
        except Invalid as exc:
            with self._lock:
                self.violations.append(f"{request.method} {request.path}: {exc.why}")
            return exc.reply

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------

    @staticmethod
    def json_object(request: Request, invalid: Reply) -> dict:
        if "application/json" not in request.headers.get("content-type", ""):
            raise Invalid(invalid, f"Content-Type is {request.headers.get('content-type')!r}, not JSON")
        try:
            body = json.loads(request.body)
        except ValueError:
            raise Invalid(invalid, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Invalid(invalid, "the body is not a JSON object")
        return body

    def bodies(self, method: str | None = None, path_part: str = "") -> list[Any]:
        return [r.json for r in self.requests if (method is None or r.method == method) and path_part in r.path]

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check(condition: bool, reply: Reply, why: str) -> None:
    if not condition:
        raise Invalid(reply, why)


def string(body: dict, key: str, reply: Reply, *, required: bool = False, max_length: int | None = None,
           choices: tuple[str, ...] | None = None) -> None:
    """Validate one string field of a request body."""
    if key not in body or body[key] is None:
        check(not required, reply, f"{key} is required")
        return
    value = body[key]
    check(isinstance(value, str), reply, f"{key} must be a string, got {type(value).__name__}")
    check(not required or value != "", reply, f"{key} must not be empty")
    if max_length is not None:
        check(len(value) <= max_length, reply, f"{key} is {len(value)} characters, limit {max_length}")
    if choices is not None:
        check(value in choices, reply, f"{key} must be one of {', '.join(choices)}, got {value!r}")


def only_keys(body: dict, allowed: set[str], reply: Reply, where: str = "body") -> None:
    unknown = sorted(set(body) - allowed)
    check(not unknown, reply, f"unknown field(s) in {where}: {', '.join(unknown)}")


class Hanging:
    """A TCP server that accepts connections and never answers (a sink that hangs)."""

    def __init__(self) -> None:
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections: list[Any] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(conn)  # kept open, never read, never answered

    def close(self) -> None:
        self._stop = True
        for conn in self.connections:
            conn.close()
        self.socket.close()
