"""The county's 综治 platform (矛盾纠纷排查调处): disputes and mediation committees, generated,
dirty, with ground truth.

One record per dispute (纠纷) and per people's mediation committee (人民调解委员会), as the
platform serves them (shared/design/sources.md §5). Everything is a pure function of
(city, seed, scale, days, end) and, for disputes transferred from the 12345 hotline,
of the hotline's orders (`sandbox.hotline12345.HotlineData` of the same city, days and
end): a transferred dispute's `transferNo` is a real order number of that data and its
applicant the order's caller. About 200 disputes a day × scale (at least 6), found by
grid workers, brought by citizens or handed over by departments, plus the transfers;
committees at county, street and community level.

Times are kept as naive Asia/Shanghai local times and served as ISO 8601 with the
+08:00 offset, or (dirt) in UTC with `Z`: the same instant either way.

Dirt, planted deliberately (every kind on at least one dispute, two once there are 50)
and recorded in `truth`: an applicant's ID number with a wrong check digit, with a
lower-case x, in full-width digits, or missing; a phone with +86 or dashes or in
full-width digits; the applicant's name in traditional characters or mistyped (a
homophone); a dispute type no mapping knows; a status no mapping knows; a closing time before the acceptance; times in UTC;
hostile text in the summary; coordinates missing or at (0, 0).

Some disputes a grid worker found (网格排查) are the quarrel the grid platform reports
as an event naming the same parties (sandbox.incidents): `DisputeTruth.incident_id`,
which for a transfer is the 12345 order's incident.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stdnum.cn import uscc

from sandbox import city as citymod
from sandbox import incidents
from sandbox.city import City, Grid, plant_defects
from sandbox.hotline12345 import SHANGHAI, HotlineData, local_end, parse_local

DISPUTE_FIELDS = ("caseId", "source", "transferNo", "disputeType", "summary", "parties",
                  "divisionCode", "streetCode", "gridCode", "longitude", "latitude",
                  "mediationOrg", "mediator", "status", "registerTime", "acceptTime",
                  "mediateTime", "closeTime", "deadline", "satisfaction", "updateTime")
ORG_FIELDS = ("code", "name", "level", "divisionCode", "updateTime")

DISPUTE_TYPES = ("婚姻家庭", "邻里纠纷", "劳资纠纷", "物业纠纷", "土地权属", "消费纠纷", "其他")
UNKNOWN_DISPUTE_TYPE = "医疗纠纷"  # a type the platform added and no mapping knows yet
STATUSES = ("登记", "受理", "调解中", "调解成功", "调解失败", "已移交", "已结案")
UNKNOWN_STATUS = "中止调解"
SATISFACTIONS = ("满意", "基本满意", "不满意", "未评价")
TRANSFERRED = "12345转办"
# The 12345 categories a dispute is transferred from, and the dispute type they become.
HOTLINE_DISPUTES = {"170101": "邻里纠纷", "110401": "物业纠纷", "140101": "劳资纠纷"}
DEADLINE_DAYS = 30  # 人民调解法: a mediation is to finish within 30 days
# The next status when a dispute moves on (调解中 goes to 调解成功 or 调解失败).
NEXT = {"登记": "受理", "受理": "调解中", "调解成功": "已结案", "调解失败": "已移交"}

DEFECT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("party_id_bad_check_digit", "party_id_lower_x", "party_id_missing", "party_id_fullwidth"),
    ("party_phone_variant", "party_phone_fullwidth"),
    ("unknown_dispute_type",),
    ("unknown_status", "close_before_accept"),
    ("times_in_utc",),
    ("hostile_text",),
    ("coords_missing", "coords_zero"),
    ("party_name_variant", "party_name_typo"),
)
DEFECT_KINDS = tuple(k for family in DEFECT_FAMILIES for k in family)
DEFECT_RATES = {"party_id_bad_check_digit": 0.02, "party_id_lower_x": 0.01,
                "party_id_missing": 0.05, "party_phone_variant": 0.04,
                "unknown_dispute_type": 0.01, "unknown_status": 0.01,
                "close_before_accept": 0.01, "times_in_utc": 0.03, "hostile_text": 0.01,
                "coords_missing": 0.05, "coords_zero": 0.01, "party_id_fullwidth": 0.01,
                "party_phone_fullwidth": 0.01, "party_name_variant": 0.02,
                "party_name_typo": 0.02}
_FROZEN_BY = frozenset({"unknown_status", "close_before_accept"})
# Kinds a dispute transferred from 12345 never carries: its applicant stays the caller
# and it stays loadable, so the link to the hotline can be checked.
_NOT_ON_TRANSFERS = frozenset({"party_id_bad_check_digit", "party_id_lower_x",
                               "party_id_missing", "close_before_accept"})

# What the summary says, per type ({n}: an amount). No names: the parties are fields.
SUMMARIES = {
    "婚姻家庭": ("申请人与配偶因家庭琐事多次争吵，双方同意由调解委员会调解",
             "申请人与被申请人离婚后因子女抚养费给付问题产生纠纷"),
    "邻里纠纷": ("申请人反映楼上住户（被申请人）家中漏水致其房屋受损，双方协商未果",
             "申请人与邻居因楼道堆放杂物发生争执", "申请人反映邻居饲养犬只夜间吠叫扰民"),
    "劳资纠纷": ("申请人反映被申请人拖欠其工资{n}元，多次讨要未果",
             "申请人与雇主因工伤赔偿数额产生争议"),
    "物业纠纷": ("申请人与物业服务企业因物业费收取标准产生纠纷",
             "申请人反映物业对电梯故障长期不予维修，拒交物业费后发生争执"),
    "土地权属": ("申请人与被申请人因承包地边界划分产生争议", "申请人与被申请人因宅基地使用权归属发生纠纷"),
    "消费纠纷": ("申请人反映在被申请人经营的店铺购买的商品存在质量问题，要求退款遭拒",),
    "其他": ("申请人与被申请人因民间借贷{n}元到期未还产生纠纷",),
    UNKNOWN_DISPUTE_TYPE: ("申请人反映其家属在诊所就医后病情加重，与诊所协商赔偿未果",),
}
_HOURS = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 2, 6, 9, 9, 7, 4, 6, 8, 8, 7, 5, 3, 2, 1, 0.6, 0.4, 0.3)


@dataclass(frozen=True)
class Committee:
    """A people's mediation committee (人民调解委员会) and its mediators."""

    code: str  # 统一社会信用代码
    name: str
    level: str  # 县 / 乡镇街道 / 村社区
    division_code: str  # 6-digit county or 9-digit street code
    updated: datetime
    mediators: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "level": self.level,
                "divisionCode": self.division_code, "updateTime": iso(self.updated)}


