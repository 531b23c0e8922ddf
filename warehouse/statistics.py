"""The planner's statistics of the core tables, kept current by the hub after it loads
them, whether or not the server's autovacuum runs (migration 0024: `ops.analyze_stale`).

A table loaded but never analyzed is planned as if it were empty: on a server without
autovacuum the marts over a few thousand events took tens of seconds."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psycopg

log = logging.getLogger(__name__)


def analyze_stale(conn: psycopg.Connection, tables: Iterable[str]) -> list[str]:
    """Analyze those of `tables` changed by more than autovacuum's default since their
    last analyze (or never analyzed); the tables analyzed."""
    analyzed = []
    for table in sorted(tables):
        row = conn.execute("SELECT ops.analyze_stale(%s::regclass)", (table,)).fetchone()
        if row and row[0]:
            analyzed.append(table)
    if analyzed:
        log.info("planner statistics refreshed: %s", ", ".join(analyzed))
    return analyzed



def analyze_beside_last_batch(conn: psycopg.Connection, tables: Iterable[str]) -> list[str]:
    """Analyze those of `tables` that are stale (`analyze_stale`) while a load's last batch
    is stored; those the load's end need not analyze again for that batch alone: the ones
    analyzed with at least as many rows as ANALYZE samples (300 times the default
    statistics target), whose statistics would come from as many rows of the same load.
    A smaller table is analyzed again at the end: its pages, extended in bulk, do not
    tell the planner about the last batch."""
    analyzed = analyze_stale(conn, tables)
    if not analyzed:
        return []
    rows = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid = ANY(%s::regclass[])"
        " AND c.reltuples >= 300 * current_setting('default_statistics_target')::integer",
        (analyzed,)).fetchall()
    return sorted(r[0] for r in rows)
