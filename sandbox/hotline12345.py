"""The 12345 hotline platform's work orders: generated, dirty, with ground truth.

One row per work order (工单), as the platform serves it (shared/design/sources.md
§1). Everything is a pure function of (city code, seed, scale, days, end): about
1,000 orders a day × scale over `days` days ending at `end` (a naive Asia/Shanghai
local time). Callers are the city's residents (`City.person`), so the same humans
turn up on the other platforms; some incidents are reported two or three times by
different callers, minutes to hours and tens of metres apart, in different words
and categories, and some reach other platforms too (sandbox.incidents: the pothole a
grid worker also reports, the flooded road a camera flags and 数字城管 files):
`OrderTruth.incident_id` is the incident, shared by every report of it. Callers'
names come with typos (homophones: 张伟 → 张玮), ID numbers and phones in full-width
digits, legacy 15-digit IDs, and mostly no ID number at all.

Dirt is planted deliberately, never only by chance: every defect kind in
`DEFECT_KINDS` lands on at least one order (two once there are 50 orders), each
on its own set of orders within a family of kinds that would overwrite each
other, and every planted defect is recorded in `HotlineData.truth`.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from base import clock
from conform.coords import wgs84_to_gcj02
from sandbox import city as citymod
from sandbox import incidents
from sandbox.city import City, Grid, Person, plant_defects

CATEGORIES_CSV = Path(__file__).resolve().parent / "data" / "hotline12345_categories.csv"

# China has had no daylight saving since 1991: Asia/Shanghai is UTC+8 throughout.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

STATUSES = ("待受理", "已派单", "办理中", "已办结", "已回访", "已退回")
UNKNOWN_STATUS = "挂起"  # a status the platform added and no mapping knows yet
SATISFACTIONS = ("满意", "基本满意", "不满意", "未评价")
CHANNELS = ("电话", "网站", "微信", "APP", "信件")
APPEAL_TYPES = ("咨询", "求助", "投诉", "举报", "建议", "表扬")
RETIRED_DISTRICT = "211121"  # 大洼县, replaced by 211104 大洼区 in 2016
RETIRED_DISTRICT_SUCCESSOR = "211104"

FIELDS = (
    "orderNo", "acceptTime", "channel", "callerName", "callerPhone", "callerIdNo",
    "appealType", "categoryCode", "categoryName", "title", "content", "address",
    "districtCode", "streetCode", "longitude", "latitude", "handleDept", "dispatchTime",
    "deadline", "finishTime", "status", "satisfaction", "isUrgent", "updateTime",
)

# Kinds that would overwrite each other share a family; each order carries at most
# one kind per family.
DEFECT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("id_bad_check_digit", "id_malformed", "id_lower_x", "id_spaces", "id_legacy15",
     "id_fullwidth"),
    ("phone_variant", "phone_fullwidth"),
    ("name_variant", "name_typo"),
    ("unknown_category",),
    ("unknown_status", "finish_before_accept", "future_time", "satisfaction_not_evaluated"),
    ("retired_division", "unknown_street"),
    ("coords_zero", "coords_swapped", "coords_missing"),
    ("hostile_text",),
)
DEFECT_KINDS: tuple[str, ...] = tuple(k for family in DEFECT_FAMILIES for k in family)

# Share of all orders that carry each defect (before the per-kind minimum).
DEFECT_RATES: dict[str, float] = {
    "id_bad_check_digit": 0.015, "id_malformed": 0.015, "id_lower_x": 0.01,
    "id_spaces": 0.015, "id_legacy15": 0.015, "id_fullwidth": 0.01,
    "phone_variant": 0.04, "phone_fullwidth": 0.01, "name_variant": 0.03, "name_typo": 0.02,
    "unknown_category": 0.01,
    "unknown_status": 0.005, "finish_before_accept": 0.01, "future_time": 0.005,
    "satisfaction_not_evaluated": 0.01,
    "retired_division": 0.01, "unknown_street": 0.01,
    "coords_zero": 0.01, "coords_swapped": 0.01, "coords_missing": 0.02,
    "hostile_text": 0.01,
}

# Defects a lifecycle step would erase: such orders are never advanced.
_FROZEN_BY = frozenset({"unknown_status", "future_time", "satisfaction_not_evaluated"})

# Categories that describe the same incident in other words: a repeat report of an
# incident picks another member of its theme more often than not.
INCIDENT_THEMES: tuple[tuple[str, ...], ...] = (
    ("110101", "110502"),
    ("110102", "110104"),
    ("130101", "130202", "160101"),
    ("110304", "110305", "120301"),
    ("120101", "120102"),
    ("130201", "130103"),
    ("110501", "170201"),
    ("110301", "110302"),
    ("170101", "130202"),
    ("110401", "110402"),
)

# Handling department per category, by longest code prefix. {street_office} is the
# 街道办事处 / 镇人民政府 of the grid the incident is in.
DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "1101": ("{district}城市管理综合行政执法局", "{city}城市管理综合行政执法局", "{street_office}"),
    "1102": ("{city}城市管理综合行政执法局",),
    "1103": ("{city}住房和城乡建设局", "{district}住房和城乡建设局"),
    "110303": ("{city}城市管理综合行政执法局",),
    "110304": ("{city}水务集团有限公司",),
    "1104": ("{district}住房和城乡建设局", "{street_office}"),
    "110501": ("{city}公安局交通警察支队",),
    "110502": ("{district}城市管理综合行政执法局",),
    "1201": ("{city}热力集团有限公司",),
    "1202": ("{city}燃气有限公司",),
    "1203": ("{city}水务集团有限公司",),
    "1204": ("{city}工业和信息化局",),
    "13": ("{city}生态环境局", "{city}生态环境局{district_short}分局"),
    "1401": ("{city}人力资源和社会保障局",),
    "140201": ("{city}社会保险事业服务中心",),
    "140202": ("{city}医疗保障局",),
    "15": ("{city}交通运输局",),
    "150201": ("{city}公安局交通警察支队",),
    "16": ("{city}市场监督管理局", "{district}市场监督管理局"),
    "1701": ("{street_office}",),
    "170201": ("{city}消防救援支队",),
    "170202": ("{city}公安局{district_short}分局",),
    "180101": ("{city}公安局",),
    "180102": ("{city}教育局",),
    "19": ("{city}教育局",),
}

_APPEAL_WEIGHTS: dict[str, tuple[int, ...]] = {
    # 咨询 求助 投诉 举报 建议 表扬
    "政策咨询": (90, 10, 0, 0, 0, 0),
    "公用事业": (10, 45, 45, 0, 0, 0),
    "劳动和社会保障": (30, 40, 30, 0, 0, 0),
    "": (5, 15, 55, 15, 8, 2),
}
_CHANNEL_WEIGHTS = (70, 8, 12, 8, 2)
_CHANNEL_INTRO = {"电话": "市民来电反映", "网站": "网民留言反映", "微信": "市民通过微信公众号反映",
                  "APP": "市民通过APP反映", "信件": "市民来信反映"}
_APPEAL_ASK = {"投诉": "希望相关部门尽快处理。", "举报": "请相关部门依法查处。",
               "求助": "请求帮助解决。", "建议": "建议相关部门加强管理。",
               "咨询": "请相关部门予以答复。", "表扬": "问题已解决，特此表扬承办单位。"}
# Calls by hour of day.
_HOUR_WEIGHTS = (1, 0.5, 0.3, 0.3, 0.3, 0.5, 1.5, 3, 6, 8, 8, 7,
                 6, 6, 7, 7, 7, 6, 5, 5, 4, 3, 2, 1.5)
# Monday … Sunday.
_WEEKDAY_FACTOR = (1.10, 1.05, 1.0, 1.0, 0.95, 0.85, 0.80)
# Deadline after dispatch, hours, by appeal type (urgent orders: 24 h).
_DEADLINE_HOURS = {"咨询": 24, "求助": 72, "投诉": 120, "举报": 240, "建议": 360, "表扬": 72}
_HEATING_MONTHS = frozenset({11, 12, 1, 2, 3})


def fmt(t: datetime | None) -> str | None:
    return None if t is None else t.strftime(TIME_FORMAT)


def parse_local(text: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` (or `yyyy-MM-dd`) → naive local datetime."""
    return datetime.strptime(text, TIME_FORMAT if len(text) > 10 else "%Y-%m-%d")


