"""Writing a batch's validation outcome: quarantined records, findings, rule counts.

Runs inside the batch's transaction, so the quarantine and the merge commit or
vanish together: a record is always either loaded or quarantined, never neither.

Quarantine never holds a record in clear: `payload` is the record masked (base.masking:
what stewards and the report read), `payload_sealed` the record sealed (base.pii:
replay and the audited clear read open it), `payload_digest` its keyed hash (what
tells a record met again from a changed one). Reasons, quoted in findings and
quarantine alike, are masked too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.types.json import Jsonb

from base.identity import per_distinct
from base.masking import mask_text
from base.pii import SealedPayload, seal_payload, seal_rows
from connectors.base import RowReject
from quality.gx_suite import run_suite
from quality.rules import SOURCE_KEY, RuleContext
from quality.validate import Validated
from schemas.model import Entity
from warehouse.first_loads import KeyHashes, KeysWritten
from warehouse.loader import copy_arrow

GX_SAMPLE_ROWS = 200_000


@dataclass(frozen=True)
class Outcome:
    """A batch's validation outcome as the store writes it, made before its transaction:
    the quarantine entries (reasons masked; each record masked, sealed and digested) and
    the findings on loaded rows (reasons masked). This is the Python work of `record`
    (JSON, masking, sealing), so the pipeline makes it in its prepare stage, beside the
    previous batch's merge; what stays for the transaction is COPY and SQL.

    `payload` is the table it was made from (None: the conformed rows): `record` makes
    its own when it is given another.
    """

    payload: pa.Table | None
    # Per quarantined row, in row order: source_id, rule, reason, failed_rules, payload,
    # payload_sealed, payload_digest, payload_kind, ord (None: nothing quarantined).
    quarantine: pa.Table | None
    # Per finding on a loaded row: source_id, rule, severity, reason (None: none).
    findings: pa.Table | None


def outcome(entity: Entity, validated: Validated, payload: pa.Table | None) -> Outcome:
    """What `record` stores of a batch, made without the warehouse (see `Outcome`)."""
    return Outcome(payload, _quarantine_entries(validated, payload),
                   _loaded_findings(validated))


def record(conn: psycopg.Connection, run_id: int, source: str, stream: str, entity: Entity,
           validated: Validated, payload: pa.Table | None, *, fixed_state: str = "superseded",
           made: Outcome | None = None, set_aside: KeysWritten | None = None,
           loaded_keys: KeyHashes | None = None) -> int:
    """Store quarantine rows, warning findings and per-rule counts of one batch; returns
    the quarantine entries it opened (a record held again exactly as it was opens none).

    `payload` is the platform's records row-aligned with the validated table (the
    original payload to quarantine); without it the conformed row is kept. Open
    entries whose record now loaded are resolved with `fixed_state`: 'superseded'
    when the platform sent a good version, 'replayed' when a replay loaded them.
    `made`: the batch's `outcome`, made ahead from this `payload` (else made here).
    `set_aside`: on a run that found no open entry of the source's `entity`
    (`warehouse.first_loads`), the keys it set aside since: a batch none of whose keys
    were is stored without looking up the entries it would replace or resolve;
    `loaded_keys`: the keys of the rows that passed, hashed ahead for it.
    """
    if made is None or made.payload is not payload:
        made = outcome(entity, validated, payload)
    _resolve_fixed(conn, run_id, source, entity, validated, fixed_state, set_aside,
                   loaded_keys)
    opened = _quarantine(conn, run_id, source, stream, entity, made.quarantine, set_aside)
    _findings(conn, run_id, source, entity, made.findings)
    _rule_results(conn, run_id, source, entity, validated)
    return opened


def _quarantine_entries(v: Validated, payload: pa.Table | None) -> pa.Table | None:
    """The batch's quarantined rows as `quarantine_stage` holds them, but for where
    they come from (source, stream, entity, run): None when none is."""
    rows = np.flatnonzero(v.quarantine)
    if len(rows) == 0:
        return None
    take = pa.array(rows)
    original = (payload if payload is not None else v.table).take(take)
    rules, reasons = v.headline()
    by_row: dict[int, list[dict[str, str]]] = {}
    for i, rule, sev, reason in zip(*(v.findings[c].to_pylist() for c in
                                      ("row_index", "rule", "severity", "reason")), strict=True):
        by_row.setdefault(i, []).append({"rule": rule, "severity": sev, "reason": reason})
    return _entries(source_ids=v.table["source_id"].take(take), rules=rules, reasons=reasons,
                    failed_rules=[by_row.get(int(i), []) for i in rows], kept=seal_rows(original),
                    payload_kind="source" if payload is not None else "conformed")


def _quarantine(conn: psycopg.Connection, run_id: int, source: str, stream: str,
                entity: Entity, entries: pa.Table | None, set_aside: KeysWritten | None) -> int:
    if entries is None or entries.num_rows == 0:
        return 0
    placed = _placed(entries, source=source, stream=stream, entity=entity.name, run_id=run_id)
    if set_aside is not None and not set_aside.note(entries["source_id"]):
        # No open entry is under these keys: each opens, in the batch's order.
        copy_arrow(conn, placed.drop_columns(["ord"]), sql.Identifier("quality", "quarantine"))
        return entries.num_rows
    _stage(conn, placed)
    # Seen again (overlap window, a rerun, a replay) exactly as it was: the open entry
    # stands, with the verdict of today's rules. Changed on the platform and still
    # bad: the new entry replaces it — unless both are records conflicting under one
    # key (they may arrive in different batches of one file): those stay side by side.
    # "Exactly as it was" is the digest of the clear record: two records differing only
    # in digits the mask hides are two records. An entry without a digest (written
    # before sealing, not sealed yet) cannot be matched, so a new one replaces it.
    conn.execute(
        "UPDATE quality.quarantine q SET rule = s.rule, reason = s.reason,"
        " failed_rules = s.failed_rules, payload = s.payload FROM quarantine_stage s"
        " WHERE q.state = 'open' AND q.source_system = s.source_system AND q.entity = s.entity"
        " AND q.source_id = s.source_id AND q.payload_digest = s.payload_digest"
    )
    conn.execute(
        "UPDATE quality.quarantine q SET state = 'superseded', resolved_run_id = s.run_id,"
        " resolved_at = now() FROM quarantine_stage s WHERE q.state = 'open'"
        " AND q.source_system = s.source_system AND q.entity = s.entity"
        " AND q.source_id = s.source_id AND q.payload_digest IS DISTINCT FROM s.payload_digest"
        " AND NOT (q.rule = %(conflict)s AND s.rule = %(conflict)s)",
        {"conflict": SOURCE_KEY},
    )
    opened = conn.execute(
        "INSERT INTO quality.quarantine (source_system, stream, source_id, entity, run_id,"
        " rule, reason, failed_rules, payload, payload_sealed, payload_digest, payload_kind)"
        " SELECT source_system, stream, source_id, entity, run_id, rule, reason, failed_rules,"
        " payload, payload_sealed, payload_digest, payload_kind"
        " FROM quarantine_stage s WHERE NOT EXISTS (SELECT 1 FROM quality.quarantine q"
        " WHERE q.state = 'open' AND q.source_system = s.source_system AND q.entity = s.entity"
        " AND q.source_id = s.source_id AND q.payload_digest = s.payload_digest)"
        " ORDER BY s.ord"
    ).rowcount
    conn.execute("DROP TABLE quarantine_stage")
    return opened


def _entries(*, source_ids: pa.Array | pa.ChunkedArray | Sequence[str | None],
             rules: Sequence[str], reasons: Sequence[str],
             failed_rules: Sequence[Sequence[Mapping[str, Any]]],
             kept: Sequence[SealedPayload], payload_kind: str) -> pa.Table:
    """Quarantine entries as they are stored, but for where they come from: reasons
    masked; each record as `base.pii` keeps it (masked, sealed, digested)."""
    n = len(kept)
    return pa.table({
        "source_id": (source_ids if isinstance(source_ids, pa.Array | pa.ChunkedArray)
                      else pa.array(source_ids, pa.string())),
        "rule": pa.array(rules, pa.string()),
        "reason": pa.array([mask_text(r) for r in reasons], pa.string()),
        "failed_rules": pa.array([json.dumps([_masked_finding(f) for f in found],
                                             ensure_ascii=False) for found in failed_rules],
                                 pa.string()),
        "payload": pa.array([json.dumps(k.masked, ensure_ascii=False, default=str)
                             for k in kept], pa.string()),
        # bytea's hex input form: COPY reads it as the sealed bytes.
        "payload_sealed": pa.array(["\\x" + k.sealed.hex() for k in kept], pa.string()),
        "payload_digest": pa.array([k.digest for k in kept], pa.string()),
        "payload_kind": _repeat(payload_kind, n),
        "ord": pa.array(range(n), pa.int64()),
    })


def _placed(entries: pa.Table, *, source: str, stream: str, entity: str,
            run_id: int) -> pa.Table:
    """Quarantine entries (`_entries`) with where they come from."""
    n = entries.num_rows
    return (entries.append_column("source_system", _repeat(source, n))
            .append_column("stream", _repeat(stream, n))
            .append_column("entity", _repeat(entity, n))
            .append_column("run_id", pa.repeat(pa.scalar(run_id, pa.int64()), n)))


def _stage(conn: psycopg.Connection, table: pa.Table) -> None:
    """Quarantine entries with where they come from (`_placed`) in the temporary table
    `quarantine_stage` (dropped at commit)."""
    conn.execute("CREATE TEMP TABLE quarantine_stage (source_system text, stream text,"
                 " source_id text, entity text, run_id bigint, rule text, reason text,"
                 " failed_rules jsonb, payload jsonb, payload_sealed bytea, payload_digest text,"
                 " payload_kind text, ord bigint) ON COMMIT DROP")
    copy_arrow(conn, table, sql.Identifier("quarantine_stage"))
    conn.execute("ANALYZE quarantine_stage")


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _masked_finding(finding: Mapping[str, Any]) -> dict[str, Any]:
    """A failed rule as quarantine keeps it: its reason (and where) masked, since rules
    and connectors may quote values."""
    return {k: mask_text(v) if k in ("reason", "where") and isinstance(v, str) else v
            for k, v in finding.items()}


def _resolve_fixed(conn: psycopg.Connection, run_id: int, source: str, entity: Entity,
                   v: Validated, state: str, set_aside: KeysWritten | None,
                   loaded_keys: KeyHashes | None = None) -> None:
    """Open entries whose record loaded in this batch (fixed on the platform) are closed.

    Matched on whichever side is smaller: the source's open entries read here and
    matched with the batch (a first load, few entries yet), or the batch's loaded keys
    sent to the open entries' index (a daily snapshot: tens of thousands of entries,
    a few hundred records changed since they were set aside)."""
    loaded = v.table["source_id"].filter(pa.array(~v.quarantine)).drop_null()
    if len(loaded) == 0:
        return
    # (Hashed ahead, a null key is asked about too: at worst the entries are looked up.)
    if set_aside is not None and not set_aside.may_hold(
            loaded if loaded_keys is None else loaded_keys).any():
        return  # none was open when the run began, and the run set none of them aside
    row = conn.execute("SELECT count(*) FROM quality.quarantine WHERE state = 'open'"
                       " AND source_system = %s AND entity = %s", (source, entity.name)).fetchone()
    n_open = row[0] if row else 0
    if n_open == 0:
        return
    if n_open <= len(loaded):
        open_ids = pa.array([r[0] for r in conn.execute(
            "SELECT source_id FROM quality.quarantine WHERE state = 'open'"
            " AND source_system = %s AND entity = %s", (source, entity.name))],
            pa.string())
        loaded = open_ids.filter(pc.is_in(open_ids, value_set=loaded))
        if len(loaded) == 0:
            return
    conn.execute(
        "UPDATE quality.quarantine SET state = %s, resolved_run_id = %s,"
        " resolved_at = now() WHERE state = 'open' AND source_system = %s AND entity = %s"
        " AND source_id = ANY(%s)",
        (state, run_id, source, entity.name, loaded.to_pylist()),
    )


def _loaded_findings(v: Validated) -> pa.Table | None:
    """Findings on rows that were loaded (a quarantined row's are in its quarantine
    entry), their reasons masked: None when there is none."""
    if v.findings.num_rows == 0:
        return None
    loaded = pc.invert(pa.array(v.quarantine).take(v.findings["row_index"]))
    f = v.findings.filter(loaded)
    if f.num_rows == 0:
        return None
    return pa.table({
        "source_id": v.table["source_id"].take(f["row_index"]),
        "rule": f["rule"],
        "severity": f["severity"],
        "reason": per_distinct(f["reason"], mask_text),
    })


def _findings(conn: psycopg.Connection, run_id: int, source: str, entity: Entity,
              findings: pa.Table | None) -> None:
    """Findings on rows that were loaded (`_loaded_findings`), with their run."""
    if findings is None or findings.num_rows == 0:
        return
    n = findings.num_rows
    table = pa.table({
        "run_id": pa.repeat(pa.scalar(run_id, pa.int64()), n),
        "source_system": _repeat(source, n),
        "entity": _repeat(entity.name, n),
        **{name: findings[name] for name in findings.column_names},
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
    sample of a batch that brought something (never an empty one).
    """
    report = run_suite(entity, validated.table, ctx, validated.evaluation, max_rows=GX_SAMPLE_ROWS)
    conn.execute(
        "INSERT INTO quality.gx_validation (run_id, entity, batch_no, success, result)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, entity, batch_no) DO NOTHING",
        (run_id, entity.name, batch_no, report.success, Jsonb(report.to_json_dict())),
    )


