"""Digests of the snapshot records loaded: what lets a re-sent snapshot skip its
unchanged records before they are conformed (ops.record_digest, migration 0020).

A digest stands for "this record, as the platform sent it, was loaded under this
source_id on this basis". The store stage keeps them in the batch's transaction:
loaded records leave theirs, a record quarantined or closed loses its own. A record
whose key, digest and basis all match is therefore in the base as a current row,
exactly as conforming it again would make it.

Keys are kept as 64-bit hashes: a stream's digests are read whole when a snapshot
starts (16 bytes a record: 21 MB for 1.34 M residents) and each batch is looked up in
them by binary search, in C. A false match needs two 64-bit collisions at once (the
key's and the record's digest, which covers the key too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from connectors.files import row_hashes
from warehouse.loader import copy_arrow, read_arrow

STORED = pa.schema([("key_hash", pa.int64()), ("digest", pa.int64()),
                    ("source_id", pa.string())])


def key_hashes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each key, the connectors' row hash of it (int64 bits; null and
    blank keys are never looked up)."""
    return row_hashes(pa.table({"key": keys.cast(pa.string())}), ["key"]).to_numpy().view(
        np.int64)


@dataclass(frozen=True)
class Known:
    """The stored digests of one batch's records, row-aligned with the keys asked for."""

    unchanged: pa.Array  # bool: same digest on the same basis
    source_ids: pa.Array  # string: the source_id each record was loaded under


class StreamDigests:
    """A stream's digests on one basis, as stored when read: sorted key hashes, their
    digests, and the source_id where it is not the key itself (mostly none)."""

    def __init__(self, conn: psycopg.Connection, source: str, stream: str, basis: int):
        stored = read_arrow(
            conn,
            "SELECT key_hash, digest, CASE WHEN NOT key_is_id THEN source_id END"
            " FROM ops.record_digest"
            " WHERE source_system = %(system)s AND stream = %(stream)s AND basis = %(basis)s"
            " ORDER BY key_hash",
            STORED, {"system": source, "stream": stream, "basis": basis})
        self.basis = basis
        self.keys = stored["key_hash"].to_numpy()
        self.digests = stored["digest"].to_numpy()
        self.source_ids = stored["source_id"].combine_chunks()

    def __len__(self) -> int:
        return len(self.keys)

    def known(self, keys: pa.Array, digests: pa.Array) -> Known:
        """Which records (`keys`, their `digests`) are stored as they are."""
        asked = key_hashes(keys)
        at = np.searchsorted(self.keys, asked)
        inside = np.minimum(at, max(len(self.keys) - 1, 0))
        if not len(self.keys):
            same = np.zeros(len(asked), dtype=bool)
        else:
            same = ((at < len(self.keys)) & (self.keys[inside] == asked)
                    & (self.digests[inside] == digests.to_numpy(zero_copy_only=False)))
        stored_ids = (self.source_ids.take(pa.array(inside)) if len(self.keys)
                      else pa.nulls(len(asked), pa.string()))
        return Known(pa.array(same), pc.coalesce(stored_ids, keys.cast(pa.string())))


def remember(conn: psycopg.Connection, source: str, stream: str, keys: pa.Array,
             digests: pa.Array, source_ids: pa.Array, basis: int) -> None:
    """Loaded records leave (or replace) their digests."""
    if not len(keys):
        return
    ids = source_ids.cast(pa.string())
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS record_digest_batch (key_hash bigint,"
                 " digest bigint, source_id text, key_is_id boolean) ON COMMIT DELETE ROWS")
    copy_arrow(conn, pa.table({
        "key_hash": pa.array(key_hashes(keys)), "digest": digests.cast(pa.int64()),
        "source_id": ids,
        # Read back only where the source_id is not the key: the common case costs nothing.
        "key_is_id": pc.fill_null(pc.equal(ids, keys.cast(pa.string())), False)}),
        sql.Identifier("record_digest_batch"))
    conn.execute(
        "INSERT INTO ops.record_digest"
        " SELECT %s, %s, key_hash, digest, %s, source_id, key_is_id FROM record_digest_batch"
        " ON CONFLICT (source_system, stream, key_hash) DO UPDATE"
        " SET digest = excluded.digest, basis = excluded.basis,"
        " source_id = excluded.source_id, key_is_id = excluded.key_is_id",
        (source, stream, basis))
    conn.execute("TRUNCATE record_digest_batch")


def forget(conn: psycopg.Connection, source: str, stream: str, keys: pa.Array) -> None:
    """Records quarantined (by their keys; rows held unreadable by the key they could
    still be told by) lose their digests: when they come again, all of the pipeline
    sees them, and a record put back as it was supersedes its entry."""
    if len(keys):
        conn.execute("DELETE FROM ops.record_digest WHERE source_system = %s AND stream = %s"
                     " AND key_hash = ANY(%s)",
                     (source, stream, key_hashes(keys).tolist()))


def forget_closed(conn: psycopg.Connection, table: str, source: str, stream: str) -> None:
    """Digests of records this transaction closed (valid_to = now(): a complete snapshot
    lacked them, or the merge gave them a new version) go: a record sent again after a
    day away is new to the base and must be loaded as such. Two one-table statements,
    whose plans cannot turn quadratic on tables filled in this transaction (without
    statistics yet) as a join's can; dropping a new version's digest only costs that
    record one more trip through the stages."""
    closed = conn.execute(
        sql.SQL("SELECT source_id FROM {} WHERE source_system = %s AND source_stream = %s"
                " AND valid_to = now()").format(sql.Identifier(*table.split("."))),
        (source, stream)).fetchall()
    if closed:
        conn.execute("DELETE FROM ops.record_digest WHERE source_system = %s AND stream = %s"
                     " AND source_id = ANY(%s::text[])",
                     (source, stream, [r[0] for r in closed]))
