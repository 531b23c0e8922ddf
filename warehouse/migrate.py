"""Bring a warehouse up to date: numbered SQL migrations, the model's tables, reference data.

Migrating is an explicit step (`hub migrate`, the demo, the DAGs' setup task), never
a side effect of reading: DDL takes locks that queue behind a running load, and a
query that waits for a load to finish is no query.

- The numbered files in `migrations/` hold what the model cannot say (schemas,
  bookkeeping tables); they are applied once each, in order, and recorded with a
  checksum so an edited migration is caught.
- The core tables are derived from `schemas.model` (schemas.ddl), so the model stays
  the one place a column is declared. Only the statements the catalog shows are
  missing run: a table, a column, a NOT NULL, an index or a comment already as the
  model says is left alone, so migrating an up-to-date warehouse locks no table.
- Reference data (taxonomy, statuses, division codes) is written only where it
  differs.

What all of that amounts to is a fingerprint (`expected_fingerprint`), recorded in
`ops.schema_state` when a migration completes. `schema_behind` compares the two
with two small reads and takes no lock: `migrate` returns at once when nothing
changed, and `require_current` lets a load refuse to run against a warehouse that
is behind, saying to run `hub migrate`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from base.settings import CityConfig
from schemas.ddl import core_ddl
from schemas.reference_data import DIVISION_TABLE_VERSION, division_rows
from warehouse.db import Role, act_as_owner, connect
from warehouse.deferred_indexes import restore_indexes
from warehouse.quarantine_seal import seal_legacy_payloads

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Run by the migrating login itself, before it acts as hub_owner: the server's roles
# (needs CREATEROLE; a DBA runs the file once where the hub's login may not) and this
# database's hub schemas handed to hub_owner.
ROLES_SQL = Path(__file__).resolve().parent / "roles.sql"
ADOPT_SQL = Path(__file__).resolve().parent / "adopt.sql"
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# Any constant: all hub processes agree on it, so concurrent migrations queue.
_MIGRATION_LOCK = 4_271_996_001

# The bookkeeping of migrations itself, created before anything else.
_BOOTSTRAP = (
    "CREATE SCHEMA IF NOT EXISTS ops",
    "CREATE TABLE IF NOT EXISTS ops.schema_migration ("
    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())",
    # One row: the fingerprint of everything the last complete migration brought.
    "CREATE TABLE IF NOT EXISTS ops.schema_state ("
    " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
    " fingerprint text NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE SCHEMA IF NOT EXISTS core",
)
_REFERENCE_FILES = ("taxonomy.csv", "statuses.csv", "reference/org_aliases.csv")


class SchemaNotCurrent(RuntimeError):
    """The warehouse is behind this hub's migrations or model: run `hub migrate`."""


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


@cache
def expected_fingerprint() -> str:
    """What a warehouse migrated by this hub holds, as one hash: the migrations, the
    model's DDL and the reference data."""
    h = hashlib.sha256()
    for path in (ROLES_SQL, ADOPT_SQL):
        h.update(path.read_bytes() + b"\0")
    for part in (*_BOOTSTRAP, *core_ddl()):
        h.update(part.encode() + b"\0")
    for m in migrations():
        h.update(f"{m.version}:{m.checksum}\0".encode())
    for name in _REFERENCE_FILES:
        h.update((SCHEMAS / name).read_bytes() + b"\0")
    h.update(DIVISION_TABLE_VERSION.encode())
    return h.hexdigest()


# ------------------------------------------------------------------ the cheap check


