"""The video platform's HTTP API (shared/design/sources.md §4) over real sockets.

- `GET /vms/api/devices?page=1&size=500`: the device inventory, by deviceId;
- `GET /vms/api/alarms?startTime=<ms>&endTime=<ms>&page=1&size=500`: every alarm
  the publisher has published with startTime <= alarmTime <= endTime, by
  alarmTime then alarmId (the back-fill);
both answer `{"code": "0", "msg": "success", "data": {"list": [...], "total": n}}`.
Errors come as HTTP 200 with another code ("40001" bad parameter, "50001"
busy). `error_rate` makes that share of API requests fail, alternately with
HTTP 503 and with body code "50001", deterministically for a seed.

Administration under /_sandbox/: `GET health`, `GET truth`, `POST advance`.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.video import VideoData

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20


def _body(code: str, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


class VideoServer:
    def __init__(self, data: VideoData, host: str = "127.0.0.1", port: int = 0,
                 error_rate: float = 0.0, seed: int = 0):
        self.data = data
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self.error_rate = error_rate
        self._rng = random.Random(f"video-faults:{seed}")
        self.requests = {"devices": 0, "alarms": 0, "faults": 0}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> VideoServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self._host, self._port), _Handler, self)
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="video-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd, self._thread = None, None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fault(self, what: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            self.requests[what] += 1
            if self.error_rate <= 0 or self._rng.random() >= self.error_rate:
                return None
            self.requests["faults"] += 1
            if self.requests["faults"] % 2:
                return 503, {"error": "Service Unavailable"}
            return 200, _body("50001", "系统繁忙")

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def param(name: str) -> int | None:
            values = query.get(name)
            if not values or values[-1] == "":
                return None
            return int(values[-1])

        try:
            page = param("page")
            size = param("size")
            start, end = param("startTime"), param("endTime")
            page = 1 if page is None else page
            size = DEFAULT_PAGE_SIZE if size is None else size
        except ValueError:
            return 200, _body("40001", "page, size, startTime and endTime must be integers")
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            return 200, _body("40001", f"page >= 1 and 1 <= size <= {MAX_PAGE_SIZE}")
        if path == "/vms/api/devices":
            records, total = self.data.device_page(page, size)
            return 200, _body("0", "success", {"list": records, "total": total})
        if start is None or end is None:
            return 200, _body("40001", "startTime and endTime are required")
        selected = self.data.published_alarms(start, end)
        return 200, _body("0", "success", {"list": selected[(page - 1) * size: page * size],
                                           "total": len(selected)})

    def admin(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/_sandbox/health":
            return 200, {"ok": True}
        if path == "/_sandbox/truth" and method == "GET":
            with self.data.lock:
                return 200, {
                    "devices": {d: {"kind": t.kind, "grid_code": t.grid_code,
                                    "defects": sorted(t.defects)}
                                for d, t in self.data.device_truth.items()},
                    "alarms": {a: {"device_id": t.device_id, "defects": sorted(t.defects)}
                               for a, t in self.data.alarm_truth.items()},
                    "published": sorted(self.data.published),
                }
        if path == "/_sandbox/advance" and method == "POST":
            payload = json.loads(body) if body else {}
            return 200, self.data.advance(alarms=payload.get("alarms"))
        return 404, {"error": f"no admin endpoint {method} {path}"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 app: VideoServer):
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VMS/3.2"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if path.startswith("/_sandbox/"):
            self._send(*app.admin(method, path, body))
        elif method == "GET" and path in ("/vms/api/devices", "/vms/api/alarms"):
            fault = app.fault("devices" if path.endswith("devices") else "alarms")
            if fault is not None:
                self._send(*fault)
            else:
                self._send(*app.handle(path, parse_qs(parts.query, keep_blank_values=True)))
        else:
            self._send(404, {"code": "404", "msg": f"not found: {method} {path}", "data": None})

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            self.close_connection = True
