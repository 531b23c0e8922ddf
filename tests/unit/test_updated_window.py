"""The 12345 connector's read by update time loses nothing while pages shift under it.

A small platform of the test's own (not the sandbox simulator) honours §1 of the
sources design over real HTTP: a token endpoint, the {code, msg, data{total, pageNo,
pageSize, records}} envelope, orders ordered by updateTime then orderNo, inclusive
bounds, pageSize up to 1000. Between page requests it updates random orders, above
all orders of the crowd sharing one update time that the connector is paging
through, as a platform may while it is read.

An update moves an order to a later update time: later than its own and than any
time the platform has served so far (a platform stamps an update with its current
time, which is no earlier than anything it has already served), sometimes into a
crowd further on, sometimes past the end of the window the connector fixed (the
next run reads those). The runs crash at random pages (the generator is no longer
consumed, as when the process is killed: only the cursor of the last extract
consumed in full counts) and are run again from the cursor until caught up.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import httpx._transports.default as httpx_transport
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base import clock
from base.settings import load_sources, secret_env_var
from connectors.base import Connector
from connectors.registry import connector_class
from tests.support.hotline import write_sources

FMT = "%Y-%m-%d %H:%M:%S"
ZONE = ZoneInfo("Asia/Shanghai")
KEY, SECRET, TOKEN = "uw-key", "uw-secret", "uw-token"
SOURCE = "uw_hotline"
T0 = datetime(2026, 11, 10, 8, 0, 0)  # the first crowd's update time
MAX_PAGE_SIZE = 1000


@dataclass
class Platform:
    """The platform's orders and what it does to them between page requests."""

    orders: dict[str, datetime] = field(default_factory=dict)  # orderNo -> updateTime
    versions: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    moves_left: int = 0  # updates the platform still makes while it is read
    move_rate: float = 0.0  # chance of updates before a page request
    window_end: datetime = T0  # the end the connector fixed for the current run
    max_served: datetime = datetime.min  # the latest update time any page held
    moved: Counter[str] = field(default_factory=Counter)  # updates during the current run
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, orders: dict[str, datetime], *, seed: int, moves: int,
              move_rate: float) -> None:
        with self.lock:
            self.orders = dict(orders)
            self.versions = Counter()
            self.rng = random.Random(seed)
            self.moves_left, self.move_rate = moves, move_rate
            self.max_served = datetime.min
            self.moved = Counter()
            self.requests = 0

    def record(self, no: str) -> dict[str, Any]:
        return {"orderNo": no, "updateTime": self.orders[no].strftime(FMT),
                "title": f"v{self.versions[no]}", "status": "办理中"}

    def select(self, start: datetime | None, end: datetime | None) -> list[str]:
        return sorted((no for no, t in self.orders.items()
                       if (start is None or t >= start) and (end is None or t <= end)),
                      key=lambda no: (self.orders[no], no))

    def update(self, no: str) -> None:
        """Update one order: it moves to a later update time (never into the past)."""
        floor = max(self.max_served, self.orders[no])
        later = sorted({t for t in self.orders.values() if t > floor})
        roll = self.rng.random()
        if later and roll < 0.4:
            new = self.rng.choice(later)  # joins a crowd further on
        elif roll < 0.7:
            new = floor + timedelta(seconds=self.rng.randint(1, 90))
        else:  # past the end of the window: the next run's
            new = max(floor, self.window_end) + timedelta(seconds=self.rng.randint(1, 3600))
        self.orders[no] = new
        self.versions[no] += 1
        self.moved[no] += 1
        self.moves_left -= 1

    def page(self, start: datetime | None, end: datetime | None, page_no: int,
             page_size: int) -> dict[str, Any]:
        with self.lock:
            self.requests += 1
            if self.moves_left and self.rng.random() < self.move_rate:
                selected = self.select(start, end)
                # Above all the orders already served by this query's earlier pages:
                # each one leaving moves the rest up by one place.
                served = selected[:(page_no - 1) * page_size]
                pool = served if served and self.rng.random() < 0.8 else selected
                pool = pool or list(self.orders)
                for no in self.rng.sample(pool, min(len(pool), self.rng.randint(1, 3),
                                                    self.moves_left)):
                    self.update(no)
            selected = self.select(start, end)
            chunk = selected[(page_no - 1) * page_size: page_no * page_size]
            if chunk:
                self.max_served = max(self.max_served, self.orders[chunk[-1]])
            return {"total": len(selected), "pageNo": page_no, "pageSize": page_size,
                    "records": [self.record(no) for no in chunk]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: hundreds of pages per example
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    platform: Platform

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if urlsplit(self.path).path != "/api/v1/auth/token":
            self.reply({"code": 404, "msg": "not found", "data": None}, 404)
        elif body.get("appKey") == KEY and body.get("appSecret") == SECRET:
            self.reply({"code": 0, "msg": "ok",
                        "data": {"accessToken": TOKEN, "expiresIn": 7200}})
        else:
            self.reply({"code": 40001, "msg": "bad credentials", "data": None})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/v1/workorders":
            self.reply({"code": 404, "msg": "not found", "data": None}, 404)
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.reply({"code": 40101, "msg": "token invalid", "data": None}, 401)
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            page_no, page_size = int(query.get("pageNo", 1)), int(query.get("pageSize", 500))
            start, end = (datetime.strptime(query[b], FMT) if query.get(b) else None
                          for b in ("updatedFrom", "updatedTo"))
        except ValueError as exc:
            self.reply({"code": 40000, "msg": str(exc), "data": None})
            return
        if page_no < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            self.reply({"code": 40000, "msg": "bad paging", "data": None})
            return
        self.reply({"code": 0, "msg": "ok",
                    "data": self.platform.page(start, end, page_no, page_size)})


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[Platform, str]]:
    state = Platform()
    handler = type("PlatformHandler", (Handler,), {"platform": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as mp:
        # Each run opens a new HTTP client, which loads the CA bundle (~30 ms, more than
        # a run's pages here): load it once. The platform is plain HTTP anyway.
        ssl_context = httpx.create_ssl_context()
        mp.setattr(httpx_transport, "create_ssl_context", lambda **_: ssl_context)
        mp.setenv(secret_env_var(SOURCE, "app_key"), KEY)
        mp.setenv(secret_env_var(SOURCE, "app_secret"), SECRET)
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def connector(folder: Path, base_url: str, **settings: object) -> Connector:
    path = write_sources(folder / "sources.yaml", SOURCE, base_url, **settings)
    config = load_sources(path)
    source = config.source(SOURCE)
    return connector_class(source.connector)(source, config.city)


@dataclass
class Run:
    """What one run yielded and whether it got to the end."""

    yielded: list[tuple[str, str]]  # (orderNo, updateTime), every extract's
    committed: list[tuple[str, str]]  # of the extracts consumed in full
    cursor: dict[str, Any] | None
    completed: bool


def run(conn: Connector, state: dict[str, Any] | None, now: datetime,
        crash_at: int | None = None) -> Run:
    """One run with the clock at `now` (local); `crash_at`: the extract it dies at."""
    stream = conn.stream("workorders")
    yielded: list[tuple[str, str]] = []
    committed: list[tuple[str, str]] = []
    with clock.pinned(now.replace(tzinfo=ZONE)):
        extracts = conn.extract(stream, state)
        for i, extract in enumerate(extracts):
            rows = list(zip(extract.records["orderNo"].to_pylist(),
                            extract.records["updateTime"].to_pylist(), strict=True))
            yielded += rows
            if i == crash_at:
                if isinstance(extracts, Generator):
                    extracts.close()  # killed: this extract was never committed
                return Run(yielded, committed, state, completed=False)
            committed += rows
            state = extract.cursor
    return Run(yielded, committed, state, completed=True)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    page_size = draw(st.one_of(st.integers(1, 6), st.integers(7, 80),
                               st.integers(81, MAX_PAGE_SIZE)), label="page_size")
    # Crowds sharing one update time, several pages long where the page is small.
    crowds = draw(st.lists(st.integers(1, min(300, 4 * page_size + 3)), min_size=1, max_size=6),
                  label="crowds")
    gaps = draw(st.lists(st.integers(1, 400), min_size=len(crowds), max_size=len(crowds)),
                label="gaps")
    orders: dict[str, datetime] = {}
    at = T0
    for size, gap in zip(crowds, gaps, strict=True):
        at += timedelta(seconds=gap)
        for _ in range(size):
            orders[f"2111{len(orders):08d}"] = at
    return {
        "page_size": page_size,
        "orders": orders,
        # The first run's window ends at, or a little after, the last crowd.
        "end": at + timedelta(seconds=draw(st.integers(0, 600), label="end_after")),
        "moves": draw(st.integers(0, 40), label="moves"),
        "move_rate": draw(st.sampled_from([0.1, 0.3, 0.6, 1.0]), label="move_rate"),
        "seed": draw(st.integers(0, 2**32 - 1), label="seed"),
        # The extract at which each of the first runs dies (a run may finish first).
        "crashes": draw(st.lists(st.integers(0, 30), max_size=3), label="crashes"),
    }


# Fixtures are module- and session-scoped (the platform is reset by each example).
@settings(max_examples=200)
@given(scenario=scenarios())
def test_pages_shifting_in_tie_groups_lose_nothing(platform, tmp_path_factory, scenario):
    server, url = platform
    server.reset(scenario["orders"], seed=scenario["seed"], moves=scenario["moves"],
                 move_rate=scenario["move_rate"])
    conn = connector(tmp_path_factory.mktemp("uw"), url, page_size=scenario["page_size"],
                     backoff_seconds=0.001, max_backoff_seconds=0.01)
    crashes: list[int] = scenario["crashes"]
    now: datetime = scenario["end"]
    state: dict[str, Any] | None = None
    committed: set[tuple[str, str]] = set()
    # Each run that is not caught up either crashed or saw at least one update: the
    # updates and the crashes bound how many runs catching up can take.
    for n in range(scenario["moves"] + len(crashes) + 3):
        with server.lock:
            server.window_end, server.moved = now, Counter()
        result = run(conn, state, now, crash_at=crashes[n] if n < len(crashes) else None)
        # Within a run a version of an order (its update time) comes once; an order
        # comes again only as a new version, one per update made during the run.
        versions = Counter(result.yielded)
        assert max(versions.values(), default=0) <= 1, [v for v, c in versions.items() if c > 1]
        per_order = Counter(no for no, _ in result.yielded)
        assert all(c <= 1 + server.moved[no] for no, c in per_order.items()), per_order
        committed |= set(result.committed)
        state = result.cursor
        latest = max(server.orders.values())
        if result.completed and not server.moved and now >= latest:
            break
        # The rerun's clock: past every update made so far.
        now = max(now, latest) + timedelta(seconds=1)
    else:
        pytest.fail("the runs never caught up")

    missing = {(no, t.strftime(FMT)) for no, t in server.orders.items()} - committed
    assert not missing, f"{len(missing)} orders' latest version never committed: {sorted(missing)[:5]}"


def test_a_late_commit_inside_the_overlap_is_read_by_the_next_run(platform, tmp_path):
    """An order saved with an update time before the cursor (a late commit on the
    platform) is read by the next run, thanks to the overlap (10 minutes by default)."""
    server, url = platform
    orders = {f"2111{i:08d}": T0 + timedelta(seconds=30 * i) for i in range(20)}
    server.reset(orders, seed=1, moves=0, move_rate=0)
    conn = connector(tmp_path, url, page_size=7)
    end = T0 + timedelta(hours=1)
    first = run(conn, None, end)
    assert first.completed and set(first.committed) == {
        (no, t.strftime(FMT)) for no, t in orders.items()}
    assert first.cursor == {"updated_to": end.strftime(FMT)}

    late = end - timedelta(minutes=5)
    with server.lock:
        server.orders["2111late0001"] = late
    second = run(conn, first.cursor, end + timedelta(hours=1))
    assert ("2111late0001", late.strftime(FMT)) in second.committed
