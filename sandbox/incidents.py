"""Incidents of the City that reach more than one platform: the shared ground truth of
cross-channel event linking.

A pothole is reported by a grid worker on patrol and, an hour later, by a resident
calling 12345; a camera's AI flags a street vendor and a 数字城管 operator raises a case
from the video minutes later; a quarrel between neighbours is noted by the grid worker
and registered for mediation on the 综治 platform. Each platform describes the incident
in its own words and categories, at its own time and a few tens of metres off, naming the
same place (`place`) and the same matter (`matter`).

`shared_incidents(city, day)` is a pure function of (city, day): every platform simulating
that day sees the same incidents, whatever its own window. A platform takes the reports
meant for it (`reports_for(city, channel, start, end)`) and turns them into its own
records, inside its own generator and within its daily volume: the shared reports
replace that many of its own random ones, so volumes still follow the scale.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sandbox.city import City, Grid

HOTLINE, GRID, CITYMGMT, VIDEO, ZONGZHI = "hotline12345", "gridmgmt", "citymgmt", "video", "zongzhi"
CHANNELS = (HOTLINE, GRID, CITYMGMT, VIDEO, ZONGZHI)

# About this many incidents a day reach two or three platforms at scale 1 (against
# ~1,000 12345 calls, ~2,000 grid events and ~500 数字城管 cases a day); at least
# MIN_PER_DAY, so that a small city of a few days shows every pattern.
SHARED_PER_DAY_AT_SCALE_1 = 120
MIN_PER_DAY = 3


@dataclass(frozen=True)
class Theme:
    """What an incident is, in each platform's vocabulary (empty: that platform does not
    see such incidents)."""

    name: str
    hotline: tuple[str, ...] = ()  # 12345 category codes
    gridmgmt: tuple[str, ...] = ()  # grid event types
    citymgmt: tuple[str, ...] = ()  # 数字城管 class keys, class_type/big_class/small_class
    video: tuple[str, ...] = ()  # AI alarm types
    zongzhi: tuple[str, ...] = ()  # dispute types
    grid_text: str = ""  # a grid worker's description; {x}: the address
    parties: int = 0  # people involved (disputes)

    def vocabulary(self, channel: str) -> tuple[str, ...]:
        return {HOTLINE: self.hotline, GRID: self.gridmgmt, CITYMGMT: self.citymgmt,
                VIDEO: self.video, ZONGZHI: self.zongzhi}[channel]


THEMES: tuple[Theme, ...] = (
    Theme("pothole", hotline=("110301",), gridmgmt=("设施损坏", "安全隐患"),
          citymgmt=("事件/04/01",), grid_text="{x}路面坑洼破损，车辆通行困难"),
    Theme("streetlight", hotline=("110303",), gridmgmt=("设施损坏",),
          citymgmt=("部件/01/18",), grid_text="{x}路灯损坏不亮，夜间行人出行不便"),
    Theme("manhole", hotline=("110302",), gridmgmt=("安全隐患", "设施损坏"),
          citymgmt=("部件/01/01",), grid_text="{x}井盖破损松动，存在安全隐患"),
    Theme("garbage", hotline=("110102", "110104"), gridmgmt=("环境卫生",),
          citymgmt=("事件/01/02",), video=("暴露垃圾",), grid_text="{x}附近垃圾堆积未清运"),
    Theme("vending", hotline=("110101", "110502"), gridmgmt=("占道经营",),
          citymgmt=("事件/05/03", "事件/05/01"), video=("占道经营", "流动摊贩"),
          grid_text="{x}门前流动摊贩占道经营"),
    Theme("waterlogging", hotline=("110305", "110304"), gridmgmt=("安全隐患",),
          citymgmt=("事件/04/05",), video=("道路积水",), grid_text="{x}路面积水严重，行人无法通行"),
    Theme("parking", hotline=("110501",), citymgmt=("事件/05/05",), video=("违章停车",)),
    Theme("materials", hotline=("110104",), gridmgmt=("环境卫生", "占道经营"),
          citymgmt=("事件/01/08",), video=("乱堆物料",), grid_text="{x}路边乱堆建筑材料"),
    Theme("fire_passage", hotline=("170201",), gridmgmt=("消防隐患",),
          grid_text="{x}楼道内电动车和杂物堵塞消防通道"),
    Theme("neighbour_dispute", hotline=("170101",), gridmgmt=("邻里纠纷", "矛盾纠纷"),
          zongzhi=("邻里纠纷",), parties=2),
)

# Which platforms report an incident together, with weights. The order is the order of
# the reports where it is fixed: an alarm comes before the case raised from the video;
# the others are shuffled per incident.
PATTERNS: tuple[tuple[tuple[str, ...], int], ...] = (
    ((GRID, HOTLINE), 30),
    ((VIDEO, CITYMGMT), 30),
    ((VIDEO, CITYMGMT, HOTLINE), 10),
    ((GRID, HOTLINE, CITYMGMT), 10),
    ((GRID, ZONGZHI), 10),
    ((GRID, HOTLINE, ZONGZHI), 5),
)


@dataclass(frozen=True)
class Report:
    """One platform's report of a shared incident."""

    incident_id: str
    channel: str
    at: datetime  # naive local time
    grid: Grid  # where the incident is
    point: tuple[float, float]  # WGS84, tens of metres from the incident
    kind: str  # category / event type / class key / alarm type / dispute type, per platform
    theme: Theme
    person: int  # who reports it (12345 caller, dispute applicant): a City.person index
    parties: tuple[int, ...] = ()  # the people involved (disputes), applicant first
    channels: tuple[str, ...] = ()  # every platform the incident reaches, first reports first


