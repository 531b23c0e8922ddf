"""Every row of a batch gets an outcome: loaded (perhaps with findings) or quarantined.

The rules (quality.rules) give per-row failures; this adds the values the
conform step could not read, and decides per row: any blocking failure sends the
record to quarantine with its first blocking rule as the headline and every
failed rule listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality.rules import Evaluation, RuleContext, RuleResult, Severity, evaluate
from schemas.model import Entity

PARSE_RULE = "value_parseable"


@dataclass
class Validated:
    table: pa.Table
    quarantine: np.ndarray  # bool per row
    # One row per (row, failed rule): row_index, rule, severity, reason.
    findings: pa.Table
    results: list[RuleResult]
    evaluation: Evaluation

    def headline(self) -> tuple[list[str], list[str]]:
        """Per quarantined row, in row order: its first blocking rule and reason (an
        unreadable value first, then the rules in evaluation order)."""
        blocking = self.findings.filter(pc.equal(self.findings["severity"],
                                                 Severity.BLOCKING.value))
        rows, first = np.unique(blocking["row_index"].to_numpy(), return_index=True)
        # Every quarantined row has a blocking finding, and only those rows do.
        take = pa.array(first[np.searchsorted(rows, np.flatnonzero(self.quarantine))])
        return blocking["rule"].take(take).to_pylist(), blocking["reason"].take(take).to_pylist()


def _unparseable_findings(unparseable: Mapping[str, np.ndarray],
                          raw: pa.Table | None) -> tuple[list[pa.Table], np.ndarray | None]:
    tables, any_bad = [], None
    for name, mask in unparseable.items():
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        values = (raw[name].take(pa.array(rows)).to_pylist() if raw is not None
                  else [None] * len(rows))
        tables.append(pa.table({
            "row_index": pa.array(rows, pa.int64()),
            "rule": pa.array([PARSE_RULE] * len(rows), pa.string()),
            "severity": pa.array([Severity.BLOCKING.value] * len(rows), pa.string()),
            "reason": pa.array([f"无法解析的值 / unreadable {name}: {v!r}" for v in values],
                               pa.string()),
        }))
        any_bad = mask.copy() if any_bad is None else any_bad | mask
    return tables, any_bad


def validate(entity: Entity, table: pa.Table, ctx: RuleContext,
             unparseable: Mapping[str, np.ndarray] | None = None,
             raw: pa.Table | None = None) -> Validated:
    evaluation = evaluate(entity, table, ctx)
    quarantine = np.asarray(evaluation.blocking_failed, dtype=bool).copy()
    parse_tables, parse_bad = _unparseable_findings(unparseable or {}, raw)
    results = list(evaluation.results)
    if unparseable is not None:
        failed = int(parse_bad.sum()) if parse_bad is not None else 0
        results.append(RuleResult(PARSE_RULE, Severity.BLOCKING, "有效性", table.num_rows, failed))
    if parse_bad is not None:
        quarantine |= parse_bad
    findings = pa.concat_tables(
        parse_tables + [evaluation.findings.select(["row_index", "rule", "severity", "reason"])
                        .cast(_FINDING_SCHEMA)]
    ) if parse_tables else evaluation.findings.select(
        ["row_index", "rule", "severity", "reason"]).cast(_FINDING_SCHEMA)
    return Validated(table, quarantine, findings, results, evaluation)


_FINDING_SCHEMA = pa.schema([("row_index", pa.int64()), ("rule", pa.string()),
                             ("severity", pa.string()), ("reason", pa.string())])
