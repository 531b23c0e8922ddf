"""Loading: a set-based merge of a batch into a core table, its rows written by COPY.

History is kept the slowly-changing way: a source record whose values changed gets
a new version and the old one is closed (`valid_to`); an unchanged record is left
alone, so loading the same batch twice changes nothing. A full snapshot loaded in
several batches records the keys it contained (`record_seen`); once complete,
`close_missing` closes the current records it lacked: they are gone from the
platform. Nothing is ever deleted.

All statements run on the caller's connection and transaction, so the pipeline
commits the merge, the quarantine, the run counters and the cursor together.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from schemas.model import Entity

# COPY is streamed in pieces of this many rows: bounded memory however big the batch.
COPY_CHUNK_ROWS = 20_000


@dataclass
class MergeCounts:
    inserted: int = 0  # new source records
    updated: int = 0  # records whose values changed: new version, old one closed
    unchanged: int = 0  # same values as the current version (or older than it)

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


def copy_arrow(conn: psycopg.Connection, table: pa.Table, target: sql.Composable) -> None:
    """COPY an Arrow table into `target` (its columns named as the table's) as CSV.

    pyarrow writes the CSV in C++; NULL is an unquoted empty field and an empty
    string a quoted one, which is exactly how PostgreSQL's CSV format reads them.
    """
    table = _utc_text_timestamps(table)
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    options = pacsv.WriteOptions(include_header=False, batch_size=COPY_CHUNK_ROWS)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, table.num_rows, COPY_CHUNK_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(table.slice(start, COPY_CHUNK_ROWS), buf, options)
            copy.write(buf.getbuffer())


def read_arrow(conn: psycopg.Connection, query: sql.Composable | str, schema: pa.Schema,
               params: dict[str, object] | None = None) -> pa.Table:
    """The rows of a query as an Arrow table of `schema` (its columns, in the query's order):
    COPY … TO STDOUT as CSV, parsed by pyarrow in C++, copy_arrow's way back.

    NULL is an unquoted empty field and an empty string a quoted one, so the two stay
    apart; times are written in UTC for the parse (the session's time zone is put back).
    """
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(query) if isinstance(query, str) else query)
    zone = conn.execute("SELECT current_setting('TimeZone')").fetchone()
    conn.execute("SELECT set_config('TimeZone', 'UTC', false)")
    buf = io.BytesIO()
    try:
        with conn.cursor() as cur, cur.copy(statement, params) as copy:
            for chunk in copy:
                buf.write(chunk)
    finally:
        # A failed COPY aborted the transaction: its rollback puts the zone back.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("SELECT set_config('TimeZone', %s, false)", (zone[0] if zone else "UTC",))
    if buf.tell() == 0:
        return schema.empty_table()
    buf.seek(0)
    return pacsv.read_csv(
        buf, read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                             quoted_strings_can_be_null=False,
                                             true_values=["t"], false_values=["f"]))


def _utc_text_timestamps(table: pa.Table) -> pa.Table:
    """Time-zone-aware timestamps as `… +00` text.

    pyarrow's CSV writer formats zoned timestamps through a slow per-value time
    zone path (most of the COPY's cost for a table with six of them); the same
    instants cast to naive and labelled UTC are written ten times faster.
    """
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            naive = pc.cast(table.column(i), pa.timestamp(f.type.unit))
            text = pc.binary_join_element_wise(pc.cast(naive, pa.string()), "+00", "")
            table = table.set_column(i, f.name, text)
    return table


def record_hashes(table: pa.Table) -> pa.Array:
    """A 64-bit hash of each row's values (all columns but the key), as text.

    It decides "changed or not" between versions of one source record, so 64 bits
    leave no practical chance of a miss. Computed vectorised in pandas: an md5 over
    each row's text in SQL cost as much as the rest of the merge.
    """
    values = table.drop_columns(["source_id"]).to_pandas()
    return pa.array(pd.util.hash_pandas_object(values, index=False).to_numpy()).cast(pa.string())


def row_hashes(entity: Entity, table: pa.Table) -> pa.Array:
    """The record hash of each of `entity`'s rows (load schema): every value but the key
    and the columns the resolve step sets after loading (`Entity.unhashed_columns`)."""
    return record_hashes(table.drop_columns(
        [c for c in entity.unhashed_columns() if c in table.column_names]))


def _current(conn: psycopg.Connection, entity: Entity, source_system: str,
             keys: pa.Array | pa.ChunkedArray, versioned: bool) -> pa.Table:
    """The current versions of these keys: source_id, record_hash as current_hash (and
    source_updated_at as current_updated_at), and the keys the resolve step set."""
    resolved = entity.resolved_columns()
    types = {"source_id": pa.string(), "current_hash": pa.string(),
             **({"current_updated_at": pa.timestamp("us", tz="UTC")} if versioned else {}),
             **dict.fromkeys(resolved, pa.string())}
    selected = [sql.Identifier("source_id"), sql.SQL("record_hash"),
                *([sql.SQL("source_updated_at")] if versioned else []),
                *map(sql.Identifier, resolved)]
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE source_system = %s"
                " AND valid_to IS NULL AND source_id = ANY(%s)").format(
            sql.SQL(", ").join(selected), sql.Identifier(*entity.table.split("."))),
        (source_system, keys.to_pylist()),
    ).fetchall()
    columns: list[tuple[object, ...]] = (list(zip(*rows, strict=True)) if rows
                                         else [()] * len(types))
    return pa.table({name: pa.array(values, type_)
                     for (name, type_), values in zip(types.items(), columns, strict=True)})


def merge(
    conn: psycopg.Connection,
    entity: Entity,
    table: pa.Table,
    *,
    source_system: str,
    stream: str,
    run_id: int,
    hashes: pa.Array | None = None,
) -> MergeCounts:
    """Merge one batch of `entity` rows (load schema, one row per source_id); `hashes`,
    their `row_hashes` if the caller computed them ahead (else computed here).

    Set-based in two statements whatever the batch size: one look-up of the
    batch's keys among the current rows (via the unique current-key index), then
    one UPDATE closing the versions that changed and one COPY of the new and
    changed rows straight into the core table. No staging copy: the rows are
    written once, as a plain COPY would write them. The source's advisory lock
    (hub.pipeline) guarantees no other writer of these keys meanwhile.
    """
    versioned = "source_updated_at" in table.column_names
    keys = table["source_id"]
    # The key look-up runs on the server while the row hashes are computed here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        looked_up = pool.submit(_current, conn, entity, source_system, keys, versioned)
        if hashes is None:
            hashes = row_hashes(entity, table)
        current = looked_up.result()
    # Each row's current version, by position (null: none), the batch's order kept.
    at = pc.index_in(keys, value_set=current["source_id"])
    exists = pc.is_valid(at)
    differs = pc.fill_null(pc.not_equal(hashes, current["current_hash"].take(at)), True)
    if versioned:
        # A record older than the current version (a replayed or late copy) never
        # overwrites newer data.
        older = pc.fill_null(pc.less(table["source_updated_at"],
                                     current["current_updated_at"].take(at)), False)
        differs = pc.and_(differs, pc.invert(older))
    changed = pc.and_(exists, differs)
    write = pc.or_(pc.invert(exists), changed)

    changed_keys = keys.filter(changed)
    if len(changed_keys):
        conn.execute(
            sql.SQL("UPDATE {} SET valid_to = now() WHERE source_system = %s"
                    " AND valid_to IS NULL AND source_id = ANY(%s)").format(
                sql.Identifier(*entity.table.split("."))),
            (source_system, changed_keys.to_pylist()),
        )
    new_rows = _carry_resolved(entity, table, current, at).append_column(
        "record_hash", hashes).filter(write)
    if new_rows.num_rows:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        n = new_rows.num_rows
        new_rows = (new_rows
                    .append_column("source_system", _repeat(source_system, n, pa.string()))
                    .append_column("source_stream", _repeat(stream, n, pa.string()))
                    .append_column("run_id", _repeat(run_id, n, pa.int64()))
                    # The transaction's now(): the same instant the UPDATE closed with.
                    .append_column("valid_from", _repeat(row[0], n,
                                                         pa.timestamp("us", tz="UTC"))))
        copy_arrow(conn, new_rows, sql.Identifier(*entity.table.split(".")))
    n_changed = len(changed_keys)
    n_written = new_rows.num_rows
    return MergeCounts(inserted=n_written - n_changed, updated=n_changed,
                       unchanged=table.num_rows - n_written)


def _carry_resolved(entity: Entity, table: pa.Table, current: pa.Table,
                    at: pa.Array) -> pa.Table:
    """The rows with the keys the resolve step set on their current versions, where the
    rows bring none (they never do: conformers leave them to linking). After the record
    hash: a carried key is no change of the record."""
    for name in entity.resolved_columns():
        prior = current[name].take(at)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name,
                                     pc.coalesce(table[name], prior))
        else:
            table = table.append_column(name, prior)
    return table


def _repeat(value: object, n: int, type_: pa.DataType) -> pa.Array:
    """`value` n times, without a Python list of n items."""
    return pa.repeat(pa.scalar(value, type_), n)


def record_seen(conn: psycopg.Connection, source_system: str, stream: str, snapshot_id: str,
                source_ids: pa.Array | pa.ChunkedArray) -> None:
    """Note the keys a batch of a full snapshot contained (loaded or quarantined)."""
    n = len(source_ids)
    copy_arrow(conn, pa.table({
        "source_system": _repeat(source_system, n, pa.string()),
        "stream": _repeat(stream, n, pa.string()),
        "snapshot_id": _repeat(snapshot_id, n, pa.string()),
        "source_id": source_ids,
    }), sql.Identifier("ops", "snapshot_seen"))


class SnapshotTooSmall(RuntimeError):
    """A complete snapshot would close more records than a platform plausibly lost."""


def close_missing(conn: psycopg.Connection, entity: Entity, source_system: str, stream: str,
                  snapshot_id: str, *, min_ratio: float = 0.0) -> int:
    """The snapshot is complete: close current records of the stream it did not contain.

    A truncated export that is still a valid file (a header and ten rows) would
    close nearly everyone. With `min_ratio`, a snapshot holding fewer distinct
    records than that share of the stream's current ones is refused unless an
    operator accepted it (ops.snapshot_acceptance): the batch rolls back, the
    cursor stays, and the run fails with a message saying what to check. File
    snapshots are refused earlier, by their connector, before any batch loads;
    this guard stands for snapshots served in pages.
    """
    params = {"system": source_system, "stream": stream, "snapshot": snapshot_id}
    accepted = conn.execute(
        "SELECT 1 FROM ops.snapshot_acceptance WHERE source_system = %(system)s"
        " AND stream = %(stream)s AND snapshot_id = %(snapshot)s", params).fetchone()
    if min_ratio > 0 and not accepted:
        row = conn.execute(
            sql.SQL(
                # Distinct keys: a batch re-read after a crash notes its keys again.
                "SELECT (SELECT count(DISTINCT source_id) FROM ops.snapshot_seen"
                " WHERE source_system = %(system)s"
                " AND stream = %(stream)s AND snapshot_id = %(snapshot)s),"
                " (SELECT count(*) FROM {} WHERE source_system = %(system)s"
                " AND source_stream = %(stream)s AND valid_to IS NULL)"
            ).format(sql.Identifier(*entity.table.split("."))),
            params,
        ).fetchone()
        seen, current = row if row else (0, 0)
        if current and seen < min_ratio * current:
            raise SnapshotTooSmall(
                f"{source_system}/{stream}: snapshot {snapshot_id} holds {seen:,} records where"
                f" {current:,} are current; closing the rest would take more than"
                f" {1 - min_ratio:.0%} of them off the register. Check the source; if the"
                f" drop is real, accept it: hub snapshot accept {source_system} {stream}"
                f" '{snapshot_id}' --reason …, and rerun."
            )
    # Filled in this transaction, so without statistics: the planner would pick a
    # nested-loop anti join, quadratic in the snapshot's size.
    conn.execute("ANALYZE ops.snapshot_seen")
    closed = conn.execute(
        sql.SQL(
            "UPDATE {} t SET valid_to = now() WHERE t.source_system = %(system)s"
            " AND t.source_stream = %(stream)s AND t.valid_to IS NULL AND NOT EXISTS ("
            " SELECT 1 FROM ops.snapshot_seen s WHERE s.source_system = %(system)s"
            " AND s.stream = %(stream)s AND s.snapshot_id = %(snapshot)s"
            " AND s.source_id = t.source_id)"
        ).format(sql.Identifier(*entity.table.split("."))),
        params,
    ).rowcount
    conn.execute("DELETE FROM ops.snapshot_seen WHERE source_system = %(system)s"
                 " AND stream = %(stream)s AND snapshot_id = %(snapshot)s", params)
    return closed