def schema_behind(conn: psycopg.Connection) -> str | None:
    """Why the warehouse is not current (None: it is). Two small reads, no lock."""
    row = conn.execute("SELECT to_regclass('ops.schema_state') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return "it has not been migrated by this version of the hub"
    state = conn.execute("SELECT fingerprint FROM ops.schema_state").fetchone()
    if state is None or state[0] != expected_fingerprint():
        return "its schema or reference data is behind this hub's model and migrations"
    recorded: dict[int, str] = dict(
        conn.execute("SELECT version, checksum FROM ops.schema_migration").fetchall())
    if recorded != {m.version: m.checksum for m in migrations()}:
        return "its record of applied migrations differs from this hub's migrations"
    return None


def require_current() -> None:
    """Raise `SchemaNotCurrent`, saying what to do, unless the warehouse is current."""
    with connect(Role.LOADER, autocommit=True) as conn:
        behind = schema_behind(conn)
    if behind is not None:
        raise SchemaNotCurrent(f"the warehouse is not ready: {behind}. Run `hub migrate` first"
                               " (the demo and the DAGs' setup task do it too).")


# ------------------------------------------------------------------------ migrating


def migrate(*, force: bool = False) -> list[str]:
    """Apply what is missing; returns the names of the migrations applied now.

    Returns at once, without a lock or a statement beyond two reads, when the
    recorded fingerprint says the warehouse is current. `force` compares every
    core table with the model all the same (a table changed by hand).
    """
    if not force:
        with connect(Role.OWNER, autocommit=True) as conn:
            if schema_behind(conn) is None:
                return []
    applied: list[str] = []
    with connect(Role.OWNER) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        if not force and _exists(conn, "ops.schema_state") and schema_behind(conn) is None:
            return []  # another process migrated while this one waited for the lock
        _prepare_roles(conn)
        for stmt in _BOOTSTRAP:
            conn.execute(stmt.encode())
        if _exists(conn, "ops.deferred_index"):
            # What a killed first load left waiting, before the model's DDL is compared.
            restore_indexes(conn)
        # The model's tables first: migrations (views, indexes) may build on them.
        changes = core_changes(conn)
        for stmt in changes:
            conn.execute(stmt.encode())  # derived from the model, no input
        if changes:
            log.info("core tables: %d statement(s) to bring them to the model", len(changes))
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
        _load_org_aliases(conn)
        _load_divisions(conn)
        sealed = seal_legacy_payloads(conn)
        if sealed:
            log.info("quarantine: %d payload(s) written before sealing now sealed and masked",
                     sealed)
        conn.execute(
            "INSERT INTO ops.schema_state (singleton, fingerprint) VALUES (true, %s)"
            " ON CONFLICT (singleton) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
            " migrated_at = now()", (expected_fingerprint(),))
    return applied


def _prepare_roles(conn: psycopg.Connection) -> None:
    """The roles exist and hub_owner owns this database's hub schemas; from here on the
    connection acts as hub_owner, so everything the migration creates is hub_owner's."""
    conn.execute("RESET ROLE")
    missing = conn.execute(
        "SELECT array_agg(r) FROM unnest(%s::text[]) r WHERE to_regrole(r) IS NULL",
        ([r.value for r in Role],)).fetchone()
    can = conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles"
                       " WHERE rolname = session_user").fetchone()
    if can and can[0]:
        conn.execute(ROLES_SQL.read_text(encoding="utf-8").encode())  # shipped file, no input
    elif missing and missing[0]:
        raise SchemaNotCurrent(
            f"the warehouse lacks the hub's roles ({', '.join(missing[0])}) and this login may"
            f" not create roles: have a DBA run {ROLES_SQL} once (psql -f), then migrate")
    conn.execute(ADOPT_SQL.read_text(encoding="utf-8").encode())
    act_as_owner(conn)


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


# ------------------------------------------------------- the model's DDL, as needed

_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+\.\w+) \(")
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+\.\w+) ADD COLUMN IF NOT EXISTS (\w+) ")
_SET_NOT_NULL = re.compile(r"ALTER TABLE (\w+\.\w+) ALTER COLUMN (\w+) SET NOT NULL")
_CREATE_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+) ON (\w+)\.\w+ ")
_TABLE_COMMENT = re.compile(r"COMMENT ON TABLE (\w+\.\w+) IS '(.*)'", re.DOTALL)
_COLUMN_COMMENT = re.compile(r"COMMENT ON COLUMN (\w+\.\w+)\.(\w+) IS '(.*)'", re.DOTALL)


