"""The simulated 12345 platform the tests share: its credentials, the end of its history,
and a sources file pointing at one of its servers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

HOTLINE_KEY, HOTLINE_SECRET = "test-app-key", "test-app-secret"
# The end of the simulated history: fixed, so every test sees the same orders.
SIM_END = "2026-11-20 00:00:00"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SIM_END_AT = datetime.fromisoformat(SIM_END).replace(tzinfo=SHANGHAI)


def write_sources(path: Path, name: str, base_url: str, **settings: object) -> Path:
    config = {
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
        "sources": {name: {"connector": "hotline12345", "settings": {
            "base_url": base_url, "page_size": 200, "timeout_seconds": 2,
            "backoff_seconds": 0.05, "max_backoff_seconds": 0.5, "max_attempts": 12,
            "start_from": "2026-11-01 00:00:00", **settings}}},
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path