def now_local() -> datetime:
    """The hub clock in Asia/Shanghai time, naive, truncated to seconds."""
    return clock.local_now("Asia/Shanghai")


def default_end() -> datetime:
    """Today 00:00 in Asia/Shanghai."""
    return now_local().replace(hour=0, minute=0, second=0)


def local_end(end: datetime | None) -> datetime:
    """A simulation's `end` argument as the simulators keep it: naive Asia/Shanghai time
    to the second (a zoned time is converted); default_end() when not given."""
    if end is None:
        end = default_end()
    elif end.tzinfo is not None:
        end = end.astimezone(SHANGHAI).replace(tzinfo=None)
    return end.replace(microsecond=0)


@dataclass(frozen=True)
class Category:
    code: str
    name: str  # 3 levels joined by "/"
    in_hub_mapping: bool
    weight: float
    examples: tuple[str, ...]

    @property
    def level1(self) -> str:
        return self.name.split("/")[0]

    @property
    def leaf(self) -> str:
        return self.name.split("/")[-1]


def load_categories(path: Path = CATEGORIES_CSV) -> list[Category]:
    """The hotline's own classification catalogue."""
    with open(path, encoding="utf-8", newline="") as f:
        return [Category(code=r["categoryCode"], name=r["categoryName"],
                         in_hub_mapping=r["in_hub_mapping"].strip().lower() == "true",
                         weight=float(r["weight"]),
                         examples=tuple(r["appeal_examples"].split("|")))
                for r in csv.DictReader(f)]


