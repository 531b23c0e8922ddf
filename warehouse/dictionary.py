"""The data dictionary (数据字典): what a role may read, built from the model and the catalog.

`hub docs` writes it as Markdown and as one self-contained HTML page. It lists every
hub schema, and every table and view the role may SELECT (by default `hub_reader`,
which every department login is a member of; `hub_steward` for the quality review):
each relation's grain (the model's for the reader views over a core table, its
comment otherwise), and each column the role may read with its type, its meaning
(the column's comment, migration 0009), whether it is masked and how, and the code
standards it follows. Then the hub taxonomy and statuses, the governance figures'
definitions and one example query per mart view.

Nothing here lists columns: they come from the catalog, so the dictionary cannot
drift from the warehouse. The output is sorted and carries no time, so a copy
generated from a freshly migrated warehouse (docs/data-dictionary.md) can be
compared with a new one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from base.pii import Pii
from schemas.model import ENTITIES, Entity
from warehouse.db import Role

# The hub's schemas, in the order a reader wants them.
SCHEMAS: tuple[str, ...] = ("mart", "quality", "ops", "core", "raw")

ROLE_NOTES: dict[Role, str] = {
    Role.READER: (
        "hub_reader: the base of every department login (`hub access grant`) and of `hub sql`."
        " It reads the mart schema: views of current rows, personal data masked, rows of the"
        " login's jurisdiction (row-level security); `hub_reader` itself is granted the whole"
        " city. Of ops, only the three small tables the hub's commands check the warehouse"
        " with."),
    Role.STEWARD: (
        "hub_steward: the quality review (`hub status`, `hub quarantine`). Everything hub_reader"
        " reads, plus runs, cursors, findings, rule results and the quarantine with its payload"
        " masked; the whole city."),
    Role.PII_READER: (
        "hub_pii_reader: what hub_reader reads, plus clear names and addresses through the"
        " audited functions ops.person_clear() and ops.quarantine_payload_clear() (not tables:"
        " not listed here)."),
    Role.LOADER: "hub_loader: the pipeline; writes core, raw, quality and its ops bookkeeping.",
    Role.OWNER: "hub_owner: owns every schema and object; runs migrations and `hub access`.",
}

# How each masking function of migration 0008 masks (a view column computed by one).
MASK_FUNCTIONS: dict[str, str] = {
    "mask_name": "surname kept, one * per other character (张三丰 → 张**)",
    "mask_address": "kept up to the street (街道/镇/乡), else district or city, then ***",
    "mask_text": "ID and phone numbers in the text masked",
    "record_ref": "keys derived from a keyed hash shown as a short reference",
}
# Columns stored masked by the pipeline (the model's personal-data fields).
PII_MASKS: dict[Pii, str] = {
    Pii.ID_NUMBER: "region code and last 4 kept (211103********123X)",
    Pii.PHONE: "first 3 (landline 4) and last 4 kept (138****8000)",
}
MASKED_ON_LOAD = "masked when loaded"
MASKED_PER_COMMENT = "personal data in it masked (see meaning)"

# Code standards named in the comments, as the dictionary flags them.
STANDARDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), label) for pattern, label in (
        (r"GB/T 2260", "GB/T 2260"),
        (r"九位统计用区划代码|9-digit street", "NBS 9-digit street code"),
        (r"GB 11643", "GB 11643"),
        (r"GB 32100", "GB 32100"),
        (r"GB/T 28181", "GB/T 28181"),
        (r"GB/T 30428\.2", "GB/T 30428.2"),
        (r"GB/T 47678", "GB/T 47678"),
        (r"ISO 8601", "ISO 8601 week"),
        (r"中心事件分类|hub taxonomy", "hub taxonomy"),
        (r"中心事件状态|hub (?:event )?status", "hub statuses"),
        (r"WGS84/CGCS2000", "WGS84/CGCS2000"),
    ))


@dataclass(frozen=True)
class Figure:
    """A governance figure: its name, column and formula, as 0004/0007/0012 compute it."""

    name_zh: str
    column: str
    formula_zh: str
    formula_en: str


FIGURES: tuple[Figure, ...] = (
    Figure("办结率", "closure_rate", "办结件数 ÷ 受理件数",
           "closed / accepted (a share 0–1)"),
    Figure("按期办结率", "on_time_rate", "按期办结件数 ÷ 办结件数",
           "closed_on_time / closed (a share 0–1; a closed event without a deadline is not on time)"),
    Figure("满意率", "satisfaction_rate", "（满意 + 基本满意）÷ 已评价件数（满意、基本满意、不满意）",
           "satisfied / evaluated (a share 0–1)"),
    Figure("响应时长", "response_h_median, response_h_p90", "派遣时间 − 受理时间（小时；中位数、P90）",
           "dispatched_at − accepted_at in hours (median, 90th percentile)"),
    Figure("处置时长", "handling_h_median, handling_h_p90", "办结时间 − 派遣时间（小时；中位数、P90）",
           "resolved_at − dispatched_at in hours (median, 90th percentile)"),
    Figure("重复报告率", "repeat_rate", "重复报告件数 ÷ 事件数（所在事件簇多于一条报告的为重复报告）",
           "repeat_events / events (a share 0–1; repeat = its cluster_key is shared by another"
           " current event)"),
    Figure("响应率", "response_rate", "按时响应件数 ÷ 应响应件数（首次联系，无则派遣，在响应时限内；"
           "时限按紧急程度，见 ops.city_setting）",
           "responded_on_time / response_due (a share 0–1; first contact, else dispatch, within"
           " the response limit of the event's urgency: ops.city_setting)"),
    Figure("解决率", "solution_rate", "已解决件数 ÷ 已回访件数",
           "solved / return_called (a share 0–1)"),
    Figure("超期未办结", "overdue_open", "已受理、未撤销、已过办理时限且未办结的件数（截至 mart.as_of()）",
           "count of accepted events, not cancelled, past their deadline and not finished as of"
           " mart.as_of()"),
)

# What the figures count, per event (mart.event_current's flags).
TERMS: tuple[tuple[str, str, str], ...] = (
    ("统计周 report_week", "受理时间（无则上报时间）所在的 ISO 周，按城市时区；每周是当周受理事件的队列",
     "ISO week of accepted_at, else reported_at, in the city's time zone (mart.city_timezone()):"
     " each week is the cohort of events accepted in it, so a recent week's 办结率 still rises"),
    ("受理 is_accepted", "有受理时间 accepted_at（各平台的受理时间见 mart.event_current.accepted_at）",
     "accepted_at present (what acceptance is per platform: mart.event_current.accepted_at)"),
    ("办结 is_closed", "已受理，且有办结时间 resolved_at 或结案时间 closed_at（不看状态）",
     "accepted, and resolved_at or closed_at present (the status is not used)"),
    ("按期办结 is_closed_on_time", "已办结，且办结时间（resolved_at，无则 closed_at）不晚于办理时限 deadline_at",
     "closed, and resolved_at (else closed_at) on or before deadline_at; no deadline = not on time"),
    ("已评价 is_evaluated", "满意度为 满意、基本满意 或 不满意", "satisfaction is 满意, 基本满意 or 不满意"),
    ("满意 is_satisfied", "满意度为 满意 或 基本满意", "satisfaction is 满意 or 基本满意"),
    ("重复报告 is_repeat", "所在事件簇（cluster_key，跨平台）多于一条当前报告",
     "the event's cluster_key is shared by more than one current event, across platforms"),
    ("应响应 is_response_due", "已受理，且截至统计时刻（mart.as_of()，默认当前时间）已响应或已过响应时限",
     "accepted, and responded or past its response limit as of mart.as_of() (default now)"),
    ("按时响应 is_responded_on_time", "首次联系时间（无则派遣时间）不晚于 受理时间 + 响应时限",
     "first_contact_at (else dispatched_at) on or before accepted_at + the response limit"),
    ("已回访 is_return_called", "有回访结果 is_solved（已解决或未解决）",
     "the return call's verdict is_solved is known"),
    ("超期未办结 is_overdue_open", "已受理、未撤销，截至统计时刻已过办理时限且未办结",
     "accepted, not cancelled, past deadline_at and not finished as of mart.as_of()"),
)


@dataclass(frozen=True)
class Example:
    title: str
    sql: str


# One runnable example per mart view (tests run each as hub_reader), and a few for the
# steward's tables (run as hub_steward).
EXAMPLES: dict[str, Example] = {
    "mart.assessment_weekly": Example(
        "某周承办单位排名（样本少的不排）/ one week's handling organizations, ranked",
        "select rank_in_week, handling_org, accepted, response_rate, on_time_rate,\n"
        "       solution_rate, satisfaction_rate, overdue_open, assessment_score\n"
        "from mart.assessment_weekly where report_week = '2026-W47' and not is_small\n"
        "order by rank_in_week limit 20;"),
    "mart.division": Example(
        "盘锦市的区县（现行代码）/ the counties of 盘锦市, current codes",
        "select code, name from mart.division\n"
        "where parent_code = '2111' and level = 'county' and retired_on is null order by code;"),
    "mart.event": Example(
        "未办结事件按承办单位和状态 / open events by handling organization and status",
        "select handling_org, status, count(*) as events from mart.event\n"
        "where status not in ('resolved', 'closed', 'cancelled')\n"
        "group by 1, 2 order by 3 desc limit 20;"),
    "mart.event_category": Example(
        "分类树：末级分类及其一级分类 / the taxonomy: each category with its level 1",
        "select c.code, c.name, coalesce(p.name, c.name) as level_1\n"
        "from mart.event_category c left join mart.event_category p on p.code = c.parent_code\n"
        "order by c.code;"),
    "mart.event_current": Example(
        "近四周按一级分类的处置时长 P90 / handling hours P90 per level-1 category, last four weeks",
        "select report_week, category_l1_name,\n"
        "       percentile_cont(0.9) within group (order by handling_h) as handling_h_p90\n"
        "from mart.event_current where week_start >= current_date - 28\n"
        "group by 1, 2 order by 1, 3 desc;"),
    "mart.event_status": Example(
        "各状态的当前事件数 / current events per hub status",
        "select s.sort_order, s.status, s.name_zh, count(e.source_id) as events\n"
        "from mart.event_status s left join mart.event e on e.status = s.status\n"
        "group by 1, 2, 3 order by 1;"),
    "mart.governance_weekly": Example(
        "某周各承办单位按分类的考核 / one week per handling organization and category",
        "select district_name, handling_org, category_l1_name, source_system,\n"
        "       accepted, closure_rate, on_time_rate, satisfaction_rate\n"
        "from mart.governance_weekly where report_week = '2026-W47'\n"
        "order by accepted desc limit 20;"),
    "mart.governance_weekly_district": Example(
        "各区县某周考核 / one week's figures per district",
        "select district_name, accepted, closure_rate, on_time_rate, satisfaction_rate,\n"
        "       response_h_median, handling_h_p90, repeat_rate\n"
        "from mart.governance_weekly_district where report_week = '2026-W47'\n"
        "order by closure_rate;"),
    "mart.grid": Example(
        "网格清单与面积 / grids with their area",
        "select grid_code, grid_name, grid_type, community_name,\n"
        "       round((area_m2 / 1e6)::numeric, 2) as area_km2, worker_name_masked\n"
        "from mart.grid order by grid_code limit 20;"),
    "mart.house": Example(
        "各网格按用途的房屋数 / houses per grid and use",
        "select grid_code, usage, count(*) as houses from mart.house\n"
        "group by 1, 2 order by 1, 2;"),
    "mart.organization": Example(
        "辖区内企业 / enterprises of the jurisdiction",
        "select org_name, uscc, legal_rep_masked, phone_masked, address from mart.organization\n"
        "where org_type = 'enterprise' order by org_name limit 20;"),
    "mart.person": Example(
        "各街道按人口类型的居民数 / residents per street and population type",
        "select d.name as street, p.population_type, count(*) as people\n"
        "from mart.person p left join mart.division d on d.code = p.street_code\n"
        "where p.role = 'resident' group by 1, 2 order by 1, 2;"),
    "mart.person_golden": Example(
        "跨平台的人员及其记录 / people known to several platforms, with their records",
        "select g.person_key, g.name_masked, g.birth_year, g.source_systems, g.members,\n"
        "       p.source_system, p.role, p.phone_masked\n"
        "from mart.person_golden g join mart.person p using (person_key)\n"
        "where g.members > 1 order by g.person_key limit 20;"),
    "mart.thing": Example(
        "部件和设备按状态 / components and devices per state",
        "select thing_type, category, state, count(*) as things from mart.thing\n"
        "group by 1, 2, 3 order by 1, 2, 3;"),
    "quality.quarantine_review": Example(
        "本周隔离的记录，按规则 / held back this week, by rule",
        "select source_system, rule, count(*) from quality.quarantine_review\n"
        "where state = 'open' and quarantined_at > now() - interval '7 days'\n"
        "group by 1, 2 order by 3 desc;"),
    "quality.rule_result": Example(
        "近 7 天各平台、维度的质量评分 / score per platform and dimension, last 7 days",
        "select r.source_system, r.dimension,\n"
        "       round(1 - sum(r.failed)::numeric / nullif(sum(r.evaluated), 0), 4) as score\n"
        "from quality.rule_result r join ops.run_review u using (run_id)\n"
        "where u.started_at > now() - interval '7 days' group by 1, 2 order by 1, 2;"),
    "ops.run_review": Example(
        "各来源最近一次运行 / each source's latest run",
        "select distinct on (source_system) source_system, run_id, outcome, started_at,\n"
        "       extracted, loaded, quarantined\n"
        "from ops.run_review order by source_system, started_at desc;"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    masked: str | None
    standards: tuple[str, ...]


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # "view" or "table"
    grain: str
    about: str
    reads: tuple[str, ...]  # the core/raw tables a view reads (through other views)
    row_security: bool  # rows limited to the login's jurisdiction
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def anchor(self) -> str:
        return f"{self.schema}-{self.name}"

    @property
    def example(self) -> Example | None:
        return EXAMPLES.get(self.qualified)


@dataclass(frozen=True)
class SchemaInfo:
    name: str
    about: str
    usage: bool
    relations: int


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    parent_code: str | None
    version: str


@dataclass(frozen=True)
class Status:
    sort_order: int
    status: str
    name_zh: str
    description: str


@dataclass(frozen=True)
class Dictionary:
    role: Role
    schemas: tuple[SchemaInfo, ...]
    relations: tuple[Relation, ...]
    categories: tuple[Category, ...]
    statuses: tuple[Status, ...]

    def relation(self, qualified: str) -> Relation:
        for r in self.relations:
            if r.qualified == qualified:
                return r
        raise KeyError(qualified)


# ------------------------------------------------------------------------ the catalog

_SCHEMAS_SQL = """
SELECT s.name, coalesce(obj_description(n.oid, 'pg_namespace'), ''),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
  FROM unnest(%(schemas)s::text[]) WITH ORDINALITY s(name, ord)
  JOIN pg_namespace n ON n.nspname = s.name
 ORDER BY s.ord
