"""Loading: a set-based merge of a batch into a core table, its rows written by COPY.

History is kept the slowly-changing way: a source record whose values changed gets
a new version and the old one is closed (`valid_to`); an unchanged record is left
alone, so loading the same batch twice changes nothing. A full snapshot loaded in
several batches records the keys it contained (`record_seen`; those set aside as
unchanged are known by their digests instead); once complete, `close_missing` closes
the current records it lacked: they are gone from the platform. Nothing is ever deleted.

All statements run on the caller's connection and transaction, so the pipeline
commits the merge, the quarantine, the run counters and the cursor together.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from schemas.model import Entity
from warehouse.first_loads import KeyHashes, KeysWritten

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


@contextmanager
def planner_settings(conn: psycopg.Connection, **settings: str) -> Iterator[None]:
    """The planner's `settings` (`enable_nestloop="off"`, `work_mem="256MB"`) for the
    statements inside, then as they were. For statements over tables filled in this
    very transaction: without statistics the planner takes such a table for a row or
    two, and picks plans that are quadratic in its real size."""
    names = list(settings)
    saved = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("current_setting({0}), set_config({0}, {1}, true)").format(
            sql.Literal(name), sql.Literal(settings[name])) for name in names))).fetchone()
    assert saved is not None
    yield
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in zip(names, saved[::2], strict=True))))


def copy_arrow(conn: psycopg.Connection, table: pa.Table, target: sql.Composable) -> None:
    """COPY an Arrow table into `target` (its columns named as the table's) as CSV.

    pyarrow writes the CSV in C++; NULL is an unquoted empty field and an empty
    string a quoted one, which is exactly how PostgreSQL's CSV format reads them.
    """
    _copy_csv(conn, table.column_names, _csv_pieces(table), target)


def _csv_pieces(table: pa.Table) -> Iterator[memoryview]:
    """The table as CSV (copy_arrow's), in pieces of COPY_CHUNK_ROWS rows, each written
    when it is asked for: the next one while the server reads the one before."""
    for start in range(0, table.num_rows, COPY_CHUNK_ROWS):
        yield _csv_piece(table, start)


def _csv_piece(table: pa.Table, start: int, rows: int = COPY_CHUNK_ROWS) -> memoryview:
    """The CSV of `rows` rows of `table` from `start`."""
    buf = io.BytesIO()
    pacsv.write_csv(_utc_text_timestamps(table.slice(start, rows)), buf, _CSV_OPTIONS)
    return buf.getbuffer()


def _pieces_ahead(table: pa.Table) -> list[tuple[int, int]]:
    """Where the pieces of a COPY written ahead in a pool start, and their rows: an eighth
    of COPY_CHUNK_ROWS first, each next one twice the one before up to COPY_CHUNK_ROWS, so
    that the server has rows to read from the start and each piece is written while it
    reads those before (beside a batch's checks, a first piece of 20,000 rows kept it
    waiting 60-200 ms, and a second 40-150 ms after a first of 2,500)."""
    out: list[tuple[int, int]] = []
    start, rows = 0, COPY_CHUNK_ROWS // 8
    while start < table.num_rows:
        out.append((start, min(rows, table.num_rows - start)))
        start, rows = start + rows, min(2 * rows, COPY_CHUNK_ROWS)
    return out


_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=COPY_CHUNK_ROWS)


def _copy_csv(conn: psycopg.Connection, names: Sequence[str], pieces: Iterable[memoryview],
              target: sql.Composable) -> None:
    """COPY CSV pieces (`_csv_pieces`) into the columns `names` of `target`."""
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for piece in pieces:
            copy.write(piece)


def read_bigints(conn: psycopg.Connection, query: str, columns: Sequence[str],
                 params: dict[str, object] | None = None) -> dict[str, np.ndarray]:
    """The columns of a query of non-null bigints only, as numpy arrays: COPY … TO STDOUT
    in PostgreSQL's binary format, whose rows are then all one size, read by numpy
    without a parse (1.34 M digests: a tenth of the time of CSV through read_arrow)."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(sql.SQL(query))
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        for chunk in copy:
            buf.write(chunk)
    data = buf.getbuffer()
    # Signature (11 bytes), flags (4), header extension length (4) and the extension.
    start = 19 + int.from_bytes(data[15:19], "big")
    row = np.dtype([("fields", ">i2"), *((f, [("length", ">i4"), ("value", ">i8")])
                                          for f in columns)])
    size = len(data) - start - 2  # the trailer: -1 as a field count
    count, rest = divmod(size, row.itemsize) if size >= 0 else (0, size)
    rows = np.frombuffer(data, row, count=count, offset=start)
    if rest or not ((rows["fields"] == len(columns)).all() and all(
            (rows[f]["length"] == 8).all() for f in columns)):
        raise ValueError(f"read_bigints: not {len(columns)} non-null bigints a row: {query}")
    return {f: rows[f]["value"].astype(np.int64) for f in columns}


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


@dataclass
class _Found:
    """Which of a batch's rows have a current version, and which of those differ from it
    (to be written, the current version closed): row masks in the batch's order; and the
    keys the resolve step set on the current versions, per row (null: none)."""

    exists: np.ndarray
    changed: np.ndarray
    resolved: dict[str, pa.Array]


def _current(conn: psycopg.Connection, entity: Entity, source_system: str,
             keys: pa.Array | pa.ChunkedArray, hashes: pa.Array,
             updated: pa.Array | pa.ChunkedArray | None) -> _Found:
    """Each key's current version, compared with the batch's row (`hashes`: its record
    hashes): changed where the hash differs and (`updated`: the rows' source_updated_at)
    the row is not older than it (a replayed or late copy never overwrites newer data)."""
    n = len(keys)
    resolved = entity.resolved_columns()
    # The keys in order, sent binary, walked in one scan of the current-key index (or
    # the history index) in that order: each index page read once, and pages between
    # two keys skipped; no heap page read for a key not there. `source_id = ANY(<keys>)`
    # alone was planned as a hashed scan of the source's current rows, growing with each
    # batch loaded (and on pages a COPY had just written setting their hint bits: with
    # data checksums, WAL-logged). The order asked for is one only those two indexes
    # give: before statistics name the source (a table or a source new to the
    # warehouse), the planner would take others for as good (person_record_ref leads
    # with source_system but holds no source_id). The versions found are compared there
    # with the batch's rows (joined by key, hashed): only row numbers come back, and the
    # resolved keys of the rows that changed; no Python object per row.
    order = pc.sort_indices(keys)
    ordered = keys.take(order)
    params: dict[str, object] = {"system": source_system, "keys": _joined(ordered),
                                 "hashes": _joined(hashes.take(order))}
    write = "(t.record_hash IS DISTINCT FROM k.h"
    if updated is not None:
        micros = pc.cast(pc.cast(updated, pa.timestamp("us", tz="UTC")), pa.int64())
        params["micros"] = _joined(micros.take(order))
        write += " AND NOT coalesce(k.u < t.u, false)"
    write += ")"

    def array(name: str, type_: str) -> sql.Composable:
        """A parameter as an array: one text, split on the server."""
        if isinstance(params[name], str):
            return sql.SQL("string_to_array({}, {}, '')::{}[]").format(
                sql.Placeholder(name), sql.Literal(_SEP), sql.SQL(type_))
        return sql.SQL("{}::{}[]").format(sql.Placeholder(name), sql.SQL(type_))

    for name in ("keys", "hashes", "micros"):
        if name in params and params[name] is None:  # a value holding the separator
            column = {"keys": ordered, "hashes": hashes.take(order),
                      "micros": micros.take(order) if updated is not None else None}[name]
            assert column is not None
            params[name] = column.to_pylist()
    query = sql.SQL(
        "SELECT array_agg(k.i) FILTER (WHERE NOT ({write})),"
        " array_agg(k.i ORDER BY k.i) FILTER (WHERE {write}){carried}"
        " FROM (SELECT source_id, record_hash{u}{resolved} FROM {table}"
        " WHERE source_system = {system} AND valid_to IS NULL AND source_id = ANY({keys})"
        " ORDER BY source_id OFFSET 0) t"
        " JOIN unnest({keys}, {hashes}{u_param}) WITH ORDINALITY AS k(source_id, h{u_col}, i)"
        " USING (source_id)").format(
        write=sql.SQL(write),
        carried=sql.SQL("").join(
            sql.SQL(", array_agg(t.{} ORDER BY k.i) FILTER (WHERE {})").format(
                sql.Identifier(name), sql.SQL(write)) for name in resolved),
        u=sql.SQL(", (extract(epoch FROM source_updated_at) * 1000000)::bigint AS u"
                  if updated is not None else ""),
        resolved=sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(name))
                                  for name in resolved),
        table=sql.Identifier(*entity.table.split(".")),
        system=sql.Placeholder("system"),
        keys=array("keys", "text"),
        hashes=array("hashes", "text"),
        u_param=(sql.SQL(", {}").format(array("micros", "bigint")) if updated is not None
                 else sql.SQL("")),
        u_col=sql.SQL(", u" if updated is not None else ""))
    # The planner's choices made for it, for this statement alone (its estimates of
    # a source it has no statistics for are a row: it would loop over the keys).
    with planner_settings(conn, enable_seqscan="off", enable_sort="off", enable_nestloop="off"):
        row = conn.execute(query, params).fetchone()
    assert row is not None
    # Row numbers (from 1) in the sorted order, back to the batch's.
    at = order.to_numpy()
    same = at[np.asarray(row[0] or [], dtype=np.int64) - 1]
    differ = at[np.asarray(row[1] or [], dtype=np.int64) - 1]
    exists = np.zeros(n, dtype=bool)
    changed = np.zeros(n, dtype=bool)
    exists[same] = True
    exists[differ] = True
    changed[differ] = True
    prior: dict[str, pa.Array] = {}
    for j, name in enumerate(resolved):
        values = np.full(n, None, dtype=object)
        values[differ] = row[2 + j] or []
        prior[name] = pa.array(values, pa.string())
    return _Found(exists, changed, prior)


