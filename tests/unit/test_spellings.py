"""Values keyed in another way: every spelling of one ID number or phone number is one
normal form and one keyed hash (full-width characters, spaces, dashes, +86 / 0086, x
or X, the legacy 15-digit ID)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from base import identity
from base.pii import IDENTITY, hash_array
from schemas.model import Pii

FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}  # ASCII → ＡＳＣＩＩ
SEPARATORS = [" ", "  ", "\u3000", "-", "－", "–", "—", "‐", "_", ".", "\t"]


def _full_width(draw: st.DrawFn, text: str) -> str:
    """Some characters in their full-width form (as a Chinese IME keys them)."""
    flags = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(FULL_WIDTH.get(c, c) if f else c for c, f in zip(text, flags, strict=True))


def _separated(draw: st.DrawFn, parts: list[str]) -> str:
    """The parts joined by a separator (or none) at each seam, maybe padded."""
    out = parts[0]
    for part in parts[1:]:
        out += draw(st.sampled_from(["", *SEPARATORS])) + part
    return draw(st.sampled_from(["", " ", "\u3000"])) + out + draw(st.sampled_from(["", " "]))


# ---------------------------------------------------------------- citizen ID numbers


@st.composite
def id_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(the GB 11643 normal form, one way to key it in)."""
    region = draw(st.sampled_from(["211103", "211102", "211104", "211122", "110105"]))
    year = draw(st.integers(1900, 1999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    serial = draw(st.integers(0, 999))
    body = f"{region}{year}{month:02d}{day:02d}{serial:03d}"
    normal = body + ric.calc_check_digit(body + "0")
    if draw(st.booleans()):  # the legacy number: no century, no check character
        sent = normal[:6] + normal[8:17]
    else:
        sent = normal[:17] + (normal[17].lower() if draw(st.booleans()) else normal[17])
    cut = sorted(draw(st.lists(st.integers(1, len(sent) - 1), max_size=3, unique=True)))
    parts = [sent[i:j] for i, j in zip([0, *cut], [*cut, len(sent)], strict=True)]
    return normal, _full_width(draw, _separated(draw, parts))


@settings(max_examples=300)
@given(id_numbers())
def test_every_spelling_of_an_id_number_is_its_normal_form(case):
    normal, sent = case
    assert identity.citizen_id(sent) == normal
    assert identity.citizen_ids(pa.array([sent, normal])).to_pylist() == [normal, normal]


@settings(max_examples=200)
@given(st.lists(st.one_of(id_numbers().map(lambda case: case[1]),
                          id_numbers().map(lambda case: case[0]),
                          st.sampled_from(["", " ", "--", "\u3000", "12345", "2111031990010110X4"]),
                          st.text(max_size=20), st.none()), max_size=30))
def test_a_column_of_id_numbers_is_normalised_as_each_value_is(values):
    # The column path takes values already in normal form as they are (nearly every one
    # in a file) and the rest one by one: the same as each value's own normal form.
    expected = [None if v is None else identity.citizen_id(v) for v in values]
    assert identity.citizen_ids(pa.array(values, pa.string())).to_pylist() == expected


@settings(max_examples=200)
@given(id_numbers())
def test_every_spelling_of_an_id_number_has_one_hash(case):
    # Through conform (normalise, then hash its identity) and hashed as sent (the
    # identity form normalises on its own): one hash, the normal form's.
    normal, sent = case
    conformed = identity.citizen_ids(pa.array([sent, normal]))
    hashed = hash_array(conformed, IDENTITY[Pii.ID_NUMBER]).to_pylist()
    as_sent = hash_array(pa.array([sent]), IDENTITY[Pii.ID_NUMBER]).to_pylist()
    assert hashed[0] == hashed[1] == as_sent[0]


def test_id_numbers_spelled_by_hand():
    normal = "21110319900101104X"
    for sent in ["２１１１０３１９９００１０１１０４Ｘ", "211103-19900101-104x",
                 "211103\u300019900101\u3000104ｘ", " 211103 199001 01104X ", "211103900101104",
                 "２１１１０３９００１０１１０４", "211103·19900101·104X"]:
        assert identity.citizen_id(sent) == normal, sent
    hashes = set(hash_array(pa.array([normal, "２１１１０３１９９００１０１１０４ｘ"]),
                            IDENTITY[Pii.ID_NUMBER]).to_pylist())
    assert len(hashes) == 1
    # Not a number in another spelling: kept (cleaned) for the rule to flag.
    assert identity.citizen_id("21110319900101104") == "21110319900101104"
    assert identity.citizen_id("－ ") is None


# ---------------------------------------------------------------- phones


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str]:
    number = "1" + draw(st.sampled_from("3456789")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086", "0086-", "86", "(+86)", "+86-"]))
    groups = draw(st.sampled_from([[number], [number[:3], number[3:7], number[7:]],
                                   [number[:3], number[3:]]]))
    return number, _full_width(draw, prefix + _separated(draw, groups))


@st.composite
def landlines(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.sampled_from(["0427", "024", "010", "0411"]))
    local = draw(st.sampled_from("2345678")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=6, max_size=7)))
    national = area + local
    style = draw(st.integers(0, 3))
    if style == 0:
        sent = _separated(draw, [area, local])
    elif style == 1:
        sent = f"({area})" + draw(st.sampled_from(["", " "])) + local
    elif style == 2:  # international: the trunk 0 of the area code goes
        sent = draw(st.sampled_from(["+86 ", "+86-", "0086 ", "+86"])) + _separated(
            draw, [area[1:], local])
    else:
        sent = "+86 (0)" + area[1:] + " " + local
    return national, _full_width(draw, sent)


@settings(max_examples=300)
@given(st.one_of(mobiles(), landlines()))
def test_every_spelling_of_a_phone_is_its_national_form(case):
    national, sent = case
    assert identity.phones(pa.array([sent])).to_pylist() == [national], sent
    assert identity.phone_identity(sent) == national


@settings(max_examples=200)
@given(st.one_of(mobiles(), landlines()))
def test_every_spelling_of_a_phone_has_one_hash(case):
    national, sent = case
    conformed = identity.phones(pa.array([sent, national]))
    hashed = hash_array(conformed, IDENTITY[Pii.PHONE]).to_pylist()
    as_sent = hash_array(pa.array([sent]), IDENTITY[Pii.PHONE]).to_pylist()
    assert hashed[0] == hashed[1] == as_sent[0]


def test_phones_spelled_by_hand():
    cases = {
        "１３８００１３８０００": "13800138000",
        "＋８６ １３８－００１３－８０００": "13800138000",
        "+86 138 0013 8000": "13800138000",
        "0086-13800138000": "13800138000",
        "8613800138000": "13800138000",
        "+86 427 2812345": "04272812345",
        "+86 (0427) 2812345": "04272812345",
        "（０４２７）２８１２３４５": "04272812345",
        "0427-2812345": "04272812345",
    }
    assert identity.phones(pa.array(list(cases))).to_pylist() == list(cases.values())
    assert len(set(hash_array(pa.array(list(cases)[:5]), IDENTITY[Pii.PHONE]).to_pylist())) == 1
    assert len(set(hash_array(pa.array(list(cases)[5:]), IDENTITY[Pii.PHONE]).to_pylist())) == 1
    # Nothing a phone rule could read: kept as sent, for the rule to show.
    assert identity.phones(pa.array(["无", "  "])).to_pylist() == ["无", None]