"""

# Tables and views the role may SELECT (all columns, or some: a column grant).
_RELATIONS_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind, coalesce(obj_description(c.oid, 'pg_class'), ''),
       c.relrowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND has_any_column_privilege(%(role)s, c.oid, 'SELECT')
 ORDER BY n.nspname, c.relname
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(col_description(a.attrelid, a.attnum), '')
  FROM pg_attribute a
 WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
   AND has_column_privilege(%(role)s, a.attrelid, a.attnum, 'SELECT')
 ORDER BY a.attrelid, a.attnum
"""

# The tables a view reads, through the views and SQL functions it reads.
_READS_SQL = """
WITH RECURSIVE dep(root, cls, obj) AS (
    SELECT v, 'pg_class'::regclass, v FROM unnest(%(oids)s::oid[]) v
    UNION
    SELECT dep.root, d.refclassid, d.refobjid
      FROM dep
      LEFT JOIN pg_rewrite r ON dep.cls = 'pg_class'::regclass AND r.ev_class = dep.obj
      JOIN pg_depend d ON (d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid)
                       OR (dep.cls = 'pg_proc'::regclass AND d.classid = 'pg_proc'::regclass
                           AND d.objid = dep.obj)
     WHERE d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass) AND d.refobjid <> dep.obj
)
SELECT DISTINCT dep.root, n.nspname || '.' || c.relname, c.relrowsecurity
  FROM dep JOIN pg_class c ON c.oid = dep.obj JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE dep.cls = 'pg_class'::regclass AND c.relkind IN ('r', 'p') AND c.oid <> dep.root
"""

