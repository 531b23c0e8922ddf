"""AI alarms over MQTT: the collector lands every alarm once, even across an outage.

Against Mosquitto at 127.0.0.1:1883 (skipped with the reason when it is not
there): amqtt, the demo's embedded broker, does not redeliver what it queued for
a persistent session, so it cannot show no-loss. Each test publishes on a topic
of its own and retires its collector's session afterwards, so tests never see
each other's alarms. The ingest runs with the back-fill switched off: what ends
in core.event came through the broker and the collector alone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from base.settings import PROJECT_ROOT
from connectors.mqtt_collector import CollectorStats, discard_session
from hub.collector import collect
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.video import VideoData
from sandbox.video_platform import VideoPlatform
from tests.support.video import VideoSource, current, write_video_sources
from tests.support.warehouse_checks import quarantined

MOSQUITTO = ("127.0.0.1", 1883)
SIM_END = datetime(2026, 11, 20)


def _mosquitto_up() -> bool:
    try:
        with socket.create_connection(MOSQUITTO, timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _mosquitto_up(),
    reason="no MQTT broker at 127.0.0.1:1883: the no-loss tests need Mosquitto "
           "(persistent sessions that queue QoS 1 messages while the collector is down)",
)


class Collector:
    """`collect` running in a thread, as `hub collect <source>` runs it in a process."""

    def __init__(self, source: str, config: Path):
        self.stop_event, self.ready = threading.Event(), threading.Event()
        self.stats: CollectorStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(source, config), daemon=True)
        self.thread.start()
        assert self.ready.wait(30), f"the collector did not subscribe: {self.error!r}"

    def _run(self, source: str, config: Path) -> None:
        try:
            self.stats = collect(source, config, stop_event=self.stop_event,
                                 ready_event=self.ready)
        except BaseException as exc:  # shown by the test that waits for it
            self.error = exc
            raise

    def stop(self) -> CollectorStats:
        self.stop_event.set()
        self.thread.join(15)
        assert self.stats is not None, "the collector did not stop cleanly"
        return self.stats


@pytest.fixture
def mqtt_video(tmp_path, monkeypatch, warehouse) -> Iterator[Any]:
    from base.settings import settings

    monkeypatch.setenv("HUB_BATCH_ROWS", "500")
    settings.cache_clear()
    started: list[tuple[VideoPlatform, str]] = []

    def start() -> VideoSource:
        name = f"video_{uuid.uuid4().hex[:8]}"
        data = VideoData(City("2111", scale=0.01), days=1, end=SIM_END)
        platform = VideoPlatform(data, mqtt_host=MOSQUITTO[0], mqtt_port=MOSQUITTO[1],
                                 topic_prefix=f"hubtest/{name}/vms/alarms").start()
        started.append((platform, f"hub-{name}"))
        path = write_video_sources(tmp_path / f"{name}.yaml", name, platform.url,
                                      mqtt_host=MOSQUITTO[0], mqtt_port=MOSQUITTO[1],
                                      backfill=False)
        return VideoSource(name, path, platform)

    yield start
    settings.cache_clear()
    for platform, client_id in started:
        platform.stop()
        discard_session(*MOSQUITTO, client_id)


def landed(db: psycopg.Connection, source: str) -> int:
    row = db.execute("SELECT count(*) FROM raw.video_alarm WHERE source_system = %s",
                     (source,)).fetchone()
    return int(row[0]) if row else 0


def wait_landed(db: psycopg.Connection, source: str, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while landed(db, source) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert landed(db, source) == n


def assert_each_alarm_once(db: psycopg.Connection, src: VideoSource) -> None:
    published = src.data.distinct_published()
    events = current(db, src.name, "core.event")
    assert set(events) == published
    total, distinct = db.execute("SELECT count(*), count(DISTINCT source_id) FROM core.event"
                                 " WHERE source_system = %s AND valid_to IS NULL",
                                 (src.name,)).fetchone()
    assert total == distinct == len(published)


def test_every_published_alarm_ends_in_core_event_once_despite_duplicates(db, mqtt_video):
    src = mqtt_video()
    collector = Collector(src.name, src.config)
    src.platform.publish()
    assert src.platform.publisher is not None
    src.platform.publisher.publish_garbled(src.data.cameras()[0], b"\xff{alarmId: oops")
    published = src.data.distinct_published()
    twice = [a for a, t in src.data.alarm_truth.items() if "duplicate" in t.defects]
    assert twice, "the simulator planted no duplicate"
    wait_landed(db, src.name, len(published) + 1)
    time.sleep(0.3)  # let the last redeliveries arrive: they must change nothing
    stats = collector.stop()
    assert stats.received == len(published) + len(twice) + 1
    assert (stats.landed, stats.duplicates, stats.unparseable) == (len(published) + 1,
                                                                   len(twice), 1)
    summary = run_source(src.name, src.config)
    devices = len(src.data.devices)
    assert summary.extracted == summary.loaded + summary.quarantined
    assert summary.extracted == len(published) + 1 + devices
    assert_each_alarm_once(db, src)
    # The garbled message is not dropped: it waits in quarantine, its text in the landing.
    held = quarantined(db, src.name, "event")
    assert len(held) == 1 and next(iter(held)).startswith("unparseable:")
    cursor = db.execute("SELECT state->>'landing_id' FROM ops.cursor WHERE source_system = %s"
                        " AND stream = 'alarms'", (src.name,)).fetchone()
    last = db.execute("SELECT max(landing_id)::text FROM raw.video_alarm WHERE source_system"
                      " = %s", (src.name,)).fetchone()
    assert cursor == last, "the next run starts after the last landed alarm"


def test_alarms_published_while_the_collector_is_killed_are_not_lost(db, mqtt_video, tmp_path):
    """The collector dies hard (SIGKILL, mid-stream: some alarms received but not yet
    acknowledged), alarms keep coming while it is down, then it restarts."""
    src = mqtt_video()
    log = tmp_path / "collector.log"
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.collector", src.name, str(src.config)],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=PROJECT_ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == "subscribed", log.read_text()
        first = src.platform.publish(len(src.data.alarms) // 3)
        deadline = time.monotonic() + 20
        while landed(db, src.name) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        process.kill()  # no DISCONNECT, no chance to finish what it was doing
        process.wait(10)
    killed_at = landed(db, src.name)
    assert 10 <= killed_at <= len(first)

    # The collector is down: the broker queues for its persistent session.
    rest = src.platform.publish()
    assert rest

    restarted = Collector(src.name, src.config)
    wait_landed(db, src.name, len(first) + len(rest))
    stats = restarted.stop()
    assert stats.landed == len(first) + len(rest) - killed_at, "the rest came from the broker"
    run_source(src.name, src.config)
    assert_each_alarm_once(db, src)