# Between the values of an array sent as one text (`_joined`): the ASCII record separator.
_SEP = "\x1e"


def _joined(values: pa.Array | pa.ChunkedArray) -> str | None:
    """The values as one text, `_SEP` between them (null: empty), which the server splits
    (string_to_array): the driver dumps a list parameter element by element in Python,
    0.1 s for 50,000 keys. None where a value is empty or holds the separator."""
    text = pc.cast(values, pa.string())
    if len(text) == 0 or pc.any(pc.or_(pc.equal(text, ""), pc.match_substring(
            text, _SEP))).as_py():
        return None
    return _SEP.join(pc.fill_null(text, "").to_pylist())


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array without nulls as numpy's."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.to_numpy(zero_copy_only=False)


def merge(
    conn: psycopg.Connection,
    entity: Entity,
    table: pa.Table,
    *,
    source_system: str,
    stream: str,
    run_id: int,
    hashes: pa.Array | None = None,
    written: KeysWritten | None = None,
    keys_hashed: KeyHashes | None = None,
) -> MergeCounts:
    """Merge one batch of `entity` rows (load schema, one row per source_id); `hashes`,
    their `row_hashes` if the caller computed them ahead (else computed here).

    Set-based in two statements whatever the batch size: one look-up of the
    batch's keys among the current rows (via the unique current-key index), then
    one UPDATE closing the versions that changed and one COPY of the new and
    changed rows straight into the core table. No staging copy: the rows are
    written once, as a plain COPY would write them. The source's advisory lock
    (hub.pipeline) guarantees no other writer of these keys meanwhile.

    `written`: on a first load (`warehouse.first_loads`), the keys the load wrote so
    far: a batch none of whose keys it may have written is new throughout, and is
    COPYed without the look-up; its keys are noted (`keys_hashed`: as `key_hashes` made
    them ahead, else hashed here).
    """
    keys = table["source_id"]
    updated = table["source_updated_at"] if "source_updated_at" in table.column_names else None
    target = sql.Identifier(*entity.table.split("."))
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    now = row[0]  # the transaction's: the instant the UPDATE closes with
    if hashes is None:
        hashes = row_hashes(entity, table)
    # The key look-up runs on the server while the batch's CSV is written, piece by
    # piece, as it would be written were all its records new (a first load's, where the
    # look-up finds none): then the COPY sends each piece as it is ready, and the pieces
    # not ready yet are written while the server reads the ones before (as a plain
    # COPY's are), not before the COPY begins. A first load notes its keys while its
    # first pieces are written (their bits set beside the COPY); a key it may have
    # written before sends the batch to the look-up after all.
    with ThreadPoolExecutor(max_workers=2) as pool:
        looked_up = (pool.submit(_current, conn, entity, source_system, keys, hashes, updated)
                     if written is None else None)
        every = _stamped(_carry_resolved(entity, table, None).append_column(
            "record_hash", hashes), source_system, stream, run_id, now)
        pieces = [pool.submit(_csv_piece, every, start, rows)
                  for start, rows in _pieces_ahead(every)]
        if written is not None and written.note(keys if keys_hashed is None else keys_hashed,
                                                beside=pool):
            looked_up = pool.submit(_current, conn, entity, source_system, keys, hashes, updated)
        found = looked_up.result() if looked_up is not None else None
        all_new = found is None or not found.exists.any()
        if all_new:
            if pieces:
                _copy_csv(conn, every.column_names, (p.result() for p in pieces), target)
        else:
            for piece in pieces:  # some records were there: the rows to write are others
                piece.cancel()
    if written is not None:
        written.settle()  # the keys' bits, set beside the COPY
    if all_new:
        return MergeCounts(inserted=every.num_rows)
    assert found is not None
    del pieces, every
    changed = pa.array(found.changed)
    write = pa.array(~found.exists | found.changed)

    changed_keys = keys.filter(changed)
    if len(changed_keys):
        conn.execute(
            sql.SQL("UPDATE {} SET valid_to = now() WHERE source_system = %s"
                    " AND valid_to IS NULL AND source_id = ANY(%s)").format(target),
            (source_system, changed_keys.to_pylist()),
        )
    new_rows = _carry_resolved(entity, table, found.resolved).append_column(
        "record_hash", hashes).filter(write)
    if new_rows.num_rows:
        copy_arrow(conn, _stamped(new_rows, source_system, stream, run_id, now), target)
    n_changed = len(changed_keys)
    n_written = new_rows.num_rows
    return MergeCounts(inserted=n_written - n_changed, updated=n_changed,
                       unchanged=table.num_rows - n_written)


