"""Normalising what platforms send: ID numbers, phones, times, codes, personal data."""

from __future__ import annotations

import pyarrow as pa
import pytest
from stdnum.cn import ric

from base import identity
from base.pii import hash_array, keyed_hash, mask_id_number, mask_name, mask_phone
from conform import values as v


def test_one_resident_spelled_three_ways_is_one_identity():
    # The same person as three platforms key them in: upper-case X, lower-case x with
    # spaces, and the legacy 15-digit number without century and check character.
    spellings = pa.array(["21110319900101104X", "211103 19900101 104x", "211103900101104"])
    assert identity.citizen_ids(spellings).to_pylist() == ["21110319900101104X"] * 3
    assert ric.is_valid("21110319900101104X")


def test_a_mistyped_check_character_links_but_stays_visible():
    normalised = identity.citizen_ids(pa.array(["211103199001011045", "21110319900101104X"])).to_pylist()
    assert normalised[0] == "211103199001011045"  # as sent: the rule flags it
    hashes = hash_array(pa.array(normalised), identity.citizen_id_identity).to_pylist()
    assert hashes[0] == hashes[1]


def test_hash_is_keyed_and_stable():
    a = hash_array(pa.array(["13812348000", "13812348000", "13912348000"])).to_pylist()
    assert a[0] == a[1] != a[2]
    assert all(len(h) == 64 for h in a)
    # The batch's hashes are the one value's keyed hash (linking joins the two).
    assert a == [keyed_hash("13812348000")] * 2 + [keyed_hash("13912348000")]


@pytest.mark.parametrize("sent, stored", [
    ("+86 138-1234-8000", "13812348000"),
    ("0086 13812348000", "13812348000"),
    ("8613812348000", "13812348000"),
    ("0427-2812345", "04272812345"),
    ("unknown", "unknown"),  # kept as sent for the phone rule to flag
    ("  ", None),
])
def test_phones_are_normalised(sent, stored):
    assert identity.phones(pa.array([sent])).to_pylist() == [stored]


def test_local_times_become_utc_and_bad_ones_are_reported():
    times, bad = v.local_times(pa.array(["2026-11-20 08:00:00", "2026-02-30 08:00:00", None, ""]),
                               "Asia/Shanghai")
    assert str(times[0].as_py()) == "2026-11-20 00:00:00+00:00"
    assert times[1].as_py() is None and bad.tolist() == [False, True, False, False]


def test_numbers_and_flags():
    nums, bad = v.floats(pa.array(["121.5", " 40.1 ", "东经121", None]))
    assert nums.to_pylist()[:2] == [121.5, 40.1] and bad.tolist() == [False, False, True, False]
    flags, bad = v.booleans(pa.array(["true", "0", "是", "maybe"]))
    assert flags.to_pylist() == [True, False, True, None] and bad.tolist()[-1]


def test_unmapped_codes_are_labelled_not_dropped():
    mapped = v.map_codes(pa.array(["a", "zz", None]), {"a": "SR01"}).to_pylist()
    assert mapped == ["SR01", "unmapped", "unmapped"]


def test_masks_show_only_what_ordinary_roles_may_see():
    assert mask_id_number(pa.array(["21110319900101104X"])).to_pylist() == ["211103********104X"]
    assert mask_phone(pa.array(["13812348000", "04272812345"])).to_pylist() == [
        "138****8000", "0427***2345"]
    assert mask_name(pa.array(["张三丰", None])).to_pylist() == ["张**", None]
