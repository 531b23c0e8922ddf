"""The video platform simulator: deterministic, dirty on purpose, honest about it."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import httpx
import pytest

from sandbox.city import City
from sandbox.video import ALARM_DEFECTS, DEVICE_DEFECTS, NVR_TYPE, VideoData
from sandbox.video_platform import VideoPlatform, start_for_demo

END = datetime(2026, 11, 20)


def make(scale: float = 0.01, days: int = 1, end: datetime = END) -> VideoData:
    return VideoData(City("2111", scale=scale), days=days, end=end)


def test_the_data_is_a_pure_function_of_its_inputs():
    a, b = make(), make()
    assert a.devices == b.devices and a.alarms == b.alarms
    assert {k: t.defects for k, t in a.alarm_truth.items()} == \
        {k: t.defects for k, t in b.alarm_truth.items()}
    assert make(end=datetime(2026, 11, 21)).alarms != a.alarms
    a.advance(datetime(2026, 11, 20, 9), alarms=5)
    b.advance(datetime(2026, 11, 20, 9), alarms=5)
    assert a.devices == b.devices and a.alarms == b.alarms


def test_volumes_follow_the_scale():
    small, large = make(0.01), make(0.03, days=2)
    assert len(small.alarms) == 200 and len(large.alarms) == 2 * 600
    assert len(large.devices) > len(small.devices)  # about one camera per grid


def test_every_planted_defect_is_real_and_recorded():
    data = make()
    districts = {d.code for d in data.city.districts}
    device_kinds = {k for t in data.device_truth.values() for k in t.defects}
    alarm_kinds = {k for t in data.alarm_truth.values() for k in t.defects}
    assert device_kinds == set(DEVICE_DEFECTS) and alarm_kinds == set(ALARM_DEFECTS)
    for device_id, record in data.devices.items():
        truth = data.device_truth[device_id]
        well_formed = len(device_id) == 20 and device_id.isdigit()
        assert well_formed == ("id_malformed" not in truth.defects), device_id
        if not truth.defects:
            assert device_id[:6] in districts
            assert (device_id[10:13] == NVR_TYPE) == (truth.kind == "nvr")
            assert record["civilCode"][:6] in districts
        if "id_wrong_type" in truth.defects:
            assert device_id[10:13] not in ("131", "132", "118")
        if "coords_zero" in truth.defects:
            assert (record["longitude"], record["latitude"]) == (0.0, 0.0)
    cameras = set(data.cameras())
    for alarm in data.alarms:
        truth = data.alarm_truth[alarm["alarmId"]]
        assert (alarm["deviceId"] in cameras) == ("unknown_device" not in truth.defects)


def test_the_http_api_pages_the_inventory_and_backfills_only_published_alarms():
    data = make()
    with VideoPlatform(data, mqtt_port=None) as platform:
        seen: list[str] = []
        page = 1
        while True:
            body = httpx.get(f"{platform.url}/vms/api/devices",
                             params={"page": page, "size": 25}).json()
            assert body["code"] == "0" and body["data"]["total"] == len(data.devices)
            seen += [d["deviceId"] for d in body["data"]["list"]]
            if len(body["data"]["list"]) < 25:
                break
            page += 1
        assert sorted(seen) == sorted(data.devices)

        window = {"startTime": 0, "endTime": 2**53, "page": 1, "size": 500}
        assert httpx.get(f"{platform.url}/vms/api/alarms", params=window).json()["data"] == \
            {"list": [], "total": 0}
        half = {a["alarmId"] for a in data.take_unpublished(50)}
        data.mark_published(half)
        listed = httpx.get(f"{platform.url}/vms/api/alarms", params=window).json()["data"]
        assert {a["alarmId"] for a in listed["list"]} == half
        bad = httpx.get(f"{platform.url}/vms/api/alarms", params={"page": 1}).json()
        assert bad["code"] == "40001"


def test_the_demo_platform_and_the_collector_work_on_the_embedded_broker(tmp_path, warehouse,
                                                                        db, monkeypatch):
    """amqtt delivers live alarms (it only fails to keep queued ones): the collector
    lands what the demo publishes while it listens."""
    import yaml

    from base.settings import settings
    from hub.collector import collect

    settings.cache_clear()
    demo = start_for_demo(City("2111", scale=0.005), 1, tmp_path / "demo")
    try:
        assert demo.env == {}
        config = tmp_path / "sources.yaml"
        config.write_text(yaml.safe_dump({
            "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
            "sources": {"video_demo_test": {"connector": "video", "settings": demo.settings}},
        }, allow_unicode=True), encoding="utf-8")
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=collect, args=("video_demo_test", config, stop, ready),
                                  daemon=True)
        thread.start()
        assert ready.wait(15)
        before = len(demo.simulator.data.distinct_published())
        assert demo.advance() > 0
        new = len(demo.simulator.data.distinct_published()) - before
        deadline = time.monotonic() + 15
        landed = 0
        while time.monotonic() < deadline:
            landed = db.execute("SELECT count(*) FROM raw.video_alarm WHERE source_system"
                                " = 'video_demo_test'").fetchone()[0]
            if landed >= new:
                break
            time.sleep(0.1)
        stop.set()
        thread.join(15)
        assert landed == new > 0
    finally:
        demo.stop()
        db.execute("DELETE FROM raw.video_alarm WHERE source_system = 'video_demo_test'")


@pytest.mark.parametrize("size", [0, 1001])
def test_out_of_range_page_sizes_are_refused_in_the_body(size):
    with VideoPlatform(make(), mqtt_port=None) as platform:
        body = httpx.get(f"{platform.url}/vms/api/devices", params={"page": 1, "size": size})
        assert body.status_code == 200 and body.json()["code"] == "40001"
