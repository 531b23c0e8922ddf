"""Video devices → core.thing (their owners → core.organization); AI alarms → core.event.

Devices: GB/T 28181 ids are kept as sent in `thing_code` (the thing_code_format
rule judges them); the type digits (11–13) give the thing type through
schemas/mappings/video/device_types.csv. A device of the video network whose type
digits are not in that file is taken as a camera, so the rule flags its id
instead of skipping it as "not a device". civilCode is a 6-digit county code or
a 9-digit street code.

Alarms (from the MQTT landing or the back-fill, the same way): one event per
alarmId on channel 视频, reported at alarmTime, status `reported` (an alarm is a
report; handling happens on the platforms it is dispatched to). alarmType maps
through schemas/mappings/video/categories.csv. An alarm without coordinates of its
own is placed at its camera, looked up among the cameras the hub has loaded (the
`cameras` lookup, read by the pipeline and passed in); the camera also gives the
address and division. The confidence and snapshot URL go
into the description.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conform import values as v
from conform.base import Conformed, Conformer, build
from conform.coords import lonlat
from conform.derived import departments
from conform.mappings import category_mapping, code_map, status_mapping
from schemas.model import EVENT, ORGANIZATION, THING

PLATFORM = "video"
CHANNEL = "视频"
ALARM_STATUS = "告警"  # the platform has no status of its own: every alarm is a report
DEFAULT_THING_TYPE = "camera"
DEVICE_LOCATION = ("longitude", "latitude", "address", "division_code", "street_code",
                   "grid_code")
# The `cameras` lookup (conform.base.Lookups): one row per device code.
CAMERAS = pa.schema([("thing_code", pa.string()), ("longitude", pa.float64()),
                     ("latitude", pa.float64())]
                    + [(name, pa.string()) for name in DEVICE_LOCATION[2:]])


@cache
def device_mapping(file: str, key: str, column: str) -> dict[str, str]:
    return code_map(PLATFORM, file, key, column)


class VideoDeviceConformer(Conformer):
    platform, streams = PLATFORM, ("devices",)
    primary = THING
    derived = (ORGANIZATION,)

    def conform(self, raw: pa.Table) -> Conformed:
        unparseable: dict[str, np.ndarray] = {}
        code = v.trimmed(raw["deviceId"])
        is_gb28181 = pc.fill_null(pc.match_substring_regex(code, r"^\d{20}$"), False)
        type_digits = pc.if_else(is_gb28181, pc.utf8_slice_codeunits(code, 10, 13),
                                 pa.scalar(None, pa.string()))
        thing_type = v.map_codes(
            type_digits, device_mapping("device_types.csv", "type_code", "thing_type"),
            DEFAULT_THING_TYPE)
        state_text = v.trimmed(raw["status"])
        state = v.map_codes(  # a state no mapping knows is kept as sent
            pc.utf8_upper(state_text), device_mapping("device_states.csv", "source_state", "state"),
            state_text)

        division, street = v.division_parts(raw["civilCode"])

        cols: dict[str, v.Column | pa.Scalar | None] = {
            "source_id": raw["deviceId"],
            "thing_type": thing_type,
            "thing_code": code,
            "name": raw["name"],
            "category": v.map_codes(
                type_digits, device_mapping("device_types.csv", "type_code", "category"), None),
            "state": state,
            "owner_org": v.trimmed(raw["owner"]),
            "address": raw["address"],
            "division_code": division,
            "street_code": street,
        }
        cols["longitude"], cols["latitude"] = lonlat(raw, unparseable)
        cols["source_updated_at"], unparseable["updateTime"] = v.local_times(
            raw["updateTime"], self.city.timezone)
        return Conformed(build(THING, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        """The devices' owners (公安分局, 城管执法局 …) as organizations."""
        return {"organization": departments(primary["owner_org"])}


class VideoAlarmConformer(Conformer):
    # Alarms the collector landed and alarms the back-fill read are the same records.
    platform, streams = PLATFORM, ("alarms", "alarm_backfill")
    primary = EVENT
    needs = frozenset({"cameras"})

    def conform(self, raw: pa.Table) -> Conformed:
        n = raw.num_rows
        unparseable: dict[str, np.ndarray] = {}
        cols: dict[str, v.Column | pa.Scalar | None] = {}
        cols["reported_at"], unparseable["alarmTime"] = v.epoch_millis(raw["alarmTime"])
        cols["source_updated_at"] = cols["reported_at"]
        lon, lat = lonlat(raw, unparseable)

        device = self._devices(v.trimmed(raw["deviceId"]))
        own = pc.or_(pc.is_valid(lon), pc.is_valid(lat))
        cols["longitude"] = pc.if_else(own, lon, device["longitude"])
        cols["latitude"] = pc.if_else(own, lat, device["latitude"])
        for name in DEVICE_LOCATION[2:]:
            cols[name] = device[name]

        alarm_type = raw["alarmType"]
        cols["source_id"] = raw["alarmId"]
        cols["channel"] = pa.scalar(CHANNEL)
        cols["source_category"] = alarm_type
        cols["category_code"] = v.map_codes(alarm_type, category_mapping(PLATFORM))
        source_status = pa.array([ALARM_STATUS] * n, pa.string())
        cols["source_status"] = source_status
        cols["status"] = v.map_codes(source_status, status_mapping(PLATFORM))
        cols["title"] = v.trimmed(alarm_type)
        cols["description"] = pc.binary_join_element_wise(
            "AI告警 置信度 ", pc.fill_null(raw["confidence"], "?"),
            "；设备 ", pc.fill_null(raw["deviceId"], "?"),
            "；抓拍 ", pc.fill_null(raw["imageUrl"], "-"), "")
        return Conformed(build(EVENT, cols, n), unparseable)

    def _devices(self, device_ids: v.Column) -> pa.Table:
        """Location of each alarm's camera (row-aligned; nulls for unknown cameras),
        from the `cameras` lookup.

        GB/T 28181 ids are national, so a camera is looked up by id whichever
        source loaded it; (0, 0) is a placeholder, not a location.
        """
        known = self.lookups.cameras
        if known is None:
            known = CAMERAS.empty_table()
        known = known.select(CAMERAS.names).cast(CAMERAS).combine_chunks()
        index = pc.index_in(device_ids, value_set=known["thing_code"].combine_chunks())
        found = {name: pc.take(known[name].combine_chunks(), index) for name in DEVICE_LOCATION}
        nowhere = pc.fill_null(pc.and_(pc.equal(found["longitude"], 0.0),
                                       pc.equal(found["latitude"], 0.0)), False)
        for axis in ("longitude", "latitude"):
            found[axis] = pc.if_else(nowhere, pa.scalar(None, pa.float64()), found[axis])
        return pa.table(found)
