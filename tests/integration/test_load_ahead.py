"""What the load does ahead of, or instead of, work inside the store's transaction: the
quarantine's masking and sealing made in the prepare stage, and the merge's key look-up
walking the key index whatever the planner knows of the table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from psycopg import sql

import quality.store
from conform.base import build
from conform.protect import protect
from connectors.base import RowReject
from hub.pipeline import loadable, store_validated
from quality.validate import validate
from schemas.model import EVENT, PERSON
from tests.support.profile_rules import NOW, conformed_table, panjin_context, panjin_streets
from warehouse import loader
from warehouse.db import Role, connect
from warehouse.first_loads import FirstLoads

CTX = panjin_context()


def events(n: int, bad: set[int], ids: range | None = None,
           description: str = "d") -> pa.Table:
    """n conformed work orders (A-0 … or those of `ids`); those in `bad` lack their
    channel (a blocking rule)."""
    # Weeks before the report tests' week (2026-W47): this warehouse is shared.
    t = NOW - timedelta(days=30)
    rows = [{"source_id": f"A-{i}", "channel": None if i in bad else "电话",
             "category_code": "SR01", "source_category": "0101 占道经营", "status": "accepted",
             "source_status": "受理", "division_code": "211103", "description": description,
             "street_code": panjin_streets()[0], "reporter_phone": "13800138000",
             "reported_at": t, "accepted_at": t, "source_updated_at": t}
            for i in (ids if ids is not None else range(n))]
    return conformed_table(EVENT, rows)


def test_quarantine_is_masked_and_sealed_before_the_store(db, warehouse, monkeypatch):
    validated = validate(EVENT, events(6, {1, 4}), CTX)
    part = loadable(EVENT, validated)  # the prepare stage: sealing done here
    assert part.outcome is not None and part.outcome.quarantine is not None
    assert part.outcome.quarantine.num_rows == 2

    def no_sealing(records: Any) -> Any:
        raise AssertionError("sealed inside the store's transaction")

    monkeypatch.setattr(quality.store, "seal_rows", no_sealing)
    with connect(Role.LOADER) as conn:
        run_id = conn.execute("INSERT INTO ops.run (source_system, connector) VALUES"
                              " ('t_ahead', 'test') RETURNING run_id").fetchone()[0]
        merged, opened = store_validated(conn, part, source="t_ahead", stream="s",
                                         run_id=run_id, payload=None)
    assert (merged.inserted, opened) == (4, 2)
    held = db.execute("SELECT source_id, rule, payload_kind, payload_sealed IS NOT NULL,"
                      " payload_digest IS NOT NULL FROM quality.quarantine"
                      " WHERE source_system = 't_ahead' ORDER BY source_id").fetchall()
    assert held == [("A-1", "required_present:channel", "conformed", True, True),
                    ("A-4", "required_present:channel", "conformed", True, True)]
    # Made from other records than the store is given, it is made again there.
    with pytest.raises(AssertionError, match="sealed inside"):
        with connect(Role.LOADER) as conn:
            store_validated(conn, part, source="t_ahead", stream="s", run_id=run_id,
                            payload=validated.table)


def people(ids: list[str]) -> pa.Table:
    return protect(PERSON, build(PERSON, {"source_id": pa.array(ids),
                                          "role": pa.scalar("resident")}, len(ids)))


@pytest.mark.parametrize("source", ["t_probe_known", "t_probe_new"])
def test_the_key_look_up_goes_by_the_key_index(db, warehouse, source):
    """Before statistics name a source, every index leading with source_system looks
    alike to the planner; one not holding source_id (person_record_ref) would read all
    the source's rows. The look-up walks the key index, in key order, always."""
    with connect(Role.LOADER) as conn:
        loader.merge(conn, PERSON, people([f"r{i}" for i in range(300)]),
                     source_system="t_probe_known", stream="s", run_id=None)  # type: ignore[arg-type]
    plans: list[str] = []

    class Explaining:
        """The connection, each look-up explained before it runs."""

        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def execute(self, query: Any, params: Any = None) -> Any:
            if isinstance(query, sql.Composable) and "ANY" in query.as_string(self.conn):
                plans.append("\n".join(r[0] for r in self.conn.execute(
                    sql.SQL("EXPLAIN ") + query, params)))
            return self.conn.execute(query, params)

    with connect(Role.LOADER) as conn:
        keys = pa.chunked_array([["r1", "nobody", "r7"]])
        hashes = loader.row_hashes(PERSON, people(["r1", "nobody", "r7"]))
        found = loader._current(Explaining(conn), PERSON, source,  # type: ignore[arg-type]
                                keys, hashes, None)
        # The planner's settings are the session's again for what follows.
        assert conn.execute("SELECT current_setting('enable_seqscan'),"
                            " current_setting('enable_sort'), current_setting('enable_nestloop')"
                            ).fetchone() == ("on", "on", "on")
        ordered_saop = conn.info.server_version >= 170000
    known = source == "t_probe_known"
    assert found.exists.tolist() == [known, False, known]
    assert found.changed.tolist() == [False, False, False]  # the same records
    (plan,) = plans
    # No loop reading the table once per key: a hash join, or (a handful of keys, as
    # here, on PostgreSQL 18) a loop over a materialized single read of the table.
    assert "Hash Join" in plan or ("Nested Loop" in plan and "Materialize" in plan), plan
    assert plan.count("Index Scan") + plan.count("Seq Scan") == 1, plan
    if ordered_saop:  # an index scan gives ScalarArrayOp keys in order since PostgreSQL 17
        assert "person_current_key" in plan or "person_history" in plan, plan
        assert "source_id = ANY" in plan.split("Index Cond:")[1].split("\n")[0], plan