def record_rejects(conn: psycopg.Connection, run_id: int, source: str, stream: str,
                   entity: Entity, rejects: Sequence[RowReject], *,
                   set_aside: KeysWritten | None = None) -> None:
    """Quarantine rows the connector could not read as records, with where they were.

    Met again (a file re-read after a crash, the same bad row in the next read), an
    open entry with the same rule and payload stands instead of piling up; so does the
    first of several alike in one call. `set_aside`: the run's record of the keys it set
    aside (see `record`), which these are noted in.
    """
    if not rejects:
        return
    if set_aside is not None:
        set_aside.note(pa.array([r.source_id for r in rejects], pa.string()))
    _stage(conn, _placed(_entries(
        source_ids=[r.source_id for r in rejects], rules=[r.rule for r in rejects],
        reasons=[r.reason for r in rejects],
        failed_rules=[[{"rule": r.rule, "severity": "blocking", "reason": r.reason,
                        "where": r.where}] for r in rejects],
        kept=[seal_payload(dict(r.payload)) for r in rejects], payload_kind="unreadable"),
        source=source, stream=stream, entity=entity.name, run_id=run_id))
    conn.execute(
        "INSERT INTO quality.quarantine (source_system, stream, source_id, entity, run_id,"
        " rule, reason, failed_rules, payload, payload_sealed, payload_digest, payload_kind)"
        " SELECT source_system, stream, source_id, entity, run_id, rule, reason, failed_rules,"
        " payload, payload_sealed, payload_digest, payload_kind"
        " FROM (SELECT DISTINCT ON (rule, payload_digest) * FROM quarantine_stage"
        " ORDER BY rule, payload_digest, ord) s WHERE NOT EXISTS (SELECT 1"
        " FROM quality.quarantine q WHERE q.state = 'open' AND q.source_system = s.source_system"
        " AND q.stream = s.stream AND q.rule = s.rule AND q.payload_digest = s.payload_digest)"
        " ORDER BY s.ord"
    )
    conn.execute("DROP TABLE quarantine_stage")
