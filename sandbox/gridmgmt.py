"""The grid management platform (网格化服务管理): daily file drops and grid events, with truth.

Two channels, as shared/design/sources.md §3 describes them:

- a daily full snapshot per record kind, dropped into a landing folder the way an
  SFTP push does it: written under a temporary name, renamed when complete.
  `residents_YYYYMMDD.csv` (GBK, Chinese headers), `houses_YYYYMMDD.xlsx`,
  `orgs_YYYYMMDD.xlsx`, `grids_YYYYMMDD.geojson` (the City's grids, WGS84);
- grid workers' events, served over HTTP with cursor paging
  (sandbox.gridmgmt_server).

Everything is a pure function of (City(seed, scale), days, end): `days` platform
days ending the day before `end` (a naive Asia/Shanghai local time), plus the
days `advance_day` adds. The same humans, grids and organizations as on every
other platform (sandbox.city).

Dirt, planted deliberately and recorded in `truth`:
- the drop of one day is missing (days >= 4: the second-to-last day), and a
  half-written `.part` file of that day is left behind;
- the orgs file of the second delivered day is yesterday's file sent again, byte
  for byte; the grids file is the same every day (grids rarely change);
- residents move in and out between days (`present` says who lives there on each
  day); one resident moves out for exactly the second delivered day and comes
  back; one resident's ID number is spelt differently in each file (clean,
  spaced with a lower-case x, legacy 15 digits);
- ID numbers as `sandbox.city.id_variant` spells them (spaces, lower-case x,
  legacy 15 digits, full-width digits) and some with a wrong check digit; phones with
  +86 or dashes or in full-width digits; names in traditional characters, with a
  stray space or mistyped (a homophone: 张伟 → 张玮); residents who moved within the
  city (another grid and address than elsewhere); special-group tags
  (特殊人群) with mixed separators; a few impossible birth dates (02-30);
- organizations with valid and invalid unified social credit codes;
- events with an event type or status no mapping knows, a report time in the
  future, a grid code that does not exist, no grid code but coordinates (for grid assignment), hostile text, and
  the ID numbers of the parties involved (`partyIdNos`) in the same variants;
- some events report incidents other platforms report too (sandbox.incidents: a
  12345 call about the same pothole, the same quarrel registered on 综治):
  `EventTruth.incident_id`.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import math
import multiprocessing
import operator
import os
import random
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter

from sandbox import city as citymod
from sandbox import incidents
from sandbox.city import City, Organization, Person

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

RESIDENT_HEADERS = ("姓名", "性别", "公民身份号码", "出生日期", "民族", "联系电话", "户籍地址",
                    "现住址", "人口类型", "特殊人群", "所属网格", "更新时间")
HOUSE_HEADERS = ("房屋编码", "地址", "楼栋", "单元", "房号", "用途", "产权人身份号码", "所属网格")
ORG_HEADERS = ("统一社会信用代码", "名称", "类型", "法定代表人", "联系电话", "地址", "所属网格")
GRID_PROPERTIES = ("网格编码", "网格名称", "网格类型", "所属社区", "网格员", "网格员电话")
EVENT_FIELDS = ("eventId", "gridCode", "reporterId", "reportTime", "eventType", "description",
                "longitude", "latitude", "partyIdNos", "status", "updateTime")

FILE_ENCODING = "gbk"

SPECIAL_GROUPS = ("独居老人", "空巢老人", "残疾人", "低保户", "留守儿童", "社区矫正人员",
                  "刑满释放人员", "重点青少年", "退役军人")
TAG_SEPARATORS = ("、", ",", "，", ";")
HOUSE_USAGES = ("住宅", "住宅", "住宅", "住宅", "商业", "办公", "厂房", "其他")

# The platform's own event types; the first group is covered by the hub mapping.
EVENT_TYPES = ("矛盾纠纷", "邻里纠纷", "安全隐患", "消防隐患", "环境卫生", "治安问题",
               "民生服务", "占道经营", "违章建筑", "食品安全", "设施损坏")
UNKNOWN_EVENT_TYPES = ("防汛巡查", "信访维稳")  # types no mapping covers yet
EVENT_STATUSES = ("上报", "受理", "处置中", "已办结", "已归档")
UNKNOWN_EVENT_STATUS = "待核实"  # a status the platform added and no mapping knows
PARTY_TYPES = frozenset({"矛盾纠纷", "邻里纠纷", "治安问题"})
_EVENT_TEXT = {
    "矛盾纠纷": "两户居民因{x}发生争执，网格员现场调解", "邻里纠纷": "楼上楼下因{x}产生纠纷",
    "安全隐患": "{x}存在安全隐患，已拍照上报", "消防隐患": "楼道内{x}堵塞消防通道",
    "环境卫生": "{x}附近垃圾堆积未清运", "治安问题": "{x}附近有可疑人员徘徊",
    "民生服务": "独居老人反映{x}需要帮助", "占道经营": "{x}门前流动摊贩占道经营",
    "违章建筑": "{x}楼顶私搭乱建", "食品安全": "{x}小饭馆卫生条件差", "设施损坏": "{x}路灯损坏不亮",
    "防汛巡查": "{x}低洼处排水不畅", "信访维稳": "{x}居民聚集反映拆迁补偿",
}
_EVENT_CAUSES = ("噪音", "漏水", "停车位", "宠物", "装修", "楼道杂物", "电动车充电", "燃气管道")
# A quarrel other platforms report too: its matter, in the order their lists name it.
_SHARED_CAUSES = ("漏水", "楼道杂物", "宠物")

# Planted defects: share of records per kind, with a floor so small samples carry each.
RESIDENT_DEFECT_RATES = {"id_spaces": 0.02, "id_lower_x": 0.02, "id_legacy15": 0.02,
                         "id_bad_check_digit": 0.02, "phone_variant": 0.03,
                         "name_variant": 0.02, "special_group": 0.08, "bad_birth_date": 0.005,
                         "id_fullwidth": 0.01, "phone_fullwidth": 0.01, "name_typo": 0.01,
                         "moved": 0.02}
ORG_DEFECT_RATES = {"uscc_bad_check": 0.05, "uscc_malformed": 0.05, "phone_variant": 0.05}
EVENT_DEFECT_RATES = {"unknown_type": 0.03, "unknown_status": 0.02, "unknown_grid": 0.03,
                      "no_grid_code": 0.05, "hostile_text": 0.03, "future_time": 0.02}
DEFECT_FLOOR = 2

DAILY_MOVE_OUT = 0.01
DAILY_MOVE_IN = 0.3  # of those waiting outside (3 % of the population at the start)


def fmt(t: datetime | None) -> str | None:
    return None if t is None else t.strftime(TIME_FORMAT)


def default_end() -> datetime:
    """Today 00:00 in Asia/Shanghai."""
    from sandbox.hotline12345 import default_end as hotline_end

    return hotline_end()


@dataclass
class ResidentTruth:
    person_index: int
    defects: set[str] = field(default_factory=set)


@dataclass
class EventTruth:
    defects: set[str] = field(default_factory=set)
    grid_code: str = ""  # the grid the event really is in
    point: tuple[float, float] = (math.nan, math.nan)
    party_indices: tuple[int, ...] = ()
    # The incident other platforms report too (sandbox.incidents); None: this event only.
    incident_id: str | None = None


@dataclass
class Truth:
    """What is really behind the files and events."""

    # Platform day → the person indices living in the platform's grids that day.
    present: dict[date, frozenset[int]] = field(default_factory=dict)
    residents: dict[int, ResidentTruth] = field(default_factory=dict)
    # Named people the tests look for.
    out_and_back: int = -1  # absent on the second delivered day only
    id_forms: int = -1  # ID spelt clean / spaced lower-x / legacy 15 across the files
    orgs: dict[str, set[str]] = field(default_factory=dict)  # uscc as served → defects
    events: dict[str, EventTruth] = field(default_factory=dict)
    missing_dates: set[date] = field(default_factory=set)
    repeated_files: dict[str, str] = field(default_factory=dict)  # file → the file it copies


class GridData:
    """The platform's records: daily snapshots (`residents_on` …) and events (`events`)."""

    def __init__(self, city: City, days: int = 4, end: datetime | None = None):
        if days < 1:
            raise ValueError("days must be >= 1")
        self.city = city
        self.end = (end or default_end()).replace(microsecond=0)
        self._salt = ("gridmgmt", city.scale, days, self.end.isoformat())
        self._rng_prefix = f"{city.seed}:{':'.join(map(str, self._salt))}:"
        self.dates: list[date] = [self.end.date() - timedelta(days=days - i) for i in range(days)]
        self._first_midnight = datetime.combine(self.dates[0], datetime.min.time())
        self.truth = Truth()
        if days >= 4:
            self.truth.missing_dates.add(self.dates[-2])
        self._residents: dict[int, dict[str, str]] = {}
        self._id_numbers: dict[int, str] = {}  # City.person(i).id_number
        self._people: dict[int, Person] = {}  # made for their ID number, not yet a row
        self._house_rows: list[tuple[str, ...]] | None = None
        self._org_rows: dict[int, dict[str, str]] = {}
        self._order: list[int] | None = None
        self._plant_residents()
        self._present(self.dates)
        self._n_houses = max(len(city.grids), city.population // 3)
        self._n_orgs = max(20, city.population // 50)
        self._org_defects = self._plant(range(self._n_orgs), ORG_DEFECT_RATES, "orgs")
        for i in range(self._n_orgs + days):
            self.truth.orgs[self._org_row(i)["统一社会信用代码"]] = self._org_defects.get(i, set())
        if len(self.delivered) >= 2:
            first, second = self.delivered[:2]
            self.truth.repeated_files[file_name("orgs", second)] = file_name("orgs", first)
        # eventId → record as served; seq: position in the platform's change feed.
        self.events: dict[str, dict[str, Any]] = {}
        self.seq: dict[str, int] = {}
        self._last_seq = 0
        self._advance_calls = 0
        self._generate_events(self.dates[0], self.end)

    # ---- days ------------------------------------------------------------------

    @property
    def delivered(self) -> list[date]:
        return [d for d in self.dates if d not in self.truth.missing_dates]

    def _rng(self, *salt: object) -> random.Random:
        # City.rng(*self._salt, *salt), its seed string's start made once.
        return citymod.seeded(self._rng_prefix + ":".join(map(str, salt)))

    def advance_day(self) -> date:
        """The platform lives one more day: people move, houses change, orgs come and go."""
        day = self.dates[-1] + timedelta(days=1)
        self.dates.append(day)
        self._present([day])
        new_org = self._n_orgs + len(self.dates) - 1
        self.truth.orgs[self._org_row(new_org)["统一社会信用代码"]] = set()
        return day

    # ---- residents -------------------------------------------------------------

    def _plant_residents(self) -> None:
        population = self.city.population
        rng = self._rng("residents")
        # 3 % live elsewhere at the start and move in over the days.
        self._outside = {i for i in range(population) if rng.random() < 0.03}
        candidates = [i for i in range(population) if i not in self._outside]
        planted = self._plant(candidates, RESIDENT_DEFECT_RATES, "residents",
                              eligible=self._can_carry)
        for i, kinds in planted.items():
            self.truth.residents[i] = ResidentTruth(i, kinds)
        taken = set(planted)
        # Two named residents: their own person, no other defect.
        people = (self.city.person(i) for i in candidates if i not in taken)
        forms = next(p for p in people if p.id_number.endswith("X")
                     and 1900 <= p.birth_date.year <= 1999)
        self.truth.id_forms = forms.index
        self.truth.residents[forms.index] = ResidentTruth(forms.index, {"id_forms"})
        back = next(i for i in candidates if i not in taken and i != forms.index)
        self.truth.out_and_back = back
        self.truth.residents[back] = ResidentTruth(back, {"out_and_back"})
        self._pinned = {forms.index, back}

    def _can_carry(self, kind: str, index: int) -> bool:
        if kind not in ("id_lower_x", "id_legacy15"):
            return True
        id_number = self._id_number(index)  # its birth year is digits 7-10
        if kind == "id_lower_x":
            return id_number.endswith("X")
        if kind == "id_legacy15":
            return 1900 <= int(id_number[6:10]) <= 1999
        return True

    def _plant(self, items: Iterable[int], rates: dict[str, float], what: str,
               eligible: Any = None) -> dict[int, set[str]]:
        """item → planted defect kinds: a share per kind with a floor, one ID kind each."""
        pool = list(items)
        order = pool[:]
        self._rng("plant", what).shuffle(order)
        planted: dict[int, set[str]] = {}
        used_id: set[int] = set()
        for kind, rate in rates.items():
            want = max(DEFECT_FLOOR, round(rate * len(pool)))
            exclusive = kind.startswith(("id_", "uscc_"))
            picks: list[int] = []
            for i in order:
                if len(picks) == want:
                    break
                if exclusive and i in used_id:
                    continue
                if kind in planted.get(i, ()) or (eligible and not eligible(kind, i)):
                    continue
                picks.append(i)
            for i in picks:
                planted.setdefault(i, set()).add(kind)
                if exclusive:
                    used_id.add(i)
            order = order[len(picks):] + order[:len(picks)]  # spread kinds over people
        return planted

    def _present(self, days: list[date]) -> None:
        for day in days:
            if not self.truth.present:
                population = self.city.population
                today = frozenset(i for i in range(population) if i not in self._outside)
            else:
                yesterday = self.truth.present[max(self.truth.present)]
                rng = self._rng("moves", day.isoformat())
                out = {i for i in sorted(yesterday)
                       if i not in self._pinned and rng.random() < DAILY_MOVE_OUT}
                waiting = sorted(set(range(self.city.population)) - yesterday - self._pinned)
                moved_in = {i for i in waiting if rng.random() < DAILY_MOVE_IN}
                today = frozenset((yesterday - out) | moved_in)
            delivered = [d for d in self.dates if d not in self.truth.missing_dates]
            if len(delivered) >= 2 and day == delivered[1]:
                today = today - {self.truth.out_and_back}
            else:
                today = today | {self.truth.out_and_back}
            self.truth.present[day] = today

    def _resident(self, index: int) -> dict[str, str]:
        """The resident's row as the platform keeps it (independent of the day)."""
        cached = self._residents.get(index)
        if cached is not None:
            return cached
        person = self._people.pop(index, None) or self.city.person(index)
        self._id_numbers[index] = person.id_number
        rng = citymod.seeded(f"{self._rng_prefix}resident:{index}")  # self._rng("resident", …)
        truth = self.truth.residents.get(index)
        defects = truth.defects if truth is not None else set()
        id_no = person.id_number
        if "id_bad_check_digit" in defects:
            id_no = citymod.wrong_check_digit(id_no)
        for kind in ("lower_x", "spaces", "legacy15") if defects else ():
            if f"id_{kind}" in defects:
                id_no, applied = citymod.id_variant(id_no, rng, kind)
                assert applied == kind, (index, kind)
        tags = ""
        if "special_group" in defects:
            chosen = rng.sample(SPECIAL_GROUPS, rng.choice((1, 1, 2)))
            tags = rng.choice(TAG_SEPARATORS).join(chosen)
        household = (person.address if person.population_type == "户籍"
                     else f"{rng.choice(['辽宁省沈阳市', '黑龙江省大庆市', '山东省东营市', '吉林省松原市'])}"
                          f"{rng.choice(citymod.ROADS)}{rng.randint(1, 200)}号")
        row = {
            "姓名": (citymod.name_variant(person.name, rng) if "name_variant" in defects
                   else person.name),
            "性别": person.gender,
            "公民身份号码": id_no,
            "出生日期": (f"{person.birth_date.year}-02-30" if "bad_birth_date" in defects
                     else person.birth_date.isoformat()),
            "民族": person.ethnicity,
            "联系电话": (citymod.phone_variant(person.phone, rng) if "phone_variant" in defects
                     else person.phone),
            "户籍地址": household,
            "现住址": person.address,
            "人口类型": person.population_type,
            "特殊人群": tags,
            "所属网格": person.grid.code,
            "更新时间": fmt(self._first_midnight
                         - timedelta(seconds=rng.randint(3600, 3 * 365 * 86400))) or "",
        }
        if defects:
            self._vary(row, person, defects)
        self._residents[index] = row
        return row

    def _vary(self, row: dict[str, str], person: Person, defects: set[str]) -> None:
        """The kinds of dirt added later, from a stream of their own (the rows of everyone
        else stay as they were)."""
        rng = self._rng("resident-more", person.index)
        if "name_typo" in defects:
            row["姓名"] = citymod.name_typo(person.name, rng)
        if "id_fullwidth" in defects:
            row["公民身份号码"] = citymod.fullwidth(person.id_number)
        if "phone_fullwidth" in defects:
            row["联系电话"] = citymod.fullwidth(person.phone)
        if "moved" in defects:  # moved within the city: the grid worker has the new address
            grids = self.city.grids
            grid = grids[(person.index + rng.randrange(1, len(grids))) % len(grids)]
            row["现住址"], row["所属网格"] = self.city.address(grid, rng), grid.code

    def residents_on(self, day: date) -> list[dict[str, str]]:
        """The residents snapshot of `day`, in the platform's order (by grid, then ID)."""
        rows = []
        delivered = self.delivered
        present = self.truth.present[day]
        for index in (i for i in self._platform_order() if i in present):
            row = self._resident(index)
            if index == self.truth.id_forms:
                row = dict(row)
                nth = delivered.index(day) if day in delivered else 0
                person = self.city.person(index)
                if nth == 1:
                    row["公民身份号码"] = citymod.id_variant(person.id_number, random.Random(0),
                                                       "spaces")[0]
                elif nth >= 2:
                    row["公民身份号码"] = citymod.id_variant(person.id_number, random.Random(0),
                                                       "legacy15")[0]
            arrived = self._arrived_by(index, day)
            if arrived != self.dates[0]:  # registered when they moved in
                row = {**row, "更新时间": f"{arrived:%Y-%m-%d} 09:30:00"}
            rows.append(row)
        return rows

    def _platform_order(self) -> list[int]:
        """Everyone in the platform's order (by grid, then ID), made once."""
        if self._order is None:
            grids = self.city.grids
            codes = [g.code for g in grids]
            self._order = sorted(range(self.city.population),
                                 key=lambda i: (codes[i % len(codes)], i))
        return self._order

    def resident(self, index: int) -> dict[str, str]:
        """A resident's row as the platform keeps it (a file may spell the ID otherwise)."""
        return self._resident(index)

    def residents_ever(self) -> list[int]:
        """Everyone in at least one delivered residents file, by index."""
        present: set[int] = set()
        for day in self.delivered:
            present |= self.truth.present[day]
        return sorted(present)

    def orgs_ever(self) -> list[tuple[int, dict[str, str]]]:
        """(City.organization index, row) of every organization in a delivered orgs file."""
        n = max((self._n_orgs + self.dates.index(d) for d in self.delivered
                 if file_name("orgs", d) not in self.truth.repeated_files), default=0)
        return [(i, self._org_row(i)) for i in range(n)]

    def _arrived_by(self, index: int, day: date) -> date:
        """The day a person present on `day` last moved in, as of `day`."""
        arrived = self.dates[0]
        for d in self.dates:
            if d > day:
                break
            if index not in self.truth.present[d]:
                arrived = d + timedelta(days=1)
        return arrived

    # ---- houses, organizations, grids ------------------------------------------

    def houses_on(self, day: date) -> list[dict[str, str]]:
        # A few houses change use each day (a shop opens in a flat …), for good.
        new_use: dict[int, str] = {}
        for d in self.dates[1:]:
            if d > day:
                break
            changed = self._rng("house-changes", d.isoformat())
            for _ in range(max(1, self._n_houses // 200)):
                new_use[changed.randrange(self._n_houses)] = changed.choice(HOUSE_USAGES)
        rows = [dict(zip(HOUSE_HEADERS, values, strict=True)) for values in self._houses()]
        for h, use in new_use.items():
            rows[h]["用途"] = use
        return rows

    def _houses(self) -> list[tuple[str, ...]]:
        """Every house's row as first registered (HOUSE_HEADERS' values), made once."""
        if self._house_rows is not None:
            return self._house_rows
        rows = self._house_rows = self._make_houses(range(self._n_houses))
        return rows

    def _make_houses(self, houses: Iterable[int]) -> list[tuple[str, ...]]:
        grids, population = self.city.grids, self.city.population
        rows: list[tuple[str, ...]] = []
        for h in houses:
            grid = grids[h % len(grids)]
            rng = self._rng("house", h)
            owner_id = self._id_number((h * 3 + 1) % population)
            draw = rng.random()
            if draw < 0.03:
                owner_id = citymod.wrong_check_digit(owner_id)
            elif draw < 0.08:
                owner_id = citymod.id_variant(owner_id, rng, "spaces")[0]
            rows.append((
                f"{grid.code}{h // len(grids) + 1:04d}",
                self.city.address(grid, rng),
                f"{rng.randint(1, 40)}号楼",
                f"{rng.randint(1, 6)}单元",
                str(rng.randint(1, 18) * 100 + rng.randint(1, 4)),
                rng.choice(HOUSE_USAGES),
                owner_id,
                grid.code,
            ))
        return rows

    # ---- made ahead, in forked processes ---------------------------------------

    def build_ahead(self, workers: int) -> None:
        """Every resident's row and every house's row made now, split over `workers`
        processes forked from this one (the last parts there, the first here): the same
        rows as made one by one when a file needs them, in less wall time."""
        if workers < 2:
            return
        present: set[int] = set().union(*self.truth.present.values())
        todo = [i for i in sorted(present) if i not in self._residents]
        parts = _split(todo, workers)
        _, theirs = _forked(self, _residents_part, parts)
        for indices, values in zip(parts[1:], theirs, strict=True):
            for i, row in zip(indices, values, strict=True):
                self._residents[i] = dict(zip(RESIDENT_HEADERS, row[:-1], strict=True))
                self._id_numbers[i] = row[-1]
                self._people.pop(i, None)
        if self._house_rows is None:
            mine, theirs = _forked(self, _houses_part, _split(range(self._n_houses), workers))
            self._house_rows = [row for rows in (mine, *theirs) for row in rows]

    def _id_number(self, index: int) -> str:
        """A person's own ID number (City.person's), kept from when it was first made."""
        id_number = self._id_numbers.get(index)
        if id_number is None:
            person = self._people[index] = self.city.person(index)  # for _resident
            id_number = self._id_numbers[index] = person.id_number
        return id_number

    def orgs_on(self, day: date) -> list[dict[str, str]]:
        copied = self.truth.repeated_files.get(file_name("orgs", day))
        if copied:  # the platform sent yesterday's file again
            return self.orgs_on(_file_date(copied))
        n_days = self.dates.index(day) if day in self.dates else 0
        # One new organization registers a day.
        return [self._org_row(i) for i in range(self._n_orgs + n_days)]

    def _org_row(self, index: int) -> dict[str, str]:
        row = self._org_rows.get(index)
        if row is None:
            row = self._org_rows[index] = self._make_org_row(index)
        return dict(row)

    def _make_org_row(self, index: int) -> dict[str, str]:
        org: Organization = self.city.organization(index)
        defects = self._org_defects.get(index, set())
        rng = self._rng("org", org.index)
        code = org.uscc
        if "uscc_bad_check" in defects:
            alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
            code = code[:17] + alphabet[(alphabet.index(code[17]) + 1) % 31]
        elif "uscc_malformed" in defects:
            code = rng.choice([code[:17], code[:8] + "I" + code[9:], code[:10] + "O" + code[11:]])
        return {
            "统一社会信用代码": code,
            "名称": org.name,
            "类型": org.org_type,
            "法定代表人": org.legal_rep,
            "联系电话": (citymod.phone_variant(org.phone, rng) if "phone_variant" in defects
                     else org.phone),
            "地址": org.address,
            "所属网格": org.grid.code,
        }

    def grid_features(self) -> list[dict[str, Any]]:
        features = []
        for grid in self.city.grids:
            rng = self._rng("grid", grid.code)
            worker = self.city.person(rng.randrange(self.city.population))
            x0, y0, x1, y1 = grid.bbox
            features.append({
                "type": "Feature",
                "properties": {
                    "网格编码": grid.code, "网格名称": grid.name, "网格类型": grid.grid_type,
                    "所属社区": grid.community_name, "网格员": worker.name,
                    "网格员电话": worker.phone,
                },
                "geometry": {"type": "Polygon", "coordinates": [[
                    [x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            })
        return features

    # ---- events ----------------------------------------------------------------

    def _generate_events(self, start: date, end: datetime) -> None:
        per_day = max(20, round(2000 * self.city.scale))
        rng = self._rng("events")
        reports: list[tuple[datetime, str]] = []
        day = datetime.combine(start, datetime.min.time())
        # Incidents other platforms report too: part of the day's events, numbered last.
        shared = incidents.reports_for(self.city, incidents.GRID, day, end)
        n_days = math.ceil((end - day).total_seconds() / 86400)
        shared_per_day = incidents.per_slot(shared, day, n_days)
        self._shared: dict[str, incidents.Report] = {}
        d = 0
        while day < end:
            own = max(0, per_day - shared_per_day[d])
            for j in range(own):
                t = day + timedelta(seconds=rng.randint(7 * 3600, 20 * 3600))
                if t < end:
                    reports.append((t, f"GE{day:%y%m%d}{j + 1:05d}"))
            for j, r in enumerate(x for x in shared if x.at.date() == day.date()):
                event_id = f"GE{day:%y%m%d}{own + j + 1:05d}"
                self._shared[event_id] = r
                reports.append((r.at, event_id))
            day += timedelta(days=1)
            d += 1
        reports.sort()
        defects = self._plant(range(len(reports)), EVENT_DEFECT_RATES, "events")
        records = [self._event(event_id, t, defects.get(i, set()), end,
                               self._shared.get(event_id))
                   for i, (t, event_id) in enumerate(reports)]
        for record in sorted(records, key=lambda r: (r["updateTime"], r["eventId"])):
            self._touch(record)

    def _touch(self, record: dict[str, Any]) -> None:
        self._last_seq += 1
        self.events[record["eventId"]] = record
        self.seq[record["eventId"]] = self._last_seq

    def _event(self, event_id: str, reported: datetime, defects: set[str],
               end: datetime, shared: incidents.Report | None = None) -> dict[str, Any]:
        rng = self._rng("event", event_id)
        city = self.city
        if shared is None:
            grid = city.grids[rng.randrange(len(city.grids))]
            point = city.point_in(grid, rng)
            event_type = (rng.choice(UNKNOWN_EVENT_TYPES) if "unknown_type" in defects
                          else rng.choice(EVENT_TYPES))
        else:  # an incident other platforms report too: its place, in the grid's words
            grid, point = shared.grid, shared.point
            event_type = (rng.choice(UNKNOWN_EVENT_TYPES) if "unknown_type" in defects
                          else shared.kind)
        parties: tuple[int, ...] = ()
        if shared is not None and shared.parties and event_type in PARTY_TYPES:
            parties = shared.parties
        elif event_type in PARTY_TYPES:
            # People living in the grid (person i lives in grid i % number of grids).
            n_grids, g = len(city.grids), city.grids.index(grid)
            per_grid = max(1, city.population // n_grids)
            parties = tuple(sorted({(g + n_grids * rng.randrange(per_grid)) % city.population
                                    for _ in range(rng.choice((1, 2, 3)))}))
        party_ids = []
        for p in parties:
            id_no = city.person(p).id_number
            draw = rng.random()
            if draw < 0.1:
                id_no = citymod.wrong_check_digit(id_no)
                defects.add("party_bad_check_digit")
            elif draw < 0.3:
                id_no = citymod.id_variant(id_no, rng)[0]
            party_ids.append(id_no)
        steps = [("上报", reported)]
        t = reported
        for status, low, high in (("受理", 600, 4 * 3600), ("处置中", 1800, 86400),
                                  ("已办结", 3600, 3 * 86400), ("已归档", 12 * 3600, 3 * 86400)):
            t = t + timedelta(seconds=rng.randint(low, high))
            if t > end:
                break
            steps.append((status, t))
        status, updated = steps[-1]
        if "unknown_status" in defects:
            status = UNKNOWN_EVENT_STATUS
        if "future_time" in defects:  # a device clock far ahead
            reported = end + timedelta(days=rng.randint(2, 30))
        grid_code: str | None = grid.code
        if "unknown_grid" in defects:
            grid_code = f"{grid.street_code}9{rng.randint(0, 99):02d}{rng.randint(1, 999):03d}"
        elif "no_grid_code" in defects:
            grid_code = None
        address = (city.address(grid, rng) if shared is None
                   else incidents.place(city, shared.incident_id, grid))
        if "hostile_text" in defects:
            description = citymod.HOSTILE_TEXT[rng.randrange(len(citymod.HOSTILE_TEXT))]
        elif shared is not None and shared.theme.grid_text and event_type not in PARTY_TYPES \
                and event_type not in UNKNOWN_EVENT_TYPES:
            description = shared.theme.grid_text.format(x=address)
        else:
            cause = (rng.choice(_EVENT_CAUSES) if shared is None
                     else incidents.matter(city, shared.incident_id, _SHARED_CAUSES))
            description = _EVENT_TEXT[event_type].format(
                x=cause if event_type in PARTY_TYPES else address)
        self.truth.events[event_id] = EventTruth(
            defects=set(defects), grid_code=grid.code, point=point, party_indices=parties,
            incident_id=shared.incident_id if shared is not None else None)
        return {
            "eventId": event_id,
            "gridCode": grid_code,
            "reporterId": f"WG{grid.code[-9:]}",
            "reportTime": fmt(reported),
            "eventType": event_type,
            "description": description,
            "longitude": point[0],
            "latitude": point[1],
            "partyIdNos": party_ids,
            "status": status,
            "updateTime": fmt(updated),
        }

    def feed(self, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """The change feed after position `after_seq`: (events, last seq or None when at the end)."""
        ordered = sorted((s, e) for e, s in self.seq.items() if s > after_seq)
        page = ordered[:limit]
        events = [dict(self.events[e]) for _, e in page]
        more = len(ordered) > limit
        return events, (page[-1][0] if more else None)

    def advance_events(self, n: int, now: datetime) -> list[str]:
        """n events move one step on, and n/2 new ones are reported; stamped `now`."""
        rng = self._rng("advance", self._advance_calls)
        self._advance_calls += 1
        open_ = sorted(e for e, r in self.events.items()
                       if r["status"] in EVENT_STATUSES[:-1]
                       and not self.truth.events[e].defects & {"unknown_status", "future_time"})
        changed = sorted(rng.sample(open_, min(n, len(open_))))
        for event_id in changed:
            record = self.events[event_id]
            record["status"] = EVENT_STATUSES[EVENT_STATUSES.index(record["status"]) + 1]
            record["updateTime"] = fmt(now)
            self._touch(record)
        new = []
        for j in range(max(1, n // 2)):
            event_id = f"GE{now:%y%m%d}{90000 + self._advance_calls * 100 + j:05d}"
            record = self._event(event_id, now, set(), now)
            self._touch(record)
            new.append(event_id)
        return changed + new


# ---------------------------------------------------------------- forked workers

# Below this many people one process is quicker than forking others.
PARALLEL_FROM = 100_000

# What the forked workers work on: inherited from the process that forks them.
_FORKED: Any = None


def default_workers(population: int) -> int:
    """Processes to make a city's rows and files in: one per core, two at most."""
    if population < PARALLEL_FROM or not hasattr(os, "fork"):
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _split(items: Sequence[int], n: int) -> list[Sequence[int]]:
    size = -(-len(items) // n)
    return [items[k * size:(k + 1) * size] for k in range(n)]


def _forked(on: Any, work: Callable[[Sequence[int]], Any],
            parts: list[Sequence[int]]) -> tuple[Any, list[Any]]:
    """work(part) for each part, at once: the first here, the others in processes forked
    from this one (working on `on` as it is now). Their results, in the parts' order."""
    with _forking(on, len(parts) - 1) as pool:
        pending = [pool.apply_async(work, (part,)) for part in parts[1:]]
        mine = work(parts[0])
        return mine, [p.get() for p in pending]


@contextmanager
def _forking(on: Any, workers: int) -> Iterator[Any]:
    """A pool of `workers` processes forked from this one, working on `on`. The objects
    made so far are frozen first: the workers' garbage collector leaves them alone, so
    their memory stays shared instead of being copied page by page."""
    global _FORKED
    _FORKED = on
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield pool
    finally:
        gc.unfreeze()
        _FORKED = None


def _residents_part(indices: Sequence[int]) -> list[tuple[str, ...]]:
    """The residents' rows (RESIDENT_HEADERS' values, then the person's own ID number)."""
    data: GridData = _FORKED
    values = operator.itemgetter(*RESIDENT_HEADERS)
    return [(*values(data._resident(i)), data._id_numbers[i]) for i in indices]


def _houses_part(houses: Sequence[int]) -> list[tuple[str, ...]]:
    data: GridData = _FORKED
    return data._make_houses(houses)


def _write_part(task: tuple[str, date]) -> str:
    """One file of the landing folder written: `task` is (kind, day); kind "part" is the
    half-written residents file of a missing day."""
    landing: Landing = _FORKED
    kind, day = task
    if kind == "part":
        partial = render(landing.data, "residents", day)
        name = f"{file_name('residents', day)}.part"
        (landing.folder / name).write_bytes(partial[: len(partial) // 2])
        return name
    name = file_name(kind, day)
    landing.write(name, render(landing.data, kind, day))
    return name


# ---------------------------------------------------------------- files on disk


FILE_KINDS = {"residents": "csv", "houses": "xlsx", "orgs": "xlsx", "grids": "geojson"}


def file_name(kind: str, day: date) -> str:
    return f"{kind}_{day:%Y%m%d}.{FILE_KINDS[kind]}"


def _file_date(name: str) -> date:
    m = re.search(r"_(\d{8})\.", name)
    if not m:
        raise ValueError(name)
    return datetime.strptime(m.group(1), "%Y%m%d").date()


def render(data: GridData, kind: str, day: date) -> bytes:
    """The bytes of one day's file of one kind: deterministic."""
    if kind == "residents":
        return _csv_bytes(RESIDENT_HEADERS, data.residents_on(day))
    if kind == "houses":
        return _xlsx_bytes("实有房屋", HOUSE_HEADERS, data.houses_on(day), day)
    if kind == "orgs":
        return _xlsx_bytes("组织", ORG_HEADERS, data.orgs_on(day), day)
    if kind == "grids":
        collection = {"type": "FeatureCollection", "name": "网格",
                      "crs": {"type": "name",
                              "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
                      "features": data.grid_features()}
        return json.dumps(collection, ensure_ascii=False).encode("utf-8")
    raise ValueError(f"no file kind {kind!r}")


def _csv_bytes(headers: tuple[str, ...], rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    if all(len(row) == len(headers) for row in rows):  # every field there: fetched in C
        writer.writerows(map(operator.itemgetter(*headers), rows))
    else:
        writer.writerows([row.get(h, "") for h in headers] for row in rows)
    return buf.getvalue().encode(FILE_ENCODING)


def _xlsx_bytes(sheet: str, headers: tuple[str, ...], rows: list[dict[str, str]],
                day: date) -> bytes:
    """The workbook openpyxl's write-only mode writes, byte for byte: openpyxl writes the
    package and the header row, the rows' XML is written here the way openpyxl writes
    a text cell (an inline string), many times faster."""
    table = [[row.get(h, "") for h in headers] for row in rows]
    wb = openpyxl.Workbook(write_only=True)
    wb.create_sheet(sheet).append(list(headers))
    buf = io.BytesIO()
    wb.save(buf)
    try:
        return _fixed_zip(buf.getvalue(), day, {"xl/worksheets/sheet1.xml": lambda skeleton:
                                                _sheet_rows(skeleton, table)})
    except _NotPlainText:  # numbers, formulas …: openpyxl writes them its way
        return _openpyxl_xlsx_bytes(sheet, headers, table, day)


class _NotPlainText(Exception):
    """A value openpyxl writes otherwise than as an inline string holding it as it is."""


def _openpyxl_xlsx_bytes(sheet: str, headers: tuple[str, ...], table: list[list[Any]],
                         day: date) -> bytes:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(list(headers))
    for values in table:
        ws.append(values)
    buf = io.BytesIO()
    wb.save(buf)
    return _fixed_zip(buf.getvalue(), day)


_ILLEGAL_XML = re.compile(r"[\000-\010\013\014\016-\037]")  # openpyxl refuses these
_XLSX_ERROR_CODES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!",
                               "#N/A"})


def _checked(xml: str) -> bytes:
    if _ILLEGAL_XML.search(xml):
        raise _NotPlainText  # characters openpyxl refuses
    return xml.encode("utf-8")


def _sheet_rows(skeleton: bytes, table: list[list[str]]) -> Iterator[bytes]:
    """The sheet's XML: openpyxl's (header row only) with the rows after it."""
    head, tail = skeleton.split(b"</sheetData>")
    yield head
    letters = [get_column_letter(i + 1) for i in range(max(map(len, table), default=0))]
    parts: list[str] = []
    for r, values in enumerate(table, 2):
        try:
            joined = "".join(values)
        except TypeError:  # a number, a date …
            raise _NotPlainText from None
        if len(joined) > 32767:  # perhaps a cell longer than openpyxl keeps
            raise _NotPlainText
        if "&" in joined or "<" in joined or ">" in joined:
            values = [v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                      for v in values]
        parts.append(f'<row r="{r}">')
        for letter, v in zip(letters, values, strict=False):
            if not v:
                parts.append(f'<c r="{letter}{r}" t="inlineStr" />')
                continue
            if v[0] in "=#" and ((v[0] == "=" and len(v) > 1) or v in _XLSX_ERROR_CODES):
                raise _NotPlainText  # a formula, an error code
            stripped = v.strip()
            space = ' xml:space="preserve"' if stripped and stripped != v else ""
            parts.append(f'<c r="{letter}{r}" t="inlineStr"><is><t{space}>{v}</t></is></c>')
        parts.append("</row>")
        if len(parts) > 100_000:
            yield _checked("".join(parts))
            parts = []
    yield _checked("".join(parts))
    yield b"</sheetData>" + tail


def _fixed_zip(data: bytes, day: date,
               replace: dict[str, Callable[[bytes], Iterable[bytes]]] | None = None) -> bytes:
    """The workbook with fixed timestamps, so the same content gives the same bytes
    (`replace`: an entry's content written anew from its content, in pieces)."""
    stamp = (day.year, day.month, day.day, 2, 0, 0)
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                iso = f"{day:%Y-%m-%d}T02:00:00Z"
                content = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                                 rb"\g<1>" + iso.encode(), content)
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            if replace and info.filename in replace:
                with dst.open(entry, "w") as f:
                    for piece in replace[info.filename](content):
                        f.write(piece)
            else:
                dst.writestr(entry, content)
    return out.getvalue()


class Landing:
    """The landing folder: files arrive the way an SFTP push delivers them."""

    def __init__(self, data: GridData, folder: Path):
        self.data = data
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._written: set[str] = set()  # written ahead by drop_all's workers

    def drop(self, day: date, kinds: Iterable[str] = tuple(FILE_KINDS)) -> list[str]:
        """Deliver `day`'s files (nothing but a half-written leftover on a missing day)."""
        if day in self.data.truth.missing_dates:
            part = f"{file_name('residents', day)}.part"
            if part not in self._written:
                partial = render(self.data, "residents", day)
                (self.folder / part).write_bytes(partial[: len(partial) // 2])
            self._written.discard(part)
            return []
        names = []
        for kind in kinds:
            name = file_name(kind, day)
            names.append(name)
            if name in self._written:
                self._written.discard(name)
                continue
            copied = self.data.truth.repeated_files.get(name)
            content = ((self.folder / copied).read_bytes()
                       if copied and (self.folder / copied).exists()
                       else render(self.data, kind, day))
            self.write(name, content)
        return names

    def drop_all(self, workers: int | None = None) -> list[str]:
        """Deliver every day's files. With more than one worker (by default one per core,
        two at most, for a city of PARALLEL_FROM people or more) the rows are made and
        the files written in processes forked from this one: the same files."""
        data = self.data
        workers = default_workers(data.city.population) if workers is None else workers
        if workers > 1:
            data.build_ahead(workers)
            tasks = [("part", d) if d in data.truth.missing_dates else (kind, d)
                     for d in data.dates for kind in FILE_KINDS
                     if file_name(kind, d) not in data.truth.repeated_files
                     and (d not in data.truth.missing_dates or kind == "residents")]
            cost = {"residents": 0, "part": 0, "houses": 1, "orgs": 2, "grids": 2}
            tasks.sort(key=lambda t: cost[t[0]])  # the big files first
            with _forking(self, workers) as pool:
                self._written.update(pool.imap_unordered(_write_part, tasks))
        return [n for day in data.dates for n in self.drop(day)]

    def write(self, name: str, content: bytes) -> None:
        """Write under a temporary name and rename: the file appears complete."""
        temp = self.folder / f".{name}.part"
        with open(temp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.folder / name)

    def redeliver(self, name: str) -> None:
        """The platform sends a file again, unchanged."""
        self.write(name, (self.folder / name).read_bytes())
