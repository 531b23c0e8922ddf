"""The 12345 hotline platform as a real HTTP server, with switchable faults.

Speaks the protocol of shared/design/sources.md §1 over real sockets (stdlib
ThreadingHTTPServer in a background thread), serving a `HotlineData`. Faults are
deterministic for a given seed and request sequence:

- `error_rate` of work-order requests fail with one of `kinds`, taken in turn
  (429 with Retry-After: 1; 500 JSON; 502/503 HTML pages as a gateway sends them;
  `busy` = HTTP 200 with body code 50001; `slow` = answer after `slow_seconds`;
  `drop` = close the connection without a response). Token requests never fail.
- `token_ttl_seconds`: tokens expire that long after issue (default 7200).
- `revoke_every`: every N-th work-order request revokes the token it carries.
- `mutate_during_paging`: every work-order page request first advances k orders.

A rejected token gets, alternately, HTTP 401 with body code 401 and HTTP 200 with
body code 40101 (the 1st, 3rd, … rejection is a 401): a client must handle both.

Sandbox administration lives under /_sandbox/ and needs no token:
`POST /_sandbox/advance {"orders": n}`, `GET|POST /_sandbox/faults` (POST replaces
the faults; omitted fields take their defaults), `GET /_sandbox/stats`,
`GET /_sandbox/truth`, `GET /_sandbox/health`.

Run standalone: `python -m sandbox.hotline_server --port 8012 --scale 0.1 --days 7
--app-key K --app-secret S` prints the URL on stdout when it is ready.
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
from sandbox.hotline12345 import HotlineData, fmt, now_local, parse_local
from sandbox.http_base import Reply, Request, SimulatorServer, json_reply
from sandbox.platform import DemoPlatform, run_until_interrupted

FAULT_KINDS = ("429", "500", "502", "503", "busy", "slow", "drop")
DEFAULT_TOKEN_TTL_SECONDS = 7200
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20

# Body codes.
OK = 0
BAD_PARAMETER = 40001
BAD_BODY = 40000
BAD_CREDENTIALS = 40100
TOKEN_INVALID = 40101
BUSY = 50001

_GATEWAY_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                 "<center><h1>{status} {reason}</h1></center>\r\n"
                 "<hr><center>nginx/1.20.1</center>\r\n</body>\r\n</html>\r\n")


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Deterministic for a seed."""

    error_rate: float = 0.0
    kinds: Sequence[str] = FAULT_KINDS
    seed: int = 0
    slow_seconds: float = 3.0
    token_ttl_seconds: float | None = None
    revoke_every: int | None = None
    mutate_during_paging: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        if self.error_rate > 0 and not self.kinds:
            raise ValueError("error_rate > 0 needs at least one fault kind")
        if self.token_ttl_seconds is not None and self.token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be positive")
        if self.revoke_every is not None and self.revoke_every < 1:
            raise ValueError("revoke_every must be >= 1")
        if self.mutate_during_paging < 0 or self.slow_seconds < 0:
            raise ValueError("mutate_during_paging and slow_seconds must be >= 0")

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Faults:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(obj) - names
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**obj)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["kinds"] = list(self.kinds)
        return out


@dataclass
class _Token:
    expires_at: float  # time.monotonic()
    revoked: bool = False


def _envelope(code: int, msg: str, data: Any = None, status: int = 200) -> Reply:
    return json_reply(status, {"code": code, "msg": msg, "data": data})


