"""The keys a first load wrote (warehouse.first_loads): never a key written reported as
not written, whatever the keys; few others reported as written."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.first_loads import KeysWritten

keys = st.lists(st.text(min_size=1, max_size=40), max_size=300)


@given(batches=st.lists(keys, max_size=5), others=keys)
@settings(max_examples=60)
def test_a_key_written_is_always_one_it_may_hold(batches, others):
    written = KeysWritten()
    for batch in batches:
        written.note(pa.array(batch, pa.string()))
    every = [k for batch in batches for k in batch]
    assert written.may_hold(pa.array(every, pa.string())).all()
    # A key never written is (nearly always) known as such.
    fresh = [k for k in others if k not in set(every)]
    assert written.may_hold(pa.array(fresh, pa.string())).sum() <= max(1, len(fresh) // 100)


def test_few_keys_never_written_are_taken_for_written():
    written = KeysWritten()
    written.note(pa.array([f"WO{i:08d}" for i in range(200_000)]))
    others = pa.array([f"XX{i:08d}" for i in range(200_000)])
    assert int(written.may_hold(others).sum()) <= 2
    assert written.may_hold(pa.array([], pa.string())).shape == (0,)
