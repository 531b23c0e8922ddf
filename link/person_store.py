"""What person linking reads from the warehouse and keeps there between runs.

A full run reads every current core.person record. An incremental run reads only what it
must (`read_subset`): the records new or changed since the last run, every record of the
clusters such a record, a vanished record or a steward's decision touches (compared
again), and the clusters of the candidates that share a blocking key with any of those
(standing as they are). Candidates are found in core.person_match, which keeps each
current record's compared values in their normal forms, through its indexes, so nothing
is normalised twice and the city is never read whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from base.settings import settings
from link import person_model
from warehouse.deferred_indexes import built_after
from warehouse.loader import copy_arrow, read_arrow

RECORDS_SCHEMA = pa.schema([
    ("row_id", pa.int64()),
    ("source_system", pa.string()),
    ("source_id", pa.string()),
    ("role", pa.string()),
    ("name", pa.string()),
    ("gender", pa.string()),
    ("id_number_hash", pa.string()),
    ("id_number_masked", pa.string()),
    ("birth_date", pa.date32()),
    ("phone_hash", pa.string()),
    ("phone_masked", pa.string()),
    ("current_address", pa.string()),
    ("household_address", pa.string()),
    ("division_code", pa.string()),
    ("street_code", pa.string()),
    ("grid_code", pa.string()),
    ("valid_from", pa.timestamp("us", tz="UTC")),
    ("current_key", pa.string()),
    ("linked_key", pa.string()),
    ("linked", pa.bool_()),
    ("matched_row", pa.int64()),  # the version core.person_match holds values of
])
# The compared values core.person_match keeps (FEATURE_SCHEMA without the run's row
# number and the phone block, which depends on how many records share the phone).
MATCH_COLUMNS = tuple(f.name for f in person_model.FEATURE_SCHEMA
                      if f.name not in ("unique_id", "phone_block"))
_MATCH_SCHEMA = pa.schema([person_model.FEATURE_SCHEMA.field(c) for c in MATCH_COLUMNS])

_RECORD_COLUMNS = """
       p.row_id, p.source_system, p.source_id, p.role, p.name, p.gender, p.id_number_hash,
       p.id_number_masked, p.birth_date, p.phone_hash, p.phone_masked, p.current_address,
       p.household_address, p.division_code, p.street_code, p.grid_code, p.valid_from,
       p.person_key, l.person_key, l.source_id IS NOT NULL, m.row_id"""
_RECORD_JOINS = """
  LEFT JOIN core.person_link l ON l.source_system = p.source_system AND l.source_id = p.source_id
  LEFT JOIN core.person_match m ON m.source_system = p.source_system
                               AND m.source_id = p.source_id"""
_ALL_SQL = f"""
SELECT {_RECORD_COLUMNS}
  FROM core.person p {_RECORD_JOINS}
 WHERE p.valid_to IS NULL
"""  # noqa: S608 (constant text)
# A load stamps its records with its transaction's start: one still open when the last
# run started committed records older than that run and no key. Such records are looked
# for this far back (a full run finds any older).
LOAD_WINDOW = timedelta(days=1)
# The joins of a record read by itself (an incremental run's few records): one index probe
# each. A LATERAL subquery with OFFSET 0 is never flattened into a join the planner could
# answer by hashing the whole table, which it otherwise prefers for a few thousand probes.
# No LIMIT 1: with it the planner costs a scan as if the first row it reads were the one.
# A record is looked up by its source key among all its versions (the index person_history)
# and the current one kept outside the subquery (OFFSET 0: the condition stays outside): asked
# for the current version, the planner may take the partial index person_record_ref, whose
# first column is the platform, and read every current record of the platform per look-up
# (it did, on a warehouse not analysed since its load).
_PROBE_JOINS = """
  LEFT JOIN LATERAL (SELECT l.person_key, l.source_id FROM core.person_link l
                      WHERE l.source_system = p.source_system AND l.source_id = p.source_id
                      OFFSET 0) l ON true
  LEFT JOIN LATERAL (SELECT m.* FROM core.person_match m
                      WHERE m.source_system = p.source_system AND m.source_id = p.source_id
                      OFFSET 0) m ON true"""
# New or changed since the last run (a new version carries no key), or named by a
# decision made or revoked since: the first through the index of current records by load
# time, the second through the current records' source key (two probes, not an OR the
# planner answers by reading the table).
_FRESH_SQL = f"""
WITH fresh AS (
  SELECT p.row_id FROM core.person p
   WHERE p.valid_to IS NULL AND p.valid_from > %(since)s - %(window)s
     AND (p.person_key IS NULL OR p.valid_from > %(since)s)
  UNION
  SELECT p.row_id FROM unnest(%(systems)s::text[], %(ids)s::text[]) AS a(s, i)
   CROSS JOIN LATERAL (SELECT p.row_id, p.valid_to FROM core.person p
                        WHERE p.source_system = a.s AND p.source_id = a.i OFFSET 0) p
   WHERE p.valid_to IS NULL)
