"""The digital city management platform (数字城管): generated, dirty, with ground truth,
written into a real relational database.

Tables `t_case`, `t_component` and `t_unit_grid` exactly as shared/design/sources.md §2,
for the same city as every other simulator (`sandbox.city.City`): the unit grids are
the City's grids, coordinates are the City's points projected into a Gauss-Krüger
CRS (default EPSG:4550, CGCS2000 3-degree CM 123E, the zone 盘锦 lies in), and the
cases that came in from the 12345 hotline (`source` = 12345转办) carry the order
number of a real `HotlineData` order of the same city, seed, days and end. Some cases
report incidents other platforms report too (sandbox.incidents): raised from a camera's
alarm (视频发现), or the streetlight a grid worker and a 12345 caller report as well.
`CaseTruth.incident_id` names the incident (a transfer's: the 12345 order's).

`CityMgmtData` is a pure function of (City, days, end, crs); `CityMgmtDatabase`
writes it through SQLAlchemy to a URL (a SQLite file, or MariaDB, where it creates
and drops a database of its own plus a read-only login with a password) and moves
it on (`advance`: cases progress, components change state, new cases arrive).

Platform quirks that are real, not dirt: the 盘山县 unit grids come from an older
system and have 14-digit codes; 兴隆台区 re-surveyed its components under
GB/T 47678 (17-digit obj_id, 3-digit small class); 大洼区's first streets still
use the division code of the former 大洼县 (211121, retired 2016) in grid and
component codes (recorded as the defect `retired_division`).

Run standalone: `python -m sandbox.citymgmt --url sqlite:///cm.sqlite --scale 0.05
--days 7 [--advance-every 30]` prints the reader URL when the database is ready and
keeps it (and advances it) until interrupted; `--url mysql+pymysql://root@127.0.0.1:3306`
creates a database of its own and drops it on exit.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import random
import secrets
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from pyproj import Transformer
from shapely import Polygon

from sandbox import city as citymod
from sandbox import incidents
from sandbox.city import City, Grid
from sandbox.hotline12345 import HotlineData, fmt, local_end, now_local, parse_local
from sandbox.platform import DemoPlatform, run_until_interrupted

CLASSES_CSV = Path(__file__).resolve().parent / "data" / "citymgmt_classes.csv"
DEFAULT_CRS = "EPSG:4550"  # CGCS2000 / 3-degree Gauss-Kruger CM 123E (no zone prefix)
WGS84 = "EPSG:4326"

CASE_FIELDS = (
    "case_no", "source", "class_type", "big_class", "small_class", "description", "address",
    "grid_code", "x", "y", "component_code", "status", "report_time", "register_time",
    "dispatch_time", "deadline", "dispose_time", "check_time", "close_time", "dept_code",
    "dept_name", "reporter_id", "update_time",
)
COMPONENT_FIELDS = (
    "obj_id", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2", "dept_code3",
    "dept_name3", "grid_code", "obj_state", "or_date", "ch_date", "x", "y", "update_time",
)
UNIT_GRID_FIELDS = ("grid_code", "street_code", "community_name", "area_m2", "boundary_wkt",
                    "update_time")
TIME_COLUMNS = frozenset({"report_time", "register_time", "dispatch_time", "deadline",
                          "dispose_time", "check_time", "close_time", "update_time",
                          "or_date", "ch_date"})

SOURCES = ("监督员上报", "公众举报", "视频发现", "领导交办")
SOURCE_WEIGHTS = (70, 12, 15, 3)
TRANSFERRED = "12345转办"
STATUSES = ("上报", "立案", "派遣", "处置", "核查", "结案", "作废")
UNKNOWN_STATUSES = ("缓办", "挂账")  # statuses the platform has and no mapping knows yet
OPEN = ("上报", "立案", "派遣", "处置", "核查")
OBJ_STATES = ("完好", "破损", "丢失", "占用")

OLDER_SYSTEM_DISTRICT = "211122"  # 盘山县: 14-digit unit grid codes
GBT47678_DISTRICT = "211103"  # 兴隆台区: 17-digit component codes
RETIRED_DISTRICT = "211121"  # 大洼县, replaced by 211104 大洼区 in 2016
RETIRED_SUCCESSOR = "211104"
RETIRED_STREETS = 4  # the first streets of 大洼区 still carry 211121 in their codes

CASE_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("unknown_class",),
    ("unknown_status", "close_before_register"),
    ("unknown_grid", "retired_division"),
    ("coords_zero", "coords_garbage", "coords_swapped"),
    ("hostile_text",),
)
CASE_RATES: dict[str, float] = {
    "unknown_class": 0.02, "unknown_status": 0.01, "close_before_register": 0.015,
    "unknown_grid": 0.015, "retired_division": 0.02,
    "coords_zero": 0.01, "coords_garbage": 0.01, "coords_swapped": 0.01, "hostile_text": 0.015,
}
COMPONENT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("malformed_obj_id",), ("unknown_grid",), ("coords_zero",), ("hostile_text",),
)
COMPONENT_RATES: dict[str, float] = {
    "malformed_obj_id": 0.01, "unknown_grid": 0.01, "coords_zero": 0.01, "hostile_text": 0.005,
}
# Defects that a lifecycle step would erase: such cases are never advanced.
_FROZEN_BY = frozenset({"unknown_status", "close_before_register"})

# Handling departments: (scope, name). A department's code is its scope's division
# code (city 4 digits, district 6) plus its index here, so it is stable.
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("district", "城市管理综合行政执法局"),  # 0
    ("city", "城市管理综合行政执法局"),  # 1
    ("city", "住房和城乡建设局"),  # 2
    ("city", "水务集团有限公司"),  # 3
    ("city", "供电公司"),  # 4
    ("city", "城市管理综合行政执法局路灯管理处"),  # 5
    ("city", "消防救援支队"),  # 6
    ("city", "公安局交通警察支队"),  # 7
    ("city", "交通运输局"),  # 8
    ("district", "环境卫生管理处"),  # 9
    ("city", "园林绿化管理处"),  # 10
    ("district", "住房和城乡建设局"),  # 11
    ("city", "生态环境局"),  # 12
    ("city", "公交集团有限公司"),  # 13
    ("district", "市政设施养护中心"),  # 14
)
# (class_type, big_class) → handling department indexes; components: 主管, 权属, 养护.
HANDLERS: dict[tuple[str, str], tuple[int, ...]] = {
    ("部件", "01"): (3, 4, 5, 14), ("部件", "02"): (7, 8), ("部件", "03"): (9, 0),
    ("部件", "04"): (10,), ("部件", "06"): (2,),
    ("事件", "01"): (9, 0), ("事件", "02"): (0,), ("事件", "03"): (11, 12),
    ("事件", "04"): (3, 14), ("事件", "05"): (0, 1), ("事件", "06"): (0,), ("事件", "07"): (0,),
}
OWNERS: dict[str, tuple[int, int, int]] = {
    "01": (2, 3, 14), "02": (8, 7, 14), "03": (1, 9, 9), "04": (1, 10, 10), "06": (2, 2, 14),
}
DEADLINE_HOURS = {"部件": 48, "事件": 24}
URGENT_BIG_CLASS = ("事件", "04")  # 突发事件: 4 hours


@dataclass(frozen=True)
class CaseClass:
    class_type: str
    big_class: str
    small_class: str
    big_name: str
    small_name: str
    in_hub_mapping: bool
    weight: float
    hotline_category: str
    examples: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.class_type}/{self.big_class}/{self.small_class}"


def load_classes(path: Path = CLASSES_CSV) -> list[CaseClass]:
    with open(path, encoding="utf-8", newline="") as f:
        return [CaseClass(r["class_type"], r["big_class"], r["small_class"], r["big_name"],
                          r["small_name"], r["in_hub_mapping"].strip().lower() == "true",
                          float(r["weight"]), r["hotline_category"],
                          tuple(r["examples"].split("|")))
                for r in csv.DictReader(f)]


@dataclass
class CaseTruth:
    """What is really behind one case."""

    defects: set[str] = field(default_factory=set)
    point_wgs84: tuple[float, float] = (math.nan, math.nan)
    grid_code: str = ""  # the City's (15-digit) code of the grid it is really in
    hotline_order_no: str | None = None  # the 12345 order it was transferred from
    # The incident other platforms report too: the 12345 order's (a transfer) or a shared
    # one (sandbox.incidents); None: this case only.
    incident_id: str | None = None


@dataclass
class ComponentTruth:
    defects: set[str] = field(default_factory=set)
    point_wgs84: tuple[float, float] = (math.nan, math.nan)
    grid_code: str = ""


@dataclass
class GridTruth:
    city_grid_code: str  # the City's code; the platform may serve another spelling
    defects: set[str] = field(default_factory=set)  # retired_division / older_system
    area_m2: float = 0.0


class CityMgmtData:
    """The platform's rows (`cases`, `components`, `unit_grids`, keyed by their ids, values
    as the database holds them: local time text, floats) and ground truth per row."""

    def __init__(self, city: City, days: int = 7, end: datetime | None = None,
                 crs: str = DEFAULT_CRS):
        if days < 1:
            raise ValueError("days must be >= 1")
        self.city, self.days, self.end, self.crs = city, days, local_end(end), crs
        self.classes = load_classes()
        self._salt = ("citymgmt", city.scale, days, self.end.isoformat(), crs)
        self._to_projected = Transformer.from_crs(WGS84, crs, always_xy=True)
        self._district_name = {d.code: d.name for d in city.districts}
        self.cases: dict[str, dict[str, Any]] = {}
        self.case_truth: dict[str, CaseTruth] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self.component_truth: dict[str, ComponentTruth] = {}
        self.unit_grids: dict[str, dict[str, Any]] = {}
        self.grid_truth: dict[str, GridTruth] = {}
        self._served_grid: dict[str, str] = {}  # City grid code → platform grid code
        self._plans: dict[str, tuple[str, str]] = {}  # case_no → department it goes to
        self._advance_calls = 0
        self._serial: dict[str, int] = {}
        self._generate()

    # ---- helpers -------------------------------------------------------------

    def _rng(self, *salt: object) -> random.Random:
        return self.city.rng(*self._salt, *salt)

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self._to_projected.transform(lon, lat)
        return round(float(x), 3), round(float(y), 3)

    def served_grid_code(self, grid: Grid) -> str:
        return self._served_grid[grid.code]

    def department(self, index: int, district_code: str) -> tuple[str, str]:
        scope, name = DEPARTMENTS[index]
        if scope == "city":
            return f"{self.city.code}{index:03d}", f"{self.city.name}{name}"
        return f"{district_code}{index:03d}", f"{self._district_name[district_code]}{name}"

    def departments(self) -> dict[str, str]:
        """code → name of every department a case goes to or a component names."""
        out = {code: name for code, name in self._plans.values()}
        for row in self.components.values():
            for k in (1, 2, 3):
                out[row[f"dept_code{k}"]] = row[f"dept_name{k}"]
        return out

    @cached_property
    def retired_streets(self) -> frozenset[str]:
        streets = sorted(s.code for s in self.city.streets if s.district_code == RETIRED_SUCCESSOR)
        return frozenset(streets[:RETIRED_STREETS])

    # ---- generation ----------------------------------------------------------

    def _generate(self) -> None:
        self._generate_grids()
        self._generate_components()
        self._generate_cases()

    def _generate_grids(self) -> None:
        rng = self._rng("grids")
        for grid in self.city.grids:
            code, defects = grid.code, set()
            if grid.district_code == OLDER_SYSTEM_DISTRICT:
                # Older system: 3-digit community + 2-digit serial.
                code, defects = code[:12] + code[13:], {"older_system"}
            if grid.street_code in self.retired_streets:
                code, defects = RETIRED_DISTRICT + code[6:], {"retired_division"}
            self._served_grid[grid.code] = code
            x0, y0, x1, y1 = grid.bbox
            ring = [self.project(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
            polygon = Polygon(ring)
            area = round(float(polygon.area), 2)
            wkt = "POLYGON((" + ", ".join(f"{x:.3f} {y:.3f}" for x, y in ring + ring[:1]) + "))"
            self.unit_grids[code] = {
                "grid_code": code, "street_code": code[:9],
                "community_name": grid.community_name, "area_m2": area, "boundary_wkt": wkt,
                "update_time": fmt(self.end - timedelta(days=rng.randint(30, 400),
                                                        seconds=rng.randint(0, 86399))),
            }
            self.grid_truth[code] = GridTruth(grid.code, defects, area)

    def _generate_components(self) -> None:
        rng = self._rng("components")
        grids = self.city.grids
        part_classes = [c for c in self.classes if c.class_type == "部件"]
        n = max(50, round(10_000 * self.city.scale))
        serial: dict[str, int] = {}
        defects = _plant(n, COMPONENT_FAMILIES, COMPONENT_RATES, self._rng("plant-components"))
        hostile = itertools.count()
        for i in range(n):
            grid = grids[rng.randrange(len(grids))]
            cls = rng.choices(part_classes, weights=[c.weight for c in part_classes])[0]
            served_grid = self._served_grid[grid.code]
            district = served_grid[:6]
            small = cls.small_class
            if grid.district_code == GBT47678_DISTRICT:
                small = f"0{small}"  # GB/T 47678: 3-digit small class
            prefix = f"{district}{cls.big_class}{small}"
            serial[prefix] = serial.get(prefix, 0) + 1
            obj_id = f"{prefix}{serial[prefix]:06d}"
            bad = defects[i]
            truth_defects = set(bad)
            if district == RETIRED_DISTRICT:
                truth_defects.add("retired_division")
            served_id = obj_id
            if "malformed_obj_id" in bad:
                served_id = rng.choice([obj_id[:15], obj_id[:8] + "O" + obj_id[9:], obj_id + "00"])
            point = self.city.point_in(grid, rng)
            x, y = self.project(*point)
            if "coords_zero" in bad:
                x, y = 0.0, 0.0
            grid_code = served_grid
            if "unknown_grid" in bad:
                grid_code = _unknown_grid_code(served_grid)
            manage, owner, maintain = (self.department(k, grid.district_code)
                                       for k in OWNERS[cls.big_class])
            created = self.end - timedelta(days=rng.randint(200, 3000))
            changed = self.end - timedelta(days=rng.randint(1, 199), seconds=rng.randint(0, 86399))
            name = cls.small_name
            if "hostile_text" in bad:
                name = citymod.HOSTILE_TEXT[next(hostile) % len(citymod.HOSTILE_TEXT)]
            self.components[served_id] = {
                "obj_id": served_id, "obj_name": name,
                "dept_code1": manage[0], "dept_name1": manage[1],
                "dept_code2": owner[0], "dept_name2": owner[1],
                "dept_code3": maintain[0], "dept_name3": maintain[1],
                "grid_code": grid_code,
                "obj_state": rng.choices(OBJ_STATES, weights=(90, 6, 2, 2))[0],
                "or_date": fmt(created), "ch_date": fmt(changed), "x": x, "y": y,
                "update_time": fmt(changed),
            }
            self.component_truth[served_id] = ComponentTruth(truth_defects, point, grid.code)

    def _generate_cases(self) -> None:
        reports = self._reports() + self._transfers()
        reports.sort(key=lambda r: (r.time, r.tiebreak))
        defects = _plant(len(reports), CASE_FAMILIES, CASE_RATES, self._rng("plant-cases"),
                         eligible=self._eligible(reports))
        hostile = itertools.count()
        for report, bad in zip(reports, defects, strict=True):
            case_no = self._case_no(report.time)
            self._add_case(case_no, report, bad, hostile)

    def _eligible(self, reports: list[_Report]) -> Callable[[str, int], bool]:
        settled = self.end - timedelta(hours=12)

        def eligible(kind: str, i: int) -> bool:
            r = reports[i]
            if kind in ("unknown_status", "close_before_register"):
                return r.time <= settled
            if kind in ("unknown_class", "retired_division", "hostile_text"):
                # A planted retired division moves the case: not one other platforms report.
                return r.hotline_order_no is None and (kind != "retired_division"
                                                       or r.incident_id is None)
            return True

        return eligible

    def _case_no(self, t: datetime) -> str:
        day = f"{t:%Y%m%d}"
        self._serial[day] = self._serial.get(day, 0) + 1
        return f"{self.city.code}{day}{self._serial[day]:05d}"

    def _reports(self) -> list[_Report]:
        rng = self._rng("reports")
        usual = [c for c in self.classes if c.in_hub_mapping]
        per_day = 500 * self.city.scale
        start = self.end - timedelta(days=self.days)
        # Incidents other platforms report too: part of the day's cases.
        shared = incidents.reports_for(self.city, incidents.CITYMGMT, start, self.end)
        shared_per_day = incidents.per_slot(shared, start, self.days)
        out: list[_Report] = []
        for d in range(self.days):
            day = start + timedelta(days=d)
            for j in range(max(0, max(1, round(per_day)) - shared_per_day[d])):
                # Supervisors patrol in the daytime.
                t = day + timedelta(seconds=rng.randint(7 * 3600, 19 * 3600))
                grid = self.city.grids[rng.randrange(len(self.city.grids))]
                out.append(_Report(
                    time=t, tiebreak=f"{d:03d}{j:06d}", grid=grid,
                    point=self.city.point_in(grid, rng),
                    cls=rng.choices(usual, weights=[c.weight for c in usual])[0],
                    source=rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]))
        by_key = {c.key: c for c in self.classes}
        for k, r in enumerate(shared):
            # Raised from the video when a camera saw it; else found on patrol or reported.
            source = ("视频发现" if incidents.VIDEO in r.channels else
                      self._rng("shared", r.incident_id).choices(SOURCES[:2],
                                                                 weights=SOURCE_WEIGHTS[:2])[0])
            out.append(_Report(time=r.at, tiebreak=f"s{k:06d}", grid=r.grid, point=r.point,
                               cls=by_key[r.kind], source=source, incident_id=r.incident_id))
        return out

    def _transfers(self) -> list[_Report]:
        """Half of the 12345 orders about city management that were dispatched come here."""
        hotline = HotlineData(self.city, days=self.days, end=self.end)
        by_category = {c.hotline_category: c for c in self.classes if c.hotline_category}
        rng = self._rng("transfers")
        out: list[_Report] = []
        for no in sorted(hotline.orders):
            order, truth = hotline.orders[no], hotline.truth[no]
            cls = by_category.get(order["categoryCode"])
            if cls is None or not order["dispatchTime"] or rng.random() < 0.5:
                continue
            t = parse_local(order["dispatchTime"]) + timedelta(seconds=rng.randint(60, 1800))
            # Transferred at its dispatch, within a day of the call (an order sent back and
            # dispatched again days later stays with the departments it went to).
            if t >= self.end or t - parse_local(order["acceptTime"]) > timedelta(hours=23):
                continue
            grid = self.city.grid_by_code[truth.grid_code]
            out.append(_Report(time=t, tiebreak=no, grid=grid, point=truth.point_wgs84, cls=cls,
                               source=TRANSFERRED, hotline_order_no=no,
                               hotline_text=order["content"], incident_id=truth.incident_id))
        return out

    def _add_case(self, case_no: str, report: _Report, bad: set[str],
                  hostile: Iterator[int]) -> None:
        rng = self._rng("case", case_no)
        cls = report.cls
        if "unknown_class" in bad:
            unknown = [c for c in self.classes if not c.in_hub_mapping]
            cls = unknown[rng.randrange(len(unknown))]
        grid, point = report.grid, report.point
        if "retired_division" in bad and grid.street_code not in self.retired_streets:
            # Planted: the report is moved into a grid still coded 211121.
            retired = [g for g in self.city.grids if g.street_code in self.retired_streets]
            grid = retired[rng.randrange(len(retired))]
            point = self.city.point_in(grid, rng)
        served_grid = self._served_grid[grid.code]
        truth_defects = set(bad)
        if served_grid.startswith(RETIRED_DISTRICT):
            truth_defects.add("retired_division")
        grid_code = _unknown_grid_code(served_grid) if "unknown_grid" in bad else served_grid
        x, y = self.project(*point)
        if "coords_zero" in bad:
            x, y = 0.0, 0.0
        elif "coords_garbage" in bad:
            x, y = point  # degrees typed into the metre fields
        elif "coords_swapped" in bad:
            x, y = y, x
        component = ""
        if cls.class_type == "部件":
            component = self._component_near(cls, grid, rng)
        address = (self.city.address(grid, rng) if report.incident_id is None
                   else incidents.place(self.city, report.incident_id, grid))
        if "hostile_text" in bad:
            description = citymod.HOSTILE_TEXT[next(hostile) % len(citymod.HOSTILE_TEXT)]
        elif report.hotline_order_no:
            description = f"【12345转办】工单号：{report.hotline_order_no}。{report.hotline_text}"
        else:
            example = (rng.choice(cls.examples) if report.incident_id is None
                       else incidents.matter(self.city, report.incident_id, cls.examples))
            description = f"{address}附近{example}"
        handlers = HANDLERS[(cls.class_type, cls.big_class)]
        dept = self.department(handlers[rng.randrange(len(handlers))], grid.district_code)
        reporter = {"监督员上报": f"JDY{rng.randint(1, 300):04d}", "视频发现": f"SP{rng.randint(1, 999):05d}",
                    "领导交办": "LD01", TRANSFERRED: "12345", "公众举报": ""}[report.source]
        record: dict[str, Any] = dict.fromkeys(CASE_FIELDS)
        record.update({
            "case_no": case_no, "source": report.source, "class_type": cls.class_type,
            "big_class": cls.big_class, "small_class": cls.small_class,
            "description": description, "address": address, "grid_code": grid_code,
            "x": x, "y": y, "component_code": component, "reporter_id": reporter,
            "status": "上报", "report_time": fmt(report.time), "update_time": fmt(report.time),
        })
        self.cases[case_no] = record
        self.case_truth[case_no] = CaseTruth(truth_defects, point, grid.code,
                                             report.hotline_order_no, report.incident_id)
        self._plans[case_no] = dept
        self._lifecycle(case_no, rng)

    @cached_property
    def _components_by_class(self) -> dict[tuple[str, str, str], list[str]]:
        index: dict[tuple[str, str, str], list[str]] = {}
        for obj_id, t in self.component_truth.items():
            if t.defects & {"malformed_obj_id"}:
                continue
            big = obj_id[6:8]
            small = obj_id[8:10] if len(obj_id) == 16 else obj_id[9:11]
            index.setdefault((big, small, t.grid_code), []).append(obj_id)
            index.setdefault((big, small, ""), []).append(obj_id)
        return index

    def _component_near(self, cls: CaseClass, grid: Grid, rng: random.Random) -> str:
        for where in (grid.code, ""):
            found = self._components_by_class.get((cls.big_class, cls.small_class, where))
            if found:
                return found[rng.randrange(len(found))]
        return ""

    def _lifecycle(self, case_no: str, rng: random.Random) -> None:
        """Step the new case through its life up to `end`."""
        record, bad = self.cases[case_no], self.case_truth[case_no].defects
        t = parse_local(record["report_time"])
        if bad & {"unknown_status", "close_before_register"}:
            # Squeezed into three hours so every step lies before end.
            for step in ("立案", "派遣", "处置", "核查", "结案"):
                t += timedelta(minutes=20)
                self._step(case_no, t, rng, force=step)
            if "unknown_status" in bad:
                record["status"] = UNKNOWN_STATUSES[rng.randrange(2)]
                record["close_time"] = record["check_time"] = None
            else:
                record["close_time"] = fmt(parse_local(record["register_time"])
                                           - timedelta(seconds=rng.randint(3600, 86400)))
            return
        gaps = {"上报": (120, 3600), "立案": (300, 3600), "派遣": (600, 7200),
                "处置": (3600, 3 * 86400), "核查": (1800, 86400)}
        while record["status"] in gaps:
            t += timedelta(seconds=rng.randint(*gaps[record["status"]]))
            if t > self.end:
                return
            self._step(case_no, t, rng)

    def _step(self, case_no: str, t: datetime, rng: random.Random,
              force: str | None = None) -> None:
        """One step on in the case's lifecycle at local time t."""
        record = self.cases[case_no]
        now = fmt(t)
        status = record["status"]
        if status == "上报":
            if force is None and rng.random() < 0.05:
                record["status"] = "作废"
            else:
                record["status"], record["register_time"] = "立案", now
        elif status == "立案":
            code, name = self._plans[case_no]
            hours = 4 if (record["class_type"], record["big_class"]) == URGENT_BIG_CLASS \
                else DEADLINE_HOURS[record["class_type"]]
            record.update(status="派遣", dispatch_time=now, dept_code=code, dept_name=name,
                          deadline=fmt(t + timedelta(hours=hours)))
        elif status == "派遣":
            record["status"] = "处置"
        elif status == "处置":
            record["status"], record["dispose_time"] = "核查", now
        elif status == "核查":
            record["status"], record["check_time"] = "结案", now
            # Some supervisors close at the check: the system stamps no close time.
            record["close_time"] = None if rng.random() < 0.03 else now
        record["update_time"] = now

    # ---- moving on -------------------------------------------------------------

    def advance(self, n_cases: int, now_local: datetime,
                case_nos: Iterable[str] | None = None) -> list[str]:
        """Move cases one step on, stamped now_local: `case_nos` if given, else n_cases
        chosen deterministically (by the data and the number of earlier calls).
        Returns the changed case numbers, sorted."""
        now_local = now_local.replace(microsecond=0)
        rng = self._rng("advance", self._advance_calls)
        self._advance_calls += 1
        if case_nos is None:
            candidates = sorted(no for no, r in self.cases.items() if r["status"] in OPEN
                                and not self.case_truth[no].defects & _FROZEN_BY)
            chosen = rng.sample(candidates, min(max(n_cases, 0), len(candidates)))
        else:
            chosen = [no for no in case_nos if self.cases[no]["status"] in OPEN]
        for no in chosen:
            self._step(no, now_local, rng)
        return sorted(chosen)

    def touch(self, case_nos: Iterable[str], now_local: datetime) -> list[str]:
        """Re-save cases unchanged but for update_time (as an edit of a remark does)."""
        changed = sorted(case_nos)
        for no in changed:
            self.cases[no]["update_time"] = fmt(now_local.replace(microsecond=0))
        return changed

    def advance_components(self, n: int, now_local: datetime) -> list[str]:
        """n components change state (破损 ↔ 完好 …), stamped now_local."""
        rng = self._rng("advance-components", self._advance_calls)
        chosen = rng.sample(sorted(self.components), min(n, len(self.components)))
        now = fmt(now_local.replace(microsecond=0))
        for obj_id in chosen:
            row = self.components[obj_id]
            row["obj_state"] = "完好" if row["obj_state"] != "完好" else rng.choice(OBJ_STATES[1:])
            row["ch_date"] = row["update_time"] = now
        return sorted(chosen)

    def add_cases(self, n: int, now_local: datetime) -> list[str]:
        """n new reports arrive at now_local (status 上报)."""
        rng = self._rng("new-cases", self._advance_calls)
        usual = [c for c in self.classes if c.in_hub_mapping]
        t = now_local.replace(microsecond=0)
        added = []
        for k in range(n):
            grid = self.city.grids[rng.randrange(len(self.city.grids))]
            report = _Report(time=t, tiebreak=str(k), grid=grid, point=self.city.point_in(grid, rng),
                             cls=rng.choices(usual, weights=[c.weight for c in usual])[0],
                             source=rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0])
            no = self._case_no(t)
            self._add_case(no, report, set(), itertools.count())
            added.append(no)
        return added


