"""What the weekly quality report shows, read from the warehouse for one ISO week.

Every query takes the week as a half-open interval [start, end) of the city's local
time (`Week.timezone`: the sources file's `city.timezone` unless given). Run-based
figures (scores, counts, quarantine) belong to the week the run started in; event
volumes to the local day an event was reported; the governance figures come from the
marts (mart.governance_weekly_district), read in the week's time zone. Nothing here
formats or masks: quality.report does both.

The marts count weeks and days in the city's time zone as the warehouse records it
(ops.city_setting, read through mart.city_timezone()); `warehouse.migrate.record_city_timezone` keeps
that equal to the sources file (`hub migrate` calls it), and `marts_in` lets one
session read them in another zone. `marts_in` also sets the instant the marts judge
overdue and response-due events at (mart.as_of()): the report's cut-off by the hub's
clock, not the database server's now().

Platforms are split by what made their events: reports people made (callers, grid
workers, inspectors) and machine alarms (the video network's AI alarms, channel 视频),
which are counted apart so a thousand alarms a day do not dwarf the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from base import clock
from base.settings import load_city
from conform.video import CHANNEL as MACHINE_CHANNEL
from quality.rules import DIMENSIONS, definitions

# The session setting mart.city_timezone() prefers to the recorded time zone.
MART_TIMEZONE_SETTING = "hub.city_timezone"
# The session setting mart.as_of() prefers to now(): when "overdue" and "due" are judged.
MART_AS_OF_SETTING = "hub.as_of"
TOP_RULES = 10
EXAMPLES_PER_RULE = 3
TREND_WEEKS = 8
# Organizations shown at each end of the 考核 table, and among those that fell most.
ASSESSMENT_SHOWN = 10
Row = dict[str, Any]


@dataclass(frozen=True)
class Week:
    """One ISO week in the city's local time, e.g. 2026-W47 = Mon 2026-11-16 .. Sun 2026-11-22.

    `timezone` (an IANA name) defaults to the sources file's `city.timezone`.
    """

    year: int
    number: int
    timezone: str = ""

    def __post_init__(self) -> None:
        if not self.timezone:
            object.__setattr__(self, "timezone", load_city().timezone)
        try:  # an unknown time zone fails here, not in a query
            ZoneInfo(self.timezone)
        except (ValueError, KeyError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def parse(cls, text: str, timezone: str | None = None) -> Week:
        try:
            year, _, num = text.strip().upper().partition("-W")
            date.fromisocalendar(int(year), int(num), 1)
        except ValueError:
            raise ValueError(f"expected an ISO week like 2026-W47, got {text!r}") from None
        return cls(int(year), int(num), timezone or "")

    @classmethod
    def containing(cls, moment: datetime, timezone: str | None = None) -> Week:
        zone = timezone or load_city().timezone
        iso = moment.astimezone(ZoneInfo(zone)).isocalendar()
        return cls(iso.year, iso.week, zone)

    @classmethod
    def last_complete(cls, now: datetime | None = None, timezone: str | None = None) -> Week:
        """The week before the one `now` (default: the current time) falls in."""
        return cls.containing((now or clock.now()) - timedelta(days=7), timezone)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.monday, datetime.min.time(), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.monday + timedelta(days=7), datetime.min.time(), self.zone)

    @property
    def previous(self) -> Week:
        return Week.containing(self.start - timedelta(days=1), self.timezone)

    def back(self, weeks: int) -> Week:
        """The week `weeks` weeks before this one."""
        return Week.containing(self.start - timedelta(days=7 * weeks - 1), self.timezone)


@dataclass
class CitySettings:
    """What the marts judge by, as the warehouse records it (ops.city_setting)."""

    response_limit_urgent_h: float = 2.0
    response_limit_normal_h: float = 24.0
    min_ratings: int = 10


@dataclass
class Trend:
    """The last `TREND_WEEKS` weeks up to the reported one, oldest first, per platform:
    the quality score (1 − failed/evaluated) and the events reported."""

    weeks: list[str]
    scores: dict[str, list[float | None]]
    events: dict[str, list[int]]

    @property
    def platforms(self) -> list[str]:
        return sorted(set(self.scores) | set(self.events))


@dataclass
class Assessment:
    """The 考核 table of the week (mart.assessment_weekly) and the week before."""

    rows: list[Row]
    previous: dict[str, Row]

    @property
    def ranked(self) -> list[Row]:
        return [r for r in self.rows if not r["is_small"]]

    @property
    def small(self) -> list[Row]:
        return [r for r in self.rows if r["is_small"]]

    @property
    def best(self) -> list[Row]:
        return self.ranked[:ASSESSMENT_SHOWN]

    @property
    def worst(self) -> list[Row]:
        """The lowest ranked, worst first; none of them also among the best."""
        rest = self.ranked[len(self.best):]
        return list(reversed(rest[-ASSESSMENT_SHOWN:]))

    def change(self, row: Row) -> float | None:
        """This week's score minus last week's (None: no score in one of the weeks)."""
        before = self.previous.get(row["handling_org"])
        if before is None or before["assessment_score"] is None or row["assessment_score"] is None:
            return None
        return float(row["assessment_score"]) - float(before["assessment_score"])

    @property
    def fallen(self) -> list[Row]:
        """Organizations, not small in either week, whose score fell most since last week."""
        fell = [(d, r) for r in self.ranked
                if (d := self.change(r)) is not None and d < 0
                and not self.previous[r["handling_org"]]["is_small"]]
        return [r for _, r in sorted(fell, key=lambda x: (x[0], x[1]["handling_org"]))][
            :ASSESSMENT_SHOWN]


@dataclass
class ReportData:
    week: Week
    as_of: datetime
    sources: list[str]
    scores: dict[str, dict[str, dict[str, float | int | None]]]
    # Reports people made (every channel but machine alarms), per platform and local day.
    daily_volume: dict[str, dict[date, int]]
    freshness: list[Row]
    reconciliation: list[Row]
    bad_runs: list[Row]
    rejected_files: list[Row]
    top_rules: list[Row]
    unmapped: list[Row]
    unknown_codes: list[Row]
    grids_loaded: bool
    quarantine: list[Row]
    quarantine_open_by_rule: list[Row]
    districts: list[Row]
    # 重复报告率 per top-level category (the district table has it per district).
    repeats_by_category: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Machine alarms (the video network's AI alarms), per platform and local day.
    daily_alarms: dict[str, dict[date, int]] = field(default_factory=dict)
    # The connector of each platform (ops.run), for the names people know them by.
    connectors: dict[str, str] = field(default_factory=dict)
    trend: Trend = field(default_factory=lambda: Trend([], {}, {}))
    assessment: Assessment = field(default_factory=lambda: Assessment([], {}))
    city: CitySettings = field(default_factory=CitySettings)


def _rows(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query.encode(), params)  # fixed queries, values bound as parameters
        return list(cur.fetchall())


def collect(conn: psycopg.Connection, week: Week, now: datetime | None = None) -> ReportData:
    """Everything the report of `week` shows; the marts are read in the week's time zone."""
    now = now or clock.now()
    as_of = min(now, week.end)
    params: dict[str, Any] = {"start": week.start, "end": week.end, "prev_start": week.previous.start,
                              "as_of": as_of, "week": str(week), "tz": week.timezone,
                              "previous_week": str(week.previous)}
    with marts_in(conn, week.timezone, as_of):
        return _collect(conn, week, as_of, params)


