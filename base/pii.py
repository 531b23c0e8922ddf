"""Personal data: a keyed hash for joining and a masked value for reading.

ID numbers and phones never reach the core tables in clear. The hash is
keyed BLAKE2b (its MAC mode, RFC 7693) under the hub's key, so the same person hashes the same way on every
platform (linking works) while nobody without the key can test a guessed number
against it. Hashing runs once per distinct value of a batch, not once per row.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from base.identity import citizen_id_identity, per_distinct, phone_identity
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
    if identity is str:  # the value is its own identity: skip a call per value
        return per_distinct(
            values, lambda v: hashlib.blake2b(v.encode(), key=key, digest_size=32).hexdigest())
    return per_distinct(
        values,
        lambda v: hashlib.blake2b(identity(v).encode(), key=key, digest_size=32).hexdigest(),
    )


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
