"""The hub's bookkeeping in the warehouse: runs, cursors, and one run per source at a time."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse.db import connect


class RunInProgress(RuntimeError):
    pass


@contextmanager
def source_lock(source: str) -> Iterator[None]:
    """Hold the source's advisory lock for the whole run.

    The cursor is shared state: two runs of one source would read the same window
    twice. The lock lives on its own connection, so it goes away with the process
    however that process ends (a killed run never blocks the next one).
    """
    conn = connect(autocommit=True, application_name=f"hub-lock-{source}")
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext('hub:source:' || %s))",
                           (source,)).fetchone()
        if not (got and got[0]):
            raise RunInProgress(f"another run of {source!r} is in progress; "
                                "see `hub status` and try again when it has finished")
        yield
    finally:
        conn.close()


def abandon_stale_runs(conn: psycopg.Connection, source: str) -> int:
    """Runs still 'running' while we hold the lock died without finishing."""
    return conn.execute(
        "UPDATE ops.run SET outcome = 'abandoned', finished_at = now(),"
        " error = 'the process ended before the run finished (killed or crashed); its committed"
        " batches stand and the next run resumed from its cursor'"
        " WHERE source_system = %s AND outcome = 'running'",
        (source,),
    ).rowcount


def start_run(conn: psycopg.Connection, source: str, connector: str, trigger: str) -> int:
    row = conn.execute(
        "INSERT INTO ops.run (source_system, connector, trigger, host, pid)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING run_id",
        (source, connector, trigger, socket.gethostname(), os.getpid()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_batch(conn: psycopg.Connection, run_id: int, counts: Mapping[str, int],
              timings_so_far: Mapping[str, float]) -> None:
    """Add one batch's counts to its run, in the batch's own transaction."""
    conn.execute(
        "UPDATE ops.run SET batches = batches + 1,"
        " extracted = extracted + %(extracted)s, loaded = loaded + %(loaded)s,"
        " quarantined = quarantined + %(quarantined)s, reread = reread + %(reread)s,"
        " inserted = inserted + %(inserted)s, updated = updated + %(updated)s,"
        " unchanged = unchanged + %(unchanged)s, closed = closed + %(closed)s,"
        " timings = %(timings)s"
        " WHERE run_id = %(run_id)s",
        {**counts, "timings": Jsonb({k: round(v, 3) for k, v in timings_so_far.items()}),
         "run_id": run_id},
    )


def finish_run(run_id: int, outcome: str, error: str | None = None,
               extra_timings: Mapping[str, Any] | None = None) -> None:
    with connect() as conn:
        conn.execute(
            "UPDATE ops.run SET outcome = %s, finished_at = now(), error = %s,"
            " timings = timings || %s WHERE run_id = %s",
            (outcome, error, Jsonb(dict(extra_timings or {})), run_id),
        )


def read_cursor(conn: psycopg.Connection, source: str, stream: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT state FROM ops.cursor WHERE source_system = %s AND stream = %s",
                       (source, stream)).fetchone()
    return dict(row[0]) if row else None


def save_cursor(conn: psycopg.Connection, source: str, stream: str, state: Mapping[str, Any],
                run_id: int) -> None:
    conn.execute(
        "INSERT INTO ops.cursor (source_system, stream, state, run_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (source_system, stream) DO UPDATE SET state = EXCLUDED.state,"
        " run_id = EXCLUDED.run_id, updated_at = now()",
        (source, stream, Jsonb(dict(state)), run_id),
    )
