"""A first load into an empty core table builds the table's secondary indexes once, at
its end, instead of maintaining them row by row (migration 0022: the owner's functions
`ops.defer_indexes` and `ops.restore_indexes`, and the notes in `ops.deferred_index`
that let whatever comes next build what a killed load left waiting)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg

log = logging.getLogger(__name__)


def defer_indexes(conn: psycopg.Connection, tables: Iterable[str], *, source: str,
                  run_id: int | None, fewest: int | None = None) -> list[str]:
    """Drop the non-unique indexes of those `tables` that hold no row, noting them (in
    the caller's transaction: commit it); the tables whose indexes were dropped. A table
    with fewer than `fewest` such indexes keeps them (None: the function's default)."""
    deferred = []
    statement = ("SELECT ops.defer_indexes(%s::regclass, %s, %s)" if fewest is None
                 else "SELECT ops.defer_indexes(%s::regclass, %s, %s, %s)")
    for table in sorted(tables):
        row = conn.execute(statement, (table, source, run_id,
                                       *(() if fewest is None else (fewest,)))).fetchone()
        if row and row[0]:
            log.info("%s: %s is empty: its %d secondary index(es) are built when the load"
                     " ends", source, table, row[0])
            deferred.append(table)
    return deferred


def restore_indexes(conn: psycopg.Connection, *, table: str | None = None,
                    source: str | None = None) -> int:
    """Build the indexes waiting: those of `table`, of `source`'s loads, or all (both
    None); in the caller's transaction. How many were built."""
    row = conn.execute("SELECT ops.restore_indexes(%s::regclass, %s)", (table, source)).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def built_after(conn: psycopg.Connection, table: str, rows: int, *, source: str,
                from_rows: int) -> Iterator[bool]:
    """Write `rows` rows into `table` within the block, in the caller's transaction: if
    they are at least `from_rows` and the table is empty, its non-unique indexes are
    dropped for the block and built (the table analyzed) when it ends; whether they were.
    An error rolls the drop back with the rest of the transaction, so nothing is left
    waiting. The table is held exclusively from the drop until the transaction ends (a
    table's first bulk write: nothing is there to read yet)."""
    deferred = (defer_indexes(conn, [table], source=source, run_id=None, fewest=1)
                if rows >= from_rows else [])
    yield bool(deferred)
    for t in deferred:
        restore_indexes(conn, table=t)


class IndexDeferral:
    """One stream's load and the indexes it defers: at its first batch of at least
    `from_rows` rows to store (`consider`, before that batch is stored), the secondary
    indexes of those of `tables` that are empty are dropped and noted (a smaller load
    maintains them: cheaper than building them again); `build` builds them when the load
    ends. The pipeline's streams and the peer benchmark's hub path decide alike."""

    def __init__(self, tables: Iterable[str], *, source: str, run_id: int, from_rows: int):
        self.tables = sorted(tables)
        self.source = source
        self.run_id = run_id
        self.from_rows = from_rows
        self.asked = False
        self.deferred: list[str] = []

    def consider(self, conn: psycopg.Connection, rows: int) -> None:
        """Before storing a batch of `rows`: the first large enough asks, and commits the
        drop (its own short transaction, so the load's batches write without the
        indexes)."""
        if self.asked or rows < self.from_rows:
            return
        self.asked = True
        self.deferred = defer_indexes(conn, self.tables, source=self.source, run_id=self.run_id)
        conn.commit()

    def build(self, conn: psycopg.Connection) -> list[str]:
        """Build the indexes deferred (in the caller's transaction); the tables. A
        failure leaves them noted in `ops.deferred_index` for the next run."""
        tables, self.deferred = self.deferred, []
        for table in tables:
            restore_indexes(conn, table=table)
        return tables