@dataclass
class _Catalog:
    """What the warehouse holds of the tables the model declares."""

    tables: set[str]
    columns: dict[tuple[str, str], bool]  # (table, column) → nullable
    indexes: set[str]  # schema.index
    table_comments: dict[str, str | None]
    column_comments: dict[tuple[str, str], str | None]


def _catalog(conn: psycopg.Connection, schemas: Iterable[str]) -> _Catalog:
    names = sorted(set(schemas))
    tables = {r[0] for r in conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        " WHERE table_schema = ANY(%s)", (names,))}
    columns = {(r[0], r[1]): r[2] == "YES" for r in conn.execute(
        "SELECT table_schema || '.' || table_name, column_name, is_nullable"
        " FROM information_schema.columns WHERE table_schema = ANY(%s)", (names,))}
    indexes = {r[0] for r in conn.execute(
        "SELECT schemaname || '.' || indexname FROM pg_indexes WHERE schemaname = ANY(%s)",
        (names,))}
    table_comments = {r[0]: r[1] for r in conn.execute(
        "SELECT n.nspname || '.' || c.relname, obj_description(c.oid, 'pg_class')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p')", (names,))}
    column_comments = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT n.nspname || '.' || c.relname, a.attname, col_description(c.oid, a.attnum)"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND a.attnum > 0"
        " AND NOT a.attisdropped", (names,))}
    return _Catalog(tables, columns, indexes, table_comments, column_comments)


def _needed(stmt: str, cat: _Catalog) -> bool:
    """Whether a statement of schemas.ddl would change anything the catalog holds."""
    if m := _CREATE_TABLE.match(stmt):
        return m[1] not in cat.tables
    if m := _ADD_COLUMN.match(stmt):
        return (m[1], m[2]) not in cat.columns
    if m := _SET_NOT_NULL.fullmatch(stmt):
        return cat.columns.get((m[1], m[2]), True)
    if m := _CREATE_INDEX.match(stmt):
        return f"{m[2]}.{m[1]}" not in cat.indexes
    if m := _TABLE_COMMENT.fullmatch(stmt):
        return cat.table_comments.get(m[1]) != m[2].replace("''", "'")
    if m := _COLUMN_COMMENT.fullmatch(stmt):
        return cat.column_comments.get((m[1], m[2])) != m[3].replace("''", "'")
    return True  # a kind of statement not known here: run it (it is idempotent)


def core_changes(conn: psycopg.Connection) -> list[str]:
    """The statements of the model's DDL that would change the warehouse, in order
    (none when the core tables are as the model says)."""
    statements = core_ddl()
    schemas = {m[1].split(".")[0] for s in statements if (m := _CREATE_TABLE.match(s))}
    cat = _catalog(conn, schemas)
    return [s for s in statements if _needed(s, cat)]


# --------------------------------------------------------------------- reference data


