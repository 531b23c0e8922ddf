"""The hub's one clock: every value that depends on "now" is read from here.

Rules ("not in the future"), conformers, simulators, the marts' current week and
the report all ask `now()`, so a test or a backfill can pin the time in one
place: `pinned(at)` in-process, or `HUB_CLOCK=2026-11-20T08:00:00+08:00` in the
environment (reaches subprocesses such as `airflow dags test`). Durations are
measured with `time.monotonic()`, never with this clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

CLOCK_ENV = "HUB_CLOCK"

_pinned: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    if _pinned is not None:
        return _pinned
    configured = os.environ.get(CLOCK_ENV)
    if configured:
        return parse_instant(configured)
    return datetime.now(UTC)


def local_now(timezone: str) -> datetime:
    """Now as a naive local time in `timezone`, to the second: how platforms write times."""
    return now().astimezone(ZoneInfo(timezone)).replace(tzinfo=None, microsecond=0)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; one without an offset is refused (its meaning would depend
    on the machine's time zone)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{CLOCK_ENV}={text!r} needs an offset, e.g. 2026-11-20T08:00:00+08:00")
    return value.astimezone(UTC)


@contextmanager
def pinned(at: datetime) -> Iterator[datetime]:
    """Hold the clock at `at` (timezone-aware) inside the block."""
    global _pinned
    if at.tzinfo is None:
        raise ValueError("the clock is pinned to a timezone-aware instant")
    before, _pinned = _pinned, at.astimezone(UTC)
    try:
        yield _pinned
    finally:
        _pinned = before
