"""Row-level validation of a conformed batch: every row gets an outcome.

A rule is declared once, in two halves that meet by its name:

- its data, in `quality/rules.yaml`: severity (a deployment may override it with
  its own copy), dimension, descriptions, one reason template per way it can fail;
- its code, in `RULES` below: the vectorised check (`quality.checks`), the reason
  names of the check's codes, the columns it reads and the placeholders its reasons
  fill. A check's keyword parameters name the values of the run it reads (`CONTEXT`:
  today, the code tables, the city extent...).

Which rules apply to an entity comes from `schemas.model` (fields name their rules
in `rules=`, entities their `row_rules`; every required field gets
`required_present`, every entity `source_key_unique`). The rest is derived from
these: the findings and counts here, the Great Expectations record
(`quality.gx_suite`), the weekly report.

`evaluate` never loops over rows in Python: each rule is a handful of whole-column
operations, and reasons are rendered with Arrow string kernels for the failing
rows only.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import string
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
import yaml

from base.pii import MASKS
from base.settings import CityConfig, settings
from quality import checks
from schemas.model import Entity, Pii

RULES_FILE = Path(__file__).with_name("rules.yaml")
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "reference"
SCHEMAS_DIR = REFERENCE_DIR.parent

# Platforms' clocks drift and their times arrive in local time: a time up to this
# much after `now` is accepted. Small on purpose: a platform whose local times are
# read as UTC lands 8 hours in the future and must be caught.
FUTURE_TOLERANCE = timedelta(minutes=10)
# The city's time zone when the context is not told (the city configuration's default).
DEFAULT_TIMEZONE: str = CityConfig.model_fields["timezone"].default
DIMENSIONS = ("完整性", "准确性", "有效性", "一致性", "及时性", "唯一性")

REQUIRED = "required_present"
SOURCE_KEY = "source_key_unique"
KEY_COLUMN = "source_id"
LIFECYCLE = ("reported_at", "accepted_at", "dispatched_at", "resolved_at", "closed_at")
# Which lifecycle times of an event the hub derived rather than the platform sent.
DERIVED_COLUMN = "derived_times"
# The division code as the platform sent it, beside the current code conform put in
# division_code (a retired code folded to its successor).
SOURCE_DIVISION_COLUMN = "source_division_code"
# Grid boundaries: how far past the city extent an edge grid may reach (degrees, about
# a kilometre), and the area a grid may plausibly have (m²).
BOUNDARY_TOLERANCE_DEG = 0.01
GRID_AREA_M2 = (1_000.0, 50_000_000.0)
CLOSED_STATUS = "closed"
NEUTRAL_SATISFACTION = ("未评价",)


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"


# ---------------------------------------------------------------- rule definitions


@dataclass(frozen=True)
class RuleDefinition:
    """One entry of rules.yaml."""

    name: str
    severity: Severity
    dimension: str
    description_zh: str
    description_en: str
    reasons: Mapping[str, str]


@cache
def definitions() -> Mapping[str, RuleDefinition]:
    """rules.yaml, or a deployment's own copy of it (stricter or looser severities):
    HUB_RULES_FILE. Every rule of `RULES` must be there with a template for each of
    its reasons; rules checked elsewhere (quality.consistency) are there too."""
    path = settings().rules_file or RULES_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, RuleDefinition] = {}
    for name, spec in raw.items():
        if spec["dimension"] not in DIMENSIONS:
            raise ValueError(f"{path}: {name}: unknown dimension {spec['dimension']!r}")
        out[name] = RuleDefinition(
            name=name,
            severity=Severity(spec["severity"]),
            dimension=spec["dimension"],
            description_zh=spec["description"]["zh"],
            description_en=spec["description"]["en"],
            reasons=dict(spec["reasons"]),
        )
    for name, rule in RULES.items():
        if name not in out:
            raise ValueError(f"{path}: rule {name!r} is not defined")
        missing = [r for r in rule.reasons if r not in out[name].reasons]
        if missing:
            raise ValueError(f"{path}: {name}: no reason template for {', '.join(missing)}")
    return out


# ---------------------------------------------------------------- context


@dataclass(frozen=True)
class ReferenceTables:
    divisions: frozenset[str]
    retired: Mapping[str, str]
    streets: frozenset[str]
    cities: frozenset[str]


def _codes_of(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["code"] for row in csv.DictReader(fh)]


@cache
def reference_tables() -> ReferenceTables:
    """The code tables shipped in schemas/reference (the 2022-10-31 edition)."""
    provinces = _codes_of(REFERENCE_DIR / "provinces.csv")
    cities = _codes_of(REFERENCE_DIR / "cities.csv")
    areas = _codes_of(REFERENCE_DIR / "areas.csv")
    with (REFERENCE_DIR / "divisions_retired.csv").open(encoding="utf-8", newline="") as fh:
        retired = {row["code"]: row["replaced_by"] for row in csv.DictReader(fh)}
    return ReferenceTables(
        divisions=frozenset(provinces + cities + areas),
        retired=retired,
        streets=frozenset(_codes_of(REFERENCE_DIR / "streets.csv")),
        cities=frozenset(cities),
    )


@cache
def hub_vocabulary() -> Mapping[str, tuple[str, ...]]:
    """Values `category_mapped` and `status_mapped` accept: the hub's taxonomy and statuses."""
    with (SCHEMAS_DIR / "taxonomy.csv").open(encoding="utf-8", newline="") as fh:
        categories = tuple(row["code"] for row in csv.DictReader(fh))
    with (SCHEMAS_DIR / "statuses.csv").open(encoding="utf-8", newline="") as fh:
        statuses = tuple(row["status"] for row in csv.DictReader(fh))
    return {"category_code": categories, "status": statuses}