_MASK_CALL = re.compile(r"\bmart\.(mask_\w+|record_ref)\([^()]*\) AS (\w+)")


def build(conn: psycopg.Connection, role: Role = Role.READER) -> Dictionary:
    """The dictionary of what `role` may read, from the catalog `conn` sees (any login
    may ask: the catalog and the privilege functions are public)."""
    params = {"role": role.value, "schemas": list(SCHEMAS)}
    rel_rows = conn.execute(_RELATIONS_SQL, params).fetchall()
    oids = [r[0] for r in rel_rows]
    columns: dict[int, list[tuple[str, str, str]]] = {}
    for oid, name, type_, comment in conn.execute(_COLUMNS_SQL, {**params, "oids": oids}):
        columns.setdefault(oid, []).append((name, type_, comment))
    reads: dict[int, list[tuple[str, bool]]] = {}
    views = [r[0] for r in rel_rows if r[3] in ("v", "m")]
    for root, table, secured in conn.execute(_READS_SQL, {"oids": views}):
        reads.setdefault(root, []).append((table, secured))
    masks: dict[int, dict[str, str]] = {}
    for oid in views:
        row = conn.execute("SELECT pg_get_viewdef(%s::oid)", (oid,)).fetchone()
        masks[oid] = {col: fn for fn, col in _MASK_CALL.findall(row[0] if row else "")}

    relations = []
    for oid, schema, name, kind, about, secured in rel_rows:
        entity = _reader_view_entity(schema, name, kind)
        read = sorted(reads.get(oid, []))
        grain, rest = _grain(entity, about)
        relations.append(Relation(
            schema=schema, name=name, kind="view" if kind in ("v", "m") else "table",
            grain=grain, about=rest,
            reads=tuple(t for t, _ in read),
            row_security=bool(secured) or any(s for _, s in read),
            columns=tuple(_column(n, t, c, masks.get(oid, {}))
                          for n, t, c in columns.get(oid, []))))
    relations.sort(key=lambda r: (SCHEMAS.index(r.schema), r.name))
    counts = {s: sum(1 for r in relations if r.schema == s) for s in SCHEMAS}
    schemas = tuple(SchemaInfo(n, about, bool(usage), counts.get(n, 0))
                    for n, about, usage in conn.execute(_SCHEMAS_SQL, params))
    return Dictionary(role, schemas, tuple(relations), _categories(conn), _statuses(conn))


