"""The public video network (雪亮工程): its device inventory and AI alarms, dirty, with ground truth.

Everything is a pure function of (city, days, end): about one camera per grid
(`City.grids`, so the cameras stand where the other platforms' people and
incidents are) plus one NVR per 16 cameras, and about 20,000 AI alarms a day at
scale 1 over `days` days ending at `end` (a naive Asia/Shanghai local time).

Dirt is planted deliberately and recorded per record (`VideoData.device_truth`,
`VideoData.alarm_truth`):
- devices: GB/T 28181 ids that are not 20 digits, type digits that are neither
  131/132 (camera) nor 118 (NVR), coordinates at (0, 0), civilCode unknown to
  the division tables (6 and 9-digit civilCodes are both normal);
- alarms: published twice over MQTT (QoS 1 duplicates), an alarmType no mapping
  covers, coordinates at (0, 0), a deviceId that is not in the inventory; about
  40 % carry no coordinates at all (the device's location stands for them).

A camera alarms again about what it saw while the situation lasts (minutes apart: one
incident, `AlarmTruth.incident_id` `V…`); its next incident of the same type comes hours
later (`INCIDENT_SPACING`: the platform holds back an alarm type on a camera meanwhile).
Some alarms are of incidents other platforms report too (sandbox.incidents: the street
vendor a 数字城管 operator files a case about from the video), raised by the camera of
the incident's grid, sometimes more than once: `AlarmTruth.incident_id`.

The platform itself is `VideoPlatform`: the HTTP API (sandbox.video_server), an
MQTT publisher of the alarms (`AlarmPublisher`) and, for the embedded demo, an
in-process broker (sandbox.video_broker). Standalone:
`python -m sandbox.video_platform` serves it (HTTP, MQTT and the publisher).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox import incidents
from sandbox.city import City, Grid
from sandbox.hotline12345 import SHANGHAI, fmt, local_end, now_local

GRIDS_PER_CAMERA = 1
CAMERAS_PER_NVR = 16
ALARMS_PER_DAY_AT_SCALE_1 = 20_000
TOPIC_PREFIX = "vms/alarms"
DEMO_SOURCE = "video"

# GB/T 28181 type digits (positions 11–13).
CAMERA_TYPES = ("131", "132")
NVR_TYPE = "118"
WRONG_TYPES = ("200", "111", "134", "216")
INDUSTRY_CODES = ("00", "01", "04")  # 社会治安路面 / 社会治安公共区域 / 城市管理

ALARM_TYPES: dict[str, float] = {
    "占道经营": 18, "暴露垃圾": 16, "违章停车": 22, "人员聚集": 8, "烟火": 3,
    "道路积水": 4, "非机动车乱停放": 12, "流动摊贩": 9, "乱堆物料": 8,
}
UNKNOWN_ALARM_TYPES = ("高空抛物", "未戴安全帽")  # the platform added them; no mapping yet
MOUNTS = ("球机", "枪机", "半球")
CROSS_ROADS = "兴隆大街 石油大街 双兴路 惠宾街 泰山路 渤海路 中兴路 辽河路 胜利街 建设街".split()

DEVICE_DEFECTS: dict[str, float] = {
    "id_malformed": 0.03, "id_wrong_type": 0.03, "coords_zero": 0.03, "civil_unknown": 0.03,
}
ALARM_DEFECTS: dict[str, float] = {
    "duplicate": 0.05, "unknown_type": 0.02, "coords_zero": 0.01, "unknown_device": 0.01,
}
# Of what a camera is or sees, not of one delivery: on alarms that are an incident of their
# own (an unregistered camera does not alarm from the inventory five minutes later).
CAMERA_BOUND = ("unknown_type", "coords_zero", "unknown_device")
# Shares of alarms without coordinates of their own (not a defect: common practice).
ALARM_WITHOUT_COORDS = 0.4
# Extra alarms a camera raises about one incident while it lasts, 3–20 minutes apart; a
# camera's incidents of one type are at least INCIDENT_SPACING apart.
REALARMS = (0, 0, 0, 1, 2)
INCIDENT_SPACING = timedelta(hours=4)
_HOUR_WEIGHTS = (1, 0.5, 0.3, 0.3, 0.3, 0.5, 1.5, 3, 6, 8, 8, 7,
                 6, 6, 7, 7, 7, 6, 5, 5, 4, 3, 2, 1.5)


def epoch_ms(local: datetime) -> int:
    """A naive Asia/Shanghai time → epoch milliseconds."""
    return int(local.replace(tzinfo=SHANGHAI).timestamp() * 1000)


@dataclass
class DeviceTruth:
    kind: str  # camera / nvr: what the device really is
    grid_code: str
    point_wgs84: tuple[float, float]
    defects: set[str] = field(default_factory=set)


@dataclass
class AlarmTruth:
    device_id: str
    defects: set[str] = field(default_factory=set)
    # The incident other platforms report too (sandbox.incidents); None: this alarm only.
    incident_id: str | None = None


class VideoData:
    """Devices (`devices`, current state) and alarms (`alarms`, in alarmTime order), with
    ground truth. Thread-safe: the HTTP server and the publisher share one instance."""

    def __init__(self, city: City, days: int = 1, end: datetime | None = None):
        if days < 1:
            raise ValueError("days must be >= 1")
        self.city = city
        self.days = days
        self.end = local_end(end)
        self._salt = ("video", city.scale, days, self.end.isoformat())
        self.lock = threading.RLock()
        self.devices: dict[str, dict[str, Any]] = {}  # deviceId → record as served
        self.device_truth: dict[str, DeviceTruth] = {}
        self.alarms: list[dict[str, Any]] = []  # every alarm ever raised, alarmTime order
        self.alarm_truth: dict[str, AlarmTruth] = {}
        self.published: set[str] = set()  # alarmIds the publisher has published
        self._next_to_publish = 0
        self._advance_calls = 0
        self._serial = 0
        self._incidents_at: dict[tuple[str, str], list[datetime]] = {}  # (camera, type) → times
        self._district_name = {d.code: d.name for d in city.districts}
        self._street_name = {s.code: s.name for s in city.streets}
        self._generate()

    # ---- reading ---------------------------------------------------------------

    def device_page(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            ordered = sorted(self.devices)
            chosen = ordered[(page - 1) * size: page * size]
            return [dict(self.devices[d]) for d in chosen], len(ordered)

    def published_alarms(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Published alarms with start_ms <= alarmTime <= end_ms, by alarmTime then alarmId."""
        with self.lock:
            return [dict(a) for a in self.alarms
                    if a["alarmId"] in self.published and start_ms <= a["alarmTime"] <= end_ms]

    def cameras(self) -> list[str]:
        """Cameras in the inventory now: the devices that raise alarms."""
        with self.lock:
            return sorted(d for d in self.devices if self.device_truth[d].kind == "camera")

    def distinct_published(self) -> set[str]:
        with self.lock:
            return set(self.published)

    # ---- publishing bookkeeping --------------------------------------------------

    def take_unpublished(self, n: int | None = None) -> list[dict[str, Any]]:
        """The next n alarms not yet handed to the publisher (all if None)."""
        with self.lock:
            stop = len(self.alarms) if n is None else min(len(self.alarms),
                                                           self._next_to_publish + n)
            chosen = self.alarms[self._next_to_publish:stop]
            self._next_to_publish = stop
            return [dict(a) for a in chosen]

    def mark_published(self, alarm_ids: Iterable[str]) -> None:
        with self.lock:
            self.published.update(alarm_ids)

    # ---- mutation ----------------------------------------------------------------

    def advance(self, now: datetime | None = None, alarms: int | None = None) -> dict[str, int]:
        """The platform moves on: a few devices go on/offline, one is retired, one is
        installed, and `alarms` new alarms (default: about an hour's worth) are
        raised at `now`. Deterministic given the number of earlier calls."""
        now = (now or now_local()).replace(microsecond=0)
        with self.lock:
            rng = self.city.rng(*self._salt, "advance", self._advance_calls)
            self._advance_calls += 1
            stamp = fmt(now)
            flipped = rng.sample(sorted(self.devices), min(3, len(self.devices)))
            for d in flipped:
                rec = self.devices[d]
                rec["status"] = "OFF" if rec["status"] == "ON" else "ON"
                rec["updateTime"] = stamp
            retired = rng.choice(sorted(d for d in self.devices if d not in flipped))
            del self.devices[retired]
            grid = self.city.grids[rng.randrange(len(self.city.grids))]
            installed = self._device(grid, rng, "camera", set(), now - timedelta(seconds=1))
            installed["updateTime"] = stamp
            n = alarms if alarms is not None else max(5, self._per_day() // 24)
            cameras = self.cameras()
            new = self._incidents(n, rng, cameras,
                                  lambda: now - timedelta(seconds=rng.randint(0, 600)), now)
            new.sort(key=lambda a: (a["alarmTime"], a["alarmId"]))
            self.alarms.extend(new)
            return {"devices": len(flipped) + 2, "alarms": len(new)}

    # ---- generation ----------------------------------------------------------------

    def _per_day(self) -> int:
        return max(50, round(ALARMS_PER_DAY_AT_SCALE_1 * self.city.scale))

    def _rng(self, *salt: object) -> random.Random:
        return self.city.rng(*self._salt, *salt)

    def _generate(self) -> None:
        rng = self._rng("devices")
        grids = self.city.grids[::GRIDS_PER_CAMERA]
        n_cameras = max(12, len(grids))
        kinds = ["camera"] * n_cameras + ["nvr"] * (n_cameras // CAMERAS_PER_NVR + 1)
        defects = _plant(len(kinds), DEVICE_DEFECTS, self._rng("device-defects"))
        settled = self.end - timedelta(days=self.days)
        for i, kind in enumerate(kinds):
            grid = grids[i % len(grids)]
            updated = settled - timedelta(seconds=rng.randint(0, 180 * 86400))
            self._device(grid, rng, kind, defects[i], updated)

        rng = self._rng("alarms")
        start = self.end - timedelta(days=self.days)
        per_day = self._per_day()
        cameras = self.cameras()
        # Incidents other platforms report too, seen by the camera of their grid: part of
        # the day's alarms.
        camera_of: dict[str, str] = {}
        for device_id in cameras:
            camera_of.setdefault(self.device_truth[device_id].grid_code, device_id)
        shared = [r for r in incidents.reports_for(self.city, incidents.VIDEO, start, self.end)
                  if r.grid.code in camera_of]
        shared_per_day = incidents.per_slot(shared, start, self.days)
        raised = [self._alarm(r.at, self._rng("shared-alarm", r.incident_id, k),
                              [camera_of[r.grid.code]], r) for k, r in enumerate(shared)]
        for alarm, r in zip(raised, shared, strict=True):
            self._incidents_at.setdefault((alarm["deviceId"], r.kind), []).append(r.at)
        for day in range(self.days):
            def when(day: int = day) -> datetime:
                hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
                return start + timedelta(days=day, hours=hour, seconds=rng.randint(0, 3599))
            raised += self._incidents(max(0, per_day - shared_per_day[day]), rng, cameras, when,
                                      self.end)
        raised.sort(key=lambda a: (a["alarmTime"], a["alarmId"]))
        alone = [i for i, a in enumerate(raised)
                 if self.alarm_truth[a["alarmId"]].incident_id is None]
        planted = _plant(len(raised), {k: r for k, r in ALARM_DEFECTS.items()
                                       if k not in CAMERA_BOUND}, self._rng("alarm-defects"))
        bound = _plant(len(alone), {k: r * len(raised) / max(1, len(alone))
                                    for k, r in ALARM_DEFECTS.items() if k in CAMERA_BOUND},
                       self._rng("alarm-defects", "camera"))
        for i, held in zip(alone, bound, strict=True):
            planted[i] |= held
        for alarm, kinds_ in zip(raised, planted, strict=True):
            self._spoil_alarm(alarm, kinds_, self._rng("alarm", alarm["alarmId"]))
        self.alarms = raised

    def _device(self, grid: Grid, rng: random.Random, kind: str, defects: set[str],
                updated: datetime) -> dict[str, Any]:
        self._serial += 1
        type_digits = NVR_TYPE if kind == "nvr" else rng.choice(CAMERA_TYPES)
        if "id_wrong_type" in defects:
            type_digits = rng.choice(WRONG_TYPES)
        device_id = (f"{grid.district_code}{rng.randint(1, 3):02d}{rng.choice(INDUSTRY_CODES)}"
                     f"{type_digits}0{self._serial:06d}")
        if "id_malformed" in defects:
            device_id = rng.choice([device_id[:19], device_id + "1", device_id[:-2],
                                    device_id[:10] + "O" + device_id[11:]])
        point = self.city.point_in(grid, rng)
        civil = grid.street_code if rng.random() < 0.5 else grid.district_code
        if "civil_unknown" in defects:
            civil = rng.choice([grid.district_code[:4] + "99", "211121",
                                grid.district_code + f"{rng.randint(700, 899)}"])
        district = self._district_name[grid.district_code]
        short = district.removesuffix("区").removesuffix("县")
        owner = rng.choice([f"{self.city.name}公安局{short}分局", f"{district}城市管理综合行政执法局",
                            f"{self.city.name}公安局交通警察支队"])
        road_a, road_b = rng.sample(CROSS_ROADS, 2)
        label = "NVR" if kind == "nvr" else rng.choice(MOUNTS)
        served = (0.0, 0.0) if "coords_zero" in defects else point
        record = {
            "deviceId": device_id,
            "name": f"{self._street_name[grid.street_code]}{road_a}与{road_b}交叉口{label}",
            "civilCode": civil,
            "longitude": served[0],
            "latitude": served[1],
            "status": "ON" if rng.random() < 0.92 else "OFF",
            "owner": owner,
            "address": self.city.address(grid, rng),
            "updateTime": fmt(updated),
        }
        self.devices[device_id] = record
        self.device_truth[device_id] = DeviceTruth(kind, grid.code, point, set(defects))
        return record

    def _incidents(self, n: int, rng: random.Random, cameras: list[str],
                   when: Callable[[], datetime], until: datetime) -> list[dict[str, Any]]:
        """n alarms (fewer if the cameras are that busy) of incidents no other platform
        reports: each at a camera free of that type for INCIDENT_SPACING, raised again
        while it lasts (before `until`: the platform's now)."""
        out: list[dict[str, Any]] = []
        for _ in range(3 * n):  # a draw too close to the camera's last incident is dropped
            if len(out) >= n:
                break
            t = when()
            first = self._alarm(t, rng, cameras)
            device_id, kind = first["deviceId"], first["alarmType"]
            seen = self._incidents_at.setdefault((device_id, kind), [])
            if any(abs(t - s) < INCIDENT_SPACING for s in seen):
                del self.alarm_truth[first["alarmId"]]
                continue
            seen.append(t)
            alarms = [first]
            for _ in range(min(rng.choice(REALARMS), n - len(out) - 1)):
                t += timedelta(seconds=rng.randint(180, 1200))
                if t >= until:
                    break
                alarms.append(self._alarm(t, rng, [device_id], kind=kind))
            if len(alarms) > 1:
                for alarm in alarms:
                    self.alarm_truth[alarm["alarmId"]].incident_id = f"V{first['alarmId']}"
            out += alarms
        return out

    def _alarm(self, t: datetime, rng: random.Random, cameras: list[str],
               shared: incidents.Report | None = None, kind: str | None = None
               ) -> dict[str, Any]:
        device_id = cameras[rng.randrange(len(cameras))]
        drawn = rng.choices(list(ALARM_TYPES), weights=list(ALARM_TYPES.values()))[0]
        kind = shared.kind if shared is not None else kind or drawn
        alarm_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        alarm: dict[str, Any] = {
            "alarmId": alarm_id,
            "deviceId": device_id,
            "alarmType": kind,
            "alarmTime": epoch_ms(t) + rng.randint(0, 999),
            "confidence": round(rng.uniform(0.55, 0.99), 3),
            "imageUrl": f"http://vms.example.gov.cn/snap/{t:%Y%m%d}/{alarm_id}.jpg",
        }
        if rng.random() >= ALARM_WITHOUT_COORDS:
            lon, lat = self.device_truth[device_id].point_wgs84
            bearing, metres = rng.uniform(0, 2 * math.pi), rng.uniform(5, 40)
            alarm["longitude"] = round(lon + metres * math.sin(bearing) / 85_000, 6)
            alarm["latitude"] = round(lat + metres * math.cos(bearing) / 111_320, 6)
        if shared is not None:  # where the camera saw it (the grid's camera may be far off)
            alarm["longitude"], alarm["latitude"] = shared.point
        self.alarm_truth[alarm_id] = AlarmTruth(
            device_id, incident_id=shared.incident_id if shared is not None else None)
        return alarm

    def _spoil_alarm(self, alarm: dict[str, Any], defects: set[str], rng: random.Random) -> None:
        truth = self.alarm_truth[alarm["alarmId"]]
        truth.defects = set(defects)
        if "unknown_type" in defects:
            alarm["alarmType"] = rng.choice(UNKNOWN_ALARM_TYPES)
        if "coords_zero" in defects:
            alarm["longitude"], alarm["latitude"] = 0.0, 0.0
        if "unknown_device" in defects:
            # A camera the inventory does not list (installed by a contractor, not yet registered).
            alarm["deviceId"] = f"21110200001310{rng.randint(900_000, 999_999)}"
            alarm.pop("longitude", None)
            alarm.pop("latitude", None)
            truth.device_id = alarm["deviceId"]


def _plant(n: int, rates: dict[str, float], rng: random.Random) -> list[set[str]]:
    """Which records carry which defect: a fixed share per kind, at least one each, on
    disjoint records so that no defect hides another."""
    order = list(range(n))
    rng.shuffle(order)
    out: list[set[str]] = [set() for _ in range(n)]
    position = 0
    for kind, rate in rates.items():
        want = max(1, round(rate * n))
        for i in order[position:position + want]:
            out[i].add(kind)
        position += want
    return out


# ------------------------------------------------------------------ MQTT publishing


class AlarmPublisher:
    """Publishes the platform's alarms on `<prefix>/<deviceId>`, QoS 1, JSON.

    An alarm planted as a duplicate is published twice, as a QoS 1 sender that
    missed the first PUBACK does. An alarm counts as published (and is served by
    the back-fill API) once the broker has acknowledged it.
    """

    def __init__(self, data: VideoData, host: str = "127.0.0.1", port: int = 1883,
                 topic_prefix: str = TOPIC_PREFIX, client_id: str | None = None):
        import paho.mqtt.client as mqtt

        self.data = data
        self.topic_prefix = topic_prefix.rstrip("/")
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"vms-publisher-{uuid.uuid4().hex[:8]}")
        self._client.max_queued_messages_set(0)
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()

    def publish(self, n: int | None = None, timeout: float = 30.0) -> list[str]:
        """Publish the next n unpublished alarms (all if None); returns their alarmIds."""
        alarms = self.data.take_unpublished(n)
        infos = []
        for alarm in alarms:
            topic = f"{self.topic_prefix}/{alarm['deviceId']}"
            payload = json.dumps(alarm, ensure_ascii=False).encode("utf-8")
            times = 2 if "duplicate" in self.data.alarm_truth[alarm["alarmId"]].defects else 1
            for _ in range(times):
                infos.append(self._client.publish(topic, payload, qos=1))
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge an alarm in time")
        ids = [a["alarmId"] for a in alarms]
        self.data.mark_published(ids)
        return ids

    def publish_garbled(self, device_id: str, payload: bytes, timeout: float = 10.0) -> None:
        """A message that is not an alarm (firmware bugs happen): the hub must keep it,
        not drop it. It is not an alarm, so the back-fill API never serves it."""
        info = self._client.publish(f"{self.topic_prefix}/{device_id}", payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError("the broker did not acknowledge the message in time")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ------------------------------------------------------------------ the platform