SELECT {_RECORD_COLUMNS}
  FROM fresh f
 CROSS JOIN LATERAL (SELECT p.* FROM core.person p WHERE p.row_id = f.row_id OFFSET 0) p
 {_PROBE_JOINS}
"""  # noqa: S608 (constant text)
_CONTEXT_SQL = f"""
SELECT {_RECORD_COLUMNS}, s.compared, {", ".join(f"m.{c}" for c in MATCH_COLUMNS)}
  FROM person_subset s
 CROSS JOIN LATERAL (SELECT p.* FROM core.person p WHERE p.source_system = s.source_system
                      AND p.source_id = s.source_id OFFSET 0) p
 {_PROBE_JOINS}
 WHERE p.valid_to IS NULL
"""  # noqa: S608 (constant text)
_CONTEXT_SCHEMA = pa.schema([*RECORDS_SCHEMA, ("compared", pa.bool_()),
                             *(f.with_name(f"m_{f.name}") for f in _MATCH_SCHEMA)])

# Current records sharing a blocking key (person_model.BLOCKING_RULES) with a probe: by
# phone and ID number through core.person's indexes, by name through core.person_match's;
# each probe an index lookup (LATERAL: see _PROBE_JOINS).
_CANDIDATES = " UNION ".join([
    *(f"SELECT c.source_system, c.source_id FROM person_probe f CROSS JOIN LATERAL ("  # noqa: S608
      f"SELECT p.source_system, p.source_id FROM core.person p WHERE p.{column} = f.{probe}"
      f" AND p.valid_to IS NULL OFFSET 0) c WHERE f.{probe} IS NOT NULL"
      for column, probe in (("phone_hash", "phone_block"), ("id_number_hash", "id_hash"))),
    *(f"SELECT c.source_system, c.source_id FROM person_probe f CROSS JOIN LATERAL ("  # noqa: S608
      f"SELECT m.source_system, m.source_id FROM core.person_match m WHERE {on} OFFSET 0) c"
      f" WHERE {probe}"
      for on, probe in (
          ("m.birth_date = f.birth_date AND (m.surname = f.surname OR m.pinyin = f.pinyin)",
           "f.birth_date IS NOT NULL"),
          ("m.name = f.name AND m.street_code = f.street_code",
           "f.name IS NOT NULL AND f.street_code IS NOT NULL")))])


def read_all(conn: psycopg.Connection) -> pa.Table:
    """Every current record (RECORDS_SCHEMA), in the order of its source key."""
    return _sorted(read_arrow(conn, _ALL_SQL, RECORDS_SCHEMA))


def read_fresh(conn: psycopg.Connection, since: Any, named: Sequence[tuple[str, str]]
               ) -> pa.Table:
    """Current records new or changed since `since`, and those of `named`."""
    return read_arrow(conn, _FRESH_SQL, RECORDS_SCHEMA, {
        "since": since, "window": LOAD_WINDOW, "systems": [r[0] for r in named],
        "ids": [r[1] for r in named]})


def read_subset(conn: psycopg.Connection, fresh: pa.Table, fresh_match: pa.Table,
                touched: set[str], anchored: Sequence[tuple[str, str]]
                ) -> tuple[pa.Table, pa.Table, pa.Array, set[str]]:
    """The stored records an incremental run needs beside the `fresh` ones (`fresh_match`:
    their compared values, MATCH_COLUMNS): every record of the keys `touched` (compared
    again), and every record of the clusters holding a candidate of theirs or a record
    `anchored` (a steward's decision names it), which stand as they are.
    Returns (records, their compared values, whether each is compared again, the phones
    too many stored records share to block on)."""
    conn.execute("CREATE TEMP TABLE person_fresh (source_system text, source_id text,"
                 " PRIMARY KEY (source_system, source_id)) ON COMMIT DROP")
    copy_arrow(conn, fresh.select(["source_system", "source_id"]),
               sql.Identifier("person_fresh"))
    conn.execute("CREATE TEMP TABLE person_probe ON COMMIT DROP AS SELECT * FROM"
                 " core.person_match WITH NO DATA")
    copy_arrow(conn, match_rows(fresh, fresh_match), sql.Identifier("person_probe"))
    conn.execute(
        "INSERT INTO person_probe SELECT m.* FROM core.person_link l CROSS JOIN LATERAL ("
        " SELECT m.* FROM core.person_match m WHERE m.source_system = l.source_system"
        " AND m.source_id = l.source_id OFFSET 0) m WHERE l.person_key = ANY(%s)",
        (sorted(touched),))
    conn.execute("ALTER TABLE person_probe ADD COLUMN phone_block text")
    frequent = frequent_phones(conn, "SELECT phone_hash FROM person_probe")
    conn.execute("UPDATE person_probe SET phone_block = phone_hash"
                 " WHERE NOT (phone_hash = ANY(%s))", (sorted(frequent),))
    conn.execute("ANALYZE person_fresh")
    conn.execute("ANALYZE person_probe")
    # DISTINCT ON: a record may come both ways (compared again, and a candidate's cluster).
    conn.execute(f"""
CREATE TEMP TABLE person_subset ON COMMIT DROP AS
WITH candidates AS ({_CANDIDATES}),
keys AS (
  SELECT l.person_key, false AS compared FROM candidates c CROSS JOIN LATERAL (
      SELECT l.person_key FROM core.person_link l WHERE l.source_system = c.source_system
         AND l.source_id = c.source_id OFFSET 0) l
  UNION SELECT l.person_key, false FROM unnest(%(systems)s::text[], %(ids)s::text[]) a(s, i)
      CROSS JOIN LATERAL (SELECT l.person_key FROM core.person_link l
                           WHERE l.source_system = a.s AND l.source_id = a.i OFFSET 0) l
  UNION SELECT unnest(%(touched)s::text[]), true)
SELECT DISTINCT ON (l.source_system, l.source_id) l.source_system, l.source_id, k.compared
  FROM keys k CROSS JOIN LATERAL (
      SELECT l.source_system, l.source_id FROM core.person_link l
       WHERE l.person_key = k.person_key OFFSET 0) l
 WHERE NOT EXISTS (SELECT 1 FROM person_fresh f WHERE f.source_system = l.source_system
                   AND f.source_id = l.source_id)
 ORDER BY l.source_system, l.source_id, k.compared DESC
""", {"touched": sorted(touched), "systems": [a[0] for a in anchored],  # noqa: S608
      "ids": [a[1] for a in anchored]})
    context = read_arrow(conn, _CONTEXT_SQL, _CONTEXT_SCHEMA)
    frequent |= frequent_phones(
        conn, "SELECT m.phone_hash FROM person_subset s CROSS JOIN LATERAL ("
              " SELECT m.phone_hash FROM core.person_match m WHERE m.source_system ="
              " s.source_system AND m.source_id = s.source_id OFFSET 0) m")
    match = context.select([f"m_{c}" for c in MATCH_COLUMNS]).rename_columns(MATCH_COLUMNS)
    return (context.select(RECORDS_SCHEMA.names), match, context["compared"].combine_chunks(),
            frequent)


def match_rows(records: pa.Table, match: pa.Table) -> pa.Table:
    """Rows of core.person_match: each record's source key and version with its values."""
    return pa.table({
        "source_system": records["source_system"], "source_id": records["source_id"],
        "row_id": records["row_id"], **{c: match[c] for c in MATCH_COLUMNS}})


def frequent_phones(conn: psycopg.Connection, phones_sql: str) -> set[str]:
    """Of the phone hashes the query `phones_sql` gives, those more current records than
    MAX_PHONE_BLOCK share (no blocking key: an office switchboard, a placeholder): each
    counted through the index of current phones, up to one more than the cap."""
    return {r[0] for r in conn.execute(
        f"SELECT f.phone_hash FROM (SELECT DISTINCT q.phone_hash FROM ({phones_sql}) AS q"  # noqa: S608
        f" WHERE q.phone_hash IS NOT NULL) f CROSS JOIN LATERAL (SELECT count(*) AS n FROM ("
        f"SELECT 1 FROM core.person p WHERE p.phone_hash = f.phone_hash AND p.valid_to IS NULL"
        f" LIMIT %(cap)s + 1) c) c WHERE c.n > %(cap)s",
        {"cap": person_model.MAX_PHONE_BLOCK})}


def name_frequencies(conn: psycopg.Connection, names: pa.Array, records: int) -> pa.Table:
    """The share of the `records` current records that carry each of `names` (Splink's
    term-frequency table of the name column: `name`, `tf_name`), for an incremental run's
    names: counted in core.person_match, which holds every record linked before."""
    distinct = pc.unique(names.drop_null()).to_pylist()
    rows = conn.execute(
        "SELECT name, count(*)::float8 / %s FROM core.person_match WHERE name = ANY(%s)"
        " GROUP BY name", (max(records, 1), distinct)).fetchall()
    return pa.table({"name": pa.array([r[0] for r in rows], pa.string()),
                     "tf_name": pa.array([r[1] for r in rows], pa.float64())})


def bulk_write(conn: psycopg.Connection, table: str, rows: int
               ) -> AbstractContextManager[bool]:
    """Around the COPY of `rows` new rows into one of linking's tables: the first run of a
    city writes every row into empty tables, whose secondary indexes are then built once
    at the end instead of row by row (warehouse.deferred_indexes.built_after)."""
    return built_after(conn, table, rows, source="person linking",
                       from_rows=settings().defer_indexes_from)


def write_matches(conn: psycopg.Connection, rows: pa.Table, new: pa.Array,
                  vanished: Sequence[tuple[str, str]]) -> None:
    """core.person_match: `rows` (match_rows), COPYed where `new` (no row yet), else
    replacing the row they have; the rows of `vanished` records go."""
    made = rows.filter(new)
    with bulk_write(conn, "core.person_match", made.num_rows):
        copy_arrow(conn, made, sql.Identifier("core", "person_match"))
    changed = rows.filter(pc.invert(new))
    if changed.num_rows:
        conn.execute("CREATE TEMP TABLE person_match_stage ON COMMIT DROP AS SELECT * FROM"
                     " core.person_match WITH NO DATA")
        copy_arrow(conn, changed, sql.Identifier("person_match_stage"))
        values = ["row_id", *MATCH_COLUMNS]
        conn.execute(
            "UPDATE core.person_match m SET ({cols}) = ({new}) FROM person_match_stage s"  # noqa: S608
            " WHERE m.source_system = s.source_system AND m.source_id = s.source_id".format(
                cols=", ".join(values), new=", ".join(f"s.{c}" for c in values)))
    if vanished:
        conn.execute(
            "DELETE FROM core.person_match WHERE (source_system, source_id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([v[0] for v in vanished], [v[1] for v in vanished]))


def vanished(conn: psycopg.Connection, since: Any) -> list[tuple[str, str, str]]:
    """Linked records with no current version: (source_system, source_id, person_key).
    With `since`, only those closed since then (an incremental run); else every one."""
    if since is None:
        return [tuple(r) for r in conn.execute(
            "SELECT l.source_system, l.source_id, l.person_key FROM core.person_link l"
            " WHERE NOT EXISTS (SELECT 1 FROM core.person p WHERE p.valid_to IS NULL"
            " AND p.source_system = l.source_system AND p.source_id = l.source_id)")]
    return [tuple(r) for r in conn.execute(
        "SELECT DISTINCT l.source_system, l.source_id, l.person_key FROM core.person c"
        " JOIN core.person_link l ON l.source_system = c.source_system"
        " AND l.source_id = c.source_id WHERE c.valid_to > %s - %s AND NOT EXISTS ("
        " SELECT 1 FROM core.person p WHERE p.valid_to IS NULL"
        " AND p.source_system = c.source_system AND p.source_id = c.source_id)",
        (since, LOAD_WINDOW))]


def stored(conn: psycopg.Connection) -> bool:
    """Whether core.person_match holds compared values (an earlier run wrote them)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM core.person_match)").fetchone()
    return bool(row and row[0])


def _sorted(table: pa.Table) -> pa.Table:
    return _take(table, pc.sort_indices(table, [("source_system", "ascending"),
                                                ("source_id", "ascending")]))


def _take(table: pa.Table, rows: pa.Array) -> pa.Table:
    """`table.take(rows)`, its columns taken side by side (Arrow's take goes column by
    column on one core: 1.3 s for a city's million records)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="link-take") as pool:
        columns = list(pool.map(lambda column: column.take(rows), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def combine(fresh: pa.Table, fresh_match: pa.Table, context: pa.Table, context_match: pa.Table,
            compared: pa.Array) -> tuple[pa.Table, pa.Table, pa.Array]:
    """Fresh and stored records as one table in the order of their source key: (records,
    compared values, whether each is compared)."""
    records = pa.concat_tables([fresh, context])
    match = pa.concat_tables([fresh_match, context_match])
    flags = pa.concat_arrays([pa.array([True] * fresh.num_rows, pa.bool_()), compared])
    order = pc.sort_indices(records, [("source_system", "ascending"),
                                      ("source_id", "ascending")])
    return _take(records, order), _take(match, order), flags.take(order)
