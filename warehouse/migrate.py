"""Bring a warehouse up to date: numbered SQL migrations, the model's tables, reference data.

The numbered files in `migrations/` hold what the model cannot say (schemas,
bookkeeping tables); they are applied once each, in order, and recorded with a
checksum so an edited migration is caught. The core tables are derived from
`schemas.model` and re-applied every time (their DDL is idempotent and only
adds), so the model stays the one place a column is declared.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import psycopg

from schemas.ddl import core_ddl
from schemas.reference_data import DIVISION_TABLE_VERSION, division_rows
from warehouse.db import connect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# Any constant: all hub processes agree on it, so concurrent migrations queue.
_MIGRATION_LOCK = 4_271_996_001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        found.append(Migration(int(path.name[:4]), path.stem[5:], path.read_text(encoding="utf-8")))
    return found


def migrate() -> list[str]:
    """Apply what is missing; returns the names of the migrations applied now."""
    applied: list[str] = []
    with connect() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ops.schema_migration ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # The model's tables first: migrations (views, indexes) may build on them.
        conn.execute("CREATE SCHEMA IF NOT EXISTS core")
        for stmt in core_ddl():
            conn.execute(stmt.encode())  # derived from the model, no input
        done: dict[int, str] = dict(conn.execute(
            "SELECT version, checksum FROM ops.schema_migration").fetchall())
        for m in migrations():
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise RuntimeError(
                        f"migration {m.version:04d}_{m.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            conn.execute(m.sql.encode())  # trusted files shipped with the hub
            conn.execute(
                "INSERT INTO ops.schema_migration (version, name, checksum) VALUES (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
            applied.append(f"{m.version:04d}_{m.name}")
        _load_event_reference(conn)
        _load_divisions(conn)
    return applied


def _load_event_reference(conn: psycopg.Connection) -> None:
    """Taxonomy and statuses: small, so upserted on every migration."""
    with open(SCHEMAS / "taxonomy.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with conn.cursor() as cur:
        # Parents first so the self-reference holds.
        for r in sorted(rows, key=lambda r: bool(r["parent_code"])):
            cur.execute(
                "INSERT INTO core.event_category (code, name, parent_code, version) "
                "VALUES (%s, %s, NULLIF(%s, ''), %s) ON CONFLICT (code) DO UPDATE SET "
                "name = EXCLUDED.name, parent_code = EXCLUDED.parent_code, version = EXCLUDED.version",
                (r["code"], r["name"], r["parent_code"], r["version"]),
            )
        with open(SCHEMAS / "statuses.csv", encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                cur.execute(
                    "INSERT INTO core.event_status (status, name_zh, sort_order, description) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (status) DO UPDATE SET "
                    "name_zh = EXCLUDED.name_zh, sort_order = EXCLUDED.sort_order, "
                    "description = EXCLUDED.description",
                    (r["status"], r["name_zh"], int(r["order"]), r["description"]),
                )


def _load_divisions(conn: psycopg.Connection) -> None:
    """The division code table, once per table version (~45,000 rows by COPY)."""
    loaded = conn.execute(
        "SELECT count(*) FROM core.division WHERE table_version = %s AND valid_to IS NULL",
        (DIVISION_TABLE_VERSION,),
    ).fetchone()
    if loaded and loaded[0] > 0:
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    for r in division_rows():
        writer.writerow([r.code, r.name, r.level, r.parent_code, r.table_version,
                         r.retired_on, r.replaced_by])
    conn.execute(
        "CREATE TEMP TABLE division_stage (code text, name text, level text, parent_code text,"
        " table_version text, retired_on date, replaced_by text) ON COMMIT DROP"
    )
    with conn.cursor() as cur, cur.copy("COPY division_stage FROM STDIN (FORMAT csv)") as copy:
        copy.write(buf.getvalue())
    conn.execute(
        "INSERT INTO core.division (source_system, source_id, record_hash, valid_from, code, name,"
        " level, parent_code, table_version, retired_on, replaced_by)"
        " SELECT 'nbs-division-codes', code, md5(ROW(code, name, level, parent_code, table_version,"
        " retired_on, replaced_by)::text), now(), code, name, level, parent_code, table_version,"
        " retired_on, replaced_by FROM division_stage"
    )