@dataclass
class _Report:
    time: datetime
    tiebreak: str
    grid: Grid
    point: tuple[float, float]
    cls: CaseClass
    source: str
    hotline_order_no: str | None = None
    hotline_text: str = ""
    incident_id: str | None = None


def _unknown_grid_code(code: str) -> str:
    """A well-formed code of a community that does not exist (999)."""
    return code[:9] + "999" + code[12:]


def _plant(n: int, families: tuple[tuple[str, ...], ...], rates: dict[str, float],
           rng: random.Random, eligible: Callable[[str, int], bool] | None = None,
           ) -> list[set[str]]:
    """Which rows carry which defects: a share per kind with a floor (1, 2 from 50 rows);
    kinds of one family never share a row."""
    defects: list[set[str]] = [set() for _ in range(n)]
    floor = 2 if n >= 50 else 1
    for family in families:
        order = list(range(n))
        rng.shuffle(order)
        used: set[int] = set()
        for kind in family:
            want = min(n, max(floor, round(rates[kind] * n)))
            picks = [i for i in order if i not in used
                     and (eligible is None or eligible(kind, i))][:want]
            for i in picks:
                used.add(i)
                defects[i].add(kind)
    return defects


# --------------------------------------------------------------------------- database


def _tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    def col(name: str, key: bool = False) -> sa.Column[Any]:
        if name in TIME_COLUMNS:
            return sa.Column(name, sa.DateTime, nullable=name != "update_time")
        if name in ("x", "y", "area_m2"):
            return sa.Column(name, sa.Double)
        if name in ("description", "boundary_wkt"):
            return sa.Column(name, sa.Text)
        return sa.Column(name, sa.String(256 if "name" in name or name == "address" else 32),
                         primary_key=key)

    out = {}
    for table, fields in (("t_case", CASE_FIELDS), ("t_component", COMPONENT_FIELDS),
                          ("t_unit_grid", UNIT_GRID_FIELDS)):
        t = sa.Table(table, metadata, *(col(f, i == 0) for i, f in enumerate(fields)))
        # The index an incremental reader needs: (update_time, key).
        sa.Index(f"ix_{table}_update", t.c.update_time, t.c[fields[0]])
        out[table] = t
    return out


