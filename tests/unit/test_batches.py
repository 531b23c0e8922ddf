"""Pages gathered into batches (hub.pipeline._batches): every record once, in order, with
the cursor of its batch's last page; no batch across two snapshots; the first batch, and
a new snapshot's first, cut at the smaller size, the others at the full one."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Extract
from hub.pipeline import _batches, first_batch_rows

# Pages: (records, snapshot number or None, whether the page completes its snapshot).
pages = st.lists(st.tuples(st.integers(0, 60), st.one_of(st.none(), st.integers(0, 2)),
                           st.booleans()), max_size=25)


def extracts(spec: list[tuple[int, int | None, bool]]) -> list[Extract]:
    out, serial = [], 0
    for n, snapshot, complete in spec:
        records = pa.table({"k": pa.array(range(serial, serial + n), pa.int64())})
        out.append(Extract(records, {"page": len(out)}, snapshot_id=None if snapshot is None
                           else f"s{snapshot}", snapshot_complete=complete and snapshot is not None))
        serial += n
    return out


@given(spec=pages, rows=st.integers(1, 100), first=st.integers(1, 100))
@settings(max_examples=200)
def test_pages_are_batched_whole_in_order_with_a_smaller_first(spec, rows, first):
    given_pages = extracts(spec)
    batches = list(_batches(iter(given_pages), rows, first))
    keys = [k for b in batches for k in b.records["k"].to_pylist()]
    assert keys == list(range(sum(n for n, _, _ in spec)))
    # Each batch is whole pages (its cursor names its last), of one snapshot.
    taken = 0
    for b in batches:
        last = b.cursor["page"]
        pages_in = given_pages[taken:last + 1]
        assert pages_in and sum(p.records.num_rows for p in pages_in) == b.records.num_rows
        assert {p.snapshot_id for p in pages_in} == {b.snapshot_id}
        assert b.snapshot_complete == pages_in[-1].snapshot_complete
        # Cut once it holds enough, or where its snapshot ends or changes, or the pages
        # do; at the smaller size where it opens the stream or a snapshot.
        before = given_pages[taken - 1] if taken else None
        opening = (before is None or before.snapshot_complete
                   or before.snapshot_id != b.snapshot_id)
        limit = first if opening else rows
        assert sum(p.records.num_rows for p in pages_in[:-1]) < limit
        after = given_pages[last + 1] if last + 1 < len(given_pages) else None
        assert (b.records.num_rows >= limit or b.snapshot_complete or after is None
                or after.snapshot_id != b.snapshot_id)
        taken = last + 1
    assert taken == len(given_pages)


def test_the_first_batch_is_a_quarter_unless_a_first_load_would_not_show():
    assert first_batch_rows(50_000, 10_000) == 12_500
    assert first_batch_rows(20_000, 10_000) == 10_000
    assert first_batch_rows(400, 10_000) == 400
    assert first_batch_rows(100, 50) == 50
