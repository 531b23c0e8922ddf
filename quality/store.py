"""Writing a batch's validation outcome: quarantined records, findings, rule counts.

Runs inside the batch's transaction, so the quarantine and the merge commit or
vanish together: a record is always either loaded or quarantined, never neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.types.json import Jsonb

from connectors.base import RowReject
from quality.gx_suite import run_suite
from quality.rules import SOURCE_KEY, RuleContext
from quality.validate import Validated
from schemas.model import Entity
from warehouse.loader import copy_arrow

GX_SAMPLE_ROWS = 200_000


def record(conn: psycopg.Connection, run_id: int, source: str, stream: str, entity: Entity,
           validated: Validated, payload: pa.Table | None, *, fixed_state: str = "superseded"
           ) -> None:
    """Store quarantine rows, warning findings and per-rule counts of one batch.

    `payload` is the platform's records row-aligned with the validated table (the
    original payload to quarantine); without it the conformed row is kept. Open
    entries whose record now loaded are resolved with `fixed_state`: 'superseded'
    when the platform sent a good version, 'replayed' when a replay loaded them.
    """
    _resolve_fixed(conn, run_id, source, entity, validated, fixed_state)
    _quarantine(conn, run_id, source, stream, entity, validated, payload)
    _findings(conn, run_id, source, entity, validated)
    _rule_results(conn, run_id, source, entity, validated)


def _quarantine(conn: psycopg.Connection, run_id: int, source: str, stream: str,
                entity: Entity, v: Validated, payload: pa.Table | None) -> None:
    rows = np.flatnonzero(v.quarantine)
    if len(rows) == 0:
        return
    take = pa.array(rows)
    original = (payload if payload is not None else v.table).take(take).to_pylist()
    rules, reasons = v.headline()
    by_row: dict[int, list[dict[str, str]]] = {}
    for i, rule, sev, reason in zip(*(v.findings[c].to_pylist() for c in
                                      ("row_index", "rule", "severity", "reason")), strict=True):
        by_row.setdefault(i, []).append({"rule": rule, "severity": sev, "reason": reason})
    table = pa.table({
        "source_system": pa.array([source] * len(rows), pa.string()),
        "stream": pa.array([stream] * len(rows), pa.string()),
        "source_id": v.table["source_id"].take(take),
        "entity": pa.array([entity.name] * len(rows), pa.string()),
        "run_id": pa.array([run_id] * len(rows), pa.int64()),
        "rule": pa.array(rules, pa.string()),
        "reason": pa.array(reasons, pa.string()),
        "failed_rules": pa.array([json.dumps(by_row.get(int(i), []), ensure_ascii=False)
                                  for i in rows], pa.string()),
        "payload": pa.array([json.dumps(r, ensure_ascii=False, default=str) for r in original],
                            pa.string()),
        "payload_kind": pa.array(["source" if payload is not None else "conformed"] * len(rows),
                                 pa.string()),
    })
    conn.execute("CREATE TEMP TABLE quarantine_stage (source_system text, stream text,"
                 " source_id text, entity text, run_id bigint, rule text, reason text,"
                 " failed_rules jsonb, payload jsonb, payload_kind text) ON COMMIT DROP")
    copy_arrow(conn, table, sql.Identifier("quarantine_stage"))
    conn.execute("ANALYZE quarantine_stage")
    # Seen again (overlap window, a rerun, a replay) exactly as it was: the open entry
    # stands, with the verdict of today's rules. Changed on the platform and still
    # bad: the new entry replaces it — unless both are records conflicting under one
    # key (they may arrive in different batches of one file): those stay side by side.
    conn.execute(
        "UPDATE quality.quarantine q SET rule = s.rule, reason = s.reason,"
        " failed_rules = s.failed_rules FROM quarantine_stage s WHERE q.state = 'open'"
        " AND q.source_system = s.source_system AND q.entity = s.entity"
        " AND q.source_id = s.source_id AND q.payload = s.payload"
    )
    conn.execute(
        "UPDATE quality.quarantine q SET state = 'superseded', resolved_run_id = s.run_id,"
        " resolved_at = now() FROM quarantine_stage s WHERE q.state = 'open'"
        " AND q.source_system = s.source_system AND q.entity = s.entity"
        " AND q.source_id = s.source_id AND q.payload <> s.payload"
        " AND NOT (q.rule = %(conflict)s AND s.rule = %(conflict)s)",
        {"conflict": SOURCE_KEY},
    )
    conn.execute(
        "INSERT INTO quality.quarantine (source_system, stream, source_id, entity, run_id, rule,"
        " reason, failed_rules, payload, payload_kind) SELECT source_system, stream, source_id,"
        " entity, run_id, rule, reason, failed_rules, payload, payload_kind"
        " FROM quarantine_stage s WHERE NOT EXISTS (SELECT 1 FROM"
        " quality.quarantine q WHERE q.state = 'open' AND q.source_system = s.source_system"
        " AND q.entity = s.entity AND q.source_id = s.source_id AND q.payload = s.payload)"
    )
    conn.execute("DROP TABLE quarantine_stage")


def _resolve_fixed(conn: psycopg.Connection, run_id: int, source: str, entity: Entity,
                   v: Validated, state: str) -> None:
    """Open entries whose record loaded in this batch (fixed on the platform) are closed.

    Open entries are few next to a batch, so they are read and matched here
    rather than joined against the core table.
    """
    open_ids = [r[0] for r in conn.execute(
        "SELECT source_id FROM quality.quarantine WHERE state = 'open'"
        " AND source_system = %s AND entity = %s", (source, entity.name))]
    if not open_ids:
        return
    loaded = v.table["source_id"].filter(pa.array(~v.quarantine))
    fixed = pc.filter(pa.array(open_ids, pa.string()),
                      pc.is_in(pa.array(open_ids, pa.string()), value_set=loaded))
    if len(fixed) == 0:
        return
    conn.execute(
        "UPDATE quality.quarantine SET state = %s, resolved_run_id = %s,"
        " resolved_at = now() WHERE state = 'open' AND source_system = %s AND entity = %s"
        " AND source_id = ANY(%s)",
        (state, run_id, source, entity.name, fixed.to_pylist()),
    )


def _findings(conn: psycopg.Connection, run_id: int, source: str, entity: Entity,
              v: Validated) -> None:
    """Findings on rows that were loaded (a quarantined row's are in its quarantine entry)."""
    if v.findings.num_rows == 0:
        return
    loaded = pc.invert(pa.array(v.quarantine).take(v.findings["row_index"]))
    f = v.findings.filter(loaded)
    if f.num_rows == 0:
        return
    n = f.num_rows
    table = pa.table({
        "run_id": pa.array([run_id] * n, pa.int64()),
        "source_system": pa.array([source] * n, pa.string()),
        "entity": pa.array([entity.name] * n, pa.string()),
        "source_id": v.table["source_id"].take(f["row_index"]),
        "rule": f["rule"],
        "severity": f["severity"],
        "reason": f["reason"],
    })
    copy_arrow(conn, table, sql.Identifier("quality", "finding"))


def _rule_results(conn: psycopg.Connection, run_id: int, source: str, entity: Entity,
                  v: Validated) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.rule_result (run_id, source_system, entity, rule, severity,"
            " dimension, evaluated, failed) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, entity, rule) DO UPDATE SET"
            " evaluated = quality.rule_result.evaluated + EXCLUDED.evaluated,"
            " failed = quality.rule_result.failed + EXCLUDED.failed",
            [(run_id, source, entity.name, r.rule, str(r.severity), r.dimension, r.evaluated,
              r.failed) for r in v.results],
        )


def record_gx(conn: psycopg.Connection, run_id: int, entity: Entity, batch_no: int,
              validated: Validated, ctx: RuleContext) -> None:
    """Validate the batch through Great Expectations and archive GX's result.

    Row outcomes come from the vectorised rules; Great Expectations records each
    batch's outcome: a suite derived from the rule declarations, one expectation per
    applied rule, whose counts are the vectorised checks' counts. It costs a fixed
    ~0.2 s a call, so the pipeline asks for it once per stream and run, on a bounded
    sample.
    """
    report = run_suite(entity, validated.table, ctx, validated.evaluation, max_rows=GX_SAMPLE_ROWS)
    conn.execute(
        "INSERT INTO quality.gx_validation (run_id, entity, batch_no, success, result)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, entity, batch_no) DO NOTHING",
        (run_id, entity.name, batch_no, report.success, Jsonb(report.to_json_dict())),
    )


def record_rejects(conn: psycopg.Connection, run_id: int, source: str, stream: str,
                   entity: Entity, rejects: Sequence[RowReject]) -> None:
    """Quarantine rows the connector could not read as records, with where they were.

    Met again (a file re-read after a crash, the same bad row in the next read), an
    open entry with the same rule and payload stands instead of piling up.
    """
    if not rejects:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.quarantine (source_system, stream, source_id, entity, run_id,"
            " rule, reason, failed_rules, payload, payload_kind)"
            " SELECT %(source)s, %(stream)s, %(source_id)s, %(entity)s, %(run_id)s, %(rule)s,"
            " %(reason)s, %(failed)s, %(payload)s, 'unreadable' WHERE NOT EXISTS (SELECT 1"
            " FROM quality.quarantine WHERE state = 'open' AND source_system = %(source)s"
            " AND stream = %(stream)s AND rule = %(rule)s AND payload = %(payload)s)",
            [{"source": source, "stream": stream, "source_id": r.source_id, "entity": entity.name,
              "run_id": run_id, "rule": r.rule, "reason": r.reason,
              "failed": Jsonb([{"rule": r.rule, "severity": "blocking", "reason": r.reason,
                                "where": r.where}]),
              "payload": Jsonb(dict(r.payload))} for r in rejects])