def _stamped(rows: pa.Table, source_system: str, stream: str, run_id: int,
             now: object) -> pa.Table:
    """Rows to write with their lineage: source, stream, run and `now` (valid_from)."""
    n = rows.num_rows
    return (rows.append_column("source_system", _repeat(source_system, n, pa.string()))
            .append_column("source_stream", _repeat(stream, n, pa.string()))
            .append_column("run_id", _repeat(run_id, n, pa.int64()))
            .append_column("valid_from", _repeat(now, n, pa.timestamp("us", tz="UTC"))))


def _carry_resolved(entity: Entity, table: pa.Table,
                    prior: dict[str, pa.Array] | None) -> pa.Table:
    """The rows with the keys the resolve step set on their current versions (`prior`:
    per resolved column, each row's; None: no row has any), where the rows bring none
    (they never do: conformers leave them to linking). After the record hash: a carried
    key is no change of the record."""
    for name in entity.resolved_columns():
        carried = (pa.nulls(table.num_rows, pa.string()) if prior is None else prior[name])
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name,
                                     pc.coalesce(table[name], carried))
        else:
            table = table.append_column(name, carried)
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


@dataclass(frozen=True)
class SetAside:
    """A snapshot's records set aside as unchanged (hub.unchanged), which are not noted
    by `record_seen`: the snapshot held every record whose digest on `basis`
    (ops.record_digest) some batch matched. Named by what is fewer, the stored digests
    on that basis no batch matched (`unmatched`, their key hashes); `count` matched."""

    basis: int
    unmatched: pa.Array  # int64 key hashes
    count: int


