"""The hub's bookkeeping in the warehouse: runs, cursors, and one run per source at a time."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.types.json import Jsonb

from connectors.base import RejectedFile
from warehouse.db import Role, connect


class RunInProgress(RuntimeError):
    pass


# How often a run waiting for its source's lock asks again.
LOCK_POLL_S = 0.5


@contextmanager
def source_lock(source: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the source's advisory lock for the whole run.

    The cursor is shared state: two runs of one source would read the same window
    twice. The lock lives on its own connection, so it goes away with the process
    however that process ends (a killed run never blocks the next one). With `wait`
    (seconds), a run that finds the lock taken waits that long for it (an Airflow
    task queued behind a `hub run` of the same source) before giving up.
    """
    conn = connect(Role.LOADER, autocommit=True, application_name=f"hub-lock-{source}")
    try:
        deadline = time.monotonic() + wait
        while True:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext('hub:source:' || %s))",
                               (source,)).fetchone()
            if got and got[0]:
                break
            if time.monotonic() >= deadline:
                waited = f" (waited {wait:.0f} s)" if wait else ""
                raise RunInProgress(f"another run of {source!r} is in progress{waited}; "
                                    "see `hub status` and try again when it has finished")
            time.sleep(LOCK_POLL_S)
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


def start_run(conn: psycopg.Connection, source: str, connector: str, trigger: str,
              streams: Sequence[str] | None = None) -> int:
    """Record a run of `source` starting now, covering `streams` (empty: none, the
    consistency checks alone; None: not said)."""
    row = conn.execute(
        "INSERT INTO ops.run (source_system, connector, trigger, host, pid, streams)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING run_id",
        (source, connector, trigger, socket.gethostname(), os.getpid(),
         None if streams is None else list(streams)),
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
    with connect(Role.LOADER) as conn:
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


def current_records(conn: psycopg.Connection, table: str, source: str, stream: str) -> int:
    """Current records of one source stream in a core table (what a snapshot replaces)."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE source_system = %s AND source_stream = %s"
                " AND valid_to IS NULL").format(sql.Identifier(*table.split("."))),
        (source, stream)).fetchone()
    return int(row[0]) if row else 0


def current_cameras(conn: psycopg.Connection) -> pa.Table:
    """The current cameras and NVRs, one row per device code (the latest version where
    two sources loaded one code): the `cameras` lookup of conform.base.Lookups."""
    rows = conn.execute(
        "SELECT DISTINCT ON (thing_code) thing_code, longitude, latitude, address,"
        " division_code, street_code, grid_code FROM core.thing"
        " WHERE valid_to IS NULL AND thing_type IN ('camera', 'nvr') AND thing_code IS NOT NULL"
        " ORDER BY thing_code, valid_from DESC").fetchall()
    names = ("thing_code", "longitude", "latitude", "address", "division_code", "street_code",
             "grid_code")
    return pa.table({name: pa.array([r[i] for r in rows],
                                    pa.float64() if name in ("longitude", "latitude")
                                    else pa.string())
                     for i, name in enumerate(names)})


def accepted_snapshots(conn: psycopg.Connection, source: str, stream: str) -> frozenset[str]:
    return frozenset(r[0] for r in conn.execute(
        "SELECT snapshot_id FROM ops.snapshot_acceptance WHERE source_system = %s"
        " AND stream = %s", (source, stream)))


def accept_snapshot(conn: psycopg.Connection, source: str, stream: str, snapshot_id: str,
                    accepted_by: str, reason: str) -> None:
    """Record an operator's decision that a refused snapshot is real; the next run loads it."""
    conn.execute(
        "INSERT INTO ops.snapshot_acceptance (source_system, stream, snapshot_id, accepted_by,"
        " reason) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source_system, stream, snapshot_id)"
        " DO UPDATE SET accepted_by = EXCLUDED.accepted_by, reason = EXCLUDED.reason,"
        " accepted_at = now()",
        (source, stream, snapshot_id, accepted_by, reason))


def record_rejected_files(conn: psycopg.Connection, run_id: int, source: str, stream: str,
                          files: Iterable[RejectedFile]) -> None:
    """Note files rejected as a whole; meeting one again counts another attempt."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.rejected_file (source_system, stream, file_name, sha256, kind,"
            " reason, first_run_id, last_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (source_system, stream, file_name, sha256) DO UPDATE SET"
            " kind = EXCLUDED.kind, reason = EXCLUDED.reason, last_run_id = EXCLUDED.last_run_id,"
            " last_seen_at = now(), attempts = ops.rejected_file.attempts + 1",
            [(source, stream, f.name, f.sha256, f.kind, f.reason, run_id, run_id)
             for f in files])


def add_warnings(conn: psycopg.Connection, run_id: int, warnings: Iterable[str]) -> None:
    new = [w for w in warnings if w]
    if new:
        conn.execute("UPDATE ops.run SET warnings = warnings || %s WHERE run_id = %s",
                     (Jsonb(new), run_id))
