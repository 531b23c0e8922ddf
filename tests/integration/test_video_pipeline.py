"""The video platform end to end over HTTP: device snapshots and the alarm back-fill.

The simulator's HTTP API is real (sockets, paging); no broker is involved here:
the alarms are marked published without MQTT, which is exactly the case "the
collector was down the whole time" that the back-fill must cover. The MQTT path
(collector, persistent session) is tested in test_video_mqtt.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.pipeline import run_source
from sandbox.city import City
from sandbox.video import VideoData
from sandbox.video_platform import VideoPlatform
from tests.support.video import VideoSource, current, write_video_sources
from tests.support.warehouse_checks import assert_one_current_row_each, findings, quarantined

SIM_END = datetime(2026, 11, 20)
CORE = ("core.thing", "core.organization", "core.event")


class _Platforms:
    """Starts simulators and writes a source for each; stops them at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.platforms: list[VideoPlatform] = []

    def start(self, scale: float = 0.01, days: int = 1, **source_settings: Any) -> VideoSource:
        name = f"video_{uuid.uuid4().hex[:8]}"
        data = VideoData(City("2111", scale=scale), days=days, end=SIM_END)
        platform = VideoPlatform(data, mqtt_port=None).start()
        self.platforms.append(platform)
        path = write_video_sources(self.folder / f"{name}.yaml", name, platform.url,
                                   **source_settings)
        return VideoSource(name, path, platform)

    def stop(self) -> None:
        for p in self.platforms:
            p.stop()


@pytest.fixture(scope="module")
def _env(warehouse) -> Iterator[None]:
    from base.settings import settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_BATCH_ROWS", "500")
        settings.cache_clear()
        yield
    settings.cache_clear()


@pytest.fixture(scope="module")
def platforms(tmp_path_factory, _env) -> Iterator[_Platforms]:
    started = _Platforms(tmp_path_factory.mktemp("video"))
    yield started
    started.stop()


@pytest.fixture
def video(platforms: _Platforms) -> Any:
    """A fresh platform and source of its own (for tests that change the platform)."""
    return platforms.start


@pytest.fixture(scope="module")
def loaded(platforms: _Platforms) -> tuple[VideoSource, Any]:
    """One platform whose history was published while no collector listened, loaded
    once (each pipeline run costs seconds): shared by the tests that only look."""
    src = platforms.start()
    src.publish_without_broker()
    return src, run_source(src.name, src.config)


def test_with_the_collector_down_the_backfill_loads_every_alarm_once(db, loaded):
    src, summary = loaded
    published = src.data.distinct_published()
    assert summary.outcome == "succeeded"
    assert summary.extracted == summary.loaded + summary.quarantined
    devices = current(db, src.name, "core.thing")
    assert set(devices) | set(quarantined(db, src.name, "thing")) == set(src.data.devices)
    events = current(db, src.name, "core.event")
    held = quarantined(db, src.name, "event")
    assert set(events) | set(held) == published
    assert not held, held  # nothing about these alarms is blocking
    total, distinct = db.execute("SELECT count(*), count(DISTINCT source_id) FROM core.event"
                                 " WHERE source_system = %s AND valid_to IS NULL",
                                 (src.name,)).fetchone()
    assert total == distinct == len(published)
    run = db.execute("SELECT outcome, extracted, loaded, quarantined FROM ops.run"
                     " WHERE run_id = %s", (summary.run_id,)).fetchone()
    assert run == ("succeeded", summary.extracted, summary.loaded, summary.quarantined)
    assert current(db, src.name, "core.organization"), "device owners are organizations"


def test_running_again_adds_nothing(db, loaded):
    src, _ = loaded
    again = run_source(src.name, src.config)
    assert (again.inserted, again.updated, again.closed) == (0, 0, 0)
    assert again.extracted > 0, "the snapshot and the overlap window are read again"
    assert_one_current_row_each(db, src.name, CORE)


