"""What a first load knows without asking the server: the keys it wrote itself.

A run holds its source's lock (hub.pipeline), so while it runs no one else writes that
source's rows. A core table that held none of the source's rows when the run first
wrote to it holds, from then on, only rows this run wrote: a key the run has not
written is not there, and its batch needs no look-up (`warehouse.loader.merge`). On a
first load of a million work orders the look-ups were 1.6 s of the server's time, all
of it spent finding nothing.

The same holds for the quarantine: where the source had no open entry for an entity when
the run first set one aside, an open entry under a key the run has not set aside is none
there is, and a batch whose keys were not set aside before needs neither the look-up of
the entries it would replace nor that of those it resolves (`quality.store`).

The keys written are kept as a Bloom filter of a fixed size, so memory stays flat
whatever the load's size: a key it may hold (one written, or by chance another) sends
the batch to the look-up as before; a key it cannot hold is surely new. At 2^27 bits and
four hashes a million keys give one false "may hold" in about 1.3 million, ten million
one in 230: a batch of 50,000 then goes to the look-up now and then, which only costs
the look-up it would have made anyway.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import NamedTuple, TypeAlias

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

_BITS = 1 << 27  # 16 MiB
# Quarantine holds a few per cent of a load's keys: 10^5 of them give one false "may hold"
# in 200,000.
_QUARANTINE_BITS = 1 << 24  # 2 MiB
_HASHES = 4
# Two independent 64-bit hashes of each key (SipHash under two keys), combined as
# h1 + i * h2 for the i-th position (Kirsch and Mitzenmacher).
_HASH_KEYS = ("hub-first-load-1", "hub-first-load-2")


class KeyHashes(NamedTuple):
    """Keys as every filter reads them (`key_hashes`): their bit positions in a filter of
    _BITS bits, found once, where the batch's checks run, not in the store's transaction
    while the server waits. Filters are powers of two in size, so a smaller one's
    positions are these modulo its size."""

    at: np.ndarray  # _HASHES rows of one position per key

    def __len__(self) -> int:
        return self.at.shape[1]


def key_hashes(keys: pa.Array | pa.ChunkedArray) -> KeyHashes:
    """The positions of each key."""
    values = np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)
    h1, h2 = (pd.util.hash_array(values, hash_key=k, categorize=False) for k in _HASH_KEYS)
    steps = np.arange(_HASHES, dtype=np.uint64)[:, None]
    return KeyHashes((h1[None, :] + steps * (h2[None, :] | np.uint64(1))) % np.uint64(_BITS))


Keys: TypeAlias = pa.Array | pa.ChunkedArray | KeyHashes


class KeysWritten:
    """The keys one load wrote into one table, or set aside in quarantine for one entity
    (a Bloom filter: no false "cannot hold")."""

    def __init__(self, bits: int = _BITS) -> None:
        if bits > _BITS or bits & (bits - 1):
            raise ValueError(f"a filter of a power of two bits up to {_BITS}, not {bits}")
        self._bits = np.zeros(bits // 8, dtype=np.uint8)
        self._marking: Future[None] | None = None

    def _positions(self, keys: Keys) -> np.ndarray:
        hashed = keys if isinstance(keys, KeyHashes) else key_hashes(keys)
        return hashed.at & np.uint64(len(self._bits) * 8 - 1)

    def may_hold(self, keys: Keys) -> np.ndarray:
        """Per key: whether it may have been written (False: it surely was not)."""
        self.settle()
        if not len(keys):
            return np.zeros(0, dtype=bool)
        return self._held(*_split(self._positions(keys)))

    def note(self, keys: Keys, *, beside: Executor | None = None) -> bool:
        """Whether any of `keys` may have been written before; they are noted as written
        from now (before their write: a key noted and then not written, its batch
        having failed, only sends a later batch holding it to the look-up). `beside`:
        their bits are set there while the caller goes on (a first load's COPY starts
        without waiting for them); the filter's next use waits for them, as `settle`."""
        self.settle()
        if not len(keys):
            return False
        byte, bit = _split(self._positions(keys))
        before = bool(self._held(byte, bit).any())
        if beside is None:
            self._mark(byte.ravel(), bit.ravel())
        else:
            self._marking = beside.submit(self._mark, byte.ravel(), bit.ravel())
        return before

    def settle(self) -> None:
        """Wait for the bits being set beside (`note`), raising what setting them raised."""
        marking, self._marking = self._marking, None
        if marking is not None:
            marking.result()

    def _held(self, byte: np.ndarray, bit: np.ndarray) -> np.ndarray:
        """Per key (a column of positions): whether all its bits are set."""
        return ((self._bits[byte] & bit) != 0).all(axis=0)

    def _mark(self, byte: np.ndarray, bit: np.ndarray) -> None:
        # A fancy-indexed |= keeps one of the bits aimed at one byte (numpy's unbuffered
        # bitwise_or.at keeps all, three times slower): the bytes still missing their
        # bit are set again until none is, two or three rounds for a batch.
        while len(byte):
            self._bits[byte] |= bit
            missing = (self._bits[byte] & bit) == 0
            byte, bit = byte[missing], bit[missing]


def _split(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bit positions as the byte each is in and its bit there."""
    return at >> np.uint64(3), np.left_shift(np.uint8(1), (at & np.uint64(7)).astype(np.uint8))


class FirstLoads:
    """Per core table, the keys a run wrote under its source where the table held none of
    that source's rows when the run first wrote to it; per entity, the keys it set aside in
    quarantine where the source had no open entry of that entity then; None where it had."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._tables: dict[str, KeysWritten | None] = {}
        self._set_aside: dict[str, KeysWritten | None] = {}

    def keys_written(self, conn: psycopg.Connection, table: str) -> KeysWritten | None:
        """The table's record, asked of the server the first time (under the run's
        lock: no one else writes the source's rows meanwhile)."""
        if table not in self._tables:
            self._tables[table] = _first(conn, sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE source_system = %s)").format(
                sql.Identifier(*table.split("."))), (self.source,), _BITS)
        return self._tables[table]

    def set_aside(self, conn: psycopg.Connection, entity: str) -> KeysWritten | None:
        """The keys of `entity` the run set aside in quarantine, asked of the server the
        first time: before the run's first entry of it (every writer of the run's entries
        notes their keys here)."""
        if entity not in self._set_aside:
            self._set_aside[entity] = _first(conn, sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM quality.quarantine WHERE state = 'open'"
                " AND source_system = %s AND entity = %s)"), (self.source, entity),
                _QUARANTINE_BITS)
        return self._set_aside[entity]


def _first(conn: psycopg.Connection, exists: sql.SQL | sql.Composed, params: tuple[str, ...],
           bits: int) -> KeysWritten | None:
    """An empty record if the query finds nothing yet, else None."""
    row = conn.execute(exists, params).fetchone()
    return None if row and row[0] else KeysWritten(bits)
