"""Great Expectations suites derived from the unified model.

`build_suite(entity)` turns every rule `quality.rules` applies to an entity into one
expectation (required fields, source key, field rules, row rules), with the rule's
name, severity and dimension in `meta`. The suite is the documented, recorded
definition of what the hub checks; reference data that changes from run to run
(division and grid code tables, the city extent, "now") enters as suite parameters
(`$PARAMETER`), so the suite itself only depends on the model.

`run_suite(...)` validates a batch with GX 1.x (pandas DataFrame over the batch's
Arrow buffers, result format BASIC) and returns a `GxReport` for archiving. The
custom expectations below compute their conditions with the same vectorised
functions as `quality.rules.evaluate` (`quality.checks`), so GX's unexpected counts
equal the rules' failed counts; row outcomes and quarantine reasons come from
`evaluate`, never from GX (asking GX for failing row indices is far too slow).

Costs, measured with quality/profile_rules.py on the 2-core machine: about 0.3 s
per run whatever the batch size (GX's own bookkeeping for ~20 expectations) plus
the checks themselves, ~0.75 s in all for a million event rows. What had to be
avoided to get there: the pandas engine's md5 fingerprint of every DataFrame under
1 GB (16 s per million rows: switched off around the run), reference tables as
expectation arguments (GX copies kwargs hundreds of times per run: they travel as
content digests instead, see `ReferenceSets`), GX's null and row filters (they copy
the whole DataFrame per expectation: the checks skip missing values themselves),
and result format SUMMARY (its example row indices filter the whole DataFrame per
expectation again).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.result_format import ResultFormat
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.execution_engine import pandas_execution_engine as _pandas_engine
from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
    ExpectColumnValuesToNotBeNull,
)
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    Expectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

from base.pii import MASKS
from quality import checks
from quality.rules import (
    BOUNDARY_TOLERANCE_DEG,
    CLOSED_STATUS,
    GRID_AREA_M2,
    NEUTRAL_SATISFACTION,
    AppliedRule,
    Evaluation,
    RuleContext,
    Severity,
    applied_rules,
    hub_vocabulary,
)
from schemas.model import Entity, Pii

SUITE_PREFIX = "hub"
# BASIC: counts and up to 20 example values. SUMMARY would add value counts and
# example row indices, and computing those filters the whole DataFrame per
# expectation (0.4 s per million rows for the event suite); rows come from
# quality.rules anyway.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": ResultFormat.BASIC.value,
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
}

# ---------------------------------------------------------------- suite parameters
# Reference tables (tens of thousands of codes) are not passed to GX by value: GX
# copies and serialises expectation kwargs many times per run. They are registered
# here under a content digest, and the suite parameter carries only the digest, so
# the recorded result names exactly which version of a table was used.


class ReferenceSets:
    """Content-addressed code sets the expectations refer to by digest."""

    def __init__(self, capacity: int = 64) -> None:
        self._sets: dict[str, pa.Array] = {}
        self._digests: dict[frozenset[str], str] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def put(self, values: Collection[str]) -> str:
        key = values if isinstance(values, frozenset) else frozenset(values)
        with self._lock:
            ref = self._digests.get(key)
            if ref is not None and ref in self._sets:
                return ref
        ordered = sorted(key)
        digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:16]
        ref = f"sha256:{digest}:{len(ordered)}"
        with self._lock:
            if len(self._sets) >= self._capacity:
                self._sets.clear()
                self._digests.clear()
            self._sets[ref] = pa.array(ordered, pa.string())
            self._digests[key] = ref
        return ref

    def get(self, ref: str | None) -> pa.Array | None:
        return None if ref is None else self.require(ref)

    def require(self, ref: str) -> pa.Array:
        with self._lock:
            try:
                return self._sets[ref]
            except KeyError:
                raise KeyError(f"code set {ref} is not registered in this process; "
                               "run the suite through quality.gx_suite.run_suite") from None


REFERENCE_SETS = ReferenceSets()


def suite_parameters(ctx: RuleContext) -> dict[str, Any]:
    """Values of the suite's `$PARAMETER`s for one run (code sets by digest)."""
    put = REFERENCE_SETS.put
    return {
        "today": ctx.today.isoformat(),
        "latest_allowed": ctx.latest_allowed.isoformat(),
        "extent": list(ctx.extent),
        "division_codes": put(ctx.division_codes),
        "retired_division_codes": put(ctx.retired_divisions.keys()),
        "street_codes": put(ctx.street_codes),
        "grid_codes": None if ctx.grid_codes is None else put(ctx.grid_codes),
        "conflicting_keys": put(ctx.conflicting_keys),
    }


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _column(frame: pd.DataFrame, i: int) -> Any:
    return frame.iloc[:, i]


