"""A first load into an empty core table builds the table's secondary indexes when it
ends (migration 0022): the indexes come back exactly as they were, whether the load
ends, or is killed and the source runs again; a load into a table with rows, a table
with only a few such indexes, or a call on a table outside core drops nothing."""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from hub.pipeline import run_source
from sandbox.city import City
from sandbox.gridmgmt import GridData, file_name, render
from tests.support.own_warehouse import migrated
from tests.support.sources import write_sources_file
from warehouse.db import Role, connect
from warehouse.deferred_indexes import built_after

SIM_END = datetime(2026, 11, 20)
NEVER = r"(?P<date>\d{8})^"  # a file pattern no name matches
ROWS = 450  # five batches of 100


@pytest.fixture(scope="module")
def residents_file() -> bytes:
    """A residents drop of ROWS records, as the grid platform writes it."""
    data = GridData(City("2111", scale=0.001), days=1, end=SIM_END)
    text = render(data, "residents", data.dates[0]).decode("gb18030")
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(rows[:ROWS + 1])
    return buf.getvalue().encode("gb18030")


@pytest.fixture
def own_warehouse(new_database: Callable[[str], str],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    """The hub pointed at a migrated warehouse of the test's own (its core.person empty),
    deferring from batches of 50 rows; the owner's connection to it."""
    monkeypatch.setenv("HUB_BATCH_ROWS", "100")
    monkeypatch.setenv("HUB_DEFER_INDEXES_FROM", "50")
    with migrated(new_database("deferred"), monkeypatch) as conn:
        yield conn


def residents_source(tmp: Path, name: str, drop: bytes) -> Path:
    """A grid source reading one residents file (nothing else) from a folder of its own."""
    folder = tmp / name
    folder.mkdir()
    (folder / file_name("residents", SIM_END.date())).write_bytes(drop)
    return write_sources_file(tmp / f"{name}.yaml", {name: {
        "connector": "gridmgmt", "settings": {
            "folder": str(folder), "base_url": "http://127.0.0.1:9", "min_snapshot_ratio": 0,
            "chunk_rows": 100,
            "file_patterns": {"houses": NEVER, "orgs": NEVER, "grids": NEVER}}}})


def indexes(db: psycopg.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT indexname, indexdef FROM pg_indexes"
                           " WHERE schemaname = 'core' AND tablename = 'person'").fetchall())


def waiting(db: psycopg.Connection) -> list[tuple[str, str]]:
    return db.execute("SELECT index_name, source_system FROM ops.deferred_index"
                      " ORDER BY 1").fetchall()


def current(db: psycopg.Connection, source: str) -> int:
    return db.execute("SELECT count(*) FROM core.person WHERE source_system = %s"
                      " AND valid_to IS NULL", (source,)).fetchone()[0]


def test_a_first_load_builds_the_indexes_it_deferred_and_a_second_defers_none(
        own_warehouse, residents_file, tmp_path, caplog):
    db = own_warehouse
    before = indexes(db)
    secondary = {n for n, d in before.items() if not d.startswith("CREATE UNIQUE")}
    assert {"person_history", "person_current_phone", "person_record_ref"} <= secondary

    first = residents_source(tmp_path, "grid_a", residents_file)
    with caplog.at_level(logging.INFO, logger="warehouse.deferred_indexes"):
        summary = run_source("grid_a", first, streams=["residents"])
    assert summary.outcome == "succeeded" and summary.batches >= 4
    assert summary.extracted == summary.loaded + summary.quarantined == ROWS
    assert f"core.person is empty: its {len(secondary)} secondary index(es)" in caplog.text
    assert indexes(db) == before  # the same names, the same definitions
    assert waiting(db) == []
    assert current(db, "grid_a") == summary.loaded
    invalid = db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
    assert invalid == 0
    # Built with the table's statistics refreshed: the planner knows its rows.
    analyzed = db.execute("SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL"
                          " FROM pg_stat_user_tables WHERE relid = 'core.person'::regclass"
                          ).fetchone()[0]
    assert analyzed

    caplog.clear()
    second = residents_source(tmp_path, "grid_b", residents_file)
    with caplog.at_level(logging.INFO, logger="warehouse.deferred_indexes"):
        again = run_source("grid_b", second, streams=["residents"])
    assert again.loaded == summary.loaded
    assert "is empty" not in caplog.text
    assert indexes(db) == before and waiting(db) == []