@dataclass
class DisputeTruth:
    """What is really behind one dispute."""

    party_indices: tuple[int, ...]  # City.person(i) for each party, applicant first
    grid_code: str
    defects: set[str] = field(default_factory=set)
    transfer_no: str | None = None  # the 12345 order it was transferred from
    transfer_in_hotline: bool = False  # that order is one of the hotline data's
    # The incident other platforms report too: the 12345 order's (a transfer) or a shared
    # one (sandbox.incidents); None: this dispute only.
    incident_id: str | None = None


@dataclass
class _Case:
    """One dispute's state, in local times; `record()` is what the platform serves."""

    case_id: str
    source: str
    transfer_no: str | None
    dispute_type: str
    summary: str
    parties: list[dict[str, str]]
    grid: Grid
    point: tuple[float | None, float | None]
    committee: Committee
    register: datetime
    utc: bool = False
    status: str = "登记"
    accept: datetime | None = None
    mediate: datetime | None = None
    close: datetime | None = None
    mediator: str | None = None
    satisfaction: str = "未评价"
    updated: datetime | None = None

    def record(self) -> dict[str, Any]:
        accepted = self.accept is not None
        return {
            "caseId": self.case_id, "source": self.source, "transferNo": self.transfer_no,
            "disputeType": self.dispute_type, "summary": self.summary,
            "parties": [dict(p) for p in self.parties],
            "divisionCode": self.grid.district_code, "streetCode": self.grid.street_code,
            "gridCode": self.grid.code, "longitude": self.point[0], "latitude": self.point[1],
            "mediationOrg": ({"code": self.committee.code, "name": self.committee.name}
                             if accepted else None),
            "mediator": self.mediator, "status": self.status,
            "registerTime": iso(self.register, self.utc), "acceptTime": iso(self.accept, self.utc),
            "mediateTime": iso(self.mediate, self.utc), "closeTime": iso(self.close, self.utc),
            "deadline": iso(self.accept + timedelta(days=DEADLINE_DAYS) if self.accept else None,
                            self.utc),
            "satisfaction": self.satisfaction,
            "updateTime": iso(self.updated or self.register, self.utc),
        }


