"""The HTTP scaffolding the platform simulators share.

Each simulator (hotline, grid events API, video API) is a `SimulatorServer`: this
module owns the listening socket (stdlib ThreadingHTTPServer in a background
thread), its start/stop, reading a request and writing the reply; the simulator
only says what it answers, in `route`. What tells the platforms apart on the wire
(their Server header, their JSON spacing, Nagle) stays with each simulator.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass
class Reply:
    """One HTTP response: status, body, and headers beyond Content-Type/-Length."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None, *,
               compact: bool = True) -> Reply:
    """`payload` as UTF-8 JSON. `compact` drops the blanks json.dumps puts after `,` and
    `:`; a platform that answers with them (the grid API) passes compact=False."""
    separators = (",", ":") if compact else None
    body = json.dumps(payload, ensure_ascii=False, separators=separators).encode("utf-8")
    return Reply(status, body, headers=headers or {})


@dataclass(frozen=True)
class Request:
    """What `SimulatorServer.route` gets of one request."""

    method: str  # GET or POST
    path: str  # without the query string and any trailing slash ("/" at the least)
    query: dict[str, list[str]]  # parse_qs, blank values kept
    body: bytes  # b"" when there is none
    headers: Message

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


class SimulatorServer:
    """A simulator listening on host:port (port 0 = any free port) once started."""

    server_version = "Simulator/1.0"  # the Server header, as the real platform sends it
    thread_name = "simulator-server"
    disable_nagle_algorithm = False  # see _Handler.setup

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._host, self._port = host, port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, request: Request) -> Reply | None:
        """The reply to one request, or None to hang up without answering (a dropped
        connection, as a faulty platform does). Called from the handler threads."""
        raise NotImplementedError

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is None:
            self._httpd = _HTTPServer((self._host, self._port), self)
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host = str(self._httpd.server_address[0])
        # Listening on every interface: clients on this machine reach it on loopback.
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimulatorServer):
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up is part of the game, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        app = self.server.app
        self.server_version = app.server_version
        if app.disable_nagle_algorithm:
            # Headers and body go out as separate writes: without this, Nagle plus the
            # client's delayed ACK can hold the body back ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(method=method, path=parts.path.rstrip("/") or "/",
                          query=parse_qs(parts.query, keep_blank_values=True),
                          body=self.rfile.read(length) if length > 0 else b"",
                          headers=self.headers)
        reply = self.server.app.route(request)
        if reply is None:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except ConnectionError:
            self.close_connection = True
