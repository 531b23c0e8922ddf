"""Personal data: a keyed hash for joining, a masked value for reading, a seal for keeping.

ID numbers and phones never reach the core tables in clear. The hash is
keyed BLAKE2b (its MAC mode, RFC 7693) under the hub's key, so the same person hashes the same way on every
platform (linking works) while nobody without the key can test a guessed number
against it. Hashing runs once per distinct value of a batch, not once per row.

A quarantined record must come back exactly as the platform sent it (replay, an
audited clear read) yet the warehouse must not hold it in clear: it is sealed,
AES-256-GCM under a key derived from the same secret by HKDF-SHA256 with a label of
its own (`derive_sealing_key`), so the sealing key is not the hashing key and
neither reveals the other. A sealed blob is

    version (1 byte, 0x01) | nonce (12 random bytes) | ciphertext | tag (16 bytes)

with the version byte and a fixed label authenticated too: a blob altered anywhere,
or opened under another key, raises `SealError` instead of returning garbage.
`payload_digest` (the keyed hash of a payload's canonical JSON) tells two payloads
apart without clear text.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from base.identity import citizen_id_identity, identities, phone_identity
from base.masking import mask_column, mask_payload
from base.settings import settings


class Pii(StrEnum):
    """Personal data: stored as a keyed hash plus a masked value, never in clear."""

    ID_NUMBER = "id_number"
    PHONE = "phone"


@lru_cache(maxsize=1)
def pii_key() -> bytes:
    """The hashing key: `HUB_PII_KEY`, or for the embedded warehouse one kept beside it.

    An external warehouse is shared, so its key must be shared too and is
    required; the embedded one is private to this checkout and gets a random key
    on first use.
    """
    s = settings()
    if s.pii_key is not None:
        # BLAKE2b takes keys up to 64 bytes: any passphrase is condensed to 32.
        return hashlib.sha256(s.pii_key.get_secret_value().encode()).digest()
    if s.warehouse_url is not None:
        raise RuntimeError("HUB_PII_KEY must be set when HUB_WAREHOUSE_URL points at a shared "
                           "warehouse: every hub process must hash personal data the same way")
    path = s.home / "pii.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32))
    return hashlib.sha256(path.read_text().strip().encode()).digest()


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only from the first byte (no window in which
    another user could read a key); an existing file is left alone (another process won
    the race, and its key stands)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)


def keyed_hash(value: str, key: bytes | None = None) -> str:
    return hashlib.blake2b(value.encode(), key=key or pii_key(), digest_size=32).hexdigest()


def hash_array(values: pa.Array | pa.ChunkedArray,
               identity: Callable[[str], str] = str) -> pa.Array:
    """Keyed hash of each value's identity form (see IDENTITY)."""
    key = pii_key()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    # Once per distinct value (IDs and phones repeat across a batch); the identity forms
    # of the common spellings vectorised, the hash one call per value.
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary
    forms = distinct.to_pylist() if identity is str else identities(distinct, identity)
    # The key is a block of its own: hashed once, its state copied for each value (what
    # blake2b(value, key=key) computes, a third faster).
    keyed = hashlib.blake2b(key=key, digest_size=32)
    hexes = []
    for v in forms:
        one = keyed.copy()
        one.update(v.encode())
        hexes.append(one.hexdigest())
    return pc.take(pa.array(hexes, pa.string()), encoded.indices)


