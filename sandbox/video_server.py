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
import threading
from typing import Any

from sandbox.http_base import Reply, Request, SimulatorServer, json_reply
from sandbox.video import VideoData

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20


def _body(code: str, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


class VideoServer(SimulatorServer):
    server_version = "VMS/3.2"
    thread_name = "video-server"

    def __init__(self, data: VideoData, host: str = "127.0.0.1", port: int = 0,
                 error_rate: float = 0.0, seed: int = 0):
        super().__init__(host, port)
        self.data = data
        self._lock = threading.Lock()
        self.error_rate = error_rate
        self._rng = random.Random(f"video-faults:{seed}")
        self.requests = {"devices": 0, "alarms": 0, "faults": 0}

    def route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if path.startswith("/_sandbox/"):
            return json_reply(*self.admin(method, path, request.body))
        if method == "GET" and path in ("/vms/api/devices", "/vms/api/alarms"):
            fault = self.fault("devices" if path.endswith("devices") else "alarms")
            return json_reply(*(fault or self.handle(path, request.query)))
        return json_reply(404, {"code": "404", "msg": f"not found: {method} {path}", "data": None})

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
                    "alarms": {a: {"device_id": t.device_id, "defects": sorted(t.defects),
                                   "incident_id": t.incident_id}
                               for a, t in self.data.alarm_truth.items()},
                    "published": sorted(self.data.published),
                }
        if path == "/_sandbox/advance" and method == "POST":
            payload = json.loads(body) if body else {}
            return 200, self.data.advance(alarms=payload.get("alarms"))
        return 404, {"error": f"no admin endpoint {method} {path}"}
