"""The batch's first stage: re-reads go, conflicts stay for the rules."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from hub.dedupe import drop_rereads


def table(rows: list[tuple[str | None, str, str]]) -> pa.Table:
    keys, updated, values = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table({"k": pa.array(keys, pa.string()), "u": pa.array(updated, pa.string()),
                     "v": pa.array(values, pa.string())})


def test_the_same_record_twice_is_one_reread():
    kept, dropped = drop_rereads(table([("a", "1", "x"), ("b", "1", "y"), ("a", "1", "x")]), "k", "u")
    assert kept.to_pylist() == [{"k": "a", "u": "1", "v": "x"}, {"k": "b", "u": "1", "v": "y"}]
    assert dropped == 1


def test_an_older_version_gives_way_to_the_newer():
    kept, dropped = drop_rereads(
        table([("a", "2026-11-20 08:00:00", "old"), ("a", "2026-11-20 09:00:00", "new")]), "k", "u")
    assert kept["v"].to_pylist() == ["new"] and dropped == 1


def test_two_different_records_under_one_key_both_stay():
    rows = [("a", "2026-11-20 08:00:00", "张三"), ("a", "2026-11-20 08:00:00", "李四")]
    kept, dropped = drop_rereads(table(rows), "k", "u")
    assert kept.num_rows == 2 and dropped == 0
    # Without a version field (a file snapshot), different records always conflict.
    rows = [("a", "2026-11-20 08:00:00", "张三"), ("a", "2026-11-20 09:00:00", "李四")]
    assert drop_rereads(table(rows), "k")[0].num_rows == 2


def test_rows_without_a_key_are_left_to_the_rules():
    kept, dropped = drop_rereads(table([(None, "1", "x"), (None, "1", "x")]), "k", "u")
    assert kept.num_rows == 2 and dropped == 0


records = st.lists(st.tuples(st.sampled_from(["a", "b", "c", None]), st.sampled_from(["1", "2"]),
                             st.sampled_from(["x", "y"])), max_size=12)


@given(records)
def test_nothing_is_lost_only_repeats_and_older_versions_go(rows):
    kept, dropped = drop_rereads(table(rows), "k", "u")
    assert kept.num_rows + dropped == len(rows)
    kept_rows = set(map(tuple, (r.values() for r in kept.to_pylist())))
    for key, updated, value in rows:
        if key is None:
            continue
        latest = max(u for k, u, _ in rows if k == key)
        # Every distinct record at its key's latest version is kept, exactly once.
        if updated == latest:
            assert (key, updated, value) in kept_rows
    assert kept.num_rows == len({r for r in rows if r[0] is not None and r[1] == max(
        u for k, u, _ in rows if k == r[0])}) + sum(1 for r in rows if r[0] is None)
