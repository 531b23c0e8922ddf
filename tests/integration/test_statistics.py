"""The planner's statistics of the core tables are kept current by the hub after it loads
them, autovacuum or not (warehouse.statistics): a table loaded but never analyzed is
planned as if empty, and a mart over a few thousand events took tens of seconds."""

from __future__ import annotations

import logging
import time

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from base.settings import settings
from conform.base import build
from conform.protect import protect
from hub.pipeline import run_source
from schemas.model import THING
from tests.support.own_warehouse import migrated
from warehouse.db import Role, connect
from warehouse.loader import merge
from warehouse.statistics import analyze_stale


def things(ids: list[str]) -> pa.Table:
    return protect(THING, build(THING, {"source_id": pa.array(ids),
                                        "name": pa.scalar("井盖")}, len(ids)))


def changed_since_analyze(db: psycopg.Connection, table: str, at_least: int = 0) -> int:
    """The server's count of rows changed since the table's last analyze, once it shows
    at least `at_least` (a closed connection's counts arrive a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        db.execute("SELECT pg_stat_clear_snapshot()")
        row = db.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables"
                         " WHERE relid = %s::regclass", (table,)).fetchone()
        n = int(row[0]) if row else 0
        if n >= at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def changed_beyond_the_threshold(db: psycopg.Connection, table: str, source: str) -> int:
    """Rows of `source` loaded into `table` (analyzed first if other tests left it due),
    more than its last analyze's threshold; how many."""
    with connect(Role.LOADER) as conn:
        analyze_stale(conn, [table])
    rows = db.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                      (table,)).fetchone()[0]
    n = int(50 + 0.1 * max(rows, 0)) + 100
    with connect(Role.LOADER) as conn:
        merge(conn, THING, things([f"{source}-{i}" for i in range(n)]), source_system=source,
              stream="s", run_id=None)  # type: ignore[arg-type]
    assert changed_since_analyze(db, table, at_least=n) >= n
    return n


def test_a_table_changed_beyond_the_threshold_is_analyzed_once(db, warehouse):
    table = THING.table
    n = changed_beyond_the_threshold(db, table, "t_stats")
    with connect(Role.LOADER) as conn:
        assert analyze_stale(conn, [table]) == [table]
    assert changed_since_analyze(db, table) < n
    # Nothing changed since: nothing to do.
    with connect(Role.LOADER) as conn:
        assert analyze_stale(conn, [table]) == []


def test_only_core_tables_are_analyzed_by_the_loader(warehouse):
    with connect(Role.LOADER) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                     match="only a core table"):
        analyze_stale(conn, ["ops.run"])


def test_after_a_run_the_tables_it_loaded_are_planned_on_current_statistics(db, hotline):
    source, config, _ = hotline()
    summary = run_source(source, config)
    assert summary.loaded > 0
    # Analyzed (by the run, or by autovacuum where the server runs it): the planner
    # knows the rows are there.
    reltuples = db.execute("SELECT reltuples FROM pg_class"
                           " WHERE oid = 'core.event'::regclass").fetchone()[0]
    assert reltuples >= summary.loaded


def test_a_table_someone_else_is_analyzing_is_left_to_them_without_waiting(db, warehouse):
    """Autovacuum analyzing or vacuuming a table holds the lock an ANALYZE needs: the
    hub's call skips the table at once (a load is not kept waiting), and analyzes it
    when next called once the lock is free."""
    table = THING.table
    changed_beyond_the_threshold(db, table, "t_stats_busy")
    with connect(Role.OWNER) as holder:
        holder.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
        with connect(Role.LOADER) as conn:
            # Waiting for the lock at all would be cancelled: no wait, no error.
            conn.execute("SET statement_timeout = '500ms'")
            assert analyze_stale(conn, [table]) == []
    with connect(Role.LOADER) as conn:
        assert analyze_stale(conn, [table]) == [table]



def workorders_in_batches(db: psycopg.Connection, monkeypatch, hotline, hotline_data_factory,
                          caplog, days: int, batch_rows: int) -> tuple[int, list[str]]:
    """A 12345 source's work orders of `days` loaded in batches of `batch_rows` (pages of
    200), statistics beside the last batch; the run and the statistics it refreshed."""
    source, config, _ = hotline(data=hotline_data_factory(days=days))
    monkeypatch.setenv("HUB_BATCH_ROWS", str(batch_rows))
    monkeypatch.setenv("HUB_DEFER_INDEXES_FROM", "100000")  # statistics beside the last
    settings.cache_clear()
    with caplog.at_level(logging.INFO, logger="warehouse.statistics"):
        summary = run_source(source, config, streams=["workorders"])
    assert summary.outcome == "succeeded" and summary.batches >= 2
    # The last batch alone is beyond the threshold of what was analyzed before it.
    last = db.execute("SELECT count(*) FROM core.event WHERE run_id = %s AND valid_from ="
                      " (SELECT max(valid_from) FROM core.event WHERE run_id = %s)",
                      (summary.run_id, summary.run_id)).fetchone()[0]
    assert last > 50 + 0.1 * (summary.loaded - last)
    return summary.run_id, [r.getMessage() for r in caplog.records
                            if r.getMessage().startswith("planner statistics refreshed")]


def test_a_stream_is_not_analyzed_again_for_its_last_batch_after_a_full_sample(
        new_database, monkeypatch, hotline, hotline_data_factory, caplog):
    """A table analyzed beside a stream's last batch with at least ANALYZE's sample of
    rows is not analyzed again when the stream ends, for that batch alone (the second
    ANALYZE cost a 300,000-row load 0.8 s of its 6): the batch counts toward the next."""
    with migrated(new_database("full_sample"), monkeypatch) as db:
        # ANALYZE samples 300 rows at target 1: a few hundred work orders are a full sample.
        db.execute(sql.SQL("ALTER DATABASE {} SET default_statistics_target = 1").format(
            sql.Identifier(db.info.dbname)))
        _, refreshed = workorders_in_batches(db, monkeypatch, hotline, hotline_data_factory,
                                             caplog, days=12, batch_rows=300)
        assert sum("core.event" in m for m in refreshed) == 1, refreshed


def test_a_small_table_is_analyzed_again_when_its_stream_ends(
        new_database, monkeypatch, hotline, hotline_data_factory, caplog):
    """Analyzed beside the last batch with fewer rows than ANALYZE samples, a table is
    analyzed again at the stream's end: its pages, extended in bulk, would not tell the
    planner about the last batch (it estimated 202 rows of 343)."""
    with migrated(new_database("small_sample"), monkeypatch) as db:
        _, refreshed = workorders_in_batches(db, monkeypatch, hotline, hotline_data_factory,
                                             caplog, days=6, batch_rows=100)
        assert sum("core.event" in m for m in refreshed) == 2, refreshed
        rows = db.execute("SELECT count(*) FROM core.event").fetchone()[0]
        plan = db.execute("EXPLAIN (FORMAT JSON) SELECT * FROM core.event").fetchone()[0]
        assert abs(plan[0]["Plan"]["Plan Rows"] - rows) <= 0.1 * rows
