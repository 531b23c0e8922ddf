"""The 综治 platform's open API as a real HTTP server, with switchable faults.

Speaks shared/design/sources.md §5 over real sockets (sandbox.http_base), serving a
`ZongzhiData`:

- every request needs `X-Api-Key`; a missing or wrong key gets HTTP 403 with the
  envelope `{"success": false, "errorCode": "UNAUTHORIZED", …}`;
- `GET /openapi/v2/disputes?updatedSince=<ISO 8601>&limit=n[&nextToken=t]` (limit 1–500,
  default 200) → `{"success": true, "errorCode": null, "errorMessage": null,
  "result": {"items": [...], "nextToken": "..." | null}}`, ordered by updateTime then
  caseId, updatedSince inclusive. The first request takes a snapshot of what matches:
  the token is a server-side cursor into it, so pages never shift while it is
  followed (disputes updated meanwhile wait for the next read). A token older than
  `cursor_ttl_seconds` (default 600), or one the server does not know, gets HTTP 200
  with `errorCode: "CURSOR_EXPIRED"`;
- `GET /openapi/v2/mediation-orgs` → the whole list of committees in `result.items`.

Faults, deterministic for a seed and request sequence: `error_rate` of data requests
fail with one of `kinds` in turn (`rate_limited` = HTTP 200 with errorCode
RATE_LIMITED; `503` = HTTP 503 with Retry-After); `expire_every` = every n-th request
following a token finds it expired, whatever its age; `advance_during_paging` = every
disputes request first moves k disputes on.

Administration under /_sandbox/ (no key): `POST /_sandbox/advance {"disputes": n}`,
`GET|POST /_sandbox/faults`, `GET /_sandbox/stats`, `GET /_sandbox/truth`,
`GET /_sandbox/health`.

Run standalone: `python -m sandbox.zongzhi_server --port 8015 --scale 0.1 --days 7
--api-key K` prints the URL on stdout when it is ready.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.city import City
from sandbox.hotline12345 import HotlineData, now_local, parse_local
from sandbox.http_base import Reply, Request, SimulatorServer, json_reply
from sandbox.platform import DemoPlatform, run_until_interrupted
from sandbox.zongzhi import ZongzhiData

DISPUTES_PATH = "/openapi/v2/disputes"
ORGS_PATH = "/openapi/v2/mediation-orgs"
FAULT_KINDS = ("rate_limited", "503")
MAX_LIMIT = 500
DEFAULT_LIMIT = 200


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Deterministic for a seed."""

    error_rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after_seconds: int = 1
    cursor_ttl_seconds: float = 600.0
    expire_every: int | None = None
    advance_during_paging: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not 0.0 <= self.error_rate <= 1.0 or (self.error_rate and not self.kinds):
            raise ValueError(f"bad faults: rate {self.error_rate}, kinds {self.kinds}")
        if self.cursor_ttl_seconds <= 0 or (self.expire_every is not None and self.expire_every < 1):
            raise ValueError("cursor_ttl_seconds must be > 0 and expire_every >= 1")
        if self.retry_after_seconds < 0 or self.advance_during_paging < 0:
            raise ValueError("retry_after_seconds and advance_during_paging must be >= 0")

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Faults:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(obj) - names:
            raise ValueError(f"unknown fault settings {sorted(set(obj) - names)}")
        return cls(**obj)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "kinds": list(self.kinds)}


@dataclass
class _Cursor:
    items: list[dict[str, Any]]  # the snapshot the read began with
    offset: int
    issued: float  # time.monotonic()


def _envelope(status: int, result: Any = None, code: str | None = None, message: str | None = None,
              headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"success": code is None, "errorCode": code,
                               "errorMessage": message, "result": result}, headers)


