"""Quarantine entries written before payloads were sealed: sealed and masked in place.

Until migration 0008 quarantine kept each record in clear in `payload`. Now `payload`
holds it masked, `payload_sealed` sealed and `payload_digest` its keyed hash (see
quality.store); `seal_legacy_payloads` brings the older entries to that form. The
migration calls it on its own transaction, so an entry is never half converted, and
a rerun finds nothing left to do.
"""

from __future__ import annotations

import json

import psycopg

from base.pii import seal_payload

BATCH_ROWS = 5_000


def seal_legacy_payloads(conn: psycopg.Connection, *, batch_rows: int = BATCH_ROWS) -> int:
    """Seal every entry without a sealed payload: its clear `payload` sealed into
    `payload_sealed`, digested into `payload_digest`, and replaced by its masked form.
    Returns the number of entries sealed. Reads and writes `batch_rows` entries per
    round trip, in quarantine_id order; commits nothing (the caller's transaction)."""
    sealed = 0
    after = 0
    while True:
        rows = conn.execute(
            "SELECT quarantine_id, payload FROM quality.quarantine"
            " WHERE payload_sealed IS NULL AND quarantine_id > %s"
            " ORDER BY quarantine_id LIMIT %s", (after, batch_rows)).fetchall()
        if not rows:
            return sealed
        after = rows[-1][0]
        kept = [seal_payload(payload) for _, payload in rows]
        cur = conn.execute(
            "UPDATE quality.quarantine q SET payload = u.payload::jsonb,"
            " payload_sealed = u.sealed, payload_digest = u.digest"
            " FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::text[])"
            " AS u(quarantine_id, payload, sealed, digest)"
            " WHERE q.quarantine_id = u.quarantine_id AND q.payload_sealed IS NULL",
            ([qid for qid, _ in rows],
             [json.dumps(k.masked, ensure_ascii=False, default=str) for k in kept],
             [k.sealed for k in kept], [k.digest for k in kept]))
        sealed += cur.rowcount