def _meets(codes: np.ndarray) -> np.ndarray:
    """A GX condition: True where the value meets the expectation (passed or skipped)."""
    return codes <= checks.PASSED


# ---------------------------------------------------------------- metrics (pandas)
# Column map metrics set filter_column_isnull = False: the checks skip missing values
# themselves, and GX's own null filter copies the whole DataFrame per expectation.


class ColumnValuesPresent(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_present"
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> np.ndarray:
        return _meets(checks.required(column))


class ColumnValuesUniqueKey(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_unique_key"
    condition_value_keys = ("conflicting_keys",)
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, conflicting_keys: str | None = None,
                **kwargs: Any) -> np.ndarray:
        return _meets(checks.unique_keys(column, REFERENCE_SETS.get(conflicting_keys)))


class ColumnValuesCitizenId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_citizen_id"
    condition_value_keys = ("today",)
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, today: str, **kwargs: Any) -> np.ndarray:
        from datetime import date

        return _meets(checks.citizen_id(column, date.fromisoformat(today)))


class ColumnValuesUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_uscc"
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> np.ndarray:
        return _meets(checks.uscc(column))


class ColumnValuesPhone(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_phone"
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> np.ndarray:
        return _meets(checks.phone(column))


class ColumnValuesKnownCode(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_known_code"
    condition_value_keys = ("codes", "retired_codes")
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, codes: str | None, retired_codes: str | None = None,
                **kwargs: Any) -> np.ndarray:
        known, retired = REFERENCE_SETS.get(codes), REFERENCE_SETS.get(retired_codes)
        return _meets(checks.known_code(column, known, retired))


class ColumnValuesMapped(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_mapped"
    condition_value_keys = ("value_set",)
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, value_set: Sequence[str], **kwargs: Any) -> np.ndarray:
        return _meets(checks.mapped(column, checks.as_value_set(value_set)))


class CoordinatesInExtent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_coordinates_in_extent"
    condition_value_keys = ("extent",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, extent: Sequence[float],
                **kwargs: Any) -> np.ndarray:
        return _meets(checks.coordinates(_column(column_list, 0), _column(column_list, 1),
                                         extent))


class LocatedInGrid(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_located_in_grid"
    condition_value_keys = ("extent", "grid_codes")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, extent: Sequence[float],
                grid_codes: str | None, **kwargs: Any) -> np.ndarray:
        return _meets(checks.located_in_grid(_column(column_list, 0), _column(column_list, 1),
                                             _column(column_list, 2), extent,
                                             grid_codes is not None))


class TimestampsNotInFuture(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_not_in_future"
    condition_value_keys = ("latest_allowed",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, latest_allowed: str,
                **kwargs: Any) -> np.ndarray:
        from datetime import datetime

        cols = [_column(column_list, i) for i in range(column_list.shape[1])]
        return _meets(checks.not_after(cols, datetime.fromisoformat(latest_allowed)))


class TimestampsInOrder(MulticolumnMapMetricProvider):
    """column_list: the lifecycle times, then the column listing the derived ones.
    `times` "sent": the sent times in order (derived ones skipped); "derived": the
    derived ones in order with the rest, where the sent ones are."""

    condition_metric_name = "multicolumn_values.hub_in_order"
    condition_value_keys = ("times",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, times: str = "sent", **kwargs: Any) -> np.ndarray:
        cols = [_column(column_list, i) for i in range(column_list.shape[1])]
        *steps, derived_column = cols
        derived = checks.listed(derived_column, list(column_list.columns[:-1]))
        if times == "derived":
            return _meets(checks.derived_in_order(steps, derived))
        return _meets(checks.in_order(steps, derived))


class TimestampNotBefore(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_not_before"

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return _meets(checks.not_before(_column(column_list, 0), _column(column_list, 1)))


class ValueOnlyWhenStatus(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_only_when_status"
    condition_value_keys = ("neutral_values", "required_status")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, neutral_values: Sequence[str],
                required_status: str, **kwargs: Any) -> np.ndarray:
        return _meets(checks.only_when(_column(column_list, 0), _column(column_list, 1),
                                       neutral_values, required_status))


class UnitGridCodes(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_unit_grid_code"

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return _meets(checks.unit_grid_code(_column(column_list, 0), _column(column_list, 1)))


class KnownDivisionCodes(MulticolumnMapMetricProvider):
    """column_list: the (folded) division code, then the code as the platform sent it."""

    condition_metric_name = "multicolumn_values.hub_known_division"
    condition_value_keys = ("codes", "retired_codes")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, codes: str | None,
                retired_codes: str | None = None, **kwargs: Any) -> np.ndarray:
        known, retired = REFERENCE_SETS.get(codes), REFERENCE_SETS.get(retired_codes)
        return _meets(checks.known_division(_column(column_list, 0), _column(column_list, 1),
                                            known, retired))


class ColumnValuesBoundary(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_boundary"
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> np.ndarray:
        return _meets(checks.boundary(column))


class ColumnValuesBoundaryInExtent(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_boundary_in_extent"
    condition_value_keys = ("extent", "tolerance")
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, extent: Sequence[float], tolerance: float = 0.0,
                **kwargs: Any) -> np.ndarray:
        return _meets(checks.boundary_in_extent(column, extent, tolerance))


class ColumnValuesBoundaryArea(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_boundary_area"
    condition_value_keys = ("min_m2", "max_m2")
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, min_m2: float, max_m2: float,
                **kwargs: Any) -> np.ndarray:
        return _meets(checks.boundary_area(column, min_m2, max_m2))


class ThingCodes(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_thing_code"
    condition_value_keys = ("division_codes", "retired_codes")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, division_codes: str, retired_codes: str,
                **kwargs: Any) -> np.ndarray:
        known = pa.concat_arrays([REFERENCE_SETS.require(division_codes),
                                  REFERENCE_SETS.require(retired_codes)])
        return _meets(checks.thing_code(_column(column_list, 0), _column(column_list, 1), known))


# ---------------------------------------------------------------- expectations

# A code set digest from `suite_parameters`, or the `$PARAMETER` reference to one.
CodeSetRef = str | dict | None


_MASKS: Mapping[Pii, Callable[[Any], pa.Array]] = MASKS


class _MasksPersonalData:
    """Masks the unexpected values GX puts in its results (they are personal data)."""

    personal_data: ClassVar[Pii]

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> Any:
        out = super()._validate(metrics, runtime_configuration, execution_engine)  # type: ignore[misc]
        mask = _MASKS[self.personal_data]
        result = out.get("result", {}) if isinstance(out, dict) else {}
        for key in ("partial_unexpected_list", "unexpected_list"):
            if result.get(key):
                result[key] = mask(pa.array(result[key], pa.string())).to_pylist()
        counts = result.get("partial_unexpected_counts")
        if counts:
            masked = mask(pa.array([c["value"] for c in counts], pa.string()))
            for c, m in zip(counts, masked.to_pylist(), strict=True):
                c["value"] = m
        return out


class ExpectColumnValuesToBePresent(ExpectColumnValuesToNotBeNull):
    """Null, empty and whitespace-only values are all unexpected (a required field)."""

    map_metric = "column_values.hub_present"


class ExpectColumnValuesToBeUniqueSourceKeys(ColumnMapExpectation):
    """A source key holds one record per batch: every row of a key that occurs more than
    once is unexpected (all of them), and so is every row of a key in
    `conflicting_keys` (a code set digest: keys the whole snapshot holds with different
    records)."""

    conflicting_keys: CodeSetRef = None
    map_metric = "column_values.hub_unique_key"
    success_keys = ("mostly", "conflicting_keys")


class ExpectColumnValuesToBeValidCitizenIdNumbers(_MasksPersonalData, ColumnMapExpectation):
    """GB 11643 citizen ID: 18 characters, birth date between 1900 and `today`, ISO 7064
    MOD 11-2 check character. Unexpected values are reported masked."""

    today: str | dict
    map_metric = "column_values.hub_citizen_id"
    success_keys = ("mostly", "today")
    personal_data = Pii.ID_NUMBER


class ExpectColumnValuesToBeValidUsccs(ColumnMapExpectation):
    """GB 32100 unified social credit code with its mod-31 check character."""

    map_metric = "column_values.hub_uscc"


class ExpectColumnValuesToBeValidPhoneNumbers(_MasksPersonalData, ColumnMapExpectation):
    """Mainland mobile or landline number, digits only. Unexpected values are masked."""

    map_metric = "column_values.hub_phone"
    personal_data = Pii.PHONE


class ExpectColumnValuesToBeKnownCodes(ColumnMapExpectation):
    """Codes in a reference table (divisions, streets, grids), given as a code set
    digest. `codes` None means the table is not loaded and nothing is evaluated;
    `retired_codes` are reported as retired by quality.rules but are unexpected here
    all the same."""

    codes: CodeSetRef
    retired_codes: CodeSetRef = None
    map_metric = "column_values.hub_known_code"
    success_keys = ("mostly", "codes", "retired_codes")


class ExpectColumnValuesToBeMappedHubValues(ColumnMapExpectation):
    """A hub vocabulary value; 'unmapped' (no mapping covered the source value) is unexpected."""

    value_set: list
    map_metric = "column_values.hub_mapped"
    success_keys = ("mostly", "value_set")


class _HubMulticolumn(MulticolumnMapExpectation):
    # The checks skip rows with nothing to check themselves; GX's own row filter
    # (dropna) would copy the whole DataFrame per expectation.
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"


class ExpectCoordinatesToBeInExtent(_HubMulticolumn):
    """(longitude, latitude) inside (min_lon, min_lat, max_lon, max_lat); both missing is
    fine, (0, 0), swapped pairs and a single missing coordinate are unexpected."""

    extent: list | dict
    map_metric = "multicolumn_values.hub_coordinates_in_extent"
    success_keys = ("mostly", "extent")


class ExpectRecordsToLieInAGrid(_HubMulticolumn):
    """A record with coordinates in the city has a grid (none = outside every grid)."""

    extent: list | dict
    grid_codes: CodeSetRef
    map_metric = "multicolumn_values.hub_located_in_grid"
    success_keys = ("mostly", "extent", "grid_codes")


class ExpectTimestampsToNotBeInTheFuture(_HubMulticolumn):
    """No time later than `latest_allowed` (now plus a small clock-skew tolerance)."""

    latest_allowed: str | dict
    map_metric = "multicolumn_values.hub_not_in_future"
    success_keys = ("mostly", "latest_allowed")


class ExpectTimestampsToBeInLifecycleOrder(_HubMulticolumn):
    """The times of the listed steps never go backwards; missing steps are skipped. The
    last column lists, per row, the times the hub derived: `times` "sent" judges the
    others only, "derived" the derived ones against the rest (rows whose sent times are
    out of order are left to "sent")."""

    times: Literal["sent", "derived"] = "sent"
    map_metric = "multicolumn_values.hub_in_order"
    success_keys = ("mostly", "times")


class ExpectTimestampToNotPrecedeOther(_HubMulticolumn):
    """column_list[0] >= column_list[1] where both are given (deadline after acceptance)."""

    map_metric = "multicolumn_values.hub_not_before"


class ExpectValueOnlyWithStatus(_HubMulticolumn):
    """column_list[0] holds a value other than `neutral_values` only when column_list[1]
    equals `required_status` (satisfaction only on closed events)."""

    neutral_values: list
    required_status: str
    map_metric = "multicolumn_values.hub_only_when_status"
    success_keys = ("mostly", "neutral_values", "required_status")


class ExpectUnitGridCodesToBeWellFormed(_HubMulticolumn):
    """Grid codes of type 单元 are 15 digits (14 in older systems)."""

    map_metric = "multicolumn_values.hub_unit_grid_code"


class ExpectDivisionCodesToBeKnown(_HubMulticolumn):
    """column_list [division_code, source_division_code]: the code as the platform sent it
    (source_division_code where given) is in the division table; retired codes are
    reported as retired by quality.rules but are unexpected here all the same."""

    codes: CodeSetRef
    retired_codes: CodeSetRef = None
    map_metric = "multicolumn_values.hub_known_division"
    success_keys = ("mostly", "codes", "retired_codes")


class ExpectBoundariesToBeValidPolygons(ColumnMapExpectation):
    """WKT of a non-empty, valid Polygon or MultiPolygon (missing boundaries pass)."""

    map_metric = "column_values.hub_boundary"


class ExpectBoundariesToBeInExtent(ColumnMapExpectation):
    """The boundary's bounding box lies in `extent` widened by `tolerance` degrees."""

    extent: list | dict
    tolerance: float = 0.0
    map_metric = "column_values.hub_boundary_in_extent"
    success_keys = ("mostly", "extent", "tolerance")


class ExpectBoundaryAreasToBeBetween(ColumnMapExpectation):
    """The area a valid boundary encloses lies in [min_m2, max_m2] square metres."""

    min_m2: float
    max_m2: float
    map_metric = "column_values.hub_boundary_area"
    success_keys = ("mostly", "min_m2", "max_m2")


class ExpectThingCodesToFollowTheirStandard(_HubMulticolumn):
    """Component codes (GB/T 30428.2 / GB/T 47678: 16/17 digits under a division code)
    and GB/T 28181 device ids (20 digits, type 131/132 camera, 118 NVR) by thing type."""

    division_codes: CodeSetRef
    retired_codes: CodeSetRef
    map_metric = "multicolumn_values.hub_thing_code"
    success_keys = ("mostly", "division_codes", "retired_codes")


# ---------------------------------------------------------------- rule → expectation

Builder = Callable[[AppliedRule], Expectation]


def _col(rule: AppliedRule) -> str:
    return rule.columns[0]


def _cols(rule: AppliedRule) -> list[str]:
    return list(rule.columns)


BUILDERS: Mapping[str, Builder] = {
    "required_present": lambda r: ExpectColumnValuesToBePresent(column=_col(r)),
    "source_key_unique": lambda r: ExpectColumnValuesToBeUniqueSourceKeys(
        column=_col(r), conflicting_keys=_param("conflicting_keys")),
    "citizen_id_valid": lambda r: ExpectColumnValuesToBeValidCitizenIdNumbers(
        column=_col(r), today=_param("today")),
    "uscc_valid": lambda r: ExpectColumnValuesToBeValidUsccs(column=_col(r)),
    "phone_format": lambda r: ExpectColumnValuesToBeValidPhoneNumbers(column=_col(r)),
    "division_code_known": lambda r: ExpectDivisionCodesToBeKnown(
        column_list=_cols(r), codes=_param("division_codes"),
        retired_codes=_param("retired_division_codes")),
    "street_code_known": lambda r: ExpectColumnValuesToBeKnownCodes(
        column=_col(r), codes=_param("street_codes")),
    "grid_code_known": lambda r: ExpectColumnValuesToBeKnownCodes(
        column=_col(r), codes=_param("grid_codes")),
    "coordinates_in_city": lambda r: ExpectCoordinatesToBeInExtent(
        column_list=_cols(r), extent=_param("extent")),
    "not_in_future": lambda r: ExpectTimestampsToNotBeInTheFuture(
        column_list=_cols(r), latest_allowed=_param("latest_allowed")),
    "category_mapped": lambda r: ExpectColumnValuesToBeMappedHubValues(
        column=_col(r), value_set=list(hub_vocabulary()["category_code"])),
    "status_mapped": lambda r: ExpectColumnValuesToBeMappedHubValues(
        column=_col(r), value_set=list(hub_vocabulary()["status"])),
    "unit_grid_code_format": lambda r: ExpectUnitGridCodesToBeWellFormed(column_list=_cols(r)),
    "thing_code_format": lambda r: ExpectThingCodesToFollowTheirStandard(
        column_list=_cols(r), division_codes=_param("division_codes"),
        retired_codes=_param("retired_division_codes")),
    "grid_assigned": lambda r: ExpectRecordsToLieInAGrid(
        column_list=_cols(r), extent=_param("extent"), grid_codes=_param("grid_codes")),
    "lifecycle_order": lambda r: ExpectTimestampsToBeInLifecycleOrder(
        column_list=_cols(r), times="sent"),
    "derived_time_order": lambda r: ExpectTimestampsToBeInLifecycleOrder(
        column_list=_cols(r), times="derived"),
    "deadline_after_accept": lambda r: ExpectTimestampToNotPrecedeOther(column_list=_cols(r)),
    "satisfaction_only_if_evaluated": lambda r: ExpectValueOnlyWithStatus(
        column_list=_cols(r), neutral_values=list(NEUTRAL_SATISFACTION),
        required_status=CLOSED_STATUS),
    "boundary_valid": lambda r: ExpectBoundariesToBeValidPolygons(column=_col(r)),
    "boundary_in_city": lambda r: ExpectBoundariesToBeInExtent(
        column=_col(r), extent=_param("extent"), tolerance=BOUNDARY_TOLERANCE_DEG),
    "boundary_area_plausible": lambda r: ExpectBoundaryAreasToBeBetween(
        column=_col(r), min_m2=GRID_AREA_M2[0], max_m2=GRID_AREA_M2[1]),
}

_SEVERITY = {Severity.BLOCKING: FailureSeverity.CRITICAL, Severity.WARNING: FailureSeverity.WARNING}


def expectation_for(rule: AppliedRule) -> Expectation:
    d = rule.definition
    exp = BUILDERS[rule.base](rule)
    exp.meta = {
        "rule": rule.name,
        "severity": d.severity.value,
        "dimension": d.dimension,
        "columns": list(rule.columns),
        "description": {"zh": d.description_zh, "en": d.description_en},
    }
    exp.severity = _SEVERITY[d.severity]
    exp.description = f"{d.description_zh} / {d.description_en}"
    return exp


def suite_name(entity: Entity) -> str:
    return f"{SUITE_PREFIX}.{entity.name}"


def build_suite(entity: Entity) -> gx.ExpectationSuite:
    """The entity's suite: one expectation per applied rule, in evaluation order."""
    return gx.ExpectationSuite(
        name=suite_name(entity),
        expectations=[expectation_for(rule) for rule in applied_rules(entity)],
        meta={"table": entity.table, "grain": entity.grain,
              "derived_from": "schemas.model + quality/rules.yaml"},
    )


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class ExpectationOutcome:
    rule: str
    severity: str
    expectation_type: str
    success: bool
    element_count: int
    unexpected_count: int
    error: str | None = None  # the expectation raised instead of validating


@dataclass
class GxReport:
    suite_name: str
    success: bool  # every expectation met, warnings included
    rows: int  # rows GX validated
    batch_rows: int  # rows in the batch
    outcomes: list[ExpectationOutcome]
    result: ExpectationSuiteValidationResult = field(repr=False)
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)
    # rule -> (GX unexpected, rules failed) where they differ; checked on full runs only
    mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return self.rows < self.batch_rows

    @property
    def blocking_success(self) -> bool:
        """Every expectation of a blocking rule met."""
        return all(o.success for o in self.outcomes if o.severity == Severity.BLOCKING.value)

    def unexpected_counts(self) -> dict[str, int]:
        return {o.rule: o.unexpected_count for o in self.outcomes}

    def to_json_dict(self) -> dict[str, Any]:
        """The validation result for archiving (GX's JSON plus the hub's summary)."""
        doc = self.result.to_json_dict()
        doc["hub"] = {
            "suite_name": self.suite_name,
            "rows": self.rows,
            "batch_rows": self.batch_rows,
            "sampled": self.sampled,
            "blocking_success": self.blocking_success,
            "parameters": self.parameters,
            "mismatches": {k: list(v) for k, v in self.mismatches.items()},
        }
        return doc


class _Runner:
    """One ephemeral GX context per process, with a validation definition per entity."""

    def __init__(self) -> None:
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        source = self.context.data_sources.add_pandas(SUITE_PREFIX)
        self.asset = source.add_dataframe_asset("batch")
        self.batch = self.asset.add_batch_definition_whole_dataframe("whole batch")
        self.definitions: dict[str, gx.ValidationDefinition] = {}
        self.lock = threading.Lock()

    def forget_results(self) -> None:
        """The ephemeral context keeps every result in memory; the caller archives them."""
        store = self.context.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)

    def definition(self, entity: Entity) -> gx.ValidationDefinition:
        name = suite_name(entity)
        if name not in self.definitions:
            suite = self.context.suites.add(build_suite(entity))
            self.definitions[name] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=self.batch, suite=suite)
            )
        return self.definitions[name]