def test_device_changes_keep_history_and_a_retired_device_is_closed(db, video):
    src = video()
    src.publish_without_broker()
    run_source(src.name, src.config)
    before = current(db, src.name, "core.thing", "state")
    ids_before = set(src.data.devices)
    src.data.advance(alarms=7)
    new_alarms = src.publish_without_broker()
    second = run_source(src.name, src.config)
    after = current(db, src.name, "core.thing", "state")
    retired = ids_before - set(src.data.devices)
    installed = set(src.data.devices) - ids_before
    assert len(retired) == 1 and len(installed) == 1
    assert second.closed == 1 and not retired & set(after)
    assert installed <= set(after)
    history = db.execute("SELECT count(*) FROM core.thing WHERE source_system = %s"
                         " AND source_id = %s", (src.name, retired.pop())).fetchone()
    assert history == (1,), "a retired device keeps its (closed) record"
    flipped = [d for d in ids_before & set(src.data.devices) if d in before
               and after[d] != before[d]]
    assert flipped, "no device changed state"
    for d in flipped:
        expected = {"ON": "online", "OFF": "offline"}[src.data.devices[d]["status"]]
        assert after[d] == (expected,)
        versions = db.execute("SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL)"
                              " FROM core.thing WHERE source_system = %s AND source_id = %s",
                              (src.name, d)).fetchone()
        assert versions == (2, 1)
    assert new_alarms <= set(current(db, src.name, "core.event"))


def test_bad_device_ids_and_locations_are_flagged(db, loaded):
    src, _ = loaded
    truth = src.data.device_truth
    found = findings(db, src.name, "thing")
    loaded = current(db, src.name, "core.thing", "thing_type", "thing_code")

    def devices_with(defect: str) -> list[str]:
        ids = [d for d, t in truth.items() if defect in t.defects]
        assert ids, f"the simulator planted no {defect}"
        return ids

    for defect, rule in [("id_malformed", "thing_code_format"),
                         ("id_wrong_type", "thing_code_format"),
                         ("coords_zero", "coordinates_in_city")]:
        for d in devices_with(defect):
            assert rule in found.get(d, set()), (defect, d)
    for d in devices_with("civil_unknown"):
        assert found.get(d, set()) & {"division_code_known", "street_code_known"}, d
    clean = [d for d, t in truth.items() if not t.defects]
    assert not [d for d in clean if "thing_code_format" in found.get(d, set())]
    for d in clean:
        assert loaded[d][0] == truth[d].kind, d
    reasons = db.execute("SELECT reason FROM quality.finding WHERE source_system = %s"
                         " AND rule = 'thing_code_format'", (src.name,)).fetchall()
    assert reasons and all("28181" in r[0] or "类型码" in r[0] for r in reasons)


def test_alarms_are_categorised_and_placed_at_their_camera(db, loaded):
    src, _ = loaded
    events = current(db, src.name, "core.event", "channel", "status", "category_code",
                     "longitude", "latitude", "reported_at", "description")
    things = current(db, src.name, "core.thing", "longitude", "latitude")
    truth = src.data.alarm_truth
    found = findings(db, src.name, "event")
    for alarm in src.data.alarms:
        aid = alarm["alarmId"]
        channel, status, category, lon, lat, reported_at, description = events[aid]
        assert (channel, status) == ("视频", "reported")
        assert reported_at.timestamp() * 1000 == pytest.approx(alarm["alarmTime"], abs=1)
        assert f"置信度 {alarm['confidence']}" in description
        defects = truth[aid].defects
        if "unknown_type" in defects:
            assert category == "unmapped" and "category_mapped" in found.get(aid, set())
        else:
            assert category != "unmapped", alarm["alarmType"]
        if "longitude" in alarm:
            assert (lon, lat) == (alarm["longitude"], alarm["latitude"])
        elif "unknown_device" in defects:
            assert (lon, lat) == (None, None)
        elif things.get(alarm["deviceId"]) and things[alarm["deviceId"]] != (0.0, 0.0):
            assert (lon, lat) == things[alarm["deviceId"]], "placed at its camera"
    for aid, t in truth.items():
        if "coords_zero" in t.defects:
            assert "coordinates_in_city" in found.get(aid, set())


def test_platform_errors_are_retried_and_change_nothing(db, video, loaded):
    clean, _ = loaded
    faulty = video()
    faulty.publish_without_broker()
    faulty.platform.server.error_rate = 0.3
    summary = run_source(faulty.name, faulty.config)
    assert faulty.platform.server.requests["faults"] > 0
    assert sum(summary.http.values()) > 0
    for table, cols in (("core.thing", ("record_hash",)), ("core.event", ("record_hash",))):
        assert current(db, faulty.name, table, *cols) == current(db, clean.name, table, *cols)