def _collect(conn: psycopg.Connection, week: Week, as_of: datetime,
             params: dict[str, Any]) -> ReportData:
    found = _rows(conn, SOURCES, params)
    volume = _daily_volume(conn, params)
    return ReportData(
        week=week,
        as_of=as_of,
        sources=[r["source_system"] for r in found],
        connectors={r["source_system"]: r["connector"] for r in found},
        scores=_scores(conn, params),
        daily_volume=volume[False],
        daily_alarms=volume[True],
        trend=_trend(conn, week, params),
        assessment=_assessment(conn, params),
        city=_city_settings(conn),
        freshness=_rows(conn, FRESHNESS, params),
        reconciliation=_rows(conn, RECONCILIATION, params),
        bad_runs=_rows(conn, BAD_RUNS, params),
        rejected_files=_rows(conn, REJECTED_FILES, params),
        top_rules=_top_rules(conn, params),
        unmapped=_rows(conn, UNMAPPED, params),
        unknown_codes=_rows(conn, UNKNOWN_CODES, params),
        grids_loaded=bool(_rows(conn, "SELECT 1 AS x FROM core.grid WHERE valid_to IS NULL"
                                      " LIMIT 1", params)),
        quarantine=_rows(conn, QUARANTINE, params),
        quarantine_open_by_rule=_rows(conn, QUARANTINE_OPEN_BY_RULE, params),
        districts=_rows(conn, DISTRICTS, params),
        repeats_by_category=_rows(conn, REPEATS_BY_CATEGORY, params),
    )