def mask_id_number(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """211103199001011234 → 211103********1234 (region and last four kept)."""
    n = pc.utf8_length(values)
    head = pc.utf8_slice_codeunits(values, 0, 6)
    tail = pc.utf8_slice_codeunits(values, -4)
    middle = pc.binary_repeat(pa.scalar("*"), pc.max_element_wise(pc.subtract(n, 10), 0))
    masked = pc.binary_join_element_wise(head, middle, tail, "")
    # Too short to keep both ends without revealing it all: mask entirely.
    return pc.if_else(pc.less(n, 11), pc.binary_repeat(pa.scalar("*"), n), masked)


def mask_phone(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """13812348000 → 138****8000; 04272812345 → 0427***2345."""
    n = pc.utf8_length(values)
    keep_head = pc.if_else(pc.starts_with(values, "0"), 4, 3)
    head = _slice_var(values, keep_head)
    tail = pc.utf8_slice_codeunits(values, -4)
    # As many stars as digits hidden: an odd-length number stays visibly odd.
    middle = pc.binary_repeat(pa.scalar("*"),
                              pc.max_element_wise(pc.subtract(pc.subtract(n, keep_head), 4), 0))
    masked = pc.binary_join_element_wise(head, middle, tail, "")
    return pc.if_else(pc.less(n, 8), pc.binary_repeat(pa.scalar("*"), n), masked)


def _slice_var(values: pa.Array | pa.ChunkedArray, lengths: pa.Array) -> pa.Array:
    three = pc.utf8_slice_codeunits(values, 0, 3)
    four = pc.utf8_slice_codeunits(values, 0, 4)
    return pc.if_else(pc.equal(lengths, 4), four, three)


def mask_name(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """张三丰 → 张**: the surname only."""
    n = pc.utf8_length(pc.utf8_trim_whitespace(values))
    first = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(values), 0, 1)
    return pc.binary_join_element_wise(first, pc.binary_repeat(pa.scalar("*"),
                                       pc.max_element_wise(pc.subtract(n, 1), 1)), "")


MASKS = {Pii.ID_NUMBER: mask_id_number, Pii.PHONE: mask_phone}
# What a value is hashed as: the same person must hash the same on every platform,
# whichever way the number was keyed in (full-width digits, spaces, dashes, +86, a
# legacy 15-digit ID). Conform normalises already; the identity forms normalise again
# (cheaply when there is nothing to do), so a hash never depends on a conformer
# having done so.
IDENTITY: dict[Pii, Callable[[str], str]] = {Pii.ID_NUMBER: citizen_id_identity,
                                             Pii.PHONE: phone_identity}


# ------------------------------------------------------------------ sealing

SEAL_VERSION = 1
SEAL_NONCE_BYTES = 12
SEAL_TAG_BYTES = 16
SEAL_KEY_BYTES = 32
# HKDF's `info`: what the derived key is for. Another use gets another label.
_SEAL_KEY_LABEL = b"governance-hub/quarantine-payload-seal/v1"
# Authenticated with every blob besides its version byte.
_SEAL_AAD = b"governance-hub/sealed-payload"


class SealError(ValueError):
    """A sealed blob that cannot be opened: not a sealed blob, altered, or sealed
    under another key."""


def derive_sealing_key(secret: bytes) -> bytes:
    """The 32-byte AES key derived from the personal-data key (HKDF-SHA256, its own
    label): `seal(…, key=derive_sealing_key(pii_key()))` is `seal(…)`."""
    return HKDF(algorithm=hashes.SHA256(), length=SEAL_KEY_BYTES, salt=None,
                info=_SEAL_KEY_LABEL).derive(secret)


@lru_cache(maxsize=4)
def _aead_for(secret: bytes) -> AESGCM:
    return AESGCM(derive_sealing_key(secret))


def _aead(key: bytes | None) -> AESGCM:
    if key is None:
        return _aead_for(pii_key())
    if len(key) != SEAL_KEY_BYTES:
        raise ValueError(f"a sealing key is {SEAL_KEY_BYTES} bytes, got {len(key)}")
    return AESGCM(key)


def seal(data: bytes, *, key: bytes | None = None) -> bytes:
    """`data` sealed under the hub's sealing key (or `key`, a 32-byte sealing key)."""
    nonce = os.urandom(SEAL_NONCE_BYTES)
    header = bytes((SEAL_VERSION,))
    return header + nonce + _aead(key).encrypt(nonce, bytes(data), header + _SEAL_AAD)


def unseal(blob: bytes | bytearray | memoryview, *, key: bytes | None = None) -> bytes:
    """The bytes `seal` sealed; `SealError` if `blob` is no sealed blob, was altered,
    or was sealed under another key."""
    raw = bytes(blob)
    if len(raw) < 1 + SEAL_NONCE_BYTES + SEAL_TAG_BYTES:
        raise SealError(f"not a sealed payload: {len(raw)} bytes is shorter than any seal")
    if raw[0] != SEAL_VERSION:
        raise SealError(f"not a sealed payload of a known version: version byte {raw[0]}, "
                        f"this hub reads version {SEAL_VERSION}")
    header, nonce, body = raw[:1], raw[1:1 + SEAL_NONCE_BYTES], raw[1 + SEAL_NONCE_BYTES:]
    try:
        return _aead(key).decrypt(nonce, body, header + _SEAL_AAD)
    except InvalidTag:
        raise SealError("the sealed payload does not open: it was sealed under another key "
                        "(HUB_PII_KEY is not the key it was sealed with) or its bytes were "
                        "altered") from None


def canonical_json(payload: Any) -> str:
    """One text per payload whatever its key order (dates as text): what
    `payload_digest` is taken of."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


def payload_digest(clear_json_text: str) -> str:
    """Keyed hash of a payload's canonical JSON: equal payloads, equal digests; no way
    back to the payload, nor a test of a guess, without the key."""
    return keyed_hash(clear_json_text)


class SealedPayload(NamedTuple):
    """A record as quarantine keeps it."""

    masked: Any    # the record with its personal data masked (base.masking): shown
    sealed: bytes  # its JSON text in clear, sealed: replayed, or read through the audit
    digest: str    # payload_digest of its canonical JSON: compared


def seal_payload(payload: Any) -> SealedPayload:
    """A record (JSON values; dates become text) masked, sealed and digested."""
    return _sealed(payload, mask_payload(payload))


def seal_rows(table: pa.Table) -> list[SealedPayload]:
    """`seal_payload` of each of `table`'s records (as `to_pylist` makes them), made
    column by column: the same masked records, sealed texts and digests, at a fraction
    of the cost (a field's kind is read once a column, its times written in Arrow, its
    texts scanned vectorised for what masking could touch)."""
    if not table.column_names:
        return [seal_payload({}) for _ in range(table.num_rows)]
    names = table.column_names
    values = [_json_values(c) for c in table.columns]
    masked = [mask_column(n, c, v) for n, c, v in zip(names, table.columns, values, strict=True)]
    return [_sealed(dict(zip(names, row, strict=True)), dict(zip(names, shown, strict=True)))
            for row, shown in zip(zip(*values, strict=True), zip(*masked, strict=True),
                                  strict=True)]


def _sealed(payload: Any, masked: Any) -> SealedPayload:
    clear = json.dumps(payload, ensure_ascii=False, default=str)
    return SealedPayload(masked, seal(clear.encode()), payload_digest(canonical_json(payload)))


# Zones whose instants `str(datetime)` writes with `+00:00`.
_UTC_ZONES = frozenset({"UTC", "+00:00"})


def _json_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A column's values as its records' JSON text holds them. A time in UTC or without
    a zone, to the microsecond, is written here as `str(datetime)` writes it (the text
    `json.dumps(…, default=str)` would): in Arrow, not one datetime made and formatted a
    value; other times stay objects for `default=str`."""
    t = column.type
    if not (pa.types.is_timestamp(t) and t.unit != "ns"
            and (t.tz is None or t.tz in _UTC_ZONES)):
        return column.to_pylist()
    # Arrow's %S carries the fraction to the microsecond; str() leaves out a zero one.
    text = pc.replace_substring_regex(
        pc.strftime(pc.cast(column, pa.timestamp("us", t.tz)), "%Y-%m-%d %H:%M:%S"),
        r"\.000000$", "")
    if t.tz is not None:
        text = pc.binary_join_element_wise(text, "+00:00", "")
    return text.to_pylist()


def unseal_payload(blob: bytes | bytearray | memoryview, *, key: bytes | None = None) -> Any:
    """The record `seal_payload` sealed, as JSON values (what json.loads gives)."""
    return json.loads(unseal(blob, key=key).decode())