def test_keys_holding_the_separator_are_looked_up_all_the_same(db, warehouse):
    """Keys go to the server as one text split there, unless one holds the separator."""
    ids = ["x\x1ey", "", "z"]
    with connect(Role.LOADER) as conn:
        first = loader.merge(conn, PERSON, people(ids), source_system="t_sep", stream="s",
                             run_id=None)  # type: ignore[arg-type]
    with connect(Role.LOADER) as conn:
        again = loader.merge(conn, PERSON, people(ids), source_system="t_sep", stream="s",
                             run_id=None)  # type: ignore[arg-type]
    assert (first.inserted, again.inserted, again.updated, again.unchanged) == (3, 0, 0, 3)


def start_run(source: str) -> int:
    with connect(Role.LOADER) as conn:
        return conn.execute("INSERT INTO ops.run (source_system, connector) VALUES"
                            " (%s, 'test') RETURNING run_id", (source,)).fetchone()[0]


def store_run(source: str, batches: list[pa.Table], first_loads: FirstLoads | None,
              rejects: dict[int, list[str]] | None = None) -> list[int]:
    """Batches of one run, stored as the pipeline stores them (its FirstLoads, if any);
    before batch i, the connector's unreadable rows `rejects[i]` (their keys). The
    quarantine entries each batch opened."""
    run_id = start_run(source)
    opened = []
    for i, table in enumerate(batches):
        with connect(Role.LOADER) as conn:
            if rejects and i in rejects:
                quality.store.record_rejects(
                    conn, run_id, source, "s", EVENT,
                    [RowReject("unreadable", "a torn line", "line 3", {"orderNo": k}, k)
                     for k in rejects[i]],
                    set_aside=first_loads.set_aside(conn, EVENT.name) if first_loads else None)
            opened.append(store_validated(conn, loadable(EVENT, validate(EVENT, table, CTX)),
                                          source=source, stream="s", run_id=run_id,
                                          payload=None, first_loads=first_loads)[1])
    return opened


def entries(db, source: str) -> list[tuple]:
    return db.execute("SELECT source_id, rule, state, payload->>'description',"
                      " payload_sealed IS NOT NULL, payload_digest IS NOT NULL"
                      " FROM quality.quarantine WHERE source_system = %s"
                      " ORDER BY quarantine_id", (source,)).fetchall()


def test_a_first_load_sets_aside_without_looking_entries_up(db, warehouse, monkeypatch):
    """No open entry of the source before the run, none under the batch's keys set aside
    by it: the entries are written as they are, with nothing staged or looked up."""
    def no_stage(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("quarantine entries staged and looked up")

    monkeypatch.setattr(quality.store, "_stage", no_stage)
    opened = store_run("t_q_first", [events(0, {1, 4}, range(6)), events(0, {7}, range(6, 9))],
                       FirstLoads("t_q_first"))
    assert opened == [2, 1]
    assert entries(db, "t_q_first") == [
        (f"A-{i}", "required_present:channel", "open", "d", True, True) for i in (1, 4, 7)]


@pytest.mark.parametrize("first", [True, False], ids=["first-load", "full-path"])
def test_a_first_load_meeting_a_key_again_stores_what_the_full_path_stores(db, warehouse, first):
    """A key set aside, sent again changed and still bad, then good; another key met by
    the connector as unreadable, then loaded: whether the run knows its first load or
    not, the same entries in the same states."""
    source = f"t_q_again_{first}"
    opened = store_run(source, [events(0, {1}, range(3)),
                                events(0, {1}, range(1, 2), description="changed"),
                                events(0, set(), range(1, 4))],
                       FirstLoads(source) if first else None, rejects={1: ["A-3"]})
    assert opened == [1, 1, 0]
    assert entries(db, source) == [
        ("A-1", "required_present:channel", "superseded", "d", True, True),
        ("A-3", "unreadable", "superseded", None, True, True),
        ("A-1", "required_present:channel", "superseded", "changed", True, True)]
    loaded = db.execute("SELECT count(*) FROM core.event WHERE source_system = %s"
                        " AND valid_to IS NULL", (source,)).fetchone()
    assert loaded == (4,)


def test_a_source_with_open_entries_has_them_looked_up(db, warehouse):
    store_run("t_q_open", [events(0, {2}, range(3))], None)
    with connect(Role.LOADER) as conn:
        assert FirstLoads("t_q_open").set_aside(conn, EVENT.name) is None
        assert FirstLoads("t_q_open").set_aside(conn, PERSON.name) is not None
        assert FirstLoads("t_q_none").set_aside(conn, EVENT.name) is not None
    # The record sent again as it was: its entry stands, no second one opens.
    assert store_run("t_q_open", [events(0, {2}, range(2, 3))], FirstLoads("t_q_open")) == [0]
    assert [e[2] for e in entries(db, "t_q_open")] == ["open"]