class HotlineServer(SimulatorServer):
    """The platform, listening on host:port (port 0 = any free port) once started."""

    server_version = "Hotline12345/1.0"
    thread_name = "hotline12345-server"
    disable_nagle_algorithm = True

    def __init__(self, data: HotlineData, app_key: str, app_secret: str,
                 faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(host, port)
        self.data = data
        self._app_key = app_key
        self._app_secret = app_secret
        self._clock = clock or now_local
        self._lock = threading.RLock()
        self._tokens: dict[str, _Token] = {}
        self._stats: Counter[str] = Counter()
        self._data_requests = 0
        self._rejections = 0
        self.set_faults(faults or Faults())

    # ---- control ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._fault_rng = random.Random(f"hotline-faults:{faults.seed}")
            self._next_kind = self._fault_rng.randrange(len(faults.kinds)) if faults.kinds else 0
            self._data_requests = 0

    def stats(self) -> dict[str, Any]:
        """Requests served and faults produced so far, by kind."""
        with self._lock:
            s = self._stats
            return {
                "requests": {k: s[f"requests.{k}"] for k in ("auth", "workorders", "admin", "other")},
                "faults": {k: s[f"fault.{k}"] for k in FAULT_KINDS},
                "auth_rejected": {"401": s["rejected.401"], "40101": s["rejected.40101"]},
                "rejected_reasons": {k: s[f"reason.{k}"]
                                     for k in ("missing", "unknown", "expired", "revoked")},
                "tokens_issued": s["tokens_issued"],
                "tokens_revoked": s["tokens_revoked"],
                "bad_credentials": s["bad_credentials"],
                "bad_requests": s["bad_requests"],
                "records_served": s["records_served"],
                "orders_advanced": s["orders_advanced"],
            }

    def advance(self, n_orders: int) -> list[str]:
        """Advance n orders, stamped with the server's local time now."""
        with self._lock:
            changed = self.data.advance(n_orders, self._clock())
            self._stats["orders_advanced"] += len(changed)
            return changed

    # ---- request handling (called from handler threads) -----------------------

    def route(self, request: Request) -> Reply | None:
        method, path, body = request.method, request.path, request.body
        if path.startswith("/_sandbox/"):
            return self.handle_admin(method, path, body)
        if path == "/api/v1/auth/token" and method == "POST":
            return self.handle_auth(body)
        if path == "/api/v1/workorders" and method == "GET":
            return self._workorders(request)
        self._count("requests.other")
        return json_reply(404, {"code": 404, "msg": f"not found: {method} {path}", "data": None})

    def _workorders(self, request: Request) -> Reply | None:
        """Faults first (None = drop the connection), then the token, then the page."""
        kind = self.decide_fault()
        if kind == "drop":
            return None
        if kind == "slow":
            time.sleep(self.faults.slow_seconds)
        elif kind is not None:
            return self.fault_reply(kind)
        rejection = self.check_token(request.authorization)
        if rejection is not None:
            return rejection
        return self.handle_workorders(request.query)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def handle_auth(self, body: bytes) -> Reply:
        self._count("requests.auth")
        try:
            creds = json.loads(body or b"null")
        except ValueError:
            creds = None
        if not isinstance(creds, dict):
            self._count("bad_requests")
            return _envelope(BAD_BODY, "invalid request body")
        if creds.get("appKey") != self._app_key or creds.get("appSecret") != self._app_secret:
            self._count("bad_credentials")
            return _envelope(BAD_CREDENTIALS, "invalid appKey/appSecret")
        with self._lock:
            ttl = self._faults.token_ttl_seconds or DEFAULT_TOKEN_TTL_SECONDS
            token = secrets.token_hex(16)
            self._tokens[token] = _Token(expires_at=time.monotonic() + ttl)
            self._stats["tokens_issued"] += 1
        return _envelope(OK, "ok", {"accessToken": token, "expiresIn": max(1, int(ttl))})

    def decide_fault(self) -> str | None:
        """Counts a work-order request and says which fault, if any, it meets."""
        with self._lock:
            self._stats["requests.workorders"] += 1
            faults = self._faults
            if faults.error_rate <= 0 or self._fault_rng.random() >= faults.error_rate:
                return None
            kind = faults.kinds[self._next_kind % len(faults.kinds)]
            self._next_kind += 1
            self._stats[f"fault.{kind}"] += 1
            return kind

    def fault_reply(self, kind: str) -> Reply:
        if kind == "429":
            return json_reply(429, {"code": 429, "msg": "too many requests", "data": None},
                               {"Retry-After": "1"})
        if kind == "500":
            return json_reply(500, {"code": 500, "msg": "Internal Server Error", "data": None})
        if kind in ("502", "503"):
            reason = {"502": "Bad Gateway", "503": "Service Temporarily Unavailable"}[kind]
            page = _GATEWAY_PAGE.format(status=kind, reason=reason)
            return Reply(int(kind), page.encode("ascii"), "text/html")
        return _envelope(BUSY, "系统繁忙")

    def check_token(self, authorization: str | None) -> Reply | None:
        """None if the bearer token is good; otherwise the rejection to send."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        with self._lock:
            self._data_requests += 1
            state = self._tokens.get(token) if scheme.lower() == "bearer" else None
            if state is None:
                reason = "missing" if not token else "unknown"
            elif state.revoked:
                reason = "revoked"
            elif time.monotonic() >= state.expires_at:
                reason = "expired"
            else:
                every = self._faults.revoke_every
                if every and self._data_requests % every == 0:
                    state.revoked = True
                    self._stats["tokens_revoked"] += 1
                    reason = "revoked"
                else:
                    return None
            self._stats[f"reason.{reason}"] += 1
            self._rejections += 1
            as_401 = self._rejections % 2 == 1
            self._stats["rejected.401" if as_401 else "rejected.40101"] += 1
        msg = f"access token {reason}"
        if as_401:
            return json_reply(401, {"code": 401, "msg": msg, "data": None},
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return _envelope(TOKEN_INVALID, msg)

    def handle_workorders(self, query: dict[str, list[str]]) -> Reply:
        def param(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values and values[-1] != "" else None

        try:
            page_no = int(param("pageNo") or 1)
            page_size = int(param("pageSize") or DEFAULT_PAGE_SIZE)
        except ValueError:
            return self._bad("pageNo and pageSize must be integers")
        if page_no < 1:
            return self._bad("pageNo must be >= 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            return self._bad(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        bounds: list[str | None] = []
        for name in ("updatedFrom", "updatedTo"):
            value = param(name)
            if value is not None:
                try:
                    value = fmt(parse_local(value.strip()))
                except ValueError:
                    return self._bad(f"{name} must be yyyy-MM-dd HH:mm:ss")
            bounds.append(value)
        with self._lock:
            k = self._faults.mutate_during_paging
            if k:
                self._stats["orders_advanced"] += len(self.data.advance(k, self._clock()))
            selected = self.data.query(bounds[0], bounds[1])
            records = selected[(page_no - 1) * page_size: page_no * page_size]
            # Serialise under the lock: a later advance must not change a page in flight.
            reply = _envelope(OK, "ok", {"total": len(selected), "pageNo": page_no,
                                         "pageSize": page_size, "records": records})
            self._stats["records_served"] += len(records)
        return reply

    def _bad(self, msg: str) -> Reply:
        self._count("bad_requests")
        return _envelope(BAD_PARAMETER, msg)

    def handle_admin(self, method: str, path: str, body: bytes) -> Reply:
        self._count("requests.admin")
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return json_reply(400, {"error": "invalid JSON"})
        if path == "/_sandbox/health" and method == "GET":
            return json_reply(200, {"ok": True})
        if path == "/_sandbox/stats" and method == "GET":
            return json_reply(200, self.stats())
        if path == "/_sandbox/faults" and method == "GET":
            return json_reply(200, self.faults.to_json())
        if path == "/_sandbox/faults" and method == "POST":
            try:
                faults = Faults.from_json(payload)
            except (TypeError, ValueError) as e:
                return json_reply(400, {"error": str(e)})
            self.set_faults(faults)
            return json_reply(200, faults.to_json())
        if path == "/_sandbox/advance" and method == "POST":
            n = payload.get("orders", 1) if isinstance(payload, dict) else None
            if not isinstance(n, int) or n < 0:
                return json_reply(400, {"error": 'body must be {"orders": <n >= 0>}'})
            changed = self.advance(n)
            with self._lock:
                stamped = (self.data.orders[changed[0]]["updateTime"] if changed else None)
            return json_reply(200, {"orderNos": changed, "updateTime": stamped})
        if path == "/_sandbox/truth" and method == "GET":
            with self._lock:
                truth = {no: {"incident_id": t.incident_id, "person_index": t.person_index,
                              "defects": sorted(t.defects), "point_wgs84": list(t.point_wgs84),
                              "grid_code": t.grid_code}
                         for no, t in self.data.truth.items()}
            return json_reply(200, truth)
        return json_reply(404, {"error": f"no admin endpoint {method} {path}"})


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox.hotline_server",
                                description="Run the 12345 hotline platform simulator.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8012, help="0 picks a free port")
    p.add_argument("--city", default="2111")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--end", help="yyyy-MM-dd[ HH:mm:ss] local; default today 00:00 Asia/Shanghai")
    p.add_argument("--coordinate-system", choices=("wgs84", "gcj02"), default="wgs84")
    p.add_argument("--app-key", required=True)
    p.add_argument("--app-secret", required=True)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--slow-seconds", type=float, default=3.0)
    p.add_argument("--token-ttl-seconds", type=float)
    p.add_argument("--revoke-every", type=int)
    p.add_argument("--mutate-during-paging", type=int, default=0)
    args = p.parse_args(argv)

    data = HotlineData(City(args.city, seed=args.seed, scale=args.scale), days=args.days,
                       end=parse_local(args.end) if args.end else None,
                       coordinate_system=args.coordinate_system)
    faults = Faults(error_rate=args.error_rate,
                    kinds=[k for k in args.kinds.split(",") if k], seed=args.fault_seed,
                    slow_seconds=args.slow_seconds, token_ttl_seconds=args.token_ttl_seconds,
                    revoke_every=args.revoke_every,
                    mutate_during_paging=args.mutate_during_paging)
    server = HotlineServer(data, args.app_key, args.app_secret, faults=faults,
                           host=args.host, port=args.port).start()
    print(server.url, flush=True)
    print(f"{len(data.orders)} work orders, updated up to {data.end:%Y-%m-%d %H:%M:%S}",
          file=sys.stderr, flush=True)
    run_until_interrupted(server.stop)


if __name__ == "__main__":
    main()


def start_for_demo(city: City, days: int, workdir: Path, source: str = "hotline12345"
                   ) -> DemoPlatform:
    """The platform on a free port with fresh credentials, as `hub demo` runs it."""
    from base.settings import secret_env_var

    key, secret = secrets.token_hex(8), secrets.token_hex(16)
    server = HotlineServer(HotlineData(city, days=days), key, secret).start()
    return DemoPlatform(
        settings={"base_url": server.url},
        env={secret_env_var(source, "app_key"): key, secret_env_var(source, "app_secret"): secret},
        advance=lambda: len(server.advance(max(10, len(server.data.orders) // 20))),
        stop=server.stop,
        simulator=server,
    )
