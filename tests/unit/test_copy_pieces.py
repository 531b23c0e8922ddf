"""A COPY written ahead in pieces (warehouse.loader._pieces_ahead): the pieces hold the
table's rows exactly once, in order, the first small and each next one at most twice the
one before, so the server reads from the start while the rest are written."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.loader import COPY_CHUNK_ROWS, _csv_piece, _pieces_ahead


@given(rows=st.one_of(st.integers(0, 3 * COPY_CHUNK_ROWS), st.sampled_from(
    [1, COPY_CHUNK_ROWS // 8, COPY_CHUNK_ROWS // 8 + 1, 50_000])))
@settings(max_examples=40, deadline=None)
def test_the_pieces_hold_every_row_once_in_order_growing_from_a_small_first(rows):
    table = pa.table({"n": pa.array(range(rows), pa.int64()),
                      "t": pa.array([f"行{i}" for i in range(rows)], pa.string())})
    pieces = _pieces_ahead(table)
    assert [start for start, _ in pieces] == [sum(n for _, n in pieces[:i])
                                             for i in range(len(pieces))]
    assert sum(n for _, n in pieces) == rows and all(n > 0 for _, n in pieces)
    if pieces:
        assert pieces[0][1] <= COPY_CHUNK_ROWS // 8
        assert all(n <= min(2 * before, COPY_CHUNK_ROWS)
                   for (_, before), (_, n) in zip(pieces, pieces[1:], strict=False))
    whole = io.BytesIO()
    pacsv.write_csv(table, whole, pacsv.WriteOptions(include_header=False))
    assert b"".join(bytes(_csv_piece(table, start, n)) for start, n in pieces) \
        == whole.getvalue()
