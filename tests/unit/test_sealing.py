"""Sealed payloads (base.pii): they open to what was sealed, only under the key they
were sealed with, and not at all once altered; digests compare without clear text."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base.pii import (
    SEAL_NONCE_BYTES,
    SEAL_VERSION,
    SealError,
    canonical_json,
    derive_sealing_key,
    payload_digest,
    pii_key,
    seal,
    seal_payload,
    seal_rows,
    unseal,
    unseal_payload,
)
from base.settings import settings as hub_settings


@pytest.fixture
def other_hub_key(monkeypatch) -> Iterator[None]:
    """The hub running under another HUB_PII_KEY (caches cleared both ways)."""
    monkeypatch.setenv("HUB_PII_KEY", secrets.token_hex(16))
    hub_settings.cache_clear()
    pii_key.cache_clear()
    yield
    monkeypatch.undo()
    hub_settings.cache_clear()
    pii_key.cache_clear()


@given(st.binary(max_size=4096))
def test_unseal_opens_what_seal_sealed(data):
    blob = seal(data)
    assert blob[0] == SEAL_VERSION
    assert unseal(blob) == data
    assert unseal(memoryview(blob)) == data  # as psycopg may hand bytea over


def test_every_seal_is_new():
    a, b = seal(b"same"), seal(b"same")
    assert a != b and a[1:1 + SEAL_NONCE_BYTES] != b[1:1 + SEAL_NONCE_BYTES]
    assert b"same" not in a


@settings(max_examples=200)
@given(st.binary(min_size=0, max_size=256), st.data())
def test_a_blob_altered_anywhere_does_not_open(data, draw):
    blob = bytearray(seal(data))
    at = draw.draw(st.integers(0, len(blob) - 1))
    bit = draw.draw(st.integers(0, 7))
    blob[at] ^= 1 << bit
    with pytest.raises(SealError):
        unseal(bytes(blob))


def test_a_truncated_or_extended_blob_does_not_open():
    blob = seal(b"payload")
    for bad in (blob[:-1], blob + b"\0", blob[:5], b""):
        with pytest.raises(SealError):
            unseal(bad)


def test_an_unknown_version_is_said():
    blob = bytearray(seal(b"payload"))
    blob[0] = 2
    with pytest.raises(SealError, match="version"):
        unseal(bytes(blob))


def test_another_key_does_not_open_it():
    blob = seal(b"payload")
    with pytest.raises(SealError, match="another key"):
        unseal(blob, key=derive_sealing_key(secrets.token_bytes(32)))
    with pytest.raises(ValueError, match="32 bytes"):
        unseal(blob, key=b"short")


def test_a_hub_with_another_pii_key_cannot_open_it(other_hub_key):
    sealed_elsewhere = seal(b"payload", key=derive_sealing_key(secrets.token_bytes(32)))
    with pytest.raises(SealError, match="HUB_PII_KEY"):
        unseal(sealed_elsewhere)


def test_sealing_and_hashing_keys_differ_but_come_from_one_secret():
    key = pii_key()
    assert derive_sealing_key(key) != key
    assert len(derive_sealing_key(key)) == 32
    assert derive_sealing_key(key) == derive_sealing_key(key)
    # seal() without a key uses the key derived from the hub's secret.
    assert unseal(seal(b"x"), key=derive_sealing_key(key)) == b"x"


def test_digest_compares_payloads_without_clear_text():
    a = {"callerName": "卢帅帆", "callerPhone": "13466714525", "orderNo": "1"}
    reordered = dict(reversed(list(a.items())))
    assert canonical_json(a) == canonical_json(reordered)
    assert payload_digest(canonical_json(a)) == payload_digest(canonical_json(reordered))
    # One digit the mask hides: same masked payload, another digest.
    b = {**a, "callerPhone": "13466704525"}
    sa, sb = seal_payload(a), seal_payload(b)
    assert sa.masked == sb.masked
    assert sa.digest != sb.digest
    assert "13466714525" not in sa.digest and len(sa.digest) == 64


def test_seal_payload_masks_seals_and_digests():
    record = {"姓名": "张三丰", "公民身份号码": "211103199001011043", "联系电话": "13812348000",
              "现住址": "盘锦市兴隆台区兴隆街道幸福小区3号楼", "更新时间": "2026-11-20 08:00:00"}
    kept = seal_payload(record)
    assert kept.masked == {"姓名": "张**", "公民身份号码": "211103********1043",
                           "联系电话": "138****8000", "现住址": "盘锦市兴隆台区兴隆街道***",
                           "更新时间": "2026-11-20 08:00:00"}
    assert unseal_payload(kept.sealed) == record
    # The sealed text keeps the platform's field order.
    assert list(json.loads(unseal(kept.sealed))) == list(record)
    assert kept.digest == payload_digest(canonical_json(unseal_payload(kept.sealed)))


# A column of quarantined records: its key (what masking reads it as) and its values,
# of every type a platform's records or the conformed rows hold.
KEYS = ["reporter_phone", "idNo", "姓名", "address", "grid_code", "note", "description",
        "source_id", "联系电话", "amount", "reported_at", "parties"]
TEXTS = st.one_of(
    st.text(st.sampled_from("0123456789０１２３١٢ -+Xx，:.张王区街道号{}[]\"abcdef\n"),
            max_size=30),
    st.from_regex(r"(resident:)?[0-9a-f]{32}", fullmatch=True),
    st.sampled_from(['{"phone": "13800138000"}', '["211103199001011043"]',
                     "13800138000", "２１１１０３１９９００１０１１０４３"]))
TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))


@st.composite
def columns(draw, n: int) -> pa.Array:
    kind = draw(st.sampled_from(["text", "int", "float", "bool", "time", "date", "null"]))
    if kind == "null":
        return pa.nulls(n)
    values = {"text": TEXTS, "int": st.integers(-2**63, 2**63 - 1), "float": st.floats(),
              "bool": st.booleans(), "time": TIMES, "date": st.dates()}[kind]
    drawn = draw(st.lists(st.none() | values, min_size=n, max_size=n))
    if kind != "time":
        return pa.array(drawn, {"text": pa.string(), "int": pa.int64(), "float": pa.float64(),
                                "bool": pa.bool_(), "date": pa.date32()}[kind])
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    if unit == "ns":  # what 64 bits of nanoseconds reach
        drawn = [t if t is None or 1678 < t.year < 2262 else None for t in drawn]
    naive = pa.array(drawn, pa.timestamp("us")).cast(pa.timestamp(unit), safe=False)
    if unit == "ns":
        nanos = draw(st.lists(st.integers(0, 999), min_size=n, max_size=n))
        naive = pc.add(naive, pa.array(nanos, pa.duration("ns")))
    zone = draw(st.sampled_from([None, "UTC", "+00:00", "Asia/Shanghai"]))
    return naive if zone is None else naive.cast(pa.timestamp(unit, zone))


@st.composite
def record_tables(draw) -> pa.Table:
    n = draw(st.integers(0, 5))
    names = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True))
    return pa.table({name: draw(columns(n)) for name in names})


@settings(max_examples=400)
@given(record_tables())
def test_a_table_of_records_is_kept_as_each_record_alone(table):
    """seal_rows, made column by column, keeps every record exactly as seal_payload
    keeps it alone: the same masked text, the same sealed text, the same digest (so an
    entry quarantined before it matches the record seen again)."""
    made = seal_rows(table)
    assert len(made) == table.num_rows
    for kept, record in zip(made, table.to_pylist(), strict=True):
        alone = seal_payload(record)
        assert kept.digest == alone.digest
        assert unseal(kept.sealed) == unseal(alone.sealed)
        assert (json.dumps(kept.masked, ensure_ascii=False, default=str)
                == json.dumps(alone.masked, ensure_ascii=False, default=str))
