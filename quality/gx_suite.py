"""The Great Expectations record of a batch, built from the rules.

`build_suite(entity)` turns every rule `quality.rules` applies to an entity into one
expectation of a single kind, `ExpectRowsToPassHubRule`, parameterised by the rule:
its name, the columns it reads and the values of the run it depends on (suite
parameters: today, the code tables by digest, ...), with severity, dimension and
description from quality/rules.yaml in `meta`. Nothing here is written per rule: a
rule registered in `quality.rules.RULES` is in the suite of every entity it applies to.

`run_suite(...)` validates a batch through GX 1.x. GX does not judge the rows a second
time: the DataFrame it validates holds one column per applied rule, named after it,
holding the reason a row failed the rule (as `quality.rules.evaluate` rendered it,
personal data masked) and null where the row passed or was not judged. Every
expectation expects its column to be null, so GX's unexpected counts are the
vectorised checks' failed counts and its example values are the hub's own reasons.

Costs, measured with tests/support/profile_rules.py on the 2-core machine: ~0.17 s a
call whatever the batch size (a fresh ephemeral GX context and GX's bookkeeping for
~20 expectations), plus ~0.2 s per million rows (the outcome columns, GX's md5
fingerprint of the DataFrame: categorical columns keep it cheap); 0.35 s in all for a
million event rows.
"""

# ruff: noqa: E402 - GX's loggers are quietened before GX is imported (see below)

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# GX logs a few hundred INFO lines registering its own classes when it is imported
# and when a context is built ("Skipping registering function ..."), drowning a
# task's log; its warnings and errors still come through. A level someone set on
# purpose is left alone.
_GX_LOG = logging.getLogger("great_expectations")
if _GX_LOG.level == logging.NOTSET:
    _GX_LOG.setLevel(logging.WARNING)

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.result_format import ResultFormat
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.core.expect_column_values_to_be_null import (
    ExpectColumnValuesToBeNull,
)
from great_expectations.expectations.metadata_types import FailureSeverity

from quality import checks
from quality.rules import (
    AppliedRule,
    Evaluation,
    RuleContext,
    Severity,
    applied_rules,
    evaluate,
)
from schemas.model import Entity

SUITE_PREFIX = "hub"
# BASIC: counts and up to 20 example values (here: reasons). SUMMARY would add value
# counts and example row indices; rows come from quality.rules anyway.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": ResultFormat.BASIC.value,
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
}
_SEVERITY = {Severity.BLOCKING: FailureSeverity.CRITICAL, Severity.WARNING: FailureSeverity.WARNING}

# A value of the run (quality.rules.CONTEXT), or in the suite its `$PARAMETER` reference.
RunValue = str | list | dict | None


class ExpectRowsToPassHubRule(ExpectColumnValuesToBeNull):
    """Every row passes a rule of the hub (quality/rules.yaml, checked by quality.rules).

    `column` is the rule's outcome column in the validated batch: the reason a row
    failed the rule, null where it passed or the rule had nothing to judge. `rule` is
    the rule's name in rules.yaml, `reads` the columns of the entity it reads, and the
    values of the run it depends on are given by name (`today`, `street_codes`...; code
    tables by content digest), as suite parameters.
    """

    rule: str
    reads: list[str]
    today: RunValue = None
    latest_allowed: RunValue = None
    extent: RunValue = None
    division_codes: RunValue = None
    retired_division_codes: RunValue = None
    street_codes: RunValue = None
    grid_codes: RunValue = None
    conflicting_keys: RunValue = None


def expectation_for(rule: AppliedRule) -> ExpectRowsToPassHubRule:
    d = rule.definition
    run_values: dict[str, Any] = {name: {"$PARAMETER": name} for name in rule.impl.context}
    exp = ExpectRowsToPassHubRule(column=rule.name, rule=rule.base, reads=list(rule.columns),
                                  **run_values)
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
              "derived_from": "schemas.model + quality/rules.yaml + quality.rules.RULES"},
    )


def suite_parameters(ctx: RuleContext) -> dict[str, Any]:
    """Values of the suite's `$PARAMETER`s for one run (code tables by digest)."""
    return dict(ctx.recorded)


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


def outcome_frame(rules: Sequence[AppliedRule], evaluation: Evaluation, rows: int
                  ) -> pd.DataFrame:
    """What GX validates: per applied rule, a column named after it with the reason each
    row failed it and null elsewhere. Categorical: the distinct reasons are few next to
    the rows, so the columns are small and quick for GX to fingerprint."""
    findings = evaluation.findings
    by_rule = checks.as_array(findings["rule"]).dictionary_encode()
    which = np.asarray(by_rule.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    position = {name: j for j, name in enumerate(by_rule.dictionary.to_pylist())}
    failed_rows = np.asarray(findings["row_index"].to_numpy(), dtype=np.int64)
    reasons = checks.as_array(findings["reason"])
    columns: dict[str, pd.Categorical] = {}
    for rule in rules:  # a column per rule, not per row
        sel = np.flatnonzero(which == position.get(rule.name, -1))
        distinct = reasons.take(pa.array(sel, pa.int64())).dictionary_encode()
        size = len(distinct.dictionary)
        codes = np.full(rows, -1, dtype=np.int8 if size < 127 else np.int32)
        codes[failed_rows[sel]] = distinct.indices.to_numpy(zero_copy_only=False)
        columns[rule.name] = pd.Categorical.from_codes(
            codes, categories=pd.Index(distinct.dictionary.to_pylist(), dtype=object))
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


# GX keeps its current data context process-wide (the "project"): one validation at a
# time, each in a context of its own that is dropped afterwards.
_GX_LOCK = threading.Lock()


def _validate(entity: Entity, frame: pd.DataFrame, parameters: dict[str, Any]
              ) -> ExpectationSuiteValidationResult:
    with _GX_LOCK:
        context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ))
        batch = (context.data_sources.add_pandas(SUITE_PREFIX).add_dataframe_asset("batch")
                 .add_batch_definition_whole_dataframe("whole batch"))
        suite = context.suites.add(build_suite(entity))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))
        return definition.run(batch_parameters={"dataframe": frame},
                              expectation_parameters=parameters,
                              result_format=dict(RESULT_FORMAT))


# Call it once per run and entity rather than per connector page (GX's bookkeeping
# is a fixed cost); `max_rows` bounds it for large backfills.
def run_suite(
    entity: Entity,
    table: pa.Table,
    ctx: RuleContext,
    evaluation: Evaluation | None = None,
    *,
    max_rows: int | None = None,
) -> GxReport:
    """Record a conformed batch's outcome through GX with the entity's suite.

    The whole batch by default, with `evaluation`'s findings when given; with
    `max_rows`, a larger batch is recorded on a deterministic sample of that size (see
    `sample`), evaluated on its own. Row outcomes never come from GX. On a full run the
    unexpected counts are compared with `evaluation`'s failed counts; differences land
    in `GxReport.mismatches` (expected empty).
    """
    batch = table if max_rows is None else sample(table, max_rows)
    judged = evaluation if evaluation is not None and batch is table \
        else evaluate(entity, batch, ctx)
    params = suite_parameters(ctx)
    result = _validate(entity, outcome_frame(applied_rules(entity), judged, batch.num_rows),
                       params)
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