class ZongzhiServer(SimulatorServer):
    """The platform, listening on host:port (port 0 = any free port) once started."""

    server_version = "ZZ-OpenAPI/2.3"
    thread_name = "zongzhi-server"
    disable_nagle_algorithm = True

    def __init__(self, data: ZongzhiData, api_key: str, faults: Faults | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(host, port)
        self.data = data
        self._api_key = api_key
        self._clock = clock or now_local
        self._lock = threading.RLock()
        self._cursors: dict[str, _Cursor] = {}
        self._stats: Counter[str] = Counter()
        self.set_faults(faults or Faults())

    # ---- control ---------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._fault_rng = random.Random(f"zongzhi-faults:{faults.seed}")
            self._follows = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def advance(self, n: int) -> list[str]:
        """Move n disputes on, stamped with the server's local time now."""
        with self._lock:
            changed = self.data.advance(n, self._clock())
            self._stats["disputes.advanced"] += len(changed)
            return changed

    # ---- the API ---------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if path.startswith("/_sandbox/"):
            return self.handle_admin(method, path, request.body)
        if method != "GET" or path not in (DISPUTES_PATH, ORGS_PATH):
            return _envelope(404, code="NOT_FOUND", message=f"no such API: {method} {path}")
        with self._lock:
            self._stats[f"requests.{path.rsplit('/', 1)[-1]}"] += 1
            if request.headers.get("X-Api-Key") != self._api_key:
                self._stats["rejected.key"] += 1
                return _envelope(403, code="UNAUTHORIZED", message="invalid or missing X-Api-Key")
            fault = self._fault()
            if fault == "rate_limited":
                return _envelope(200, code="RATE_LIMITED", message="请求过于频繁，请稍后再试")
            if fault == "503":
                return _envelope(503, code="SERVICE_UNAVAILABLE", message="服务暂不可用",
                                 headers={"Retry-After": str(self.faults.retry_after_seconds)})
            if path == ORGS_PATH:
                self._stats["records.served"] += len(self.data.orgs)
                return _envelope(200, {"items": list(self.data.orgs), "nextToken": None})
            return self._disputes(request.query)

    def _fault(self) -> str | None:
        f = self.faults
        if f.error_rate <= 0 or self._fault_rng.random() >= f.error_rate:
            return None
        kind = f.kinds[sum(self._stats[f"faults.{k}"] for k in FAULT_KINDS) % len(f.kinds)]
        self._stats[f"faults.{kind}"] += 1
        return kind

    def _disputes(self, query: dict[str, list[str]]) -> Reply:
        def param(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values and values[-1] != "" else None

        limit_text = param("limit") or str(DEFAULT_LIMIT)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            return self._bad(f"limit must be 1..{MAX_LIMIT}")
        limit = int(limit_text)
        if self.faults.advance_during_paging:
            self._stats["disputes.advanced"] += len(
                self.data.advance(self.faults.advance_during_paging, self._clock()))
        token = param("nextToken")
        if token is not None:
            cursor = self._cursors.get(token)
            self._follows += 1
            every = self.faults.expire_every
            if cursor is None or time.monotonic() - cursor.issued > self.faults.cursor_ttl_seconds \
                    or (every and self._follows % every == 0):
                self._cursors.pop(token, None)
                self._stats["cursor.expired"] += 1
                return _envelope(200, code="CURSOR_EXPIRED", message="nextToken 已过期，请重新查询")
        else:
            since_text = param("updatedSince")
            since = None
            if since_text is not None:
                try:
                    since = datetime.fromisoformat(since_text.strip())
                except ValueError:
                    since = None
                if since is None or since.tzinfo is None:
                    return self._bad("updatedSince must be ISO 8601 with an offset")
            self._forget_expired()
            cursor = _Cursor(list(self.data.query(since)), 0, time.monotonic())
        page = cursor.items[cursor.offset: cursor.offset + limit]
        next_token = None
        if cursor.offset + limit < len(cursor.items):
            next_token = secrets.token_urlsafe(24)
            self._cursors[next_token] = _Cursor(cursor.items, cursor.offset + limit,
                                                time.monotonic())
            self._stats["cursor.issued"] += 1
        self._stats["records.served"] += len(page)
        # Serialised under the lock: a later advance must not change a page in flight.
        return _envelope(200, {"items": page, "nextToken": next_token})

    def _forget_expired(self) -> None:
        now, ttl = time.monotonic(), self.faults.cursor_ttl_seconds
        for token in [t for t, c in self._cursors.items() if now - c.issued > ttl]:
            del self._cursors[token]

    def _bad(self, message: str) -> Reply:
        self._stats["bad_requests"] += 1
        return _envelope(400, code="INVALID_PARAMETER", message=message)

    def handle_admin(self, method: str, path: str, body: bytes) -> Reply:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return json_reply(400, {"error": "invalid JSON"})
        if path == "/_sandbox/health":
            return json_reply(200, {"ok": True})
        if path == "/_sandbox/stats":
            return json_reply(200, self.stats())
        if path == "/_sandbox/faults" and method == "GET":
            return json_reply(200, self.faults.to_json())
        if path == "/_sandbox/faults" and method == "POST":
            try:
                self.set_faults(Faults.from_json(payload))
            except (TypeError, ValueError) as e:
                return json_reply(400, {"error": str(e)})
            return json_reply(200, self.faults.to_json())
        if path == "/_sandbox/advance" and method == "POST":
            n = payload.get("disputes", 1) if isinstance(payload, dict) else None
            if not isinstance(n, int) or n < 0:
                return json_reply(400, {"error": 'body must be {"disputes": <n >= 0>}'})
            return json_reply(200, {"caseIds": self.advance(n)})
        if path == "/_sandbox/truth":
            with self._lock:
                return json_reply(200, {no: {**dataclasses.asdict(t), "defects": sorted(t.defects)}
                                        for no, t in self.data.truth.items()})
        return json_reply(404, {"error": f"no admin endpoint {method} {path}"})


# ---------------------------------------------------------------- demo and CLI


def start_for_demo(city: City, days: int, workdir: Path, source: str = "zongzhi") -> DemoPlatform:
    """The platform on a free port with a fresh key, as `hub demo` runs it. Its transfers
    name the orders of the hotline simulator the demo runs (same city, days and end)."""
    from base.settings import secret_env_var

    key = secrets.token_hex(16)
    data = ZongzhiData(city, days=days, hotline=HotlineData(city, days=days))
    server = ZongzhiServer(data, key).start()
    return DemoPlatform(
        settings={"base_url": server.url},
        env={secret_env_var(source, "api_key"): key},
        advance=lambda: len(server.advance(max(5, len(data.disputes) // 10))),
        stop=server.stop,
        simulator=server,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox.zongzhi_server",
                                description="Run the 综治 (dispute mediation) platform simulator.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8015, help="0 picks a free port")
    p.add_argument("--city", default="2111")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--end", help="yyyy-MM-dd[ HH:mm:ss] local; default today 00:00 Asia/Shanghai")
    p.add_argument("--api-key", required=True)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--cursor-ttl-seconds", type=float, default=600.0)
    args = p.parse_args(argv)

    city = City(args.city, seed=args.seed, scale=args.scale)
    end = parse_local(args.end) if args.end else None
    data = ZongzhiData(city, days=args.days, end=end,
                       hotline=HotlineData(city, days=args.days, end=end))
    server = ZongzhiServer(data, args.api_key, host=args.host, port=args.port,
                           faults=Faults(error_rate=args.error_rate,
                                         cursor_ttl_seconds=args.cursor_ttl_seconds)).start()
    print(server.url, flush=True)
    print(f"{len(data.disputes)} disputes, {len(data.orgs)} mediation committees",
          file=sys.stderr, flush=True)
    run_until_interrupted(server.stop)


if __name__ == "__main__":
    main()