def _reader_view_entity(schema: str, name: str, kind: str) -> Entity | None:
    """The model entity a mart view named after it shows (mart.person: core.person)."""
    if schema != "mart" or kind not in ("v", "m"):
        return None
    return next((e for e in ENTITIES if e.name == name), None)


_GRAIN = re.compile(r"Grain: (.*?)(?:\.\s+|\.$|$)", re.DOTALL)


def _grain(entity: Entity | None, about: str) -> tuple[str, str]:
    """The relation's grain, and what its comment says besides."""
    m = _GRAIN.match(about)
    rest = about[m.end():].strip() if m else about
    if entity is not None:
        return f"{entity.grain}; current versions only (valid_to IS NULL)", rest
    if m:
        return m[1], rest
    if about.startswith("one row"):
        return about.split(":")[0], about
    return about, ""


def _column(name: str, type_: str, meaning: str, view_masks: dict[str, str]) -> Column:
    return Column(name, type_, meaning, _masked(name, meaning, view_masks),
                  tuple(label for pattern, label in STANDARDS if pattern.search(meaning)))


def _masked(name: str, meaning: str, view_masks: dict[str, str]) -> str | None:
    """How a column is masked: by a masking function in its view, as the model's
    personal-data field it stores masked, or as its comment says; None = not masked."""
    if name in view_masks:
        how = MASK_FUNCTIONS.get(view_masks[name], "masked")
        return f"{how} (mart.{view_masks[name]})"
    if name.endswith("_masked"):
        for e in ENTITIES:
            for f in e.fields:
                if f.pii is not None and f"{f.name}_masked" == name:
                    return PII_MASKS[f.pii]
        return MASKED_ON_LOAD
    if re.search(r"personal data masked|, masked$", meaning):
        return MASKED_PER_COMMENT
    return None


