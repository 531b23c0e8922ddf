"""Digests of the snapshot records loaded: what lets a re-sent snapshot skip its
unchanged records before they are conformed (ops.record_digest, migration 0020).

A digest stands for "this record, as the platform sent it, was loaded under this
source_id on this basis". The store stage keeps them in the batch's transaction:
loaded records leave theirs, a record quarantined or closed loses its own. A record
whose key, digest and basis all match is therefore in the base as a current row,
exactly as conforming it again would make it.

Keys are kept as 64-bit hashes: a stream's digests are read whole when a snapshot
starts (16 bytes a record: 21 MB for 1.34 M residents) and each batch is looked up in
them by binary search, in C. The records set aside are not noted as the snapshot's
keys (ops.snapshot_seen, 1.34 M rows of text a day): the digests they matched tell the
close-out that the snapshot held them. A false match needs two 64-bit collisions at once (the
key's and the record's digest, which covers the key too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from warehouse.loader import SetAside, copy_arrow, read_bigints


def key_hashes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each key (int64 bits; null and blank keys are never looked up):
    pandas' SipHash of the text, fixed across versions, as keys stored must be."""
    text = pc.fill_null(keys.cast(pa.string()), "\x00").to_numpy(zero_copy_only=False)
    return pd.util.hash_array(text, categorize=False).view(np.int64)


@dataclass(frozen=True)
class Known:
    """The stored digests of one batch's records, row-aligned with the keys asked for."""

    unchanged: pa.Array  # bool: same digest on the same basis, loaded
    held: pa.Array  # bool: a key held twice, with the same records as when quarantined
    at: np.ndarray  # where each record's key is among the stored (where either)


class StreamDigests:
    """A stream's digests on one basis, as stored when a snapshot began (sorted key
    hashes and their digests), and which of them its batches matched so far: the
    records set aside, which the close-out keeps (`set_aside`). A key held twice
    keeps one digest, of its records together, marked held (their quarantine).

    A snapshot a crash interrupted is read whole again by the run that completes it
    (a file from its first row, a device list from its first page), so the batches
    of that run match every record the snapshot holds unchanged.
    """

    def __init__(self, conn: psycopg.Connection, source: str, stream: str, basis: int):
        stored = read_bigints(
            conn,
            "SELECT key_hash, digest, held::int::bigint FROM ops.record_digest"
            " WHERE source_system = %(system)s AND stream = %(stream)s AND basis = %(basis)s",
            ("key_hash", "digest", "held"), {"system": source, "stream": stream, "basis": basis})
        # Sorted here, not by the server: numpy's sort of 1.34 M integers takes 0.1 s.
        order = np.argsort(stored["key_hash"], kind="stable")
        self.basis = basis
        self.keys = stored["key_hash"][order]
        self.digests = stored["digest"][order]
        self.held = stored["held"][order].astype(bool)
        self.matched = np.zeros(len(self.keys), dtype=bool)

    def __len__(self) -> int:
        return len(self.keys)

    def known(self, keys: pa.Array, digests: pa.Array, held_digests: pa.Array) -> Known:
        """Which records (`keys`, their `digests`) are stored as they are; and which
        records of keys held twice (their keys' digests, `held_digests`; null for the
        other records) are quarantined as they are."""
        asked = key_hashes(keys)
        at = np.searchsorted(self.keys, asked)
        inside = np.minimum(at, max(len(self.keys) - 1, 0))
        if not len(self.keys):
            none = pa.array(np.zeros(len(asked), dtype=bool))
            return Known(none, none, inside)
        found = (at < len(self.keys)) & (self.keys[inside] == asked)
        stored, held = self.digests[inside], self.held[inside]
        same = found & ~held & (stored == digests.to_numpy(zero_copy_only=False))
        group = pc.fill_null(held_digests.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        as_held = found & held & held_digests.is_valid().to_numpy(zero_copy_only=False) & (
            stored == group)
        return Known(pa.array(same), pa.array(as_held), inside)

    def match(self, at: np.ndarray) -> None:
        """The stored digests at `at` belong to records set aside from the snapshot."""
        self.matched[at] = True

    def set_aside(self) -> SetAside:
        """What the snapshot's batches set aside so far, for its close-out."""
        return SetAside(self.basis, pa.array(self.keys[~self.matched]),
                        int(self.matched.sum()))


def remember(conn: psycopg.Connection, source: str, stream: str, keys: pa.Array,
             digests: pa.Array, source_ids: pa.Array, basis: int, *,
             held: bool = False) -> None:
    """Loaded records leave (or replace) their digests; keys held twice (`held`), the
    digest of their records together."""
    if not len(keys):
        return
    ids = source_ids.cast(pa.string())
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS record_digest_batch (key_hash bigint,"
                 " digest bigint, source_id text) ON COMMIT DELETE ROWS")
    copy_arrow(conn, pa.table({
        "key_hash": pa.array(key_hashes(keys)), "digest": digests.cast(pa.int64()),
        "source_id": ids}), sql.Identifier("record_digest_batch"))
    conn.execute(
        "INSERT INTO ops.record_digest"
        " SELECT DISTINCT ON (key_hash) %s, %s, key_hash, digest, %s, source_id, %s"
        " FROM record_digest_batch"
        " ON CONFLICT (source_system, stream, key_hash) DO UPDATE"
        " SET digest = excluded.digest, basis = excluded.basis, source_id = excluded.source_id,"
        " held = excluded.held",
        (source, stream, basis, held))
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