def test_a_killed_first_load_leaves_its_indexes_noted_and_the_next_run_builds_them(
        own_warehouse, residents_file, tmp_path):
    db = own_warehouse
    before = indexes(db)
    config = residents_source(tmp_path, "grid_k", residents_file)
    env = {**os.environ, "HUB_FAILPOINT": "after_commit:2"}
    killed = subprocess.run([sys.executable, "-m", "hub", "run", "grid_k", "--config",
                             str(config), "--stream", "residents"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # Two batches committed, the secondary indexes gone and noted as the source's.
    assert 0 < current(db, "grid_k") < ROWS
    dropped = set(before) - set(indexes(db))
    assert dropped and all(not before[n].startswith("CREATE UNIQUE") for n in dropped)
    assert waiting(db) == [(f"core.{n}", "grid_k") for n in sorted(dropped)]

    # Run again as the killed run ran, in a process of its own (the keys of the records
    # are hashed under the environment's key, as the killed run's were).
    rerun = subprocess.run([sys.executable, "-m", "hub", "run", "grid_k", "--config",
                            str(config), "--stream", "residents"], env=os.environ.copy(),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    said = rerun.stdout + rerun.stderr
    assert f"built {len(dropped)} index(es) an earlier first load had deferred" in said
    assert indexes(db) == before and waiting(db) == []
    loaded = current(db, "grid_k")
    held = db.execute("SELECT count(DISTINCT source_id) FROM quality.quarantine"
                      " WHERE source_system = 'grid_k' AND state = 'open'").fetchone()[0]
    assert 0 < loaded and loaded + held <= ROWS


def test_only_an_empty_core_table_has_its_indexes_deferred(own_warehouse, residents_file,
                                                           tmp_path):
    db = own_warehouse
    config = residents_source(tmp_path, "grid_c", residents_file)
    run_source("grid_c", config, streams=["residents"])
    with connect(Role.LOADER) as conn:
        held = conn.execute("SELECT ops.defer_indexes('core.person', 'x', 1)").fetchone()[0]
        assert held == 0  # it has rows
        # Empty, but three secondary indexes: cheaper to maintain than to build again.
        assert conn.execute("SELECT count(*) FROM core.event").fetchone()[0] == 0
        assert conn.execute("SELECT ops.defer_indexes('core.event', 'x', 1)").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a core table"):
            conn.execute("SELECT ops.defer_indexes('ops.run', 'x', 1)")
    assert waiting(db) == []


def test_indexes_deferred_within_a_transaction_come_back_with_it_or_with_its_rollback(
        own_warehouse):
    # Person linking defers its empty tables' indexes inside its own long transaction
    # (built_after): a write that fails rolls the drop back; one that ends builds them;
    # and the call's one-second lock wait does not stay with the transaction.
    db = own_warehouse
    table = "core.person_match"
    before = dict(db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname ="
                             " 'core' AND tablename = 'person_match'").fetchall())
    assert len(before) == 4  # the key and three secondary ones
    with connect(Role.LOADER) as conn:
        with pytest.raises(RuntimeError, match="the write failed"), conn.transaction():
            with built_after(conn, table, 10, source="t", from_rows=10) as deferred:
                assert deferred
                assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
                raise RuntimeError("the write failed")
        assert waiting(db) == []
        with conn.transaction():
            with built_after(conn, table, 9, source="t", from_rows=10) as deferred:
                assert not deferred  # fewer rows than the threshold: kept
            with built_after(conn, table, 10, source="t", from_rows=10) as deferred:
                assert deferred
                left = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname ="
                                    " 'core' AND tablename = 'person_match'").fetchone()
                assert left == (1,)  # only the key while the rows go in
    after = dict(db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname ="
                            " 'core' AND tablename = 'person_match'").fetchall())
    assert after == before and waiting(db) == []