def close_missing(conn: psycopg.Connection, entity: Entity, source_system: str, stream: str,
                  snapshot_id: str, *, min_ratio: float = 0.0,
                  set_aside: SetAside | None = None) -> int:
    """The snapshot is complete: close current records of the stream it did not contain:
    neither noted by `record_seen` nor set aside as unchanged (`set_aside`).

    A truncated export that is still a valid file (a header and ten rows) would
    close nearly everyone. With `min_ratio`, a snapshot holding fewer distinct
    records than that share of the stream's current ones is refused unless an
    operator accepted it (ops.snapshot_acceptance): the batch rolls back, the
    cursor stays, and the run fails with a message saying what to check. File
    snapshots are refused earlier, by their connector, before any batch loads;
    this guard stands for snapshots served in pages.
    """
    params = {"system": source_system, "stream": stream, "snapshot": snapshot_id,
              "basis": set_aside.basis if set_aside else None}
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
        seen += set_aside.count if set_aside else 0
        if current and seen < min_ratio * current:
            raise SnapshotTooSmall(
                f"{source_system}/{stream}: snapshot {snapshot_id} holds {seen:,} records where"
                f" {current:,} are current; closing the rest would take more than"
                f" {1 - min_ratio:.0%} of them off the register. Check the source; if the"
                f" drop is real, accept it: hub snapshot accept {source_system} {stream}"
                f" '{snapshot_id}' --reason …, and rerun."
            )
    # A hash (or merge) anti join, whatever the planner knows: the snapshot's keys are
    # filled in this transaction and a first ingest's core table has no statistics
    # either, and as a nested loop (its pick then) 5,600 organizations took 35 s and
    # 50,000 houses over 6 minutes: quadratic in the snapshot's size.
    # A record set aside has a digest on the basis that no batch failed to match: the
    # digests a batch matched are most of a daily snapshot, the unmatched few.
    unmatched = sql.SQL("")
    if set_aside is not None:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS snapshot_unmatched (key_hash bigint)"
                     " ON COMMIT DELETE ROWS")
        copy_arrow(conn, pa.table({"key_hash": set_aside.unmatched}),
                   sql.Identifier("snapshot_unmatched"))
        unmatched = sql.SQL(
            " AND NOT EXISTS (SELECT 1 FROM ops.record_digest d"
            " WHERE d.source_system = %(system)s AND d.stream = %(stream)s"
            " AND d.basis = %(basis)s AND d.source_id = t.source_id AND NOT EXISTS ("
            " SELECT 1 FROM snapshot_unmatched u WHERE u.key_hash = d.key_hash))")
    # Its hashes hold a stream's current keys (400 k residents at scale 0.3): in memory,
    # not in eight batches spilled to disk as the default work_mem has them.
    with planner_settings(conn, enable_nestloop="off", work_mem="256MB"):
        closed = conn.execute(
            sql.SQL(
                "UPDATE {} t SET valid_to = now() WHERE t.source_system = %(system)s"
                " AND t.source_stream = %(stream)s AND t.valid_to IS NULL AND NOT EXISTS ("
                " SELECT 1 FROM ops.snapshot_seen s WHERE s.source_system = %(system)s"
                " AND s.stream = %(stream)s AND s.snapshot_id = %(snapshot)s"
                " AND s.source_id = t.source_id){}"
            ).format(sql.Identifier(*entity.table.split(".")), unmatched),
            params,
        ).rowcount
    if set_aside is not None:
        conn.execute("TRUNCATE snapshot_unmatched")
    conn.execute("DELETE FROM ops.snapshot_seen WHERE source_system = %(system)s"
                 " AND stream = %(stream)s AND snapshot_id = %(snapshot)s", params)
    return closed
