"""The simulated 12345 platform the tests share: its credentials, the end of its history,
and a sources file pointing at one of its servers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.sources import write_sources_file

HOTLINE_KEY, HOTLINE_SECRET = "test-app-key", "test-app-secret"
# The end of the simulated history: fixed, so every test sees the same orders.
SIM_END = "2026-11-20 00:00:00"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SIM_END_AT = datetime.fromisoformat(SIM_END).replace(tzinfo=SHANGHAI)


def write_sources(path: Path, name: str, base_url: str, **settings: object) -> Path:
    return write_sources_file(path, {name: {"connector": "hotline12345", "settings": {
        "base_url": base_url, "page_size": 200, "timeout_seconds": 2,
        "backoff_seconds": 0.05, "max_backoff_seconds": 0.5, "max_attempts": 12,
        "start_from": "2026-11-01 00:00:00", **settings}}})