# Platforms: every source with a run before the week ended, and its connector.
SOURCES = """
SELECT source_system, max(connector) AS connector FROM ops.run WHERE started_at < %(end)s
 GROUP BY 1 ORDER BY 1
"""


def _scores(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """source → dimension → {score, previous, delta, evaluated, failed}; score = 1 − failed/evaluated."""
    rows = _rows(conn, """
        SELECT rr.source_system, rr.dimension, r.started_at >= %(start)s AS this_week,
               sum(rr.evaluated) AS evaluated, sum(rr.failed) AS failed
          FROM quality.rule_result rr JOIN ops.run r USING (run_id)
         WHERE r.started_at >= %(prev_start)s AND r.started_at < %(end)s
         GROUP BY 1, 2, 3""", params)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        cell = out.setdefault(r["source_system"], {}).setdefault(
            r["dimension"], {"score": None, "previous": None, "evaluated": 0, "failed": 0})
        evaluated, failed = int(r["evaluated"]), int(r["failed"])
        score = 1 - failed / evaluated if evaluated else None
        if r["this_week"]:
            cell.update(score=score, evaluated=evaluated, failed=failed)
        else:
            cell["previous"] = score
    for per_dim in out.values():
        for cell in per_dim.values():
            cur, prev = cell["score"], cell["previous"]
            cell["delta"] = cur - prev if cur is not None and prev is not None else None
    return out


def _daily_volume(conn: psycopg.Connection, params: dict[str, Any]
                  ) -> dict[bool, dict[str, dict[date, int]]]:
    """Events per platform and local day of report: {machine alarm?: {source: {day: n}}}."""
    rows = _rows(conn, """
        SELECT source_system, (coalesce(reported_at, accepted_at) AT TIME ZONE %(tz)s)::date AS day,
               channel IS NOT DISTINCT FROM %(machine)s AS machine, count(*) AS events
          FROM core.event
         WHERE valid_to IS NULL
           AND coalesce(reported_at, accepted_at) >= %(start)s
           AND coalesce(reported_at, accepted_at) < %(end)s
         GROUP BY 1, 2, 3""", {**params, "machine": MACHINE_CHANNEL})
    out: dict[bool, dict[str, dict[date, int]]] = {False: {}, True: {}}
    for r in rows:
        out[bool(r["machine"])].setdefault(r["source_system"], {})[r["day"]] = int(r["events"])
    return out


def _trend(conn: psycopg.Connection, week: Week, params: dict[str, Any]) -> Trend:
    """Score and events per platform for the `TREND_WEEKS` weeks ending with `week`."""
    first = week.back(TREND_WEEKS - 1)
    weeks = [str(week.back(n)) for n in range(TREND_WEEKS - 1, -1, -1)]
    p = {**params, "first": first.start}
    scores: dict[str, list[float | None]] = {}
    for r in _rows(conn, """
            SELECT rr.source_system, to_char(r.started_at AT TIME ZONE %(tz)s, 'IYYY-"W"IW') AS week,
                   sum(rr.evaluated) AS evaluated, sum(rr.failed) AS failed
              FROM quality.rule_result rr JOIN ops.run r USING (run_id)
             WHERE r.started_at >= %(first)s AND r.started_at < %(end)s
             GROUP BY 1, 2""", p):
        if r["week"] in weeks and r["evaluated"]:
            row = scores.setdefault(r["source_system"], [None] * len(weeks))
            row[weeks.index(r["week"])] = 1 - int(r["failed"]) / int(r["evaluated"])
    events: dict[str, list[int]] = {}
    for r in _rows(conn, """
            SELECT source_system,
                   to_char(coalesce(reported_at, accepted_at) AT TIME ZONE %(tz)s, 'IYYY-"W"IW') AS week,
                   count(*) AS events
              FROM core.event
             WHERE valid_to IS NULL
               AND coalesce(reported_at, accepted_at) >= %(first)s
               AND coalesce(reported_at, accepted_at) < %(end)s
             GROUP BY 1, 2""", p):
        if r["week"] in weeks:
            events.setdefault(r["source_system"], [0] * len(weeks))[weeks.index(r["week"])] = int(
                r["events"])
    return Trend(weeks, scores, events)


def _assessment(conn: psycopg.Connection, params: dict[str, Any]) -> Assessment:
    rows = _rows(conn, """
        SELECT * FROM mart.assessment_weekly WHERE report_week = %(week)s
         ORDER BY rank_in_week, accepted DESC, handling_org""", params)
    before = _rows(conn, """
        SELECT * FROM mart.assessment_weekly WHERE report_week = %(previous_week)s""", params)
    return Assessment(rows, {r["handling_org"]: r for r in before})


def _city_settings(conn: psycopg.Connection) -> CitySettings:
    row = conn.execute("SELECT response_limit_urgent_h, response_limit_normal_h, min_ratings"
                       " FROM ops.city_setting").fetchone()
    if row is None:
        return CitySettings()
    return CitySettings(float(row[0]), float(row[1]), int(row[2]))


FRESHNESS = """
WITH src AS (SELECT DISTINCT source_system FROM ops.run WHERE started_at < %(end)s)
SELECT src.source_system,
       ok.finished_at AS last_success_at,
       last.started_at AS last_run_at,
       last.outcome AS last_run_outcome,
       ev.latest_update AS latest_source_update,
       extract(epoch FROM %(as_of)s - ok.finished_at) / 3600.0 AS run_lag_h,
       extract(epoch FROM %(as_of)s - ev.latest_update) / 3600.0 AS data_lag_h
  FROM src
  LEFT JOIN LATERAL (SELECT finished_at FROM ops.run r WHERE r.source_system = src.source_system
                       AND r.outcome = 'succeeded' AND r.finished_at < %(end)s
                     ORDER BY finished_at DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT started_at, outcome FROM ops.run r WHERE r.source_system = src.source_system
                       AND r.started_at < %(end)s ORDER BY started_at DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT max(source_updated_at) AS latest_update FROM core.event e
                      WHERE e.source_system = src.source_system AND e.valid_to IS NULL
                        AND e.source_updated_at < %(end)s) ev ON true
 ORDER BY 1
"""

RECONCILIATION = """
SELECT source_system,
       count(*) AS runs,
       count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE outcome IN ('failed', 'abandoned')) AS failed,
       sum(extracted) AS extracted, sum(loaded) AS loaded, sum(quarantined) AS quarantined,
       sum(extracted) = sum(loaded) + sum(quarantined) AS reconciles
  FROM ops.run
 WHERE started_at >= %(start)s AND started_at < %(end)s
 GROUP BY 1 ORDER BY 1
"""

BAD_RUNS = """
SELECT run_id, source_system, trigger, started_at, finished_at, outcome, extracted, loaded,
       quarantined, error
  FROM ops.run
 WHERE started_at >= %(start)s AND started_at < %(end)s AND outcome IN ('failed', 'abandoned')
 ORDER BY started_at
"""


# Files rejected as a whole and met during the week, unless accepted since.
REJECTED_FILES = """
SELECT f.source_system, f.stream, f.file_name, f.kind, f.reason, f.attempts, f.last_seen_at
  FROM ops.rejected_file f
 WHERE f.last_seen_at >= %(start)s AND f.first_seen_at < %(end)s
   AND NOT EXISTS (SELECT 1 FROM ops.snapshot_acceptance a
                    WHERE a.source_system = f.source_system AND a.stream = f.stream
                      AND a.snapshot_id = f.file_name || '#' || f.sha256)
 ORDER BY f.last_seen_at
"""


def _top_rules(conn: psycopg.Connection, params: dict[str, Any]) -> list[Row]:
    rules = _rows(conn, """
        SELECT rr.source_system, rr.entity, rr.rule, rr.severity, rr.dimension,
               sum(rr.evaluated) AS evaluated, sum(rr.failed) AS failed
          FROM quality.rule_result rr JOIN ops.run r USING (run_id)
         WHERE r.started_at >= %(start)s AND r.started_at < %(end)s
         GROUP BY 1, 2, 3, 4, 5 HAVING sum(rr.failed) > 0
         ORDER BY sum(rr.failed) DESC, rr.rule LIMIT %(top)s""", {**params, "top": TOP_RULES})
    defs = definitions()
    for rule in rules:
        d = defs.get(rule["rule"].split(":", 1)[0])
        rule["description"] = d.description_zh if d else ""
        p = {**params, "source": rule["source_system"], "entity": rule["entity"],
             "rule": rule["rule"], "n": EXAMPLES_PER_RULE}
        if rule["severity"] == "blocking":
            rule["examples"] = _rows(conn, """
                SELECT q.source_id, mart.record_ref(q.source_id) AS ref, q.reason, q.payload
                  FROM quality.quarantine q JOIN ops.run r USING (run_id)
                 WHERE r.started_at >= %(start)s AND r.started_at < %(end)s
                   AND q.source_system = %(source)s AND q.entity = %(entity)s
                   AND (q.rule = %(rule)s OR q.failed_rules @> jsonb_build_array(
                        jsonb_build_object('rule', %(rule)s::text)))
                 ORDER BY q.quarantine_id LIMIT %(n)s""", p)
        else:
            rule["examples"] = _rows(conn, """
                SELECT f.source_id, mart.record_ref(f.source_id) AS ref, f.reason,
                       NULL::jsonb AS payload
                  FROM quality.finding f JOIN ops.run r USING (run_id)
                 WHERE r.started_at >= %(start)s AND r.started_at < %(end)s
                   AND f.source_system = %(source)s AND f.entity = %(entity)s AND f.rule = %(rule)s
                 ORDER BY f.found_at, f.source_id LIMIT %(n)s""", p)
    return rules


# What still needs a mapping: current rows, whenever loaded; "new" = loaded this week.
UNMAPPED = """
SELECT source_system, '分类' AS what, source_category AS source_value, count(*) AS events,
       count(*) FILTER (WHERE valid_from >= %(start)s AND valid_from < %(end)s) AS new_this_week
  FROM core.event WHERE valid_to IS NULL AND category_code = 'unmapped'
 GROUP BY 1, 2, 3
UNION ALL
SELECT source_system, '状态', source_status, count(*),
       count(*) FILTER (WHERE valid_from >= %(start)s AND valid_from < %(end)s)
  FROM core.event WHERE valid_to IS NULL AND status = 'unmapped'
 GROUP BY 1, 2, 3
 ORDER BY events DESC, source_system, what, source_value
"""

UNKNOWN_CODES = """
WITH div AS (SELECT code, level, retired_on, replaced_by FROM core.division WHERE valid_to IS NULL),
grid AS (SELECT DISTINCT grid_code FROM core.grid WHERE valid_to IS NULL),
codes AS (
    SELECT e.source_system, '区县' AS kind, e.division_code AS code, d.retired_on, d.replaced_by,
           d.code IS NULL OR d.level <> 'county' AS unknown
      FROM core.event e LEFT JOIN div d ON d.code = e.division_code
     WHERE e.valid_to IS NULL AND e.division_code IS NOT NULL
    UNION ALL
    SELECT e.source_system, '街道', e.street_code, d.retired_on, d.replaced_by,
           d.code IS NULL OR d.level <> 'street'
      FROM core.event e LEFT JOIN div d ON d.code = e.street_code
     WHERE e.valid_to IS NULL AND e.street_code IS NOT NULL
    UNION ALL
    SELECT e.source_system, '网格', e.grid_code, NULL, NULL, g.grid_code IS NULL
      FROM core.event e LEFT JOIN grid g ON g.grid_code = e.grid_code
     WHERE e.valid_to IS NULL AND e.grid_code IS NOT NULL AND EXISTS (SELECT 1 FROM grid)
)
SELECT source_system, kind, code, CASE WHEN unknown THEN '未知' ELSE '已撤销' END AS state,
       max(replaced_by) AS replaced_by, count(*) AS events
  FROM codes WHERE unknown OR retired_on IS NOT NULL
 GROUP BY 1, 2, 3, 4 ORDER BY events DESC, 1, 2, 3 LIMIT 30
"""

QUARANTINE = """
WITH src AS (SELECT DISTINCT source_system FROM ops.run WHERE started_at < %(end)s)
SELECT src.source_system,
       count(q.*) FILTER (WHERE q.quarantined_at >= %(start)s AND q.quarantined_at < %(end)s) AS new,
       count(q.*) FILTER (WHERE q.state = 'replayed' AND q.resolved_at >= %(start)s
                          AND q.resolved_at < %(end)s) AS replayed,
       count(q.*) FILTER (WHERE q.state = 'superseded' AND q.resolved_at >= %(start)s
                          AND q.resolved_at < %(end)s) AS superseded,
       count(q.*) FILTER (WHERE q.quarantined_at < %(end)s
                          AND (q.state = 'open' OR q.resolved_at >= %(end)s)) AS open_at_end,
       count(q.*) FILTER (WHERE q.state = 'open') AS open_now
  FROM src LEFT JOIN quality.quarantine q ON q.source_system = src.source_system
 GROUP BY 1 ORDER BY 1
"""

QUARANTINE_OPEN_BY_RULE = """
SELECT source_system, entity, rule, count(*) AS open, min(quarantined_at) AS oldest
  FROM quality.quarantine
 WHERE quarantined_at < %(end)s AND (state = 'open' OR resolved_at >= %(end)s)
 GROUP BY 1, 2, 3 ORDER BY open DESC, 1, 2, 3 LIMIT 15
"""

DISTRICTS = """
SELECT * FROM mart.governance_weekly_district WHERE report_week = %(week)s
 ORDER BY accepted DESC, division_code
"""

# Counts add up across mart.governance_weekly's rows (its rates do not): summed per
# top-level category, the rate taken of the sums.
REPEATS_BY_CATEGORY = """
SELECT category_l1_code, category_l1_name, sum(events) AS events,
       sum(repeat_events) AS repeat_events,
       round(sum(repeat_events)::numeric / nullif(sum(events), 0), 4) AS repeat_rate
  FROM mart.governance_weekly WHERE report_week = %(week)s
 GROUP BY 1, 2 ORDER BY repeat_events DESC, events DESC, 1
"""


# ---------------------------------------------------------- the marts' time zone


def recorded_city_timezone(conn: psycopg.Connection) -> str:
    """The time zone the marts count in, as the warehouse records it (ops.city_setting)."""
    row = conn.execute("SELECT timezone FROM ops.city_setting").fetchone()
    if row is None:
        raise RuntimeError("the warehouse records no city time zone (ops.city_setting is "
                           "empty): run `hub migrate`")
    return str(row[0])


@contextmanager
def marts_in(conn: psycopg.Connection, timezone: str,
             as_of: datetime | None = None) -> Iterator[None]:
    """Read the marts on `conn` in `timezone` inside the block, whatever the warehouse
    records, and (with `as_of`) judge overdue and response-due events at that instant
    instead of the server's now(); the session's settings are restored after."""
    wanted = {MART_TIMEZONE_SETTING: timezone}
    if as_of is not None:
        wanted[MART_AS_OF_SETTING] = as_of.isoformat()
    before = {name: conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
              for name in wanted}
    for name, value in wanted.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    try:
        yield
    finally:
        # In a failed transaction the rollback undoes the settings by itself.
        if conn.info.transaction_status != TransactionStatus.INERROR:
            for name, row in before.items():
                conn.execute("SELECT set_config(%s, %s, false)",
                             (name, (row[0] if row else None) or ""))


__all__ = ["DIMENSIONS", "Assessment", "CitySettings", "ReportData", "Trend", "Week", "collect",
           "marts_in", "recorded_city_timezone"]
