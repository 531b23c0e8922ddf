"""The keys a first load wrote (warehouse.first_loads): never a key written reported as
not written, whatever the keys; few others reported as written."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.first_loads import KeysWritten, key_hashes

keys = st.lists(st.text(min_size=1, max_size=40), max_size=300)


@given(batches=st.lists(st.tuples(keys, st.booleans(), st.booleans()), max_size=5),
       others=keys, bits=st.sampled_from([1 << 27, 1 << 24, 1 << 12]))
@settings(max_examples=60)
def test_a_key_written_is_always_one_it_may_hold(batches, others, bits):
    """Whether the keys come as they are or hashed ahead (`key_hashes`, in the checks'
    thread), and their bits are set at once or beside, the filter answers alike; a key
    noted again is one it may have written before."""
    written = KeysWritten(bits)
    noted: set[str] = set()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for batch, ahead, beside in batches:
            array = pa.array(batch, pa.string())
            before = written.note(key_hashes(array) if ahead else array,
                                  beside=pool if beside else None)
            assert before or not noted.intersection(batch)
            noted.update(batch)
    every = [k for batch, _, _ in batches for k in batch]
    asked = pa.array(every, pa.string())
    assert written.may_hold(asked).all()
    assert (written.may_hold(key_hashes(asked)) == written.may_hold(asked)).all()
    # A key never written is (nearly always) known as such.
    fresh = [k for k in others if k not in set(every)]
    assert (written.may_hold(key_hashes(pa.array(fresh, pa.string())))
            == written.may_hold(pa.array(fresh, pa.string()))).all()
    if bits >= 1 << 24:
        assert written.may_hold(pa.array(fresh, pa.string())).sum() <= max(1, len(fresh) // 100)


def test_few_keys_never_written_are_taken_for_written():
    written = KeysWritten()
    written.note(pa.array([f"WO{i:08d}" for i in range(200_000)]))
    others = pa.array([f"XX{i:08d}" for i in range(200_000)])
    assert int(written.may_hold(others).sum()) <= 2
    assert written.may_hold(pa.array([], pa.string())).shape == (0,)



@pytest.mark.parametrize("bits", [3 << 20, 1 << 28])
def test_a_filter_is_a_power_of_two_bits_at_most_as_large_as_the_positions(bits):
    with pytest.raises(ValueError, match=str(bits)):
        KeysWritten(bits)