@dataclass
class OrderTruth:
    """What is really behind one work order."""

    incident_id: str
    person_index: int  # City.person(person_index) is the caller
    defects: set[str] = field(default_factory=set)
    point_wgs84: tuple[float, float] = (math.nan, math.nan)  # true location (lon, lat)
    grid_code: str = ""  # true grid


@dataclass
class _Report:
    """One call before it becomes a work order: who, when, where, about what."""

    incident_id: str
    accept: datetime  # true registration time
    grid: Grid
    point: tuple[float, float]
    category: Category
    person_index: int
    channel: str


@dataclass
class _Plan:
    """How the platform will handle an order when it is advanced."""

    departments: tuple[str, ...]
    deadline_hours: int


class HotlineData:
    """The platform's work orders: current state (`orders`) and ground truth (`truth`).

    Not thread-safe by itself; the server serialises access.
    """

    def __init__(self, city: City, days: int = 7, end: datetime | None = None,
                 coordinate_system: str = "wgs84"):
        if days < 1:
            raise ValueError("days must be >= 1")
        if coordinate_system not in ("wgs84", "gcj02"):
            raise ValueError(f"coordinate_system must be wgs84 or gcj02, not {coordinate_system!r}")
        self.city = city
        self.days = days
        self.end = local_end(end)
        self.coordinate_system = coordinate_system
        self.categories = load_categories()
        self._category_by_code = {c.code: c for c in self.categories}
        self._salt = ("hotline12345", city.scale, days, self.end.isoformat())
        # orderNo → the record exactly as served (do not mutate from outside).
        self.orders: dict[str, dict[str, Any]] = {}
        self.truth: dict[str, OrderTruth] = {}
        self._plans: dict[str, _Plan] = {}
        self._index: list[tuple[str, str]] | None = None
        self._advance_calls = 0
        self._street_by_code = {s.code: s for s in city.streets}
        self._district_name = {d.code: d.name for d in city.districts}
        self._generate()

    # ---- reading ---------------------------------------------------------------

    def query(self, updated_from: str | None = None,
              updated_to: str | None = None) -> list[dict[str, Any]]:
        """Orders with updated_from <= updateTime <= updated_to (both optional, inclusive),
        ordered by updateTime then orderNo. Bounds are `yyyy-MM-dd HH:mm:ss` strings."""
        if self._index is None:
            self._index = sorted((r["updateTime"], no) for no, r in self.orders.items())
        lo = 0 if updated_from is None else bisect.bisect_left(self._index, (updated_from, ""))
        hi = (len(self._index) if updated_to is None
              else bisect.bisect_right(self._index, (updated_to, "\U0010ffff")))
        return [self.orders[no] for _, no in self._index[lo:hi]]

    def departments(self) -> set[str]:
        """Every department an order is or may be dispatched to (`handleDept`)."""
        return {d for plan in self._plans.values() for d in plan.departments}

    # ---- mutation --------------------------------------------------------------

    def advance(self, n_orders: int, now_local: datetime) -> list[str]:
        """Move up to n_orders orders one step on in their lifecycle, stamped now_local.

        Which orders move is deterministic: a function of the data and of how many
        times advance was called before. Returns the changed orderNos, sorted.
        """
        now_local = now_local.replace(microsecond=0)
        if now_local.tzinfo is not None:
            now_local = now_local.astimezone(SHANGHAI).replace(tzinfo=None)
        rng = self.city.rng(*self._salt, "advance", self._advance_calls)
        self._advance_calls += 1
        candidates = sorted(
            no for no, r in self.orders.items()
            if r["status"] in ("待受理", "已派单", "办理中", "已办结", "已退回")
            and not (self.truth[no].defects & _FROZEN_BY)
        )
        chosen = rng.sample(candidates, min(max(n_orders, 0), len(candidates)))
        now = fmt(now_local)
        for no in chosen:
            record, plan = self.orders[no], self._plans[no]
            status = record["status"]
            if status in ("待受理", "已退回"):
                if status == "已退回" and len(plan.departments) > 1:
                    # Re-dispatched to another department than the one that sent it back.
                    others = [d for d in plan.departments if d != record["handleDept"]]
                    record["handleDept"] = rng.choice(others or list(plan.departments))
                elif status == "待受理":
                    record["handleDept"] = plan.departments[0]
                record["status"] = "已派单"
                record["dispatchTime"] = now
                record["deadline"] = fmt(now_local + timedelta(hours=plan.deadline_hours))
            elif status == "已派单":
                record["status"] = "已退回" if rng.random() < 0.1 else "办理中"
            elif status == "办理中":
                record["status"] = "已办结"
                if "finish_before_accept" not in self.truth[no].defects:
                    record["finishTime"] = now
            elif status == "已办结":
                record["status"] = "已回访"
                record["satisfaction"] = _draw_satisfaction(rng)
                if _sends_contact_fields(no):
                    record["isSolved"] = _solved(no)
            record["updateTime"] = now
        self._index = None
        return sorted(chosen)

    # ---- generation ------------------------------------------------------------

    def _rng(self, *salt: object) -> random.Random:
        return self.city.rng(*self._salt, *salt)

    def _generate(self) -> None:
        reports = self._reports()
        reports.sort(key=lambda r: (r.accept, r.incident_id))
        order_nos = _order_numbers(self.city.code, [r.accept for r in reports])
        defects = self._plant(reports)
        points = self._served_points(reports, defects)
        hostile = 0  # hostile texts in turn, so that all of them appear once there are enough
        for i, (report, order_no) in enumerate(zip(reports, order_nos, strict=True)):
            record, truth, plan = self._order(order_no, report, defects[i], points[i], hostile)
            hostile += "hostile_text" in defects[i]
            self.orders[order_no] = record
            self.truth[order_no] = truth
            self._plans[order_no] = plan

    def _reports(self) -> list[_Report]:
        """Incidents and the calls about them, day by day (24-hour spans ending at end)."""
        rng = self._rng("reports")
        city = self.city
        grids = city.grids
        usual = [c for c in self.categories if c.in_hub_mapping]
        per_day = 1000 * city.scale
        start = self.end - timedelta(days=self.days)
        # Calls about incidents other platforms report too: part of the day's volume.
        shared = incidents.reports_for(city, incidents.HOTLINE, start, self.end)
        shared_per_day = incidents.per_slot(shared, start, self.days)
        reports: list[_Report] = []
        for d in range(self.days):
            span_start = start + timedelta(days=d)
            budget = max(1, round(per_day * _WEEKDAY_FACTOR[span_start.weekday()]))
            weights = [c.weight * (3 if c.code.startswith("1201")
                                   and span_start.month in _HEATING_MONTHS else 1)
                       for c in usual]
            made, j = shared_per_day[d], 0
            while made < budget:
                incident_id = f"H{span_start:%y%m%d}-{j:05d}"
                # Every 10th incident is reported twice and every 25th three times, so
                # even a tiny sample has repeats.
                n_calls = 3 if j % 25 == 7 else 2 if j % 10 == 2 else 1
                j += 1
                t0 = _time_in_span(rng, span_start)
                if t0 >= self.end:
                    continue
                g_index = rng.randrange(len(grids))
                grid = grids[g_index]
                point = city.point_in(grid, rng)
                category = rng.choices(usual, weights=weights)[0]
                theme = next((t for t in INCIDENT_THEMES if category.code in t), (category.code,))
                callers: list[int] = []
                t = t0
                for k in range(min(n_calls, budget - made)):
                    if k:
                        t = t + timedelta(seconds=rng.randint(5 * 60, 5 * 3600))
                        if t >= self.end:
                            break
                        if rng.random() < 0.6:
                            category = self._category_by_code[rng.choice(theme)]
                        point = _moved(point, rng.uniform(10, 80), rng.uniform(0, 2 * math.pi))
                    person_index = self._caller(rng, g_index, callers)
                    callers.append(person_index)
                    reports.append(_Report(
                        incident_id=incident_id, accept=t, grid=grid, point=point,
                        category=category, person_index=person_index,
                        channel=rng.choices(CHANNELS, weights=_CHANNEL_WEIGHTS)[0],
                    ))
                    made += 1
        for r in shared:
            channel = self._rng("shared", r.incident_id).choices(CHANNELS,
                                                                  weights=_CHANNEL_WEIGHTS)[0]
            reports.append(_Report(incident_id=r.incident_id, accept=r.at, grid=r.grid,
                                   point=r.point, category=self._category_by_code[r.kind],
                                   person_index=r.person, channel=channel))
        return reports

    def _caller(self, rng: random.Random, g_index: int, taken: list[int]) -> int:
        """Mostly someone living in the grid (person i lives in grid i % n_grids)."""
        population, n_grids = self.city.population, len(self.city.grids)
        while True:
            if rng.random() < 0.7 and population > n_grids:
                index = g_index + n_grids * rng.randrange(max(1, (population - g_index) // n_grids))
            else:
                index = rng.randrange(population)
            if index not in taken:
                return index

    def _plant(self, reports: list[_Report]) -> list[set[str]]:
        """Choose which orders carry which defects: a fixed share per kind with a floor."""
        settled = self.end - timedelta(hours=6)

        def eligible(kind: str, i: int) -> bool:
            r = reports[i]
            if kind in ("unknown_status", "finish_before_accept", "satisfaction_not_evaluated"):
                return r.accept <= settled
            if kind == "retired_division":
                return r.grid.district_code == RETIRED_DISTRICT_SUCCESSOR
            return True

        return plant_defects(len(reports), DEFECT_FAMILIES, DEFECT_RATES, eligible,
                             lambda family: self._rng("plant", family), fill_short=True)

    def _served_points(self, reports: list[_Report],
                       defects: list[set[str]]) -> list[tuple[float | None, float | None]]:
        lon = np.array([r.point[0] for r in reports], dtype=np.float64)
        lat = np.array([r.point[1] for r in reports], dtype=np.float64)
        if self.coordinate_system == "gcj02":
            lon, lat = wgs84_to_gcj02(lon, lat)
        points: list[tuple[float | None, float | None]] = []
        for x, y, bad in zip(lon.tolist(), lat.tolist(), defects, strict=True):
            x, y = round(x, 6), round(y, 6)
            if "coords_zero" in bad:
                points.append((0.0, 0.0))
            elif "coords_swapped" in bad:
                points.append((y, x))
            elif "coords_missing" in bad:
                points.append((None, None))
            else:
                points.append((x, y))
        return points

    def _order(self, order_no: str, report: _Report, defects: set[str],
               point: tuple[float | None, float | None],
               hostile_index: int) -> tuple[dict[str, Any], OrderTruth, _Plan]:
        rng = self._rng("order", order_no)
        city = self.city
        grid = report.grid
        category = report.category
        if "unknown_category" in defects:
            unknown = [c for c in self.categories if not c.in_hub_mapping]
            category = unknown[rng.randrange(len(unknown))]

        person_index = self._person_for(report.person_index, defects)
        person = city.person(person_index)
        id_no = self._id_number(person, defects, rng)
        name = citymod.name_variant(person.name, rng) if "name_variant" in defects else person.name
        phone = (citymod.phone_variant(person.phone, rng) if "phone_variant" in defects
                 else person.phone)
        if "name_typo" in defects:  # keyed in by ear: a homophone, now and then a look-alike
            name = citymod.name_typo(person.name, rng)
        if "phone_fullwidth" in defects:
            phone = citymod.fullwidth(person.phone)

        weights = _APPEAL_WEIGHTS.get(category.level1, _APPEAL_WEIGHTS[""])
        appeal = rng.choices(APPEAL_TYPES, weights=weights)[0]
        urgent = rng.random() < (0.15 if category.code in ("110302", "120201", "170201") else 0.04)
        departments = self._departments(category, grid)
        first = rng.choices(range(len(departments)), weights=[3] + [1] * (len(departments) - 1))[0]
        departments = departments[first:] + departments[:first]
        plan = _Plan(departments=departments,
                     deadline_hours=24 if urgent else _DEADLINE_HOURS[appeal])

        district_code = grid.district_code
        street_code: str | None = grid.street_code if rng.random() > 0.05 else None
        if "retired_division" in defects:
            district_code = RETIRED_DISTRICT
        if "unknown_street" in defects:
            street_code = self._unknown_street(district_code, rng)

        events = self._lifecycle(report.accept, defects, rng)
        status, update_time = events[-1]
        dispatches = [t for s, t in events if s == "已派单"]
        finished = [t for s, t in events if s == "已办结"]
        accept_shown = report.accept
        finish_shown = finished[0] if finished else None
        if "future_time" in defects:
            accept_shown = self.end + timedelta(days=rng.randint(1, 30),
                                                seconds=rng.randint(0, 86399))
        if "finish_before_accept" in defects:
            finish_shown = report.accept - timedelta(seconds=rng.randint(3600, 2 * 86400))
        satisfaction = "未评价"
        if status == "已回访":
            satisfaction = _draw_satisfaction(rng)
        if "satisfaction_not_evaluated" in defects:
            satisfaction = "满意"

        address = incidents.place(city, report.incident_id, grid)  # every caller names it
        if "hostile_text" in defects:
            content = citymod.HOSTILE_TEXT[hostile_index % len(citymod.HOSTILE_TEXT)]
        else:
            content = _content(rng, report.channel, appeal, address,
                               incidents.matter(city, report.incident_id, category.examples))
        record: dict[str, Any] = {
            "orderNo": order_no,
            "acceptTime": fmt(accept_shown),
            "channel": report.channel,
            "callerName": name,
            "callerPhone": phone,
            "callerIdNo": id_no,
            "appealType": appeal,
            "categoryCode": category.code,
            "categoryName": category.name,
            "title": _title(rng, appeal, category),
            "content": content,
            "address": address,
            "districtCode": district_code,
            "streetCode": street_code,
            "longitude": point[0],
            "latitude": point[1],
            "handleDept": departments[0] if dispatches else None,
            "dispatchTime": fmt(dispatches[-1]) if dispatches else None,
            "deadline": (fmt(dispatches[-1] + timedelta(hours=plan.deadline_hours))
                         if dispatches else None),
            "finishTime": fmt(finish_shown),
            "status": status,
            "satisfaction": satisfaction,
            "isUrgent": urgent,
            "updateTime": fmt(update_time),
        }
        if any(s == "已退回" for s, _ in events) and status != "已退回" and len(departments) > 1:
            record["handleDept"] = departments[1]  # re-dispatched elsewhere after a return
        _contact_fields(record, order_no, dispatches[0] if dispatches else None, update_time,
                        urgent, fmt)
        truth = OrderTruth(incident_id=report.incident_id, person_index=person_index,
                           defects=set(defects), point_wgs84=report.point, grid_code=grid.code)
        return record, truth, plan

    def _person_for(self, index: int, defects: set[str]) -> int:
        """The caller, or the next resident of the same grid who can carry the ID defect."""
        need = next((k for k in ("id_lower_x", "id_legacy15") if k in defects), None)
        if need is None:
            return index
        population, step = self.city.population, len(self.city.grids)
        candidates = itertools.chain(range(index, population, step), range(population))
        return next(i for i in candidates if _can_carry(need, self.city.person(i)))

    def _id_number(self, person: Person, defects: set[str], rng: random.Random) -> str:
        id_no = person.id_number
        if "id_bad_check_digit" in defects:
            return citymod.wrong_check_digit(id_no)
        if "id_malformed" in defects:
            return rng.choice([id_no[:17], id_no + str(rng.randint(0, 9)),
                               id_no[:10] + "O" + id_no[11:], id_no[:12] + "l" + id_no[13:]])
        for kind in ("lower_x", "spaces", "legacy15"):
            if f"id_{kind}" in defects:
                variant, applied = citymod.id_variant(id_no, rng, kind)
                assert applied == kind, (id_no, kind)
                return variant
        if "id_fullwidth" in defects:
            return citymod.fullwidth(id_no)
        return id_no if rng.random() < 0.4 else ""

    def _departments(self, category: Category, grid: Grid) -> tuple[str, ...]:
        prefix = max((p for p in DEPARTMENTS if category.code.startswith(p)), key=len)
        district = self._district_name[grid.district_code]
        street = self._street_by_code[grid.street_code].name
        if street.endswith("街道"):
            office = f"{district}人民政府{street}办事处"
        elif street.endswith(("镇", "乡")):
            office = f"{district}{street}人民政府"
        elif street.endswith("开发区"):
            office = f"{street}管理委员会"
        else:
            office = street
        values = {"city": self.city.name, "district": district,
                  "district_short": district.removesuffix("区").removesuffix("县"),
                  "street_office": office}
        return tuple(t.format(**values) for t in DEPARTMENTS[prefix])

    def _unknown_street(self, district_code: str, rng: random.Random) -> str:
        while True:
            code = f"{district_code}{rng.randint(600, 899):03d}"
            if code not in self._street_by_code:
                return code

    def _lifecycle(self, accept: datetime, defects: set[str],
                   rng: random.Random) -> list[tuple[str, datetime]]:
        """(status, time) steps the order went through up to end, last = current."""
        end = self.end
        if "future_time" in defects:
            return [("待受理", accept)]
        if "unknown_status" in defects:
            t1, t2 = _squeezed(accept, end, 2)
            return [("待受理", accept), ("已派单", t1), (UNKNOWN_STATUS, t2)]
        events = _natural_lifecycle(accept, end, rng)
        must_finish = defects & {"finish_before_accept", "satisfaction_not_evaluated"}
        if must_finish and not any(s == "已办结" for s, _ in events):
            t1, t2, t3 = _squeezed(accept, end, 3)
            events = [("待受理", accept), ("已派单", t1), ("办理中", t2), ("已办结", t3)]
        if "satisfaction_not_evaluated" in defects:
            events = [e for e in events if e[0] != "已回访"]
        return events


def _can_carry(defect: str, person: Person) -> bool:
    if defect == "id_lower_x":
        return person.id_number.endswith("X")
    # A 15-digit number carries a two-digit year: only for people born 1900–1999.
    return 1900 <= person.birth_date.year <= 1999


def _natural_lifecycle(accept: datetime, end: datetime,
                       rng: random.Random) -> list[tuple[str, datetime]]:
    events = [("待受理", accept)]

    def step(status: str, low_s: int, high_s: int) -> bool:
        t = events[-1][1] + timedelta(seconds=rng.randint(low_s, high_s))
        if t > end:
            return False
        events.append((status, t))
        return True

    if not step("已派单", 5 * 60, 4 * 3600):
        return events
    if rng.random() < 0.08:
        if not step("已退回", 3600, 86400) or not step("已派单", 3600, 86400):
            return events
    if step("办理中", 1800, 86400) and step("已办结", 2 * 3600, 6 * 86400):
        step("已回访", 12 * 3600, 3 * 86400)
    return events


def _squeezed(start: datetime, end: datetime, k: int) -> list[datetime]:
    """k increasing times after start, within three hours and not after end."""
    span = min(3 * 3600, int((end - start).total_seconds()))
    return [start + timedelta(seconds=max(1, span * (j + 1) // k) if span > 0 else 0)
            for j in range(k)]


# The optional fields newer 12345 platforms send (sources.md §1): when the handling unit
# first contacted the caller, and the return call's verdict. Drawn from each order's own
# seed, so adding them changes no other value the simulator draws.
_OLDER_PLATFORM_SHARE = 0.25   # orders without either field
_NO_CONTACT_SHARE = 0.10       # more orders without firstContactTime (dispatch counts)


def _order_rng(order_no: str, what: str) -> random.Random:
    return random.Random(f"{order_no}:{what}")


def _sends_contact_fields(order_no: str) -> bool:
    return _order_rng(order_no, "older").random() >= _OLDER_PLATFORM_SHARE


def _solved(order_no: str) -> str:
    return "已解决" if _order_rng(order_no, "solved").random() < 0.8 else "未解决"


def _contact_fields(record: dict[str, Any], order_no: str, dispatched: datetime | None,
                    updated: datetime, urgent: bool, fmt: Callable[[Any], Any]) -> None:
    """firstContactTime on dispatched orders (mostly within the limit: urgent 2 h, else
    24 h), isSolved on return-called ones; both left out as older platforms do."""
    if not _sends_contact_fields(order_no):
        return
    rng = _order_rng(order_no, "contact")
    if dispatched is not None and rng.random() >= _NO_CONTACT_SHARE:
        limit_h = 2 if urgent else 24
        within = rng.random() < (0.8 if urgent else 0.85)
        delay_h = rng.uniform(0.05, limit_h) if within else rng.uniform(limit_h, limit_h * 2)
        record["firstContactTime"] = fmt(min(dispatched + timedelta(hours=delay_h), updated))
    if record["status"] == "已回访":
        record["isSolved"] = _solved(order_no)


def _draw_satisfaction(rng: random.Random) -> str:
    return rng.choices(SATISFACTIONS, weights=(68, 17, 10, 5))[0]


def _time_in_span(rng: random.Random, span_start: datetime) -> datetime:
    """A call time in [span_start, span_start + 1 day), busier in the daytime."""
    hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
    t = span_start.replace(hour=hour, minute=0, second=0) + timedelta(
        seconds=rng.randint(0, 3599))
    if t < span_start:
        t += timedelta(days=1)
    return t


def _moved(point: tuple[float, float], metres: float, bearing: float) -> tuple[float, float]:
    lon, lat = point
    d_lat = metres * math.cos(bearing) / 111_320.0
    d_lon = metres * math.sin(bearing) / (111_320.0 * math.cos(math.radians(lat)))
    return (round(lon + d_lon, 6), round(lat + d_lat, 6))


def _order_numbers(city_code: str, accepts: list[datetime]) -> list[str]:
    """city code + yymmdd + 6-digit serial within the day, in acceptance order."""
    serial: dict[str, int] = {}
    numbers = []
    for t in accepts:
        day = f"{t:%y%m%d}"
        serial[day] = serial.get(day, 0) + 1
        numbers.append(f"{city_code}{day}{serial[day]:06d}")
    return numbers


def _title(rng: random.Random, appeal: str, category: Category) -> str:
    if appeal == "咨询":
        return f"关于{category.leaf}的咨询"
    return rng.choice([f"关于{category.leaf}的{appeal}", f"{category.leaf}问题",
                       f"反映{category.leaf}"])


def _content(rng: random.Random, channel: str, appeal: str, address: str,
             example: str) -> str:
    repeat = "已多次反映未果，" if rng.random() < 0.15 else ""
    if appeal == "咨询":
        return f"{_CHANNEL_INTRO[channel]}：{example}。{_APPEAL_ASK[appeal]}"
    return f"{_CHANNEL_INTRO[channel]}：{address}附近{example}，{repeat}{_APPEAL_ASK[appeal]}"