def _categories(conn: psycopg.Connection) -> tuple[Category, ...]:
    return tuple(Category(*r) for r in conn.execute(
        "SELECT code, name, parent_code, version FROM mart.event_category ORDER BY code"))


def _statuses(conn: psycopg.Connection) -> tuple[Status, ...]:
    return tuple(Status(*r) for r in conn.execute(
        "SELECT sort_order, status, name_zh, description FROM mart.event_status"
        " ORDER BY sort_order, status"))


# ------------------------------------------------------------------------ Markdown

REGENERATE = "hub docs --out docs"


def file_stem(role: Role) -> str:
    return "data-dictionary" if role is Role.READER else f"data-dictionary-{role.name.lower()}"


def _md(text: str) -> str:
    """Text for a Markdown table cell or paragraph (masks' stars are not emphasis)."""
    return re.sub(r"([\\|*])", r"\\\1", " ".join(text.split()))


def to_markdown(d: Dictionary) -> str:
    out: list[str] = []
    w = out.append
    w(f"# 数据字典 Data dictionary: what `{d.role.value}` may read\n")
    w(f"Generated by `{REGENERATE}{_role_option(d.role)}` from `schemas/model.py` and the"
      " warehouse's catalog and comments (migration 0009); do not edit by hand.\n")
    w(f"**Role described: `{d.role.value}`.** {_md(ROLE_NOTES[d.role])}\n")
    w("Flags: **masked** — the column shows personal data masked, and how; **standard** — the"
      " code standard its values follow. Times are `timestamptz` (shown in the session's time"
      " zone); the marts count weeks and days in the city's (`select mart.city_timezone()`).\n")
    w("## Contents\n")
    w("- [Schemas](#schemas)")
    w("- [Governance figures 考核指标](#figures)")
    w("- [Event taxonomy 中心事件分类](#taxonomy)")
    w("- [Event statuses 中心事件状态](#statuses)")
    for r in d.relations:
        w(f"- [`{r.qualified}`](#{r.anchor}) — {r.kind}")
    w("")

    w('<a id="schemas"></a>\n\n## Schemas\n')
    w(f"| schema | holds | `{d.role.value}` may use it | relations it may read |")
    w("|---|---|---|---|")
    for sch in d.schemas:
        w(f"| `{sch.name}` | {_md(sch.about)} | {'yes' if sch.usage else 'no'} | {sch.relations} |")
    w("")

    w('<a id="figures"></a>\n\n## Governance figures 考核指标\n')
    w("Computed once, in `mart.governance_figures(grain)`, over the per-event flags of"
      " `mart.event_current`; `mart.governance_weekly`, `mart.governance_weekly_district` and"
      " `mart.assessment_weekly` select from it. Rates are shares 0–1 (4 decimals; NULL when the denominator is 0);"
      " hours are percentiles of the per-event hours (2 decimals). Rates and percentiles do not"
      " add up across rows: for other groupings aggregate `mart.event_current`.\n")
    w("| 指标 | column | 公式 | formula |")
    w("|---|---|---|---|")
    for f in FIGURES:
        cols = ", ".join(f"`{c.strip()}`" for c in f.column.split(","))
        w(f"| {f.name_zh} | {cols} | {_md(f.formula_zh)} | {_md(f.formula_en)} |")
    w("\nWhat they count, per event:\n")
    w("| term | 定义 | definition |")
    w("|---|---|---|")
    for term, zh, en in TERMS:
        w(f"| {_md(term)} | {_md(zh)} | {_md(en)} |")
    w("")

    w('<a id="taxonomy"></a>\n\n## Event taxonomy 中心事件分类 (`mart.event_category`)\n')
    w("| code | name | level 1 | version |")
    w("|---|---|---|---|")
    names = {c.code: c.name for c in d.categories}
    for cat in d.categories:
        parent = (f"{cat.parent_code} {names.get(cat.parent_code, '')}".strip()
                  if cat.parent_code else "—")
        w(f"| `{cat.code}` | {_md(cat.name)} | {_md(parent)} | {_md(cat.version)} |")
    w("\nA platform category no mapping covers is loaded as `unmapped` (counted in the weekly"
      " report, never dropped).\n")

    w('<a id="statuses"></a>\n\n## Event statuses 中心事件状态 (`mart.event_status`)\n')
    w("| order | status | 中文 | meaning |")
    w("|---|---|---|---|")
    for st in d.statuses:
        w(f"| {st.sort_order} | `{st.status}` | {_md(st.name_zh)} | {_md(st.description)} |")
    w("\nA platform status no mapping covers is loaded as `unmapped`.\n")

    current_schema = ""
    for r in d.relations:
        if r.schema != current_schema:
            current_schema = r.schema
            w(f"## Schema `{r.schema}`\n")
        w(f'<a id="{r.anchor}"></a>\n\n### `{r.qualified}` ({r.kind})\n')
        w(f"- **Grain:** {_md(r.grain)}")
        if r.about:
            w(f"- **About:** {_md(r.about)}")
        if r.reads:
            w(f"- **Reads:** {', '.join(f'`{t}`' for t in r.reads)}")
        w("- **Rows:** " + ("the login's jurisdiction only (row-level security)"
                            if r.row_security else "every row, for every login that may read it"))
        w("")
        w("| column | type | meaning | masked | standard |")
        w("|---|---|---|---|---|")
        for c in r.columns:
            w(f"| `{c.name}` | {c.type} | {_md(c.meaning)} | {_md(c.masked or '')}"
              f" | {_md(', '.join(c.standards))} |")
        w("")
        if r.example:
            w(f"Example — {_md(r.example.title)}:\n")
            w(f"```sql\n{r.example.sql}\n```\n")
    return "\n".join(out).rstrip("\n") + "\n"