@dataclass(frozen=True)
class SharedIncident:
    incident_id: str  # X<yymmdd>-<nnnn>
    theme: Theme
    at: datetime
    grid: Grid
    point: tuple[float, float]
    channels: tuple[str, ...]  # in the order of their first reports
    reports: tuple[Report, ...]  # a camera may alarm more than once about one incident
    parties: tuple[int, ...] = ()

    def reports_of(self, channel: str) -> tuple[Report, ...]:
        return tuple(r for r in self.reports if r.channel == channel)


def per_day(city: City) -> int:
    return max(MIN_PER_DAY, round(SHARED_PER_DAY_AT_SCALE_1 * city.scale))


_CACHE: dict[tuple[str, int, float, date], tuple[SharedIncident, ...]] = {}


def shared_incidents(city: City, day: date) -> tuple[SharedIncident, ...]:
    """The day's incidents that reach more than one platform (a pure function)."""
    key = (city.code, city.seed, city.scale, day)
    if key not in _CACHE:
        if len(_CACHE) > 1024:
            _CACHE.clear()
        _CACHE[key] = _generate(city, day)
    return _CACHE[key]


def _generate(city: City, day: date) -> tuple[SharedIncident, ...]:
    rng = city.rng("shared-incidents", day.isoformat())
    out = []
    for k in range(per_day(city)):
        if k < MIN_PER_DAY:  # the day's floor goes round the patterns, day after day
            channels = PATTERNS[(day.toordinal() * MIN_PER_DAY + k) % len(PATTERNS)][0]
        else:
            channels = rng.choices([p for p, _ in PATTERNS], weights=[w for _, w in PATTERNS])[0]
        theme = rng.choice([t for t in THEMES if all(t.vocabulary(c) for c in channels)])
        g_index = rng.randrange(len(city.grids))
        grid = city.grids[g_index]
        point = city.point_in(grid, rng)
        at = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=rng.randint(7 * 3600, 19 * 3600))
        people = _residents(city, g_index, rng, max(1, theme.parties))
        parties = people[:theme.parties]
        fixed = [c for c in (VIDEO, CITYMGMT) if c in channels and VIDEO in channels]
        rest = [c for c in channels if c not in fixed]
        rng.shuffle(rest)
        ordered = tuple(fixed + rest)
        incident_id = f"X{day:%y%m%d}-{k:04d}"
        reports: list[Report] = []
        t = at
        for i, channel in enumerate(ordered):
            if channel == VIDEO:
                times = [at + timedelta(seconds=rng.randint(0, 120))]
                for _ in range(rng.choice((0, 0, 1, 2))):  # the AI alarms again
                    times.append(times[-1] + timedelta(seconds=rng.randint(180, 1200)))
            elif channel == CITYMGMT and VIDEO in ordered:  # a case raised from the video
                times = [t + timedelta(seconds=rng.randint(600, 5400))]
            else:  # minutes to hours after the report before
                times = [t + timedelta(seconds=rng.randint(300, 4 * 3600) if i
                                       else rng.randint(0, 1800))]
            t = times[-1]
            kind = rng.choice(theme.vocabulary(channel))
            for when in times:
                reports.append(Report(
                    incident_id, channel, when, grid,
                    moved(point, rng.uniform(5, 60), rng.uniform(0, 2 * math.pi)),
                    kind, theme, people[0], parties, ordered))
        out.append(SharedIncident(incident_id, theme, at, grid, point, ordered, tuple(reports),
                                  parties))
    return tuple(out)


def _residents(city: City, g_index: int, rng: random.Random, n: int) -> tuple[int, ...]:
    """n different people living in the grid (person i lives in grid i % n_grids)."""
    population, n_grids = city.population, len(city.grids)
    rows = max(1, (population - g_index) // n_grids)
    picked: list[int] = []
    while len(picked) < n:
        index = (g_index + n_grids * rng.randrange(rows)) % population
        if index not in picked or rows < n:
            picked.append(index)
    return tuple(picked)


def place(city: City, incident_id: str, grid: Grid) -> str:
    """Where an incident is, as the people reporting it name it (an address in its grid):
    the same in every report of it, whatever the platform (a pure function of the id)."""
    return city.address(grid, city.rng("incident-place", incident_id))


def matter(city: City, incident_id: str, options: Sequence[str]) -> str:
    """What the incident is about, in one platform's words: the same in every report of it.
    The platforms' lists of one kind of incident name the same matters in the same order
    (a neighbours' quarrel over a leak, the stairwell, a dog), so they agree."""
    return options[city.rng("incident-matter", incident_id).randrange(len(options))]


def reports_for(city: City, channel: str, start: datetime, end: datetime) -> list[Report]:
    """The reports of shared incidents a platform receives in [start, end), by time."""
    day = start.date() - timedelta(days=1)  # a late report of the day before
    out: list[Report] = []
    while day <= end.date():
        for incident in shared_incidents(city, day):
            out += [r for r in incident.reports_of(channel) if start <= r.at < end]
        day += timedelta(days=1)
    return sorted(out, key=lambda r: (r.at, r.incident_id))


def per_slot(reports: list[Report], start: datetime, n_slots: int) -> list[int]:
    """How many of the reports fall into each 24-hour slot from start."""
    counts = [0] * n_slots
    for r in reports:
        slot = int((r.at - start).total_seconds() // 86400)
        if 0 <= slot < n_slots:
            counts[slot] += 1
    return counts


def moved(point: tuple[float, float], metres: float, bearing: float) -> tuple[float, float]:
    lon, lat = point
    d_lat = metres * math.cos(bearing) / 111_320.0
    d_lon = metres * math.sin(bearing) / (111_320.0 * math.cos(math.radians(lat)))
    return (round(lon + d_lon, 6), round(lat + d_lat, 6))