def _db_row(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (parse_local(v) if k in TIME_COLUMNS and v else v) for k, v in record.items()}


def mariadb_reachable(host: str = "127.0.0.1", port: int = 3306) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class CityMgmtDatabase:
    """`CityMgmtData` in a real database, reachable over a SQLAlchemy URL.

    `url` is a SQLite URL (`sqlite:///file`) or a MySQL/MariaDB server URL with
    admin rights (`mysql+pymysql://root@127.0.0.1:3306`): there a database
    `hub_sim_citymgmt_<pid>_<n>` and a read-only login with a random password are
    created on start and dropped on stop. Readers use `reader_url` (no password)
    plus `reader_password`, as the hub's connector does.
    """

    _instances = itertools.count()

    def __init__(self, data: CityMgmtData, url: str, clock: Callable[[], datetime] = now_local,
                 keep: bool = False):
        self.data = data
        self._url = sa.make_url(url)
        self._clock = clock
        self._keep = keep
        self._engine: sa.Engine | None = None
        self._admin: sa.Engine | None = None
        self.tables = _tables(sa.MetaData())
        n = next(self._instances)
        self.database = f"hub_sim_citymgmt_{os.getpid()}_{n}"
        self._reader = f"hub_cm_{os.getpid()}_{n}"
        self.reader_password = ""
        self.reader_url = ""

    @property
    def is_sqlite(self) -> bool:
        return self._url.get_backend_name() == "sqlite"

    def start(self) -> CityMgmtDatabase:
        if self._engine is not None:
            return self
        if self.is_sqlite:
            if self._url.database:
                Path(self._url.database).unlink(missing_ok=True)
            self._engine = sa.create_engine(self._url)
            self.reader_url = self._url.render_as_string(hide_password=False)
        else:
            self._admin = sa.create_engine(self._url.set(database=None), isolation_level="AUTOCOMMIT")
            self.reader_password = secrets.token_urlsafe(12)
            with self._admin.connect() as c:
                c.exec_driver_sql(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4"
                                  " COLLATE utf8mb4_bin")
                c.exec_driver_sql(f"CREATE USER '{self._reader}'@'%%' IDENTIFIED BY"
                                  f" '{self.reader_password}'")
                c.exec_driver_sql(f"GRANT SELECT ON `{self.database}`.* TO '{self._reader}'@'%%'")
            self._engine = sa.create_engine(
                self._url.set(database=self.database, query={"charset": "utf8mb4"}))
            self.reader_url = self._url.set(
                username=self._reader, password=None, database=self.database,
                query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
        metadata = next(iter(self.tables.values())).metadata
        metadata.create_all(self._engine)
        with self._engine.begin() as c:
            for name, rows in (("t_unit_grid", self.data.unit_grids),
                               ("t_component", self.data.components),
                               ("t_case", self.data.cases)):
                values = [_db_row(r) for r in rows.values()]
                if values:
                    c.execute(self.tables[name].insert(), values)
        return self

    def stop(self) -> None:
        if self._engine is None:
            return
        self._engine.dispose()
        self._engine = None
        if self._admin is not None:
            if not self._keep:
                with self._admin.connect() as c:
                    c.exec_driver_sql(f"DROP DATABASE IF EXISTS `{self.database}`")
                    c.exec_driver_sql(f"DROP USER IF EXISTS '{self._reader}'@'%%'")
            self._admin.dispose()
            self._admin = None
        elif not self._keep and self._url.database:
            Path(self._url.database).unlink(missing_ok=True)

    def __enter__(self) -> CityMgmtDatabase:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("database not started")
        return self._engine

    # ---- moving on -------------------------------------------------------------

    def _save(self, table: str, rows: dict[str, dict[str, Any]], keys: Iterable[str]) -> None:
        t = self.tables[table]
        key = t.primary_key.columns.values()[0]
        keys = list(keys)
        if not keys:
            return
        with self.engine.begin() as c:
            existing = {r[0] for r in c.execute(sa.select(key).where(key.in_(keys)))}
            new = [_db_row(rows[k]) for k in keys if k not in existing]
            old = [{"_key": k, **_db_row(rows[k])} for k in keys if k in existing]
            if new:
                c.execute(t.insert(), new)
            if old:
                c.execute(t.update().where(key == sa.bindparam("_key")), old)

    def advance(self, n_cases: int, case_nos: Iterable[str] | None = None) -> list[str]:
        """Cases move one step on, stamped with the platform's clock now."""
        changed = self.data.advance(n_cases, self._clock(), case_nos)
        self._save("t_case", self.data.cases, changed)
        return changed

    def touch(self, case_nos: Iterable[str]) -> list[str]:
        changed = self.data.touch(case_nos, self._clock())
        self._save("t_case", self.data.cases, changed)
        return changed

    def advance_components(self, n: int) -> list[str]:
        changed = self.data.advance_components(n, self._clock())
        self._save("t_component", self.data.components, changed)
        return changed

    def add_cases(self, n: int) -> list[str]:
        added = self.data.add_cases(n, self._clock())
        self._save("t_case", self.data.cases, added)
        return added


# --------------------------------------------------------------------------- demo


def _demo_advance(db: CityMgmtDatabase) -> int:
    """Some cases progress, a few components change state, a few new cases come in."""
    n = max(5, len(db.data.cases) // 20)
    return (len(db.advance(n)) + len(db.advance_components(max(2, n // 5)))
            + len(db.add_cases(max(1, n // 5))))


def start_for_demo(city: City, days: int, workdir: Path, source: str = "citymgmt"
                   ) -> DemoPlatform:
    """The platform as a SQLite file under `workdir`: the embedded demo needs no server.
    (A MariaDB-backed one: `CityMgmtDatabase(data, "mysql+pymysql://root@host:3306")`.)"""
    from base.settings import secret_env_var

    workdir.mkdir(parents=True, exist_ok=True)
    db = CityMgmtDatabase(CityMgmtData(city, days=days),
                          f"sqlite:///{workdir.resolve() / 'citymgmt.sqlite'}").start()
    env = {secret_env_var(source, "password"): db.reader_password} if db.reader_password else {}
    return DemoPlatform(settings={"url": db.reader_url}, env=env,
                        advance=lambda: _demo_advance(db), stop=db.stop, simulator=db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="sqlite:///citymgmt.sqlite",
                        help="sqlite:///file or mysql+pymysql://admin@host:3306 (a server)")
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--end", help="end of the history, yyyy-MM-dd HH:mm:ss (default today 00:00)")
    parser.add_argument("--crs", default=DEFAULT_CRS)
    parser.add_argument("--advance-every", type=float, default=0,
                        help="seconds between advances (0: never)")
    parser.add_argument("--keep", action="store_true", help="keep the database on exit")
    args = parser.parse_args(argv)
    end = parse_local(args.end) if args.end else None
    data = CityMgmtData(City("2111", seed=args.seed, scale=args.scale), args.days, end, args.crs)
    # A terminated simulator still drops what it created (the with-block's exit runs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with CityMgmtDatabase(data, args.url, keep=args.keep) as db:
        print(db.reader_url, flush=True)
        if db.reader_password:
            print(f"password: {db.reader_password}", flush=True)
        print(f"{len(data.cases)} cases, {len(data.components)} components, "
              f"{len(data.unit_grids)} unit grids", file=sys.stderr, flush=True)

        def advance() -> None:
            print(f"advanced {len(db.advance(max(5, len(data.cases) // 20)))} cases",
                  file=sys.stderr, flush=True)

        run_until_interrupted(every=args.advance_every, tick=advance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
