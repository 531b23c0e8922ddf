"""The merge into core tables: idempotent, history-keeping, verbatim, never deleting."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pytest

from conform.base import build
from conform.protect import protect
from schemas.model import EVENT, PERSON
from warehouse import loader
from warehouse.db import Role, connect
from warehouse.first_loads import FirstLoads
from warehouse.loader import SnapshotTooSmall, close_missing, merge, read_bigints, record_seen

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

HOSTILE = [
    "'; DROP TABLE core.event; --",
    "路灯不亮\n已经三天了\r\n请尽快处理🔥",
    'quote " and "" and \\N and \\ backslash, comma',
    "",
    "<script>alert('x')</script>",
]


def events(ids: list[str], status: str = "accepted", updated: datetime = T0,
           description: list[str] | None = None) -> pa.Table:
    n = len(ids)
    return protect(EVENT, build(EVENT, {
        "source_id": pa.array(ids),
        "channel": pa.scalar("电话"),
        "category_code": pa.scalar("SR01"),
        "source_category": pa.scalar("010101 占道经营"),
        "status": pa.scalar(status),
        "source_status": pa.scalar(status),
        "description": pa.array(description or ["d"] * n),
        "reporter_phone": pa.scalar("13812348000"),
        "source_updated_at": pa.array([updated] * n, pa.timestamp("us", tz="UTC")),
    }, n))


def load(table: pa.Table, system: str, entity=EVENT):
    with connect(Role.LOADER) as conn:
        return merge(conn, entity, table, source_system=system, stream="s",
                     run_id=None)  # type: ignore[arg-type]


def current(db: psycopg.Connection, system: str) -> dict:
    rows = db.execute("SELECT source_id, status FROM core.event WHERE source_system = %s"
                      " AND valid_to IS NULL", (system,)).fetchall()
    return dict(rows)


def test_loading_twice_changes_nothing(db, warehouse):
    first = load(events(["a", "b", "c"]), "t_twice")
    second = load(events(["a", "b", "c"]), "t_twice")
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 3)
    total = db.execute("SELECT count(*), count(DISTINCT source_id) FROM core.event"
                       " WHERE source_system = 't_twice'").fetchone()
    assert total == (3, 3)


def test_a_change_makes_a_new_version_and_keeps_the_old(db, warehouse):
    load(events(["a", "b"]), "t_hist")
    counts = load(events(["a"], status="resolved", updated=T1), "t_hist")
    assert (counts.inserted, counts.updated) == (0, 1)
    assert current(db, "t_hist") == {"a": "resolved", "b": "accepted"}
    history = db.execute("SELECT status, valid_to IS NULL FROM core.event WHERE source_system ="
                         " 't_hist' AND source_id = 'a' ORDER BY valid_from, row_id").fetchall()
    assert history == [("accepted", False), ("resolved", True)]


def test_a_new_version_keeps_the_keys_linking_gave_the_record(db, warehouse):
    load(events(["a", "b", "c"]), "t_keys")
    with connect(Role.OWNER) as conn:
        conn.execute("UPDATE core.event SET cluster_key = 'K-' || source_id,"
                     " reporter_person_key = 'P-' || source_id"
                     " WHERE source_system = 't_keys' AND source_id IN ('a', 'b')")
    counts = load(events(["a", "c", "d"], status="resolved", updated=T1), "t_keys")
    assert (counts.inserted, counts.updated) == (1, 2)
    rows = db.execute("SELECT source_id, status, cluster_key, reporter_person_key"
                      " FROM core.event WHERE source_system = 't_keys' AND valid_to IS NULL"
                      " ORDER BY source_id").fetchall()
    assert rows == [("a", "resolved", "K-a", "P-a"),     # changed: keeps its keys
                    ("b", "accepted", "K-b", "P-b"),     # untouched
                    ("c", "resolved", None, None),       # changed, never linked
                    ("d", "resolved", None, None)]       # new
    # A carried key is no change: loading the same rows again writes nothing.
    assert load(events(["a", "c", "d"], status="resolved", updated=T1), "t_keys").unchanged == 3


def test_an_older_copy_never_overwrites_newer_data(db, warehouse):
    load(events(["a"], status="resolved", updated=T1), "t_stale")
    counts = load(events(["a"], status="accepted", updated=T0), "t_stale")
    assert counts.unchanged == 1
    assert current(db, "t_stale") == {"a": "resolved"}


def test_text_is_stored_verbatim(db, warehouse):
    ids = [f"h{i}" for i in range(len(HOSTILE))]
    load(events(ids, description=HOSTILE), "t_verbatim")
    stored = dict(db.execute("SELECT source_id, description FROM core.event WHERE source_system"
                             " = 't_verbatim'").fetchall())
    assert [stored[i] for i in ids] == HOSTILE
    assert db.execute("SELECT count(*) FROM core.event").fetchone()[0] > 0  # still there


def test_personal_data_is_hashed_and_masked(db, warehouse):
    load(events(["p1"]), "t_pii")
    row = db.execute("SELECT reporter_phone_hash, reporter_phone_masked FROM core.event"
                     " WHERE source_system = 't_pii'").fetchone()
    assert row[1] == "138****8000"
    assert len(row[0]) == 64 and "13812348000" not in row[0]
    columns = {r[0] for r in db.execute("SELECT column_name FROM information_schema.columns"
                                        " WHERE table_schema = 'core' AND table_name = 'event'")}
    assert "reporter_phone" not in columns


def test_snapshot_closes_the_missing_and_reopens_the_returning(db, warehouse):
    def snapshot(snapshot_id: str, batches: list[list[str]]) -> int:
        """Load a full snapshot in batches, as the pipeline does; returns records closed."""
        with connect(Role.LOADER) as conn:
            for ids in batches:
                rows = protect(PERSON, build(PERSON, {"source_id": pa.array(ids),
                                                      "role": pa.scalar("resident")}, len(ids)))
                merge(conn, PERSON, rows, source_system="t_snap", stream="residents",
                      run_id=None)  # type: ignore[arg-type]
                record_seen(conn, "t_snap", "residents", snapshot_id, pa.array(ids))
            return close_missing(conn, PERSON, "t_snap", "residents", snapshot_id)

    assert snapshot("day1", [["r1"], ["r2", "r3"]]) == 0
    assert snapshot("day2", [["r1"], ["r3"]]) == 1  # r2 moved out
    assert sorted(current_people(db, "t_snap")) == ["r1", "r3"]
    snapshot("day3", [["r1", "r2", "r3"]])  # r2 is back
    versions = db.execute("SELECT valid_to IS NULL FROM core.person WHERE source_system ="
                          " 't_snap' AND source_id = 'r2' ORDER BY valid_from, row_id").fetchall()
    assert versions == [(False,), (True,)]
    left = db.execute("SELECT count(*) FROM ops.snapshot_seen WHERE source_system = 't_snap'")
    assert left.fetchone()[0] == 0


def current_people(db: psycopg.Connection, system: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT source_id FROM core.person WHERE source_system = %s"
                                     " AND valid_to IS NULL", (system,))]


def test_a_snapshot_far_smaller_than_the_register_is_refused(db, warehouse):
    def people(ids: list[str]) -> pa.Table:
        return protect(PERSON, build(PERSON, {"source_id": pa.array(ids),
                                              "role": pa.scalar("resident")}, len(ids)))

    everyone = [f"r{i}" for i in range(10)]
    with connect(Role.LOADER) as conn:
        merge(conn, PERSON, people(everyone), source_system="t_trunc", stream="residents",
              run_id=None)  # type: ignore[arg-type]
        record_seen(conn, "t_trunc", "residents", "day1", pa.array(everyone))
        close_missing(conn, PERSON, "t_trunc", "residents", "day1", min_ratio=0.5)
    with pytest.raises(SnapshotTooSmall, match="holds 2 records where 10 are current"):
        with connect(Role.LOADER) as conn:  # a truncated export: two rows
            record_seen(conn, "t_trunc", "residents", "day2", pa.array(everyone[:2]))
            close_missing(conn, PERSON, "t_trunc", "residents", "day2", min_ratio=0.5)
    assert len(current_people(db, "t_trunc")) == 10  # nobody was taken off the register


def test_bigints_are_read_back_exactly_in_binary(warehouse):
    # The binary COPY's rows parsed by numpy: the extremes of bigint, in the query's
    # order, and a column that is not a bigint refused rather than misread.
    values = [0, -1, 1, 2**63 - 1, -(2**63), 1234567890123]
    with connect(Role.LOADER) as conn:
        got = read_bigints(conn, "SELECT v, v # 1 AS w FROM unnest(%(v)s::bigint[])"
                           " WITH ORDINALITY AS t(v, n) ORDER BY n", ("v", "w"), {"v": values})
        assert got["v"].tolist() == values
        assert got["w"].tolist() == [v ^ 1 for v in values]
        assert read_bigints(conn, "SELECT 1::bigint WHERE false", ("x",))["x"].tolist() == []
        with pytest.raises(ValueError, match="non-null bigints"):
            read_bigints(conn, "SELECT 1::int", ("x",))


def first_load(batches: list[pa.Table], system: str, spy=None) -> list:
    """Batches of one run of `system`, as the pipeline stores them (its FirstLoads)."""
    loads = FirstLoads(system)
    counts = []
    for table in batches:
        with connect(Role.LOADER) as conn:
            counts.append(merge(conn, EVENT, table, source_system=system, stream="s",
                                run_id=None,  # type: ignore[arg-type]
                                written=loads.keys_written(conn, EVENT.table)))
    return counts


def test_a_first_load_writes_new_keys_without_looking_them_up(db, warehouse, monkeypatch):
    looked_up = []
    real = loader._current
    monkeypatch.setattr(loader, "_current",
                        lambda conn, entity, system, keys, *a: looked_up.append(
                            keys.to_pylist()) or real(conn, entity, system, keys, *a))
    counts = first_load([events(["a", "b"]), events(["c", "d"])], "t_first")
    assert [(c.inserted, c.updated) for c in counts] == [(2, 0), (2, 0)]
    assert looked_up == []  # nothing there before the run but what it wrote
    assert current(db, "t_first") == dict.fromkeys("abcd", "accepted")


def test_a_first_load_holding_one_key_twice_keeps_both_versions(db, warehouse):
    """Two batches of one first load with one key: the second is looked up and merged as
    a change, the first version closed, exactly as without the first load's record."""
    counts = first_load([events(["a", "b"]), events(["b", "c"], status="resolved",
                                                    updated=T1)], "t_first_twice")
    assert [(c.inserted, c.updated) for c in counts] == [(2, 0), (1, 1)]
    assert current(db, "t_first_twice") == {"a": "accepted", "b": "resolved",
                                            "c": "resolved"}
    versions = db.execute("SELECT count(*) FROM core.event WHERE source_system ="
                          " 't_first_twice' AND source_id = 'b'").fetchone()
    assert versions == (2,)


def test_a_load_into_rows_of_its_source_looks_every_batch_up(db, warehouse):
    load(events(["a"]), "t_not_first")
    with connect(Role.LOADER) as conn:
        assert FirstLoads("t_not_first").keys_written(conn, EVENT.table) is None
        assert FirstLoads("t_never_loaded").keys_written(conn, EVENT.table) is not None
    counts = first_load([events(["a"], status="resolved", updated=T1)], "t_not_first")
    assert (counts[0].inserted, counts[0].updated) == (0, 1)
