"""Migrating is an explicit step: reads never migrate, so they never queue behind a load.

A load holds row locks on the core tables for the length of a batch's transaction;
DDL (ALTER TABLE takes ACCESS EXCLUSIVE) would wait for it, and every statement
after the DDL would wait for the DDL. So `hub sql`, `hub status` and `hub
quarantine list` run no DDL at all, `hub migrate` runs none when nothing changed,
and a run against a warehouse that is behind refuses to start, saying what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from base.settings import settings
from hub.cli import app
from hub.pipeline import run_source
from tests.support.hotline import write_sources
from warehouse.db import conninfo
from warehouse.migrate import (
    SchemaNotCurrent,
    core_changes,
    migrate,
    migrations,
    require_current,
    schema_behind,
)

# What "returns at once" means here: generous for a loaded machine, far below "waits
# for the load to finish" (which would be never, in this test).
PROMPT = 10.0


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn() run in a thread; fails if it has not returned within `seconds`."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds}s: it queued behind the load"
    if "error" in result:
        raise result["error"]
    result["seconds"] = time.monotonic() - started
    return result.get("value")


@pytest.fixture
def running_load(warehouse: str) -> Iterator[psycopg.Connection]:
    """A transaction that has written to core.event and holds its locks, as a batch of
    a running load does, until the test ends."""
    conn = psycopg.connect(warehouse)
    conn.execute("INSERT INTO core.event (source_system, source_id, valid_from)"
                 " VALUES ('lock_test', 'held', now())")
    conn.execute("SELECT row_id FROM core.event WHERE source_system = 'lock_test' FOR UPDATE")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_the_load_really_holds_a_lock_ddl_would_queue_behind(warehouse, running_load):
    """The drill is real: an ALTER waits on the load's locks. Watched from outside and
    cancelled by the client (no server-side timer: the year-ahead run fakes clocks)."""
    outcome: list[BaseException] = []
    with psycopg.connect(warehouse, autocommit=True) as ddl, \
            psycopg.connect(warehouse, autocommit=True) as watch:
        def alter() -> None:
            try:
                ddl.execute("ALTER TABLE core.event ALTER COLUMN source_id SET NOT NULL")
            except psycopg.Error as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=alter, daemon=True)
        waiter.start()
        deadline = time.monotonic() + PROMPT
        waiting = False
        while not waiting and time.monotonic() < deadline:
            row = watch.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (ddl.info.backend_pid,)).fetchone()
            waiting = bool(row) and row[0] == "Lock"
            time.sleep(0.05)
        ddl.cancel_safe()
        waiter.join(PROMPT)
    assert waiting, "the ALTER never queued behind the load's locks"
    assert outcome and isinstance(outcome[0], psycopg.errors.QueryCanceled)


@pytest.mark.parametrize("args", [["sql", "select 1"], ["status"], ["quarantine", "list"]])
def test_read_commands_answer_while_a_load_holds_its_locks(running_load, args):
    result = within(PROMPT, lambda: CliRunner().invoke(app, args))
    assert result.exit_code == 0, result.output


def test_migrating_a_current_warehouse_takes_no_lock_a_load_holds(running_load):
    assert within(PROMPT, migrate) == []
    # Even compared table by table with the model: nothing differs, nothing is altered.
    assert within(PROMPT, lambda: migrate(force=True)) == []


def test_an_up_to_date_warehouse_needs_no_statement_of_the_model(warehouse, db):
    assert core_changes(db) == []
    assert schema_behind(db) is None


# ------------------------------------------------------------ a warehouse of its own


@pytest.fixture
def fresh(new_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The hub pointed at an empty database, never migrated."""
    url = new_database("fresh")
    monkeypatch.setenv("HUB_WAREHOUSE_URL", url)
    settings.cache_clear()
    conninfo.cache_clear()
    try:
        yield url
    finally:
        monkeypatch.undo()
        settings.cache_clear()
        conninfo.cache_clear()


def schemas_of(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}


def test_a_run_against_an_unmigrated_warehouse_fails_saying_what_to_do(fresh, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("HUB_LOCKTEST_APP_KEY", "k")
    monkeypatch.setenv("HUB_LOCKTEST_APP_SECRET", "s")
    config = write_sources(tmp_path / "sources.yaml", "locktest", "http://127.0.0.1:9")
    with pytest.raises(SchemaNotCurrent, match="`hub migrate`"):
        run_source("locktest", config)
    result = CliRunner().invoke(app, ["run", "locktest", "--config", str(config)])
    assert result.exit_code == 1 and "hub migrate" in result.output, result.output
    # Reading does not migrate either: the warehouse is as empty as it was.
    assert CliRunner().invoke(app, ["sql", "select 1"]).exit_code == 0
    assert "ops" not in schemas_of(fresh) and "core" not in schemas_of(fresh)

    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0 and "applied 0001_base" in result.output, result.output
    require_current()
    assert migrate() == []


def test_a_changed_model_is_found_and_only_the_difference_is_applied(fresh):
    migrate()
    with psycopg.connect(fresh, autocommit=True) as conn:
        # A column the model has and the table lacks, as after a hub upgrade.
        conn.execute("ALTER TABLE core.house DROP COLUMN room")
        changes = core_changes(conn)
        assert changes[0] == "ALTER TABLE core.house ADD COLUMN IF NOT EXISTS room text"
        assert len(changes) == 2 and changes[1].startswith("COMMENT ON COLUMN core.house.room ")
        # The recorded fingerprint says current (the change was by hand): `--force`.
        assert schema_behind(conn) is None
    assert CliRunner().invoke(app, ["migrate", "--force"]).exit_code == 0
    with psycopg.connect(fresh, autocommit=True) as conn:
        assert core_changes(conn) == []
        # A hub whose model or migrations moved on: the fingerprint differs.
        conn.execute("UPDATE ops.schema_state SET fingerprint = 'an older hub'")
        assert "behind" in (schema_behind(conn) or "")
    with pytest.raises(SchemaNotCurrent):
        require_current()
    assert migrate() == []  # nothing to apply but the new fingerprint
    require_current()
    with psycopg.connect(fresh, autocommit=True) as conn:
        applied = [r[0] for r in conn.execute("SELECT version FROM ops.schema_migration"
                                              " ORDER BY 1")]
    assert applied == [m.version for m in migrations()]
