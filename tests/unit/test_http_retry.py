"""`HttpApi` waits as long as a platform's Retry-After says, over real HTTP.

A local server answers the first request with 429 (or 503) and `Retry-After`, as a
number of seconds or as an HTTP date, then 200. The sleep is injected: the test
records what the client would wait instead of waiting.
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.base import HttpApi, HttpSettings


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Set per test: the status and Retry-After value of the first answer.
    status: int
    retry_after: Callable[[], str]
    requests: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        first = len(self.requests) == 1
        body = json.dumps({"code": 0, "data": {"ok": not first}}).encode()
        self.send_response(self.status if first else 200)
        if first:
            self.send_header("Retry-After", self.retry_after())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Callable[[int, Callable[[], str]], tuple[str, list[str]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, retry_after: Callable[[], str]) -> tuple[str, list[str]]:
        requests: list[str] = []
        handler = type("RetryHandler", (Handler,), {
            "status": status, "retry_after": staticmethod(retry_after), "requests": requests})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get_once(url: str) -> tuple[Any, list[float]]:
    """One GET through `HttpApi`, with the delays it would have slept."""
    slept: list[float] = []
    # A backoff of its own far below 7 s: a delay of ~7 can only come from Retry-After.
    settings = HttpSettings(base_url=url, timeout_seconds=5, backoff_seconds=0.01,
                            max_backoff_seconds=0.05, max_attempts=3)
    api = HttpApi(settings, check_body=lambda body: body["data"], sleep=slept.append)
    try:
        return api.get("/api/v1/things", {}), slept
    finally:
        api.close()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_out(serve, status):
    url, requests = serve(status, lambda: "7")
    data, slept = get_once(url)
    assert data == {"ok": True}
    assert len(requests) == 2
    assert slept == [pytest.approx(7.0)]


def test_retry_after_as_an_http_date_is_waited_out(serve):
    # An HTTP date has whole seconds: round up, so the wait asked for is 7 to 8 s
    # from when the answer is sent (less the moment it takes to reach the client).
    def seven_seconds_on() -> str:
        return email.utils.formatdate(math.ceil(time.time() + 7), usegmt=True)

    url, requests = serve(429, seven_seconds_on)
    data, slept = get_once(url)
    assert data == {"ok": True}
    assert len(requests) == 2
    assert len(slept) == 1
    assert 6.0 <= slept[0] <= 8.0, slept


def test_retry_after_in_the_past_means_no_wait(serve):
    url, requests = serve(429, lambda: email.utils.formatdate(time.time() - 60, usegmt=True))
    data, slept = get_once(url)
    assert data == {"ok": True} and len(requests) == 2
    assert slept == [0.0]


def test_an_unparseable_retry_after_falls_back_to_the_backoff(serve):
    url, requests = serve(429, lambda: "soon")
    data, slept = get_once(url)
    assert data == {"ok": True} and len(requests) == 2
    assert len(slept) == 1 and slept[0] <= 0.05
