"""The grid management platform running: a landing folder and the events API.

`GridPlatform` writes the daily file drops (sandbox.gridmgmt.Landing) into a
folder and serves grid workers' events over real HTTP (stdlib
ThreadingHTTPServer in a background thread):

`GET /grid/api/v2/events?cursor=<opaque>&limit=200` →
`{"success": true, "events": [...], "nextCursor": "..." | null}`, in the order of
the platform's change feed (an event that changes moves to the end of the feed);
`nextCursor` is null once the page reaches the end. The cursor is opaque
(base64 of a feed position); a malformed one gets HTTP 400 with
`{"success": false, "errorCode": "INVALID_CURSOR"}`. When the platform has an
API token, requests must carry `Authorization: Bearer <token>` (HTTP 401
otherwise). Faults, deterministic for a seed: HTTP 429 with Retry-After, HTTP 500,
and HTTP 200 `{"success": false, "errorCode": "SYSTEM_BUSY"}`.

Administration under /_sandbox/ (no token): `POST /_sandbox/advance {"events": n}`,
`GET /_sandbox/stats`, `GET /_sandbox/health`.

Run standalone: `python -m sandbox.gridmgmt_server --folder /tmp/landing --port 8013
--scale 0.01 --days 4 [--api-token T]` drops every day's files into the folder and
prints the events URL on stdout when it is ready.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from base.settings import secret_env_var
from sandbox.city import City
from sandbox.gridmgmt import GridData, Landing
from sandbox.hotline12345 import now_local, parse_local
from sandbox.http_base import Reply, Request, SimulatorServer, json_reply
from sandbox.platform import DemoPlatform, run_until_interrupted

EVENTS_PATH = "/grid/api/v2/events"
MAX_LIMIT = 1000
FAULT_KINDS = ("429", "500", "busy")


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"bad faults: rate {self.error_rate}, unknown kinds {sorted(unknown)}")


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": 2, "seq": seq}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The feed position in a cursor; ValueError when it is not one of ours."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        seq = payload["seq"]
    except Exception as exc:
        raise ValueError(f"invalid cursor {cursor[:40]!r}") from exc
    if not isinstance(seq, int) or seq < 0:
        raise ValueError(f"invalid cursor {cursor[:40]!r}")
    return seq


class GridPlatform(SimulatorServer):
    """The landing folder plus the events API, started and stopped together."""

    server_version = "GridMgmt/2.0"
    thread_name = "gridmgmt-server"

    def __init__(self, data: GridData, folder: Path, *, api_token: str | None = None,
                 faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(host, port)
        self.data = data
        self.landing = Landing(data, folder)
        self.api_token = api_token
        self._clock = clock or now_local
        self._lock = threading.RLock()
        self._stats: Counter[str] = Counter()
        self.set_faults(faults or Faults())

    @property
    def folder(self) -> Path:
        return self.landing.folder

    # ---- control ---------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._fault_rng = random.Random(f"gridmgmt-faults:{faults.seed}")

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def advance_events(self, n: int) -> list[str]:
        with self._lock:
            return self.data.advance_events(n, self._clock())

    def advance(self, n_events: int | None = None) -> int:
        """A new platform day: its files are dropped and events move on. Returns how many
        records changed or were added (events, plus residents who moved)."""
        with self._lock:
            before = self.data.truth.present[self.data.dates[-1]]
            day = self.data.advance_day()
            self.landing.drop(day)
            moved = len(before ^ self.data.truth.present[day])
            changed = self.advance_events(n_events or max(5, len(self.data.events) // 20))
            return moved + len(changed)

    # ---- the API ---------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if path.startswith("/_sandbox/"):
            return self.handle_admin(method, path, request.body)
        if path == EVENTS_PATH and method == "GET":
            return self.handle_events(request.query, request.authorization)
        return _reply(404, {"success": False, "message": f"not found: {method} {path}"})

    def handle_events(self, query: dict[str, list[str]], authorization: str | None) -> Reply:
        with self._lock:
            self._stats["requests.events"] += 1
            if self.api_token and authorization != f"Bearer {self.api_token}":
                self._stats["rejected.token"] += 1
                return _reply(401, {"success": False, "errorCode": "UNAUTHORIZED",
                                    "message": "missing or wrong token"})
            if self.faults.error_rate and self._fault_rng.random() < self.faults.error_rate:
                kind = self.faults.kinds[self._stats["faults.total"] % len(self.faults.kinds)]
                self._stats["faults.total"] += 1
                self._stats[f"faults.{kind}"] += 1
                if kind == "429":
                    return _reply(429, {"success": False, "errorCode": "RATE_LIMITED"},
                                  {"Retry-After": "0.1"})
                if kind == "500":
                    return _reply(500, {"success": False, "errorCode": "INTERNAL_ERROR"})
                return _reply(200, {"success": False, "errorCode": "SYSTEM_BUSY",
                                    "message": "系统繁忙，请稍后再试"})
            cursor = (query.get("cursor") or [""])[0]
            limit_text = (query.get("limit") or ["200"])[0]
            try:
                after = decode_cursor(cursor) if cursor else 0
            except ValueError as exc:
                return _reply(400, {"success": False, "errorCode": "INVALID_CURSOR",
                                    "message": str(exc)})
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
                return _reply(400, {"success": False, "errorCode": "INVALID_LIMIT",
                                    "message": f"limit must be 1..{MAX_LIMIT}"})
            events, last = self.data.feed(after, int(limit_text))
            self._stats["events.served"] += len(events)
            return _reply(200, {"success": True, "events": events,
                                "nextCursor": None if last is None else encode_cursor(last)})

    def handle_admin(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/_sandbox/health":
            return _reply(200, {"ok": True})
        if path == "/_sandbox/stats":
            return _reply(200, self.stats())
        if path == "/_sandbox/advance" and method == "POST":
            n = int((json.loads(body or b"{}")).get("events", 10))
            return _reply(200, {"changed": self.advance_events(n)})
        return _reply(404, {"success": False, "message": f"no admin endpoint {method} {path}"})


def _reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    # The grid API answers with json.dumps' default blanks after "," and ":".
    return json_reply(status, payload, headers, compact=False)


# ---------------------------------------------------------------- demo and CLI


DEMO_SOURCE = "gridmgmt"


def start_for_demo(city: City, days: int, workdir: Path,
                   source: str = DEMO_SOURCE) -> DemoPlatform:
    """`days` days of files dropped into workdir/gridmgmt-landing and the events API on a
    free port with a fresh token, as `hub demo` runs it. `advance` is a new platform day."""
    token = secrets.token_hex(16)
    data = GridData(city, days=max(days, 1))
    platform = GridPlatform(data, Path(workdir) / "gridmgmt-landing", api_token=token).start()
    platform.landing.drop_all()
    return DemoPlatform(
        settings={"folder": str(platform.folder), "base_url": platform.url},
        env={secret_env_var(source, "api_token"): token},
        advance=platform.advance,
        stop=platform.stop,
        simulator=platform,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox.gridmgmt_server",
                                description="Run the grid management platform simulator.")
    p.add_argument("--folder", required=True, help="landing folder the daily files are dropped in")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8013, help="0 picks a free port")
    p.add_argument("--city", default="2111")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--end", help="yyyy-MM-dd[ HH:mm:ss] local; default today 00:00 Asia/Shanghai")
    p.add_argument("--api-token", help="require this bearer token on the events API")
    p.add_argument("--error-rate", type=float, default=0.0)
    args = p.parse_args(argv)

    data = GridData(City(args.city, seed=args.seed, scale=args.scale), days=args.days,
                    end=parse_local(args.end) if args.end else None)
    platform = GridPlatform(data, Path(args.folder), api_token=args.api_token,
                            faults=Faults(error_rate=args.error_rate),
                            host=args.host, port=args.port).start()
    names = platform.landing.drop_all()
    print(platform.url, flush=True)
    print(f"{len(names)} files in {platform.folder}, {len(data.events)} events",
          file=sys.stderr, flush=True)
    run_until_interrupted(platform.stop)


if __name__ == "__main__":
    main()
