"""The public video network (雪亮工程): device inventory over HTTP, AI alarms over MQTT.

Protocol (shared/design/sources.md §4). Three streams:
- `devices`: `GET /vms/api/devices`, paged; the platform gives the complete list
  each time, so each run is a full snapshot and a device missing from it is closed.
- `alarms`: what the collector (hub.collector, over connectors.mqtt_collector)
  landed, read in arrival order (landing id) through the reader the pipeline hands
  over in a `LandingContext`: the connector itself never touches the warehouse.
- `alarm_backfill`: `GET /vms/api/alarms` by alarmTime window, from where the
  last run got to minus an overlap: whatever the collector missed (it was down,
  the broker lost its queue). Alarms are keyed by alarmId in both streams, so an
  alarm read twice merges into one row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from base import clock
from connectors.base import (
    LOCAL_TIME_FORMAT,
    Connector,
    Extract,
    HttpApi,
    HttpSettings,
    ReadContext,
    SourceError,
    Stream,
    code_envelope,
    records_table,
)
from connectors.mqtt_collector import (
    LandedAlarm,
    LandedStream,
    LandingContext,
    MqttSettings,
)

OK = "0"
ALARM_FIELDS = ("alarmId", "deviceId", "alarmType", "alarmTime", "confidence", "imageUrl",
                "longitude", "latitude")
# Re-page a snapshot or window whose pages shifted under the read (fewer distinct
# records than the platform's total) at most this often.
MAX_PASSES = 3


class VideoSettings(HttpSettings, MqttSettings):
    page_size: int = Field(500, ge=1, le=1000, description="records per page")
    landing_settle_seconds: float = Field(
        2, ge=0, description="leave alarms landed this recently for the next run: one landed"
                             " a moment ago may still have an earlier one in flight")
    backfill: bool = Field(True, description="read the alarm back-fill API each run")
    backfill_start_from: str = Field("2026-01-01 00:00:00",
                                     description="local time the first back-fill starts at")
    backfill_overlap_minutes: int = Field(
        60, ge=0, description="re-read this much before the last window: late alarms")
    backfill_window_hours: float = Field(
        6, gt=0, description="alarmTime span per back-fill window (one cursor step)")


def _listing(body: dict[str, Any]) -> Any:
    data = body.get("data") or {}
    if not isinstance(data.get("list"), list):
        raise SourceError(f"page without a list: {str(data)[:200]}")
    return data


# Codes are strings here ("0"); 5xxxx are transient.
_check_body = code_envelope(ok=OK, normalise=str, retryable=lambda code: code.startswith("5"),
                            payload=_listing)


class Video(Connector):
    name = "video"
    settings_model = VideoSettings
    settings: VideoSettings
    streams = (
        Stream(name="devices", key_field="deviceId", snapshot=True, updated_field="updateTime",
               fields=(
            "deviceId", "name", "civilCode", "longitude", "latitude", "status", "owner",
            "address", "updateTime")),
        # Alarms are placed by the camera they name (the `cameras` lookup): devices first.
        LandedStream(name="alarms", key_field="alarmId", fields=ALARM_FIELDS, after=("devices",)),
        Stream(name="alarm_backfill", key_field="alarmId", fields=ALARM_FIELDS,
               after=("devices",)),
    )

    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        if isinstance(stream, LandedStream):
            yield from self._landed(stream, state, context)
            return
        if stream.name == "alarm_backfill" and not self.settings.backfill:
            return
        with HttpApi(self.settings, check_body=_check_body, stats=self.stats) as api:
            if stream.name == "devices":
                yield from self._devices(stream, state, api)
            else:
                yield from self._backfill(stream, state, api)

    # ---- devices: a full snapshot per run ----------------------------------------

    def _devices(self, stream: Stream, state: Mapping[str, Any] | None,
                 api: HttpApi) -> Iterator[Extract]:
        # A snapshot a crash left unfinished is resumed under its own id, so the
        # devices it already recorded as seen count towards it.
        if state and not state.get("complete", True):
            snapshot = str(state["snapshot_id"])
        else:
            snapshot = self.now_local().strftime("%Y%m%dT%H%M%S")
        cursor = {"snapshot_id": snapshot, "complete": False}
        for records, reread in _all_pages(
                lambda page: api.get("/vms/api/devices",
                                     {"page": page, "size": self.settings.page_size}),
                self.settings.page_size, stream.key_field):
            yield Extract(records_table(stream, records), cursor, reread, snapshot_id=snapshot)
        yield Extract(records_table(stream, []), {"snapshot_id": snapshot, "complete": True},
                      snapshot_id=snapshot, snapshot_complete=True)

    # ---- alarms the collector landed -----------------------------------------------

    def _landed(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None) -> Iterator[Extract]:
        after = int((state or {}).get("landing_id", 0))
        if not isinstance(context, LandingContext) or context.landed is None:
            # Nothing to read the landing with: the cursor stays where it is, and the
            # run says so (what landed waits for a run that can read it).
            yield Extract(records_table(stream, []), {"landing_id": after}, warnings=[
                f"{self.source.name}/{stream.name}: no reader of the collector's landing was"
                " given; the landed alarms were not read"])
            return
        size = self.settings.page_size
        while True:
            landed = context.landed(after, size, self.settings.landing_settle_seconds)
            records = [_landed_record(alarm) for alarm in landed]
            if landed:
                after = landed[-1].landing_id
            yield Extract(records_table(stream, records), {"landing_id": after})
            if len(landed) < size:
                return

    # ---- back-fill by alarmTime window -------------------------------------------------

    def _backfill(self, stream: Stream, state: Mapping[str, Any] | None,
                  api: HttpApi) -> Iterator[Extract]:
        s = self.settings
        if state and state.get("alarm_time_to") is not None:
            start = int(state["alarm_time_to"]) - s.backfill_overlap_minutes * 60_000 + 1
        else:
            first = datetime.strptime(s.backfill_start_from, LOCAL_TIME_FORMAT)
            start = int(first.replace(tzinfo=ZoneInfo(s.timezone)).timestamp() * 1000)
        # The window's end is fixed when the run starts: alarms raised during the
        # read wait for the next run instead of shifting pages.
        end = int(clock.now().timestamp() * 1000)
        step = int(s.backfill_window_hours * 3_600_000)
        reached = start - 1
        for lo in range(start, end + 1, step):
            hi = min(lo + step - 1, end)

            def fetch(page: int, lo: int = lo, hi: int = hi) -> Any:
                return api.get("/vms/api/alarms", {"startTime": lo, "endTime": hi,
                                                   "page": page, "size": s.page_size})

            for records, reread in _all_pages(fetch, s.page_size, stream.key_field):
                yield Extract(records_table(stream, records), {"alarm_time_to": reached}, reread)
            reached = hi
            yield Extract(records_table(stream, []), {"alarm_time_to": reached})


def _landed_record(alarm: LandedAlarm) -> dict[str, Any]:
    if not isinstance(alarm.payload, dict) or "_unparseable" in alarm.payload:
        # Kept under its landing key with nothing else: the conform step finds the
        # required fields missing and quarantines it (its text stays in the landing).
        return {"alarmId": alarm.alarm_id, "deviceId": alarm.device_id}
    record = dict(alarm.payload)
    record["alarmId"] = alarm.alarm_id
    record.setdefault("deviceId", alarm.device_id)
    return record


def _all_pages(fetch: Callable[[int], Any], page_size: int,
               key: str) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Every record of a paged listing, once each: (new records, rereads) per page.

    Page numbers over a list that changes while it is read can skip a record (one
    inserted before the current page pushes another onto a page already read). The
    platform's `total` tells: if fewer distinct records were seen, page through
    again (the records seen twice are skipped and counted as rereads).
    """
    seen: set[str] = set()
    for _ in range(MAX_PASSES):
        page, total = 1, 0
        while True:
            data = fetch(page)
            records = data["list"]
            total = int(data.get("total") or 0)
            fresh = [r for r in records if str(r.get(key)) not in seen]
            seen.update(str(r.get(key)) for r in fresh)
            yield fresh, len(records) - len(fresh)
            if len(records) < page_size:
                break
            page += 1
        if len(seen) >= total:
            return
    raise SourceError(f"the listing kept shifting: {len(seen)} distinct records of {total}")
