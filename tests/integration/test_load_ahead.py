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
from hub.pipeline import loadable, store_validated
from quality.validate import validate
from schemas.model import EVENT, PERSON
from tests.support.profile_rules import NOW, conformed_table, panjin_context, panjin_streets
from warehouse import loader
from warehouse.db import Role, connect

CTX = panjin_context()


def events(n: int, bad: set[int]) -> pa.Table:
    """n conformed work orders; those in `bad` lack their channel (a blocking rule)."""
    # Weeks before the report tests' week (2026-W47): this warehouse is shared.
    t = NOW - timedelta(days=30)
    rows = [{"source_id": f"A-{i}", "channel": None if i in bad else "电话",
             "category_code": "SR01", "source_category": "0101 占道经营", "status": "accepted",
             "source_status": "受理", "division_code": "211103",
             "street_code": panjin_streets()[0], "reporter_phone": "13800138000",
             "reported_at": t, "accepted_at": t, "source_updated_at": t}
            for i in range(n)]
    return conformed_table(EVENT, rows)


def test_quarantine_is_masked_and_sealed_before_the_store(db, warehouse, monkeypatch):
    validated = validate(EVENT, events(6, {1, 4}), CTX)
    part = loadable(EVENT, validated)  # the prepare stage: sealing done here
    assert part.outcome is not None and part.outcome.quarantine is not None
    assert part.outcome.quarantine.num_rows == 2

    def no_sealing(payload: Any) -> Any:
        raise AssertionError("sealed inside the store's transaction")

    monkeypatch.setattr(quality.store, "seal_payload", no_sealing)
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