def _role_option(role: Role) -> str:
    return "" if role is Role.READER else f" --role {role.name.lower()}"


# ------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;
margin:2rem auto;max-width:80rem;padding:0 1rem;color:#1a1a1a;line-height:1.5}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #c00;padding-bottom:.2rem}
h3{margin-top:2rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{font-family:ui-monospace,Consolas,monospace;font-size:.9em}
pre{background:#f6f6f6;padding:.7rem;overflow-x:auto;border-left:3px solid #c00}
.masked{color:#a40}.std{color:#036}nav ul{columns:3}
"""


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _h_code(text: str) -> str:
    """Escaped text whose `backticked` parts become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _h(text))


def to_html(d: Dictionary) -> str:
    out: list[str] = []
    w = out.append
    title = f"数据字典 Data dictionary: what {d.role.value} may read"
    w("<!DOCTYPE html>")
    w('<html lang="zh-CN"><head><meta charset="utf-8">')
    w(f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>")
    w(f"<h1>{_h(title)}</h1>")
    w(f"<p>Generated by <code>{_h(REGENERATE + _role_option(d.role))}</code> from"
      " <code>schemas/model.py</code> and the warehouse's catalog and comments (migration 0009);"
      " do not edit by hand.</p>")
    w(f"<p><strong>Role described: <code>{_h(d.role.value)}</code>.</strong>"
      f" {_h_code(ROLE_NOTES[d.role])}</p>")
    w("<p>Flags: <strong>masked</strong>: the column shows personal data masked, and how;"
      " <strong>standard</strong>: the code standard its values follow. The marts count weeks"
      " and days in the city's time zone (<code>select mart.city_timezone()</code>).</p>")
    w("<nav><h2>Contents</h2><ul>")
    for anchor, label in (("schemas", "Schemas"), ("figures", "Governance figures 考核指标"),
                          ("taxonomy", "Event taxonomy 中心事件分类"),
                          ("statuses", "Event statuses 中心事件状态")):
        w(f'<li><a href="#{anchor}">{_h(label)}</a></li>')
    for r in d.relations:
        w(f'<li><a href="#{r.anchor}"><code>{_h(r.qualified)}</code></a> ({r.kind})</li>')
    w("</ul></nav>")

    w('<h2 id="schemas">Schemas</h2>')
    w(_table(("schema", "holds", f"{d.role.value} may use it", "relations it may read"),
             ((f"<code>{_h(s.name)}</code>", _h(s.about), "yes" if s.usage else "no",
               str(s.relations)) for s in d.schemas)))

    w('<h2 id="figures">Governance figures 考核指标</h2>')
    w("<p>Computed once, in <code>mart.governance_figures(grain)</code>, over the per-event"
      " flags of <code>mart.event_current</code>. Rates are shares 0–1 (4 decimals; NULL when"
      " the denominator is 0); hours are percentiles of the per-event hours (2 decimals). Rates"
      " and percentiles do not add up across rows: for other groupings aggregate"
      " <code>mart.event_current</code>.</p>")
    w(_table(("指标", "column", "公式", "formula"),
             ((_h(f.name_zh), ", ".join(f"<code>{_h(c.strip())}</code>" for c in f.column.split(",")),
               _h(f.formula_zh), _h(f.formula_en)) for f in FIGURES)))
    w("<p>What they count, per event:</p>")
    w(_table(("term", "定义", "definition"), ((_h(t), _h(zh), _h(en)) for t, zh, en in TERMS)))

    w('<h2 id="taxonomy">Event taxonomy 中心事件分类 (<code>mart.event_category</code>)</h2>')
    names = {c.code: c.name for c in d.categories}
    w(_table(("code", "name", "level 1", "version"),
             ((f"<code>{_h(c.code)}</code>", _h(c.name),
               _h(f"{c.parent_code} {names.get(c.parent_code, '')}".strip()) if c.parent_code
               else "—", _h(c.version)) for c in d.categories)))
    w("<p>A platform category no mapping covers is loaded as <code>unmapped</code>.</p>")

    w('<h2 id="statuses">Event statuses 中心事件状态 (<code>mart.event_status</code>)</h2>')
    w(_table(("order", "status", "中文", "meaning"),
             ((str(s.sort_order), f"<code>{_h(s.status)}</code>", _h(s.name_zh),
               _h(s.description)) for s in d.statuses)))

    current_schema = ""
    for r in d.relations:
        if r.schema != current_schema:
            current_schema = r.schema
            w(f"<h2>Schema <code>{_h(r.schema)}</code></h2>")
        w(f'<h3 id="{r.anchor}"><code>{_h(r.qualified)}</code> ({r.kind})</h3><ul>')
        w(f"<li><strong>Grain:</strong> {_h(r.grain)}</li>")
        if r.about:
            w(f"<li><strong>About:</strong> {_h(r.about)}</li>")
        if r.reads:
            w("<li><strong>Reads:</strong> "
              + ", ".join(f"<code>{_h(t)}</code>" for t in r.reads) + "</li>")
        w("<li><strong>Rows:</strong> " + ("the login's jurisdiction only (row-level security)"
                                           if r.row_security
                                           else "every row, for every login that may read it")
          + "</li></ul>")
        w(_table(("column", "type", "meaning", "masked", "standard"),
                 ((f"<code>{_h(c.name)}</code>", _h(c.type), _h(c.meaning),
                   f'<span class="masked">{_h(c.masked)}</span>' if c.masked else "",
                   f'<span class="std">{_h(", ".join(c.standards))}</span>' if c.standards else "")
                  for c in r.columns)))
        if r.example:
            w(f"<p>Example — {_h(r.example.title)}:</p>")
            w(f"<pre><code>{_h(r.example.sql)}</code></pre>")
    w("</body></html>")
    return "\n".join(out) + "\n"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table of cells already escaped."""
    lines = ["<table><thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in head)
             + "</tr></thead><tbody>"]
    lines += ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    lines.append("</tbody></table>")
    return "\n".join(lines)


# ------------------------------------------------------------------------ writing


def write(d: Dictionary, out_dir: Path) -> tuple[Path, Path]:
    """Write the dictionary as `<stem>.md` and `<stem>.html` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{file_stem(d.role)}.md"
    page = out_dir / f"{file_stem(d.role)}.html"
    md.write_text(to_markdown(d), encoding="utf-8")
    page.write_text(to_html(d), encoding="utf-8")
    return md, page
