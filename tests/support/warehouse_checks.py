"""What the pipeline tests ask of the warehouse: plain queries, shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql


def quarantined(db: psycopg.Connection, source: str, entity: str) -> dict[str, str]:
    """source_id → rule of a source's records of an entity held in quarantine now."""
    return dict(db.execute("SELECT source_id, rule FROM quality.quarantine WHERE source_system"
                           " = %s AND entity = %s AND state = 'open'", (source, entity)).fetchall())


def findings(db: psycopg.Connection, source: str, entity: str) -> dict[str, set[str]]:
    """source_id → the rules a source's records of an entity were found to break."""
    out: dict[str, set[str]] = {}
    for sid, rule in db.execute("SELECT source_id, rule FROM quality.finding WHERE"
                                " source_system = %s AND entity = %s", (source, entity)):
        out.setdefault(sid, set()).add(rule)
    return out


def assert_one_current_row_each(db: psycopg.Connection, source: str,
                                tables: Iterable[str]) -> None:
    """Each table holds current rows of the source, and one only per source_id: what a
    rerun that duplicated a record would break."""
    for table in tables:
        total, distinct = db.execute(
            sql.SQL("SELECT count(*), count(DISTINCT source_id) FROM {} WHERE source_system = %s"
                    " AND valid_to IS NULL").format(sql.Identifier(*table.split("."))),
            (source,)).fetchone()
        assert total == distinct > 0, table
