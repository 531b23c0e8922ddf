"""The ledger of linking runs (ops.link_run, migration 0010) for the organization and
incident linking: one row per completed run, in the run's own transaction."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg


def record_link_run(conn: psycopg.Connection, entity: str, started_at: datetime, *,
                    records: int, compared: int, summary: dict[str, object],
                    mode: str = "full") -> None:
    """Note a run of `entity` ('organization' or 'incident'; `mode` 'full' or
    'incremental') that began at `started_at` (the database's clock) and linked
    `records` current records."""
    conn.execute(
        "INSERT INTO ops.link_run (entity, mode, started_at, finished_at, records, compared,"
        " summary) VALUES (%s, %s, %s, clock_timestamp(), %s, %s, %s::jsonb)",
        (entity, mode, started_at, records, compared,
         json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str)))


def database_now(conn: psycopg.Connection) -> datetime:
    """The database's clock now (not the transaction's start)."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]