def _load_event_reference(conn: psycopg.Connection) -> None:
    """Taxonomy and statuses: small, so compared whole; only rows that differ are written."""
    with open(SCHEMAS / "taxonomy.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with conn.cursor() as cur:
        # Parents first so the self-reference holds.
        for r in sorted(rows, key=lambda r: bool(r["parent_code"])):
            cur.execute(
                "INSERT INTO core.event_category AS t (code, name, parent_code, version) "
                "VALUES (%s, %s, NULLIF(%s, ''), %s) ON CONFLICT (code) DO UPDATE SET "
                "name = EXCLUDED.name, parent_code = EXCLUDED.parent_code, version = EXCLUDED.version"
                " WHERE (t.name, t.parent_code, t.version) IS DISTINCT FROM"
                " (EXCLUDED.name, EXCLUDED.parent_code, EXCLUDED.version)",
                (r["code"], r["name"], r["parent_code"], r["version"]),
            )
        with open(SCHEMAS / "statuses.csv", encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                cur.execute(
                    "INSERT INTO core.event_status AS t (status, name_zh, sort_order, description) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (status) DO UPDATE SET "
                    "name_zh = EXCLUDED.name_zh, sort_order = EXCLUDED.sort_order, "
                    "description = EXCLUDED.description"
                    " WHERE (t.name_zh, t.sort_order, t.description) IS DISTINCT FROM"
                    " (EXCLUDED.name_zh, EXCLUDED.sort_order, EXCLUDED.description)",
                    (r["status"], r["name_zh"], int(r["order"]), r["description"]),
                )


def _load_org_aliases(conn: psycopg.Connection) -> None:
    """The curated organization-name aliases (schemas/reference/org_aliases.csv) as the
    file says: rows it no longer has are removed, only rows that differ are written."""
    with open(SCHEMAS / "reference" / "org_aliases.csv", encoding="utf-8", newline="") as f:
        rows = [(r["kind"].strip(), r["alias"].strip(), r["canonical"].strip(),
                 (r.get("note") or "").strip() or None) for r in csv.DictReader(f)]
    conn.execute(
        "DELETE FROM core.org_alias_curated c WHERE (c.kind, c.alias) NOT IN"
        " (SELECT k, a FROM unnest(%s::text[], %s::text[]) AS f(k, a))",
        ([r[0] for r in rows], [r[1] for r in rows]))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO core.org_alias_curated AS t (kind, alias, canonical, note)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (kind, alias) DO UPDATE SET"
            " canonical = EXCLUDED.canonical, note = EXCLUDED.note"
            " WHERE (t.canonical, t.note) IS DISTINCT FROM (EXCLUDED.canonical, EXCLUDED.note)",
            rows)


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


def record_city_settings(conn: psycopg.Connection, city: CityConfig) -> list[str]:
    """Record what the marts read of the sources file's `city` in ops.city_setting: the
    time zone (`record_city_timezone`), the response limits (响应率) and the small-count
    threshold (city.report.min_ratings). Returns a sentence per change (none: it was
    already so, and nothing was written)."""
    changes = []
    if record_city_timezone(conn, city.timezone):
        changes.append(f"the marts now count weeks and days in {city.timezone}")
    wanted = (city.response_limits.urgent_hours, city.response_limits.normal_hours,
              city.report.min_ratings)
    row = conn.execute("SELECT response_limit_urgent_h, response_limit_normal_h, min_ratings"
                       " FROM ops.city_setting").fetchone()
    if row is None or (float(row[0]), float(row[1]), int(row[2])) != wanted:
        # The row's trigger rewrites mart.response_limit() and mart.min_ratings().
        conn.execute("UPDATE ops.city_setting SET response_limit_urgent_h = %s,"
                     " response_limit_normal_h = %s, min_ratings = %s, updated_at = now()",
                     wanted)
        changes.append(f"the marts now judge responses within {wanted[0]:g} h (urgent) and "
                       f"{wanted[1]:g} h (others), and rates from fewer than {wanted[2]} "
                       "events as small")
    return changes


def record_city_timezone(conn: psycopg.Connection, timezone: str) -> bool:
    """Make the marts count weeks and days in `timezone` (the sources file's
    city.timezone); True when that changed anything. A read alone when it is already so:
    no row is locked, no function rewritten."""
    ZoneInfo(timezone)  # an IANA name, or fail before the warehouse is touched
    row = conn.execute("SELECT timezone FROM ops.city_setting").fetchone()
    if row is not None and row[0] == timezone:
        return False
    # The row's trigger rewrites mart.city_timezone() to return it.
    conn.execute("INSERT INTO ops.city_setting (timezone) VALUES (%s)"
                 " ON CONFLICT (singleton) DO UPDATE SET timezone = EXCLUDED.timezone,"
                 " updated_at = now()", (timezone,))
    return True