_RUNNER: _Runner | None = None
_RUNNER_LOCK = threading.Lock()


def _runner() -> _Runner:
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = _Runner()
        return _RUNNER


@contextmanager
def _without_batch_fingerprint() -> Iterator[None]:
    """GX's pandas engine md5-hashes every DataFrame under 1 GB to fingerprint the batch
    (16 s for a million rows). The hub identifies batches by run and source itself."""
    saved = _pandas_engine.HASH_THRESHOLD
    _pandas_engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        _pandas_engine.HASH_THRESHOLD = saved


def sample(table: pa.Table, rows: int, blocks: int = 20) -> pa.Table:
    """A deterministic sample of about `rows` rows: `blocks` evenly spaced runs of
    consecutive rows (slices, so no copy; batch order kept). A key repeated in the batch
    but not within the sample passes there: sampled counts are the sample's own."""
    n = table.num_rows
    if n <= rows:
        return table
    size = max(rows // blocks, 1)
    starts = np.linspace(0, n - size, num=min(blocks, n // size)).astype(np.int64)
    return pa.concat_tables([table.slice(int(s), size) for s in starts])


def to_frame(table: pa.Table) -> pd.DataFrame:
    """The batch as pandas, columns backed by the same Arrow buffers (no copy)."""
    return table.combine_chunks().to_pandas(types_mapper=pd.ArrowDtype)


# GX costs ~0.3 s per run whatever the batch size, plus about as much as the checks
# themselves (~0.45 s per million event rows): call it once per run and entity
# rather than per connector page. `max_rows` bounds it for large backfills.
def run_suite(
    entity: Entity,
    table: pa.Table,
    ctx: RuleContext,
    evaluation: Evaluation | None = None,
    *,
    max_rows: int | None = None,
) -> GxReport:
    """Validate a conformed batch with the entity's suite through GX.

    The whole batch by default; with `max_rows`, a larger batch is validated on a
    deterministic sample of that size (see `sample`). Row outcomes never come from
    GX. On a full run the unexpected counts are compared with `evaluation`'s failed
    counts; differences land in `GxReport.mismatches` (expected empty: both use
    quality.checks).
    """
    batch = table if max_rows is None else sample(table, max_rows)
    frame = to_frame(batch)
    runner = _runner()
    with runner.lock, _without_batch_fingerprint():
        params = suite_parameters(ctx)
        result = runner.definition(entity).run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=params,
            result_format=dict(RESULT_FORMAT),
        )
        runner.forget_results()
    outcomes = []
    for res in result.results:
        cfg = res.expectation_config
        if cfg is None:  # pragma: no cover - GX always attaches it
            continue
        meta = cfg.meta or {}
        info = res.exception_info or {}
        error = info.get("exception_message") if info.get("raised_exception") else None
        outcomes.append(ExpectationOutcome(
            rule=meta.get("rule", cfg.type),
            severity=meta.get("severity", ""),
            expectation_type=cfg.type,
            success=bool(res.success),
            element_count=int(res.result.get("element_count") or 0),
            unexpected_count=int(res.result.get("unexpected_count") or 0),
            error=error,
        ))
    mismatches: dict[str, tuple[int, int]] = {}
    if evaluation is not None and batch is table:
        failed = {r.rule: r.failed for r in evaluation.results}
        for o in outcomes:
            if o.rule in failed and failed[o.rule] != o.unexpected_count:
                mismatches[o.rule] = (o.unexpected_count, failed[o.rule])
    return GxReport(
        suite_name=suite_name(entity),
        success=bool(result.success),
        rows=batch.num_rows,
        batch_rows=table.num_rows,
        outcomes=outcomes,
        result=result,
        parameters=params,
        mismatches=mismatches,
    )
