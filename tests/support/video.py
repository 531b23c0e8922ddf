"""The simulated video platform as the video tests configure it, and reading current rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sandbox.video import VideoData
from sandbox.video_platform import VideoPlatform
from tests.support.sources import write_sources_file


@dataclass
class VideoSource:
    name: str
    config: Path
    platform: VideoPlatform

    @property
    def data(self) -> VideoData:
        return self.platform.data

    def publish_without_broker(self) -> set[str]:
        """Alarms raised and 'published' while nothing listened: only the back-fill has them."""
        ids = {a["alarmId"] for a in self.data.take_unpublished()}
        self.data.mark_published(ids)
        return ids


def write_video_sources(path: Path, name: str, base_url: str, **settings: Any) -> Path:
    return write_sources_file(path, {name: {"connector": "video", "settings": {
        "base_url": base_url, "page_size": 40, "timeout_seconds": 2,
        "backoff_seconds": 0.05, "max_backoff_seconds": 0.5,
        "mqtt_client_id": f"hub-{name}", "alarm_topic": f"hubtest/{name}/vms/alarms/+",
        "backfill_start_from": "2026-11-18 00:00:00", "backfill_window_hours": 12,
        "landing_settle_seconds": 0,
        **settings}}})


def current(db: psycopg.Connection, source: str, table: str, *columns: str) -> dict[str, tuple]:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("source_id", *columns))
    rows = db.execute(sql.SQL("SELECT {} FROM {} WHERE source_system = %s AND valid_to IS NULL")
                      .format(cols, sql.Identifier(*table.split("."))), (source,)).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}