def iso(t: datetime | None, utc: bool = False) -> str | None:
    """A local time as the platform writes it: ISO 8601 with +08:00, or in UTC with Z."""
    if t is None:
        return None
    aware = t.replace(tzinfo=SHANGHAI)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if utc else aware.isoformat()


def committee_code(area: str, serial: int) -> str:
    """A valid GB 32100 code for a committee: 39 (司法行政, other) + area + serial + check."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    org = "".join(alphabet[(serial // 31**i) % 31] for i in range(8))[::-1] + str(serial % 10)
    body = f"39{area}{org}"
    return body + uscc.calc_check_digit(body)


@dataclass
class _Draft:
    register: datetime
    grid: Grid
    source: str
    dispute_type: str
    applicant: int
    transfer_no: str | None = None
    in_hotline: bool = False
    parties: tuple[int, ...] = ()  # given: the people of an incident others report too
    incident_id: str | None = None
    point: tuple[float, float] | None = None  # given: where that incident is


class ZongzhiData:
    """The platform's committees (`orgs`) and disputes (`disputes`), with `truth`.

    Not thread-safe by itself; the server serialises access.
    """

    def __init__(self, city: City, days: int = 7, end: datetime | None = None,
                 hotline: HotlineData | None = None):
        if days < 1:
            raise ValueError("days must be >= 1")
        self.city, self.days, self.end = city, days, local_end(end)
        self.hotline = hotline
        self._salt = ("zongzhi", city.scale, days, self.end.isoformat())
        self._cases: dict[str, _Case] = {}
        # caseId → the record exactly as served; replaced, never changed in place, when
        # a dispute moves on (a cursor's snapshot keeps the records it was taken of).
        self.disputes: dict[str, dict[str, Any]] = {}
        self.truth: dict[str, DisputeTruth] = {}
        self._index: list[tuple[datetime, str]] | None = None
        self._advance_calls = 0
        self.committees = self._committees()
        self.orgs = [c.record() for c in self.committees]
        self._generate()

    # ---- reading ---------------------------------------------------------------

    def query(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Disputes updated at or after `since` (aware), by update time then caseId."""
        if self._index is None:
            self._index = sorted((c.updated or c.register, no) for no, c in self._cases.items())
        lo = 0
        if since is not None:
            local = since.astimezone(SHANGHAI).replace(tzinfo=None)
            lo = bisect.bisect_left(self._index, (local, ""))
        return [self.disputes[no] for _, no in self._index[lo:]]

    # ---- mutation --------------------------------------------------------------

    def advance(self, n: int, now_local: datetime) -> list[str]:
        """Move up to n disputes one step on, stamped now_local (naive local time).
        Deterministic for the data and the number of earlier calls; returns the caseIds."""
        now = now_local.replace(microsecond=0, tzinfo=None)
        rng = self.city.rng(*self._salt, "advance", self._advance_calls)
        self._advance_calls += 1
        open_cases = sorted(no for no, c in self._cases.items()
                            if (c.status in NEXT or c.status == "调解中")
                            and not self.truth[no].defects & _FROZEN_BY)
        chosen = sorted(rng.sample(open_cases, min(max(n, 0), len(open_cases))))
        for no in chosen:
            case = self._cases[no]
            self._enter(case, self._next(case, rng), now, rng)
            self.disputes[no] = case.record()
        self._index = None
        return chosen

    @staticmethod
    def _next(case: _Case, rng: random.Random) -> str:
        if case.status == "调解中":
            return "调解成功" if rng.random() < 0.8 else "调解失败"
        return NEXT[case.status]

    def _enter(self, case: _Case, status: str, at: datetime, rng: random.Random) -> None:
        if status == "受理":
            case.accept = at
        elif status == "调解中":
            case.mediator = rng.choice(case.committee.mediators)
        elif status in ("调解成功", "调解失败"):
            case.mediate = at
        elif status in ("已结案", "已移交"):
            case.close = at
            if status == "已结案":
                case.satisfaction = rng.choices(SATISFACTIONS, weights=(65, 20, 8, 7))[0]
        case.status, case.updated = status, at

    # ---- generation ------------------------------------------------------------

    def _rng(self, *salt: object) -> random.Random:
        return self.city.rng(*self._salt, *salt)

    def _committees(self) -> list[Committee]:
        rng, city = self._rng("committees"), self.city
        district_name = {d.code: d.name for d in city.districts}
        out: list[Committee] = []

        def add(name: str, level: str, division: str, area: str) -> Committee:
            mediators = tuple(city.person(rng.randrange(city.population)).name for _ in range(2))
            updated = self.end - timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86399))
            c = Committee(committee_code(area, 700_000 + len(out)), name, level, division,
                          updated, mediators)
            out.append(c)
            return c

        self._county = {d.code: add(f"{d.name}人民调解委员会", "县", d.code, d.code)
                        for d in city.districts}
        self._street = {s.code: add(f"{district_name[s.district_code]}{s.name}人民调解委员会",
                                    "乡镇街道", s.code, s.district_code) for s in city.streets}
        streets = {s.code: s for s in city.streets}
        self._community: dict[tuple[str, str], Committee] = {}
        for g in city.grids:
            if (g.street_code, g.community_name) not in self._community:
                self._community[(g.street_code, g.community_name)] = add(
                    f"{streets[g.street_code].name}{g.community_name}人民调解委员会", "村社区",
                    g.street_code, g.district_code)
        return out

    def _generate(self) -> None:
        drafts = self._drafts() + self._transfers()
        drafts.sort(key=lambda d: (d.register, d.applicant))
        defects = self._plant(drafts)
        serial: dict[str, int] = {}
        hostile = 0
        for draft, bad in zip(drafts, defects, strict=True):
            day = f"{draft.register:%Y%m%d}"
            serial[day] = serial.get(day, 0) + 1
            case_id = f"ZZ{self.city.code}{day}{serial[day]:04d}"
            case, truth = self._case(case_id, draft, bad, hostile)
            hostile += "hostile_text" in bad
            self._cases[case_id], self.truth[case_id] = case, truth
            self.disputes[case_id] = case.record()

    def _drafts(self) -> list[_Draft]:
        rng, city = self._rng("drafts"), self.city
        per_day = max(6, round(200 * city.scale))
        start = self.end - timedelta(days=self.days)
        # Disputes a grid worker reports as a grid event too: part of the day's disputes.
        shared = incidents.reports_for(city, incidents.ZONGZHI, start, self.end)
        shared_per_day = incidents.per_slot(shared, start, self.days)
        drafts = []
        for d in range(self.days):
            for _ in range(max(0, per_day - shared_per_day[d])):
                t = start + timedelta(days=d, hours=rng.choices(range(24), weights=_HOURS)[0],
                                      seconds=rng.randint(0, 3599))
                grid = rng.choice(city.grids)
                drafts.append(_Draft(
                    register=t, grid=grid,
                    source=rng.choices(("网格排查", "群众来访", "部门移交"), weights=(55, 35, 10))[0],
                    dispute_type=rng.choices(DISPUTE_TYPES, weights=(12, 30, 18, 20, 6, 8, 6))[0],
                    applicant=self._resident(grid, rng)))
        drafts += [_Draft(register=r.at, grid=r.grid, source="网格排查", dispute_type=r.kind,
                          applicant=r.parties[0] if r.parties else r.person, parties=r.parties,
                          incident_id=r.incident_id, point=r.point) for r in shared]
        return drafts

    def _transfers(self) -> list[_Draft]:
        """Disputes the 12345 hotline handed over: about half of its dispute-like orders
        (one at least), registered hours after the call; without hotline data, one with a
        made-up order number."""
        rng, city = self._rng("transfers"), self.city
        candidates: list[_Draft] = []
        hotline = self.hotline
        for no in sorted(hotline.orders if hotline else ()):
            assert hotline is not None
            order, truth = hotline.orders[no], hotline.truth[no]
            if order["categoryCode"] not in HOTLINE_DISPUTES:
                continue
            at = parse_local(order["acceptTime"]) + timedelta(seconds=rng.randint(3600, 20 * 3600))
            if at < self.end:
                candidates.append(_Draft(at, city.grid_by_code[truth.grid_code], TRANSFERRED,
                                         HOTLINE_DISPUTES[order["categoryCode"]],
                                         truth.person_index, no, True,
                                         incident_id=truth.incident_id))
        out = [d for d in candidates if rng.random() < 0.5] or candidates[:1]
        if not out:
            grid = rng.choice(city.grids)
            at = self.end - timedelta(hours=rng.randint(8, 20))
            out.append(_Draft(at, grid, TRANSFERRED, "邻里纠纷", self._resident(grid, rng),
                              f"{city.code}{at:%y%m%d}{900001:06d}"))
        return out

    def _resident(self, grid: Grid, rng: random.Random) -> int:
        """Someone living in the grid (person i lives in grid i % n_grids), mostly."""
        population, n_grids = self.city.population, len(self.city.grids)
        g_index = self.city.grids.index(grid)
        if rng.random() < 0.8 and population > n_grids:
            return g_index + n_grids * rng.randrange(max(1, (population - g_index) // n_grids))
        return rng.randrange(population)

    def _plant(self, drafts: list[_Draft]) -> list[set[str]]:
        """Which disputes carry which defects: a share per kind, with a floor."""
        settled = self.end - timedelta(hours=6)

        def eligible(kind: str, i: int) -> bool:
            if kind in _NOT_ON_TRANSFERS and drafts[i].transfer_no:
                return False
            if kind == "party_id_lower_x" and drafts[i].parties:
                return False  # it swaps the applicant: not for the people of a shared incident
            return kind not in _FROZEN_BY or drafts[i].register <= settled

        return plant_defects(len(drafts), DEFECT_FAMILIES, DEFECT_RATES, eligible,
                             lambda family: self._rng("plant", family))

    def _case(self, case_id: str, draft: _Draft, defects: set[str],
              hostile: int) -> tuple[_Case, DisputeTruth]:
        rng, city = self._rng("case", case_id), self.city
        grid = draft.grid
        applicant = draft.applicant
        if "party_id_lower_x" in defects:
            applicant = self._with_x(applicant)
        respondent = self._resident(grid, rng)
        while respondent == applicant:
            respondent = (respondent + len(city.grids)) % city.population
        if len(draft.parties) > 1 and draft.parties[1] != applicant:
            respondent = draft.parties[1]
        indices = [applicant, respondent]
        if rng.random() < 0.1:
            indices.append(self._resident(grid, rng))
        parties = []
        for k, (index, role) in enumerate(zip(indices, ("申请人", "被申请人", "第三人"),
                                              strict=False)):
            person = city.person(index)
            name, id_no, phone = person.name, person.id_number, person.phone
            if k == 0:
                if "party_id_bad_check_digit" in defects:
                    id_no = citymod.wrong_check_digit(id_no)
                elif "party_id_lower_x" in defects:
                    id_no = id_no.lower()
                elif "party_id_missing" in defects:
                    id_no = ""
                elif "party_id_fullwidth" in defects:
                    id_no = citymod.fullwidth(id_no)
                if "party_phone_variant" in defects:
                    phone = citymod.phone_variant(phone, rng)
                elif "party_phone_fullwidth" in defects:
                    phone = citymod.fullwidth(phone)
                if "party_name_variant" in defects:
                    name = citymod.name_variant(name, rng)
                elif "party_name_typo" in defects:
                    name = citymod.name_typo(name, rng)
            parties.append({"name": name, "idNo": id_no, "phone": phone, "role": role})

        dispute_type = UNKNOWN_DISPUTE_TYPE if "unknown_dispute_type" in defects \
            else draft.dispute_type
        if "hostile_text" in defects:
            summary = citymod.HOSTILE_TEXT[hostile % len(citymod.HOSTILE_TEXT)]
        else:
            summary = rng.choice(SUMMARIES[dispute_type]).format(n=rng.randrange(2, 60) * 500)
            if draft.transfer_no:
                summary = f"12345热线转办，工单号：{draft.transfer_no}。{summary}"
        x, y = city.point_in(grid, rng)
        if draft.point is not None:
            x, y = draft.point
        point: tuple[float | None, float | None] = (
            (None, None) if "coords_missing" in defects
            else (0.0, 0.0) if "coords_zero" in defects else (x, y))
        if draft.source != "网格排查" and rng.random() < 0.3:
            committee = self._county[grid.district_code]
        elif rng.random() < 0.5:
            committee = self._community[(grid.street_code, grid.community_name)]
        else:
            committee = self._street[grid.street_code]
        case = _Case(case_id, draft.source, draft.transfer_no, dispute_type, summary, parties,
                     grid, point, committee, draft.register, utc="times_in_utc" in defects,
                     updated=draft.register)
        for status, at in self._lifecycle(draft.register, defects, rng):
            self._enter(case, status, at, rng)
        if "close_before_accept" in defects and case.accept is not None:
            case.close = case.accept - timedelta(seconds=rng.randint(3600, 2 * 86400))
        truth = DisputeTruth(tuple(indices), grid.code, set(defects), draft.transfer_no,
                             draft.in_hotline, draft.incident_id)
        return case, truth

    def _with_x(self, index: int) -> int:
        """The next resident of the same grid whose ID number ends in X."""
        population, step = self.city.population, len(self.city.grids)
        for i in [*range(index, population, step), *range(population)]:
            if self.city.person(i).id_number.endswith("X"):
                return i
        return index

    def _lifecycle(self, register: datetime, defects: set[str],
                   rng: random.Random) -> list[tuple[str, datetime]]:
        """(status, time) steps after 登记 up to the end of the simulated history."""
        if "unknown_status" in defects:
            return list(zip(("受理", UNKNOWN_STATUS), _squeezed(register, self.end, 2),
                            strict=True))
        if "close_before_accept" in defects:
            return list(zip(("受理", "调解中", "调解成功", "已结案"),
                            _squeezed(register, self.end, 4), strict=True))
        steps: list[tuple[str, datetime]] = []
        at = register
        success = rng.random() < 0.8
        for status, low, high in (("受理", 600, 86400), ("调解中", 3600, 2 * 86400),
                                  ("调解成功" if success else "调解失败", 2 * 3600, 4 * 86400),
                                  ("已结案" if success else "已移交", 3600, 2 * 86400)):
            at = at + timedelta(seconds=rng.randint(low, high))
            if at > self.end:
                break
            steps.append((status, at))
        return steps


def _squeezed(start: datetime, end: datetime, k: int) -> list[datetime]:
    """k increasing times after start, within three hours and not after end."""
    span = min(3 * 3600, int((end - start).total_seconds()))
    return [start + timedelta(seconds=max(1, span * (j + 1) // k)) for j in range(k)]
