"""Where the layers meet, without a warehouse or a broker: what the pipeline hands the
connectors and conformers (a landing reader, lookups), the collector's acknowledgement
after the landing, the resident key both sides compute, and the tables a connector
writes."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from base.settings import CityConfig, SourceConfig
from conform.base import Lookups
from conform.video import VideoAlarmConformer
from connectors import gridmgmt as connector_gridmgmt
from connectors.base import ReadContext
from connectors.mqtt_collector import (
    AlarmCollector,
    LandedAlarm,
    LandedStream,
    LandingContext,
    LandingFailed,
    MqttSettings,
)
from connectors.video import Video
from hub.lineage import conformer_class, tables_written
from hub.pipeline import read_lookups

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))


def video() -> Video:
    return Video(SourceConfig(name="seams", connector="video", settings={
        "base_url": "http://127.0.0.1:9", "page_size": 2, "landing_settle_seconds": 1.5}), CITY)


# ---- the landing, read through the reader the pipeline hands over


class FakeLanding:
    def __init__(self, alarms: list[LandedAlarm]):
        self.alarms = alarms
        self.calls: list[tuple[int, int, float]] = []

    def __call__(self, after: int, limit: int, settle: float) -> list[LandedAlarm]:
        self.calls.append((after, limit, settle))
        return [a for a in self.alarms if a.landing_id > after][:limit]


def test_the_alarms_stream_reads_the_landing_through_the_reader_it_is_given():
    stream = Video.stream("alarms")
    assert isinstance(stream, LandedStream)
    landing = FakeLanding([
        LandedAlarm(3, "a1", "cam1", {"alarmId": "a1", "alarmType": "fire"}),
        LandedAlarm(5, "a2", None, {"alarmId": "a2", "deviceId": "cam2"}),
        LandedAlarm(9, "unparseable:ff", "cam3", {"_unparseable": "{oops", "_topic": "t"}),
    ])
    extracts = list(video().extract(stream, {"landing_id": 1}, LandingContext(landed=landing)))
    assert [e.cursor for e in extracts] == [{"landing_id": 5}, {"landing_id": 9}]
    rows = [r for e in extracts for r in e.records.to_pylist()]
    assert [(r["alarmId"], r["deviceId"], r["alarmType"]) for r in rows] == [
        ("a1", "cam1", "fire"), ("a2", "cam2", None), ("unparseable:ff", "cam3", None)]
    # Paged by the connector's page size, each page after the last, settling as configured.
    assert landing.calls == [(1, 2, 1.5), (5, 2, 1.5)]


def test_without_a_landing_reader_nothing_is_read_and_the_cursor_stays():
    [only] = video().extract(Video.stream("alarms"), {"landing_id": 7}, ReadContext())
    assert only.records.num_rows == 0 and only.cursor == {"landing_id": 7}
    assert only.warnings and "not read" in only.warnings[0]


# ---- the collector: acknowledged only after the landing returned


class FakeClient:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def message(mid: int, body: bytes = b'{"alarmId": "x1", "deviceId": "cam"}') -> Any:
    return SimpleNamespace(mid=mid, qos=1, payload=body, topic="vms/alarms/cam")


def test_a_message_is_acknowledged_only_once_its_landing_succeeded():
    attempts: list[str] = []

    def land(alarm_id: str, device_id: str | None, body: Any) -> bool:
        attempts.append(alarm_id)
        if len(attempts) < 3:
            raise LandingFailed("the warehouse is away")
        return True

    collector = AlarmCollector("seams", MqttSettings(reconnect_min_seconds=1), land)
    collector.settings = collector.settings.model_copy(update={"reconnect_min_seconds": 0})
    client = FakeClient()
    collector._on_message(client, None, message(41))
    assert attempts == ["x1"] * 3 and client.acked == [41]
    assert (collector.stats.landed, collector.stats.db_errors) == (1, 2)


def test_a_message_whose_landing_never_succeeded_is_not_acknowledged():
    stop = threading.Event()

    def land(alarm_id: str, device_id: str | None, body: Any) -> bool:
        stop.set()  # the process is told to stop while the warehouse is away
        raise LandingFailed("the warehouse is away")

    collector = AlarmCollector("seams", MqttSettings(), land)
    collector._stop = stop
    client = FakeClient()
    collector._on_message(client, None, message(42))
    assert client.acked == []  # the broker delivers it again to the next session


def test_a_duplicate_is_acknowledged_and_counted_as_one():
    collector = AlarmCollector("seams", MqttSettings(), lambda *_: False)
    client = FakeClient()
    collector._on_message(client, None, message(43))
    assert client.acked == [43] and collector.stats.duplicates == 1


# ---- lookups: passed in, never queried


def test_an_alarm_without_coordinates_is_placed_at_its_camera_from_the_lookup():
    cameras = pa.table({
        "thing_code": ["cam1", "cam0"], "longitude": [121.9, 0.0], "latitude": [41.1, 0.0],
        "address": ["兴隆大街1号", "?"], "division_code": ["211103", "211103"],
        "street_code": [None, None], "grid_code": ["211103001001001", None]})
    raw = pa.table({f: pa.array(v, pa.string()) for f, v in {
        "alarmId": ["a1", "a2", "a3"], "deviceId": ["cam1", "cam0", "nobody"],
        "alarmType": ["fire"] * 3, "alarmTime": ["1763600000000"] * 3,
        "confidence": ["0.9"] * 3, "imageUrl": [None] * 3,
        "longitude": [None] * 3, "latitude": [None] * 3}.items()})
    conformer = VideoAlarmConformer(SimpleNamespace(), CITY, Lookups(cameras=cameras))
    rows = conformer.conform(raw).table.to_pylist()
    assert (rows[0]["longitude"], rows[0]["latitude"], rows[0]["grid_code"]) == \
        (121.9, 41.1, "211103001001001")
    assert rows[1]["longitude"] is None  # (0, 0) is a placeholder, not a place
    assert rows[1]["address"] == "?"
    assert rows[2]["longitude"] is None and rows[2]["address"] is None
    # Without the lookup, no camera is known: the alarms keep what they carry.
    assert VideoAlarmConformer(SimpleNamespace(), CITY).conform(raw).table.num_rows == 3


def test_the_pipeline_reads_only_the_lookups_a_conformer_names():
    assert conformer_class("video", "alarms").needs == {"cameras"}
    assert conformer_class("video", "devices").needs == frozenset()
    assert read_lookups(None, frozenset()) == Lookups()  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no reader"):
        read_lookups(None, frozenset({"nothing"}))  # type: ignore[arg-type]


# ---- one resident key, whoever computes it


def test_a_resident_has_one_key_whichever_way_the_id_number_is_keyed_in():
    spellings = ["21110319900101123X", "211103 19900101 123x", "２１１１０３１９９００１０１１２３Ｘ",
                 "211103900101123", "211103199001011231", None, "", "not a number"]
    n = len(spellings)
    records = pa.table({
        "公民身份号码": pa.array(spellings, pa.string()),
        "姓名": pa.array(["张三"] * n, pa.string()),
        "出生日期": pa.array(["1990-01-01"] * n, pa.string()),
        "现住址": pa.array([f"兴隆大街{i}号" for i in range(n)], pa.string()),
    })
    keys = connector_gridmgmt.resident_keys(records).to_pylist()
    assert len(set(keys[:5])) == 1  # one number, five spellings (a wrong check character too)
    assert all(k.startswith("resident:noid:") for k in keys[5:7])


# ---- lineage


def test_the_tables_a_connector_writes_come_from_both_registries():
    assert tables_written("video") == ("core.thing", "core.organization", "core.event")
    assert "core.person" in tables_written("gridmgmt")