@dataclass(frozen=True)
class RuleContext:
    """What the rules check against, fixed for one run."""

    division_codes: frozenset[str]  # current county codes (+ 2/4-digit province/city codes)
    retired_divisions: Mapping[str, str]  # retired code -> replacing code
    street_codes: frozenset[str]  # 9-digit
    grid_codes: frozenset[str] | None  # None: grids not loaded yet, grid rule not evaluated
    extent: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat
    now: datetime  # tz-aware; "future" means later than now + FUTURE_TOLERANCE
    # Source keys a whole file snapshot holds with two or more different records, as
    # the pipeline found them for the batch at hand (they may fall in other batches):
    # `source_key_unique` quarantines every record under them.
    conflicting_keys: frozenset[str] = frozenset()
    # The city's time zone (CityConfig.timezone): birth dates in ID numbers are local
    # dates, and reasons show times in local time.
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("RuleContext.now must be timezone-aware")
        min_lon, min_lat, max_lon, max_lat = self.extent
        if not (min_lon < max_lon and min_lat < max_lat):
            raise ValueError(f"extent must be (min_lon, min_lat, max_lon, max_lat): {self.extent}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None

    @classmethod
    def from_reference(
        cls,
        city_code: str,
        extent: Sequence[float],
        now: datetime,
        grid_codes: Collection[str] | None = None,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> RuleContext:
        """A context from the code tables in schemas/reference (tests, and the fallback
        before core.division is loaded). Division and street codes are national: a
        record may legitimately point outside the city (a caller's household address)."""
        ref = reference_tables()
        if city_code not in ref.cities:
            raise ValueError(f"unknown city code {city_code!r}")
        lo_lon, lo_lat, hi_lon, hi_lat = (float(v) for v in extent)
        return cls(
            division_codes=ref.divisions,
            retired_divisions=ref.retired,
            street_codes=ref.streets,
            grid_codes=None if grid_codes is None else frozenset(grid_codes),
            extent=(lo_lon, lo_lat, hi_lon, hi_lat),
            now=now,
            timezone=timezone,
        )

    @property
    def latest_allowed(self) -> datetime:
        return self.now + FUTURE_TOLERANCE

    @property
    def today(self) -> date:
        """Today in the city."""
        return self.now.astimezone(ZoneInfo(self.timezone)).date()

    def value(self, name: str) -> Any:
        """A value of the run as a check takes it (see `CONTEXT`)."""
        return CONTEXT[name].value(self)

    @cached_property
    def recorded(self) -> Mapping[str, Any]:
        """Every value of `CONTEXT` as the run's record states it (plain JSON)."""
        return {name: v.recorded(self) for name, v in CONTEXT.items()}

    # Arrow value sets, built once per context.
    @cached_property
    def division_set(self) -> pa.Array:
        return checks.as_value_set(self.division_codes)

    @cached_property
    def retired_set(self) -> pa.Array:
        return checks.as_value_set(self.retired_divisions.keys())

    @cached_property
    def street_set(self) -> pa.Array:
        return checks.as_value_set(self.street_codes)

    @cached_property
    def grid_set(self) -> pa.Array | None:
        return None if self.grid_codes is None else checks.as_value_set(self.grid_codes)

    @cached_property
    def conflicting_set(self) -> pa.Array | None:
        return checks.as_value_set(self.conflicting_keys) if self.conflicting_keys else None


def code_set_digest(codes: Collection[str]) -> str:
    """A code table as the record names it: its content digest and size."""
    if isinstance(codes, frozenset):
        return _frozen_set_digest(codes)
    return _set_digest(codes)


@lru_cache(maxsize=16)
def _frozen_set_digest(codes: frozenset[str]) -> str:
    """A code table's digest, made once (each batch's context is a copy of its stream's)."""
    return _set_digest(codes)


def _set_digest(codes: Collection[str]) -> str:
    ordered = sorted(codes)
    digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:16]
    return f"sha256:{digest}:{len(ordered)}"


@dataclass(frozen=True)
class ContextValue:
    """A value of the run a check may read: as the check takes it, as it is recorded."""

    value: Callable[[RuleContext], Any]
    recorded: Callable[[RuleContext], Any]


# The values of a run the checks may read, by the names their keyword parameters give
# them. Code tables are recorded by digest (tens of thousands of codes).
CONTEXT: Mapping[str, ContextValue] = {
    "today": ContextValue(lambda c: c.today, lambda c: c.today.isoformat()),
    "latest_allowed": ContextValue(lambda c: c.latest_allowed,
                                   lambda c: c.latest_allowed.isoformat()),
    "extent": ContextValue(lambda c: c.extent, lambda c: list(c.extent)),
    "division_codes": ContextValue(lambda c: c.division_set,
                                   lambda c: code_set_digest(c.division_codes)),
    "retired_division_codes": ContextValue(lambda c: c.retired_set,
                                           lambda c: code_set_digest(c.retired_divisions)),
    "street_codes": ContextValue(lambda c: c.street_set,
                                 lambda c: code_set_digest(c.street_codes)),
    "grid_codes": ContextValue(
        lambda c: c.grid_set,
        lambda c: None if c.grid_codes is None else code_set_digest(c.grid_codes)),
    "conflicting_keys": ContextValue(lambda c: c.conflicting_set,
                                     lambda c: code_set_digest(c.conflicting_keys)),
}


# ---------------------------------------------------------------- rules in code

Columns = Sequence[Any]  # Arrow columns, string columns as checks.Strings
# (columns, **values of the run it names) -> one code per row, see quality.checks
Check = Callable[..., np.ndarray]
# (rule, table, failing rows, their codes, ctx) -> placeholder values for the reasons
Placeholders = Callable[
    ["AppliedRule", pa.Table, np.ndarray, np.ndarray, RuleContext], dict[str, Any]
]
ColumnsOf = Callable[[tuple[str, ...]], list[tuple[str, ...]]]


def _one_per_field(*companions: str) -> ColumnsOf:
    return lambda fields: [(f, *companions) for f in fields]


def _fixed(*columns: str) -> ColumnsOf:
    return lambda fields: [columns]


def _all_fields(fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [fields]


def _value(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
           ctx: RuleContext) -> dict[str, Any]:
    col = rule.columns[0]
    return {"field": col, "value": text(table.column(col), rows, ctx, rule.pii(col))}


@dataclass(frozen=True)
class Rule:
    """How a rule of rules.yaml is checked: its one registration in code."""

    # Vectorised: (the columns, **values of the run) -> one code per row (quality.checks).
    check: Check
    reasons: tuple[str, ...]  # reason names by code (code k -> reasons[k-1])
    # The columns it reads, from the fields an entity names it on: one applied rule each.
    columns: ColumnsOf = _one_per_field()
    placeholders: Placeholders = _value

    @cached_property
    def context(self) -> tuple[str, ...]:
        """The values of the run the check reads: its parameters after the columns."""
        names = tuple(inspect.signature(self.check).parameters)[1:]
        unknown = [n for n in names if n not in CONTEXT]
        if unknown:
            raise TypeError(f"a check reads {', '.join(unknown)}: not in quality.rules.CONTEXT")
        return names

    def run(self, columns: Columns, ctx: RuleContext) -> np.ndarray:
        return self.check(columns, **{name: ctx.value(name) for name in self.context})

    def reason(self, code: int) -> str:
        # Single-reason checks over several columns (not_after, in_order) use the code
        # for the column that failed.
        return self.reasons[0] if len(self.reasons) == 1 else self.reasons[code - 1]


def _division_value(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                    ctx: RuleContext) -> dict[str, Any]:
    """The code as the platform sent it (see checks.sent_or) and its replacement."""
    folded, sent = rule.columns
    values = pc.take(checks.sent_or(table.column(folded), table.column(sent)).arr,
                     pa.array(rows, pa.int64()))
    keys = list(ctx.retired_divisions)
    replacement = pc.take(
        pa.array([ctx.retired_divisions[k] for k in keys], pa.string()),
        pc.index_in(values, value_set=pa.array(keys, pa.string())),
    )
    return {"field": folded, "value": pc.fill_null(values, NULL_TEXT),
            "replacement": pc.fill_null(replacement, "?")}


def _with(**companions: str) -> Placeholders:
    """Value placeholders plus companion columns under the given names."""

    def placeholders(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                     ctx: RuleContext) -> dict[str, Any]:
        out = _value(rule, table, rows, codes, ctx)
        for name, col in companions.items():
            out[name] = text(table.column(col), rows, ctx, rule.pii(col))
        return out

    return placeholders


def _coordinates(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                 ctx: RuleContext) -> dict[str, Any]:
    lon, lat = rule.columns
    return {"lon": text(table.column(lon), rows, ctx), "lat": text(table.column(lat), rows, ctx)}


def _nth_column(rule: AppliedRule, table: pa.Table, rows: np.ndarray, index: np.ndarray,
                ctx: RuleContext) -> tuple[pa.Array, pa.Array]:
    """Name and value of column `index[i]` (0-based into rule.columns) for each row."""
    names = pa.array(rule.columns, pa.string()).take(pa.array(index))
    positions: list[np.ndarray] = []
    texts: list[pa.Array] = []
    for j in np.unique(index):  # one pass per column involved, not per row
        sel = np.flatnonzero(index == j)
        positions.append(sel)
        texts.append(text(table.column(rule.columns[int(j)]), rows[sel], ctx))
    order = np.argsort(np.concatenate(positions), kind="stable")
    return names, pa.concat_arrays(texts).take(pa.array(order))


def _future(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
            ctx: RuleContext) -> dict[str, Any]:
    names, values = _nth_column(rule, table, rows, codes.astype(np.int64) - 1, ctx)
    return {"field": names, "value": values}


def _lifecycle_columns(rule: AppliedRule, table: pa.Table | Batch
                       ) -> tuple[list[Any], list[np.ndarray]]:
    """The lifecycle times a rule reads and, per time, the rows where the hub derived it."""
    batch = table if isinstance(table, Batch) else Batch(table)
    *times, derived = rule.columns
    return [batch.column(c) for c in times], checks.listed(batch.column(derived), times)


def _lifecycle_placeholders(skip_derived: bool) -> Placeholders:
    """{field} {value}: the time out of order; {earlier_field} {earlier_value}: the latest
    time before it (among the sent ones only, for lifecycle_order)."""

    def placeholders(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                     ctx: RuleContext) -> dict[str, Any]:
        cols, derived = _lifecycle_columns(rule, table)
        skip = derived if skip_derived else None
        earlier = np.zeros(rows.size, dtype=np.int64)
        for k in np.unique(codes):  # at most one pass per lifecycle step
            sel = codes == k
            earlier[sel] = checks.latest_before(cols, rows[sel], int(k), skip)
        names, values = _nth_column(rule, table, rows, codes.astype(np.int64) - 1, ctx)
        earlier_names, earlier_values = _nth_column(rule, table, rows, earlier, ctx)
        return {"field": names, "value": values,
                "earlier_field": earlier_names, "earlier_value": earlier_values}

    return placeholders


def _sent_in_order(cols: Columns) -> np.ndarray:
    *times, derived = cols
    return checks.in_order(times, checks.listed(derived, LIFECYCLE[:len(times)]))


def _derived_in_order(cols: Columns) -> np.ndarray:
    *times, derived = cols
    return checks.derived_in_order(times, checks.listed(derived, LIFECYCLE[:len(times)]))


BOUNDARY_SHOWN = 120  # characters of a boundary's WKT shown in a reason


def _shapes(rule: AppliedRule, table: pa.Table, rows: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The failing rows' boundaries: their WKT, and read as shapes."""
    wkt = checks.as_strings(table.column(rule.columns[0])).take(pa.array(rows, pa.int64()))
    shapes = shapely.from_wkt(np.asarray(wkt.to_numpy(zero_copy_only=False), dtype=object),
                              on_invalid="ignore")
    return wkt, shapes


def _boundary_value(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                    ctx: RuleContext) -> dict[str, Any]:
    wkt, shapes = _shapes(rule, table, rows)
    long = pc.fill_null(pc.greater(pc.utf8_length(wkt), BOUNDARY_SHOWN), False)
    shown = pc.if_else(long, pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(wkt, 0, BOUNDARY_SHOWN), "…", ""), wkt)
    detail = pa.array(np.asarray(shapely.is_valid_reason(shapes), dtype=object), pa.string())
    return {"field": rule.columns[0], "value": pc.fill_null(shown, NULL_TEXT),
            "detail": pc.fill_null(detail, "?")}


def _boundary_bounds(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                     ctx: RuleContext) -> dict[str, Any]:
    _, shapes = _shapes(rule, table, rows)
    bounds = np.asarray(shapely.bounds(shapes), dtype=np.float64).reshape(rows.size, 4)
    parts: list[Any] = ["("]
    for i in range(4):  # four corners, not rows
        parts += [pc.round(pa.array(bounds[:, i]), 6).cast(pa.string()), ", " if i < 3 else ")"]
    return {"bounds": pc.binary_join_element_wise(*parts, "")}


def _boundary_area(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
                   ctx: RuleContext) -> dict[str, Any]:
    _, shapes = _shapes(rule, table, rows)
    area = np.round(checks.approximate_areas(shapes)).astype(np.int64)
    return {"area": pa.array(area).cast(pa.string())}


SOURCE_COLUMNS = {"category_code": "source_category", "status": "source_status"}


def _mapped_placeholders(rule: AppliedRule, table: pa.Table, rows: np.ndarray,
                         codes: np.ndarray, ctx: RuleContext) -> dict[str, Any]:
    out = _value(rule, table, rows, codes, ctx)
    source = SOURCE_COLUMNS.get(rule.columns[0])
    out["source"] = text(table.column(source), rows, ctx) if source in table.column_names else "?"
    return out


# Every rule the hub checks row by row, by its name in rules.yaml. A check reads its
# columns (`c`) and, by its keyword parameters, values of the run (`CONTEXT`).
RULES: dict[str, Rule] = {
    REQUIRED: Rule(lambda c: checks.required(c[0]), checks.PRESENT_REASONS),
    SOURCE_KEY: Rule(lambda c, conflicting_keys: checks.unique_keys(c[0], conflicting_keys),
                     checks.UNIQUE_KEY_REASONS, _fixed(KEY_COLUMN)),
    "citizen_id_valid": Rule(lambda c, today: checks.citizen_id(c[0], today),
                             checks.CITIZEN_ID_REASONS),
    "uscc_valid": Rule(lambda c: checks.uscc(c[0]), checks.USCC_REASONS),
    "phone_format": Rule(lambda c: checks.phone(c[0]), checks.PHONE_REASONS),
    "division_code_known": Rule(
        lambda c, division_codes, retired_division_codes: checks.known_division(
            c[0], c[1], division_codes, retired_division_codes),
        checks.KNOWN_CODE_REASONS, _one_per_field(SOURCE_DIVISION_COLUMN), _division_value),
    "street_code_known": Rule(lambda c, street_codes: checks.known_code(c[0], street_codes),
                              checks.KNOWN_CODE_REASONS),
    "grid_code_known": Rule(lambda c, grid_codes: checks.known_code(c[0], grid_codes),
                            checks.KNOWN_CODE_REASONS),
    "coordinates_in_city": Rule(lambda c, extent: checks.coordinates(c[0], c[1], extent),
                                checks.COORDINATE_REASONS, _one_per_field("latitude"),
                                _coordinates),
    "not_in_future": Rule(lambda c, latest_allowed: checks.not_after(c, latest_allowed),
                          ("future",), _all_fields, _future),
    "category_mapped": Rule(
        lambda c: checks.mapped(c[0], hub_vocabulary()["category_code"]),
        checks.MAPPED_REASONS, placeholders=_mapped_placeholders),
    "status_mapped": Rule(lambda c: checks.mapped(c[0], hub_vocabulary()["status"]),
                          checks.MAPPED_REASONS, placeholders=_mapped_placeholders),
    "unit_grid_code_format": Rule(lambda c: checks.unit_grid_code(c[0], c[1]),
                                  checks.UNIT_GRID_REASONS, _one_per_field("grid_type")),
    "thing_code_format": Rule(
        lambda c, division_codes, retired_division_codes: checks.thing_code(
            c[0], c[1], division_codes, retired_division_codes),
        checks.THING_CODE_REASONS, _one_per_field("thing_type"), _with(thing_type="thing_type")),
    "grid_assigned": Rule(
        lambda c, extent, grid_codes: checks.located_in_grid(c[0], c[1], c[2], extent,
                                                             grid_codes is not None),
        checks.GRID_ASSIGNED_REASONS, _fixed("grid_code", "longitude", "latitude"),
        _with(longitude="longitude", latitude="latitude")),
    "lifecycle_order": Rule(_sent_in_order, ("out_of_order",), _fixed(*LIFECYCLE, DERIVED_COLUMN),
                            _lifecycle_placeholders(skip_derived=True)),
    "derived_time_order": Rule(_derived_in_order, ("out_of_order",),
                               _fixed(*LIFECYCLE, DERIVED_COLUMN),
                               _lifecycle_placeholders(skip_derived=False)),
    "deadline_after_accept": Rule(lambda c: checks.not_before(c[0], c[1]),
                                  checks.NOT_BEFORE_REASONS, _fixed("deadline_at", "accepted_at"),
                                  _with(accepted="accepted_at")),
    "satisfaction_only_if_evaluated": Rule(
        lambda c: checks.only_when(c[0], c[1], NEUTRAL_SATISFACTION, CLOSED_STATUS),
        checks.ONLY_WHEN_REASONS, _fixed("satisfaction", "status"), _with(status="status")),
    "boundary_valid": Rule(lambda c: checks.boundary(c[0]), checks.BOUNDARY_REASONS,
                           placeholders=_boundary_value),
    "boundary_in_city": Rule(
        lambda c, extent: checks.boundary_in_extent(c[0], extent, BOUNDARY_TOLERANCE_DEG),
        checks.BOUNDARY_EXTENT_REASONS, placeholders=_boundary_bounds),
    "boundary_area_plausible": Rule(lambda c: checks.boundary_area(c[0], *GRID_AREA_M2),
                                    checks.BOUNDARY_AREA_REASONS, placeholders=_boundary_area),
}


# ---------------------------------------------------------------- rules of an entity


@dataclass(frozen=True)
class AppliedRule:
    """A rule as applied to one entity's columns."""

    name: str  # as recorded in findings and results, e.g. "citizen_id_valid"
    base: str  # key into rules.yaml and RULES
    columns: tuple[str, ...]  # what the check reads, in order
    entity: Entity = field(repr=False, compare=False)

    @property
    def definition(self) -> RuleDefinition:
        return definitions()[self.base]

    @property
    def severity(self) -> Severity:
        return self.definition.severity

    @property
    def dimension(self) -> str:
        return self.definition.dimension

    @property
    def impl(self) -> Rule:
        return RULES[self.base]

    def pii(self, column: str) -> Pii | None:
        try:
            return self.entity.field(column).pii
        except KeyError:
            return None

    def check(self, table: pa.Table | Batch, ctx: RuleContext) -> np.ndarray:
        """Codes per row (see quality.checks): -1 not evaluated, 0 passed, k reason k."""
        batch = table if isinstance(table, Batch) else Batch(table)
        return self.impl.run([batch.column(c) for c in self.columns], ctx)


class Batch:
    """The columns of one batch as the checks want them, each prepared once
    (string columns as `checks.Strings`) and shared by every rule that reads it."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._columns: dict[str, Any] = {}

    def column(self, name: str) -> Any:
        if name not in self._columns:
            try:
                col = self.table.column(name)
            except KeyError:
                raise KeyError(f"the batch has no column {name!r}") from None
            is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
            self._columns[name] = checks.Strings(col) if is_text else col
        return self._columns[name]


@cache
def _applied(entity: Entity) -> tuple[AppliedRule, ...]:
    out: list[AppliedRule] = []

    def add(base: str, fields: tuple[str, ...]) -> None:
        if base not in RULES or base not in definitions():
            raise KeyError(f"{entity.table}: rule {base!r} is not defined in quality.rules")
        tuples = RULES[base].columns(fields)
        for cols in tuples:
            name = base if len(tuples) == 1 else f"{base}:{cols[0]}"
            out.append(AppliedRule(name=name, base=base, columns=cols, entity=entity))

    for f in entity.fields:
        if f.required:
            out.append(AppliedRule(f"{REQUIRED}:{f.name}", REQUIRED, (f.name,), entity))
    add(SOURCE_KEY, ())
    named: dict[str, list[str]] = {}
    for f in entity.fields:
        for rule in f.rules:
            named.setdefault(rule, []).append(f.name)
    for rule, fields in named.items():
        add(rule, tuple(fields))
    for rule in entity.row_rules:
        add(rule, ())
    return tuple(out)


def applied_rules(entity: Entity) -> tuple[AppliedRule, ...]:
    """The rules that apply to an entity, in evaluation (and reporting) order:
    required fields, source key, field rules in field order, row rules."""
    return _applied(entity)


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class RuleResult:
    rule: str
    severity: Severity
    dimension: str
    evaluated: int
    failed: int


FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("row_index", pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)


@dataclass
class Evaluation:
    blocking_failed: np.ndarray  # bool per row: the row goes to quarantine
    findings: pa.Table  # one row per (row, failed rule), ordered by row then rule
    results: list[RuleResult]  # per rule, for the run's quality record

    def result(self, rule: str) -> RuleResult:
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(rule)


def evaluate(entity: Entity, table: pa.Table, ctx: RuleContext) -> Evaluation:
    """Check every row of a conformed batch against the entity's rules."""
    n = table.num_rows
    blocking = np.zeros(n, dtype=bool)
    results: list[RuleResult] = []
    found_rows: list[np.ndarray] = []
    found_pos: list[np.ndarray] = []
    found_reasons: list[pa.Array] = []
    rules = applied_rules(entity)
    batch = Batch(table)
    for pos, rule in enumerate(rules):
        codes = rule.check(batch, ctx)
        failed = codes > 0
        results.append(RuleResult(rule.name, rule.severity, rule.dimension,
                                  evaluated=int(np.count_nonzero(codes >= 0)),
                                  failed=int(np.count_nonzero(failed))))
        rows = np.flatnonzero(failed)
        if rows.size == 0:
            continue
        if rule.severity is Severity.BLOCKING:
            blocking[rows] = True
        rows, reasons = _reasons(rule, table, rows, codes[rows], ctx)
        found_rows.append(rows)
        found_pos.append(np.full(rows.size, pos, dtype=np.int64))
        found_reasons.append(reasons)
    return Evaluation(blocking, _findings(rules, found_rows, found_pos, found_reasons), results)


def _reasons(rule: AppliedRule, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
             ctx: RuleContext) -> tuple[np.ndarray, pa.Array]:
    """Rendered reasons of the failing `rows`, grouped by reason (rows reordered)."""
    values = rule.impl.placeholders(rule, table, rows, codes, ctx)
    templates = rule.definition.reasons
    out_rows: list[np.ndarray] = []
    out: list[pa.Array] = []
    for code in np.unique(codes):  # a few reasons per rule
        sel = np.flatnonzero(codes == code)
        template = templates[rule.impl.reason(int(code))]
        picked = {k: (v if isinstance(v, str) else v.take(pa.array(sel))) for k, v in values.items()}
        out.append(render(template, sel.size, picked))
        out_rows.append(rows[sel])
    return np.concatenate(out_rows), pa.concat_arrays(out)


def _findings(rules: Sequence[AppliedRule], rows: list[np.ndarray], pos: list[np.ndarray],
              reasons: list[pa.Array]) -> pa.Table:
    if not rows:
        return FINDINGS_SCHEMA.empty_table()
    all_rows = np.concatenate(rows)
    all_pos = np.concatenate(pos)
    order = np.lexsort((all_pos, all_rows))
    pos_sorted = pa.array(all_pos[order])
    names = pa.array([r.name for r in rules], pa.string()).take(pos_sorted)
    severities = pa.array([r.severity.value for r in rules], pa.string()).take(pos_sorted)
    reason = pa.concat_arrays(reasons).take(pa.array(order))
    return pa.Table.from_arrays(
        [pa.array(all_rows[order], pa.int64()), names, severities, reason],
        schema=FINDINGS_SCHEMA,
    )


# ---------------------------------------------------------------- reason text

NULL_TEXT = "NULL"


def text(column: pa.Array | pa.ChunkedArray, rows: np.ndarray, ctx: RuleContext,
         pii: Pii | None = None) -> pa.Array:
    """Display text of `column` at `rows`: times in the city's local time, to the second;
    personal data masked."""
    arr = checks.as_array(column).take(pa.array(rows, pa.int64()))
    if pa.types.is_timestamp(arr.type):
        # A time without a zone is UTC, as conform writes them.
        utc = arr if arr.type.tz is not None else arr.cast(pa.timestamp(arr.type.unit, tz="UTC"))
        local = utc.cast(pa.timestamp("s", tz=ctx.timezone), safe=False)
        out = pc.strftime(local, format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_floating(arr.type):
        out = pc.round(arr, 6).cast(pa.string())
    else:
        out = arr.cast(pa.string())
    if pii is not None:
        out = MASKS[pii](out)
    return pc.fill_null(out, NULL_TEXT)


def render(template: str, n: int, values: Mapping[str, Any]) -> pa.Array:
    """Fill a reason template for n rows; placeholders are strings or Arrow string arrays."""
    parts: list[Any] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(literal)
        if name is not None:
            value = values.get(name, "?")
            parts.append(value if isinstance(value, str) else value.cast(pa.string()))
    if not any(isinstance(p, pa.Array) for p in parts):
        return pa.array(["".join(parts)] * n, pa.string())
    args = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, "")
