"""Vectorised standard checks: one function per check, whole columns at a time.

Every check takes Arrow arrays (or anything `pa.array` accepts) and returns one
int8 *code* per row:

- ``NOT_EVALUATED`` (-1): the check has nothing to say about the row (the value is
  missing, or the rule does not apply to it);
- ``PASSED`` (0);
- ``k`` > 0: failed for the k-th reason of the check's ``*_REASONS`` tuple.

`quality.rules` binds each rule to one of these (row outcomes, quarantine reasons,
and the counts `quality.gx_suite` records). Nothing here loops over rows: strings of
a fixed width are viewed as a byte matrix, sets are hashed by Arrow, times compared
as int64.

A *blank* value (null, empty or whitespace only, or NaN for numbers) counts as
missing everywhere: the required-field check fails it, every other check skips it.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

NOT_EVALUATED = -1
PASSED = 0

CODE_DTYPE = np.int8

_ZERO = ord("0")
_NINE = ord("9")
_X = ord("X")

# ---------------------------------------------------------------- array plumbing


def as_array(values: Any, type_: pa.DataType | None = None) -> pa.Array:
    """One contiguous Arrow array (chunks combined; pandas/numpy input converted)."""
    if isinstance(values, Strings):
        values = values.arr
    if isinstance(values, pa.ChunkedArray):
        arr = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    elif isinstance(values, pa.Array):
        arr = values
    else:
        arrow = getattr(getattr(values, "array", None), "__arrow_array__", None)
        if arrow is not None:  # pandas ArrowDtype / pyarrow-backed str: no copy
            return as_array(arrow(), type_)
        arr = pa.array(values, from_pandas=True)
    if type_ is not None and arr.type != type_:
        arr = arr.cast(type_)
    return arr


def as_strings(values: Any) -> pa.StringArray:
    arr = as_array(values)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """An Arrow bitmap as a fresh numpy bool array."""
    packed = np.frombuffer(buf, dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little")[offset : offset + n].view(bool)


def _bool(arr: pa.Array | pa.ChunkedArray, null: bool = False) -> np.ndarray:
    """Arrow boolean → numpy bool, nulls as `null`."""
    if isinstance(arr, pa.ChunkedArray):
        arr = as_array(arr)
    if arr.null_count:
        arr = pc.fill_null(arr, null)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    return _bits(arr.buffers()[1], arr.offset, len(arr))


def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return _bits(arr.buffers()[0], arr.offset, len(arr))


# Lead bytes of the characters `utf8_is_space` may accept: ASCII whitespace, U+0085 /
# U+00A0 (0xC2), U+1680 (0xE1), U+2000… (0xE2), U+3000 ideographic space (0xE3).
_SPACE_LEADS = np.zeros(256, dtype=bool)
_SPACE_LEADS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0xC2, 0xE1, 0xE2, 0xE3]] = True


class Strings:
    """A string column seen as numpy: validity, byte lengths, offsets and bytes.

    Lets the checks look at lengths and leading bytes of a million values without
    going through Python objects. `quality.rules` builds one per column and batch and
    hands it to every check that reads the column; `strings()` passes it through.
    """

    def __init__(self, values: Any) -> None:
        self.arr: pa.StringArray = as_strings(values)
        n = len(self.arr)
        self.valid = _validity(self.arr)
        if n == 0 or self.arr.buffers()[1] is None:
            offsets = np.zeros(n + 1, dtype=np.int32)
        else:
            offsets = np.frombuffer(
                self.arr.buffers()[1], dtype=np.int32, count=n + 1 + self.arr.offset
            )[self.arr.offset :]
        self.starts = offsets[:-1]
        lens = np.diff(offsets)
        # Null slots may carry any length: count them as empty.
        self.lens = lens if self.arr.null_count == 0 else np.where(self.valid, lens, 0)
        buf = self.arr.buffers()[2] if n else None
        self.data = np.zeros(0, np.uint8) if buf is None else np.frombuffer(buf, dtype=np.uint8)
        self._present: np.ndarray | None = None
        self._digits: np.ndarray | None = None
        self._geometries: np.ndarray | None = None
        self.listings: dict[tuple[str, ...], list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.arr)

    def byte_at(self, k: int) -> np.ndarray:
        """The k-th byte of each value, 0 where the value is shorter."""
        if self.data.size == 0:
            return np.zeros(len(self), dtype=np.uint8)
        picked = np.take(self.data, self.starts + k if k else self.starts, mode="clip")
        picked[self.lens <= k] = 0
        return picked

    def present(self) -> np.ndarray:
        """Not null, not empty, not whitespace only."""
        if self._present is None:
            ok = self.lens > 0
            maybe_blank = ok & _SPACE_LEADS[self.byte_at(0)]
            if maybe_blank.any():
                rows = np.flatnonzero(maybe_blank)
                blank = _bool(pc.utf8_is_space(self.arr.take(pa.array(rows))))
                ok[rows[blank]] = False
            self._present = ok
        return self._present

    def digits(self) -> np.ndarray:
        """Non-empty and ASCII digits only."""
        if self._digits is None:
            self._digits = _bool(pc.ascii_is_decimal(self.arr))
        return self._digits

    def fixed_width(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose value is exactly `width` bytes, and those bytes as a (k, width) matrix."""
        rows = np.flatnonzero(self.lens == width)
        if rows.size == 0:
            return rows, np.zeros((0, width), dtype=np.uint8)
        idx = self.starts[rows].astype(np.int64)[:, None] + np.arange(width)
        return rows, self.data[idx]

    def equals(self, value: str) -> np.ndarray:
        return _bool(pc.equal(self.arr, value))

    def geometries(self) -> np.ndarray:
        """The values read as WKT (shapely, vectorised in GEOS); None where a value is
        blank or not readable. Parsed once per column and batch, shared by the
        geometry checks."""
        if self._geometries is None:
            values = np.asarray(self.arr.to_numpy(zero_copy_only=False), dtype=object)
            values[~self.present()] = None
            self._geometries = np.asarray(shapely.from_wkt(values, on_invalid="ignore"),
                                          dtype=object).reshape(len(self))
        return self._geometries

    def isin(self, value_set: pa.Array) -> np.ndarray:
        return _bool(pc.is_in(self.arr, value_set=value_set))

    def fingerprint(self, max_words: int = 32) -> np.ndarray:
        """A 64-bit hash of each value (equal values, equal hashes), from 8-byte words
        read straight out of the data buffer. Values longer than 8 × max_words bytes
        share a hash when their heads and lengths match; callers confirm equality."""
        h = self.lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        if len(self) == 0 or self.data.size == 0:
            return h
        padded = np.zeros(self.data.size + 16, dtype=np.uint8)
        padded[: self.data.size] = self.data
        words = np.ndarray((self.data.size + 9,), dtype="<u8", buffer=padded, strides=(1,))
        starts = self.starts.astype(np.int64)
        longest = int(self.lens.max())
        for k in range(min((longest + 7) // 8, max_words)):  # words of a value, not rows
            remaining = np.clip(self.lens - 8 * k, 0, 8).astype(np.uint64)
            word = np.take(words, starts + 8 * k, mode="clip")
            partial = (np.uint64(1) << (np.minimum(remaining, 7) * np.uint64(8))) - np.uint64(1)
            mask = np.where(remaining >= 8, np.uint64(0xFFFFFFFFFFFFFFFF), partial)
            h = _mix(h ^ (word & mask) + np.uint64(k + 1))
        return h


def strings(values: Any) -> Strings:
    return values if isinstance(values, Strings) else Strings(values)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def present(values: Any) -> np.ndarray:
    """True where a value is given: not null, not NaN, not empty or whitespace only."""
    if isinstance(values, Strings):
        return values.present()
    arr = as_array(values)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return Strings(arr).present()
    if pa.types.is_floating(arr.type):
        return _bool(pc.invert(pc.is_nan(arr)), null=False)
    if pa.types.is_null(arr.type):
        return np.zeros(len(arr), dtype=bool)
    return _validity(arr)


def _is_digit(mat: np.ndarray) -> np.ndarray:
    return (mat >= _ZERO) & (mat <= _NINE)


def _codes(n: int) -> np.ndarray:
    return np.full(n, NOT_EVALUATED, dtype=CODE_DTYPE)


def _evaluated_where(given: np.ndarray) -> np.ndarray:
    return np.where(given, PASSED, NOT_EVALUATED).astype(CODE_DTYPE)


def _mark(codes: np.ndarray, where: np.ndarray, code: int) -> None:
    """Set `code` where `where` holds and no earlier reason was recorded."""
    codes[where & (codes == PASSED)] = code


def as_value_set(values: Collection[str] | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, frozenset):
        return _frozen_value_set(values)
    return pa.array(sorted(values), type=pa.string())


@lru_cache(maxsize=16)
def _frozen_value_set(values: frozenset[str]) -> pa.Array:
    """A code table's value set, made once: each batch's context is a copy of its
    stream's (with the batch's own keys held twice) and would sort the 40,000 street
    codes again."""
    return pa.array(sorted(values), type=pa.string())


# ---------------------------------------------------------------- completeness, uniqueness

PRESENT_REASONS = ("missing",)


def required(values: Any) -> np.ndarray:
    """Every row is evaluated; 1 where the value is blank."""
    return np.where(present(values), PASSED, 1).astype(CODE_DTYPE)


UNIQUE_KEY_REASONS = ("duplicate", "conflicting")


def unique_keys(keys: Any, conflicting: Collection[str] | pa.Array | None = None) -> np.ndarray:
    """1 for every row whose key occurs more than once in the batch (every occurrence:
    which of two different records is right is not for the hub to guess), 2 for a key
    in `conflicting` (keys a whole snapshot holds with different records, which may
    have fallen in other batches).

    Hashes are compared first (a sort of 64-bit fingerprints); only rows whose
    fingerprint repeats are compared as strings.
    """
    s = strings(keys)
    given = s.present()
    codes = _evaluated_where(given)
    if len(s) >= 2:
        h = s.fingerprint()
        ordered = np.sort(h[given])
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        if repeated.size:
            # A bitmap on the low hash bits narrows the rows to look up to about the repeats.
            low = np.uint64((1 << 22) - 1)
            bucket = np.zeros(1 << 22, dtype=bool)
            bucket[(repeated & low).astype(np.int64)] = True
            maybe = np.flatnonzero(given & bucket[(h & low).astype(np.int64)])
            pos = np.minimum(np.searchsorted(repeated, h[maybe]), repeated.size - 1)
            rows = maybe[repeated[pos] == h[maybe]]
            encoded = pc.dictionary_encode(s.arr.take(pa.array(rows)))
            idx = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            counts = np.bincount(idx, minlength=len(encoded.dictionary))
            codes[rows[counts[idx] > 1]] = 1
    if conflicting is not None and len(conflicting):
        _mark(codes, given & s.isin(as_value_set(conflicting)), 2)
    return codes


# ---------------------------------------------------------------- GB 11643 citizen ID

CITIZEN_ID_REASONS = ("format", "check_digit", "birth_date")
_RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)  # indexed by sum % 11
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
EARLIEST_BIRTH_YEAR = 1900


def _number(mat: np.ndarray) -> np.ndarray:
    digits = mat.astype(np.int64) - _ZERO
    weights = 10 ** np.arange(mat.shape[1] - 1, -1, -1, dtype=np.int64)
    return digits @ weights


def valid_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    dim = _DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    return month_ok & (day >= 1) & (day <= dim)


def citizen_id(values: Any, today: date) -> np.ndarray:
    """GB 11643: 17 digits, a valid birth date (1900 … today), ISO 7064 MOD 11-2 check.

    Reasons: 1 format (length / characters, including a lower-case x that conform
    did not normalise), 2 check character, 3 birth date.
    """
    s = strings(values)
    codes = _evaluated_where(s.present())
    rows, mat = s.fixed_width(18)
    well_formed = np.zeros(len(s), dtype=bool)
    if rows.size:
        ok = _is_digit(mat[:, :17]).all(axis=1) & (_is_digit(mat[:, 17]) | (mat[:, 17] == _X))
        good, m = rows[ok], mat[ok]
        well_formed[good] = True
        total = (m[:, :17].astype(np.int64) - _ZERO) @ _RIC_WEIGHTS
        check_ok = _RIC_CHECK[total % 11] == m[:, 17]
        birth = _number(m[:, 6:14])
        year, month, day = birth // 10000, birth // 100 % 100, birth % 100
        latest = today.year * 10000 + today.month * 100 + today.day
        date_ok = valid_dates(year, month, day) & (year >= EARLIEST_BIRTH_YEAR) & (birth <= latest)
        codes[good[~check_ok]] = 2
        codes[good[check_ok & ~date_ok]] = 3
    _mark(codes, ~well_formed, 1)
    return codes


# ---------------------------------------------------------------- GB 32100 USCC

USCC_REASONS = ("format", "check_char")
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = np.full(256, -1, dtype=np.int64)
_USCC_VALUE[np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)] = np.arange(31)
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)


def uscc(values: Any) -> np.ndarray:
    """GB 32100: 18 characters of the code alphabet, positions 3–8 digits, mod-31 check.

    Positions 1–2 (registration authority and organisation type) accept any
    character of the alphabet, so the N/A/Y authority codes of later amendments
    pass (`stdnum.cn.uscc` insists on digits there).
    Reasons: 1 format, 2 check character.
    """
    s = strings(values)
    codes = _evaluated_where(s.present())
    rows, mat = s.fixed_width(18)
    well_formed = np.zeros(len(s), dtype=bool)
    if rows.size:
        vals = _USCC_VALUE[mat]
        ok = (vals >= 0).all(axis=1) & _is_digit(mat[:, 2:8]).all(axis=1)
        well_formed[rows[ok]] = True
        v = vals[ok]
        check = (31 - (v[:, :17] @ _USCC_WEIGHTS) % 31) % 31
        codes[rows[ok][check != v[:, 17]]] = 2
    _mark(codes, ~well_formed, 1)
    return codes


# ---------------------------------------------------------------- phones

PHONE_REASONS = ("format",)


def phone(values: Any) -> np.ndarray:
    """Mainland mobile ``1[3-9]`` + 9 digits, or a landline ``0[1-9]`` area code of 3–4
    digits followed by a 7–8 digit number (10–12 digits in all); digits only."""
    s = strings(values)
    codes = _evaluated_where(s.present())
    lens, first, second = s.lens, s.byte_at(0), s.byte_at(1)
    mobile = (lens == 11) & (first == ord("1")) & (second >= ord("3"))
    landline = (lens >= 10) & (lens <= 12) & (first == _ZERO) & (second > _ZERO)
    _mark(codes, ~((mobile | landline) & s.digits()), 1)
    return codes


# ---------------------------------------------------------------- reference codes

KNOWN_CODE_REASONS = ("unknown", "retired")


def known_code(
    values: Any,
    known: Collection[str] | pa.Array | None,
    retired: Collection[str] | pa.Array | None = None,
) -> np.ndarray:
    """1 where a code is not in `known`, 2 where it is a retired one.

    `known` None means the reference table is not loaded: nothing is evaluated.
    """
    s = strings(values)
    if known is None:
        return _codes(len(s))
    codes = _evaluated_where(s.present())
    missing = ~s.isin(as_value_set(known))
    if retired is not None and missing.any():
        _mark(codes, missing & s.isin(as_value_set(retired)), 2)
    _mark(codes, missing, 1)
    return codes


def sent_or(values: Any, sent: Any) -> Strings:
    """`sent` where it is given, else `values`: the code as the platform sent it where
    conform kept it beside the value it put in its place (a retired division code
    folded to its successor)."""
    folded, original = strings(values), strings(sent)
    given = original.present()
    if not given.any():
        return folded
    if given.all():
        return original
    return Strings(pc.if_else(pa.array(given), original.arr, folded.arr))


def known_division(
    values: Any,
    sent: Any,
    known: Collection[str] | pa.Array | None,
    retired: Collection[str] | pa.Array | None = None,
) -> np.ndarray:
    """`known_code` of the division code as the platform sent it (see `sent_or`): a
    retired code conform folded to its successor is still reported as retired."""
    return known_code(sent_or(values, sent), known, retired)


MAPPED_REASONS = ("unmapped", "unknown")
UNMAPPED = "unmapped"


def mapped(values: Any, known: Collection[str] | pa.Array) -> np.ndarray:
    """1 where conform left the value 'unmapped', 2 where it is not a hub value at all."""
    s = strings(values)
    codes = _evaluated_where(s.present())
    _mark(codes, s.equals(UNMAPPED), 1)
    _mark(codes, ~s.isin(as_value_set(known)), 2)
    return codes


# ---------------------------------------------------------------- coordinates

COORDINATE_REASONS = ("outside", "null_island", "swapped", "half_missing")


def floats(values: Any) -> np.ndarray:
    arr = as_array(values)
    if not pa.types.is_floating(arr.type):
        arr = arr.cast(pa.float64())
    return np.asarray(pc.fill_null(arr, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def coordinates(
    longitude: Any, latitude: Any, extent: Sequence[float]
) -> np.ndarray:
    """Inside the extent (min_lon, min_lat, max_lon, max_lat).

    Both missing is not evaluated; reasons: 1 outside, 2 (0, 0), 3 latitude and
    longitude swapped (the swapped pair would be inside), 4 only one of the two given.
    """
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in extent)
    lon, lat = floats(longitude), floats(latitude)
    no_lon, no_lat = np.isnan(lon), np.isnan(lat)
    codes = np.where(no_lon & no_lat, NOT_EVALUATED, PASSED).astype(CODE_DTYPE)
    with np.errstate(invalid="ignore"):
        inside = (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
        swapped = (lat >= min_lon) & (lat <= max_lon) & (lon >= min_lat) & (lon <= max_lat)
    both = ~no_lon & ~no_lat
    _mark(codes, no_lon ^ no_lat, 4)
    _mark(codes, both & (lon == 0) & (lat == 0), 2)
    _mark(codes, both & ~inside & swapped, 3)
    _mark(codes, both & ~inside, 1)
    return codes


# ---------------------------------------------------------------- times

_NULL_TIME = np.iinfo(np.int64).min


def micros(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 microseconds since the epoch (UTC), and a presence mask.

    The int64 values are a view of the Arrow buffer: meaningless where the mask is
    False, so every use goes through the mask.
    """
    arr = as_array(values)
    n = len(arr)
    if pa.types.is_null(arr.type) or n == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(arr.type) and arr.type.unit != "us":
        arr = arr.cast(pa.timestamp("us", tz=arr.type.tz))
    ints = arr.cast(pa.int64())
    raw = np.frombuffer(ints.buffers()[1], dtype=np.int64, count=n + ints.offset)[ints.offset :]
    return raw, _validity(ints)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def not_after(columns: Sequence[Any], latest: datetime) -> np.ndarray:
    """Code k where the k-th column (1-based) is the first one later than `latest`.

    Rows with every column missing are not evaluated.
    """
    limit = to_micros(latest)
    n = len(columns[0]) if columns else 0
    codes = np.full(n, NOT_EVALUATED, dtype=CODE_DTYPE)
    for k, col in enumerate(columns, start=1):
        t, ok = micros(col)
        codes[ok & (codes == NOT_EVALUATED)] = PASSED
        _mark(codes, ok & (t > limit), k)
    return codes


def listed(values: Any, names: Sequence[str]) -> list[np.ndarray]:
    """For each of `names`, the rows whose comma-separated `values` list it (e.g. the
    lifecycle times an event's `derived_times` names). Such a column holds a handful
    of distinct values: each is split once, and rows look theirs up. Computed once
    per column and batch, shared by the rules that read it."""
    s = strings(values)
    key = tuple(names)
    if key not in s.listings:
        if not s.present().any():
            s.listings[key] = [np.zeros(len(s), dtype=bool) for _ in names]
        else:
            encoded = pc.dictionary_encode(s.arr)
            idx = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False),
                             dtype=np.int64)
            parts = [{p.strip() for p in v.split(",")}
                     for v in encoded.dictionary.to_pylist()]  # distinct values, not rows
            out = []
            for name in names:
                has = np.array([name in p for p in parts] + [False], dtype=bool)
                out.append(has[idx])  # index -1 (null) picks the trailing False
            s.listings[key] = out
    return s.listings[key]


def in_order(columns: Sequence[Any], skip: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Code k where the k-th column (1-based) is the first to hold a time earlier than
    a time in a column before it; missing times are skipped, and so are the times
    `skip[k-1]` marks (the ones the hub derived rather than the platform sent)."""
    n = len(columns[0]) if columns else 0
    codes = np.full(n, NOT_EVALUATED, dtype=CODE_DTYPE)
    running = np.full(n, _NULL_TIME, dtype=np.int64)
    for k, col in enumerate(columns, start=1):
        t, ok = micros(col)
        if skip is not None:
            ok = ok & ~skip[k - 1]
        codes[ok & (codes == NOT_EVALUATED)] = PASSED
        _mark(codes, ok & (t < running), k)
        running = np.where(ok, np.maximum(running, t), running)
    return codes


def derived_in_order(columns: Sequence[Any], derived: Sequence[np.ndarray]) -> np.ndarray:
    """`in_order` over every time, the derived ones included, for the rows whose sent
    times are in order: code k where a time the hub derived is out of order (or a sent
    one is out of order with a derived one). Rows whose sent times are themselves out
    of order are not evaluated: `in_order(columns, derived)` reports them."""
    codes = in_order(columns)
    codes[in_order(columns, derived) > PASSED] = NOT_EVALUATED
    return codes


def latest_before(columns: Sequence[Any], rows: np.ndarray, k: int,
                  skip: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """For `rows`, the index (0-based) of the column before column k (1-based) that holds
    the latest time: the partner of an `in_order` failure (with the same `skip`)."""
    best = np.full(rows.size, -1, dtype=np.int64)
    best_t = np.full(rows.size, _NULL_TIME, dtype=np.int64)
    for j in range(k - 1):
        t, ok = micros(columns[j])
        t, ok = t[rows], ok[rows]
        if skip is not None:
            ok = ok & ~skip[j][rows]
        later = ok & (t > best_t)
        best = np.where(later, j, best)
        best_t = np.where(later, t, best_t)
    return best


NOT_BEFORE_REASONS = ("before",)


def not_before(later: Any, earlier: Any) -> np.ndarray:
    """1 where `later` < `earlier`; evaluated only where both are present."""
    a, a_ok = micros(later)
    b, b_ok = micros(earlier)
    both = a_ok & b_ok
    codes = np.where(both, PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    _mark(codes, both & (a < b), 1)
    return codes


# ---------------------------------------------------------------- event consistency

ONLY_WHEN_REASONS = ("not_closed",)


def only_when(
    values: Any, status: Any, neutral: Iterable[str], required_status: str
) -> np.ndarray:
    """1 where `values` holds something other than a neutral value while `status` is
    not `required_status` (e.g. a satisfaction rating on an event that is not closed)."""
    s = strings(values)
    given = s.present()
    codes = _evaluated_where(given)
    rated = given & ~s.isin(pa.array(sorted(set(neutral)), type=pa.string()))
    closed = strings(status).equals(required_status)
    _mark(codes, rated & ~closed, 1)
    return codes


# ---------------------------------------------------------------- grid and thing codes

GRID_ASSIGNED_REASONS = ("outside",)


def located_in_grid(grid_code: Any, lon: Any, lat: Any, extent: Sequence[float],
                    grids_loaded: bool) -> np.ndarray:
    """1 where a record's coordinates lie in the city yet it has no grid: the point
    falls outside every known grid (the pipeline assigns grids by point-in-polygon, and
    does not guess). Not evaluated before any grid is loaded, nor for coordinates the
    coordinate rule already rejects."""
    inside = coordinates(lon, lat, extent) == PASSED
    if not grids_loaded:
        return _codes(len(inside))
    codes = _evaluated_where(inside)
    _mark(codes, inside & ~present(grid_code), 1)
    return codes


UNIT_GRID_REASONS = ("format",)
UNIT_GRID_TYPE = "单元"


def unit_grid_code(values: Any, grid_types: Any) -> np.ndarray:
    """单元网格 codes are 15 digits (14 in older systems); other grid codes any value."""
    s = strings(values)
    codes = _evaluated_where(s.present())
    unit = strings(grid_types).equals(UNIT_GRID_TYPE)
    ok = ((s.lens == 14) | (s.lens == 15)) & s.digits()
    _mark(codes, unit & ~ok, 1)
    return codes


# ---------------------------------------------------------------- grid boundaries

BOUNDARY_REASONS = ("unreadable", "not_polygon", "empty", "invalid")
_POLYGONAL = (3, 6)  # GEOS type ids of Polygon and MultiPolygon


def _shape_flags(s: Strings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: given, parsed, polygonal and non-empty, valid (GEOS rules)."""
    given = s.present()
    if not given.any():
        none = np.zeros(len(s), dtype=bool)
        return given, none, none, none
    g = s.geometries()
    parsed = given & ~np.asarray(shapely.is_missing(g), dtype=bool)
    polygon = parsed & np.isin(shapely.get_type_id(g), _POLYGONAL) & ~shapely.is_empty(g)
    valid = polygon & np.asarray(shapely.is_valid(g), dtype=bool)
    return given, parsed, polygon, valid


def boundary(values: Any) -> np.ndarray:
    """A boundary is a non-empty, valid (OGC: closed rings, no self-intersection)
    Polygon or MultiPolygon in WKT. Reasons: 1 not readable as WKT, 2 not a polygon,
    3 empty, 4 not valid. A missing boundary is not evaluated."""
    s = strings(values)
    given, parsed, polygon, valid = _shape_flags(s)
    codes = _evaluated_where(given)
    if not given.any():
        return codes
    g = s.geometries()
    _mark(codes, given & ~parsed, 1)
    _mark(codes, parsed & ~np.isin(shapely.get_type_id(g), _POLYGONAL), 2)
    _mark(codes, parsed & ~polygon, 3)
    _mark(codes, polygon & ~valid, 4)
    return codes


BOUNDARY_EXTENT_REASONS = ("outside", "swapped")


def boundary_in_extent(values: Any, extent: Sequence[float], tolerance: float = 0.0) -> np.ndarray:
    """The boundary's bounding box lies in the extent (min_lon, min_lat, max_lon, max_lat)
    widened by `tolerance` degrees. Reasons: 1 outside, 2 longitude and latitude swapped
    (the swapped boundary would be inside). Evaluated for readable, non-empty shapes."""
    s = strings(values)
    _, parsed, _, _ = _shape_flags(s)
    if not parsed.any():
        return _codes(len(s))
    b = np.asarray(shapely.bounds(s.geometries()), dtype=np.float64).reshape(len(s), 4)
    judged = parsed & ~np.isnan(b).any(axis=1)
    codes = _evaluated_where(judged)
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in extent)
    min_lon, min_lat = min_lon - tolerance, min_lat - tolerance
    max_lon, max_lat = max_lon + tolerance, max_lat + tolerance
    with np.errstate(invalid="ignore"):
        inside = (b[:, 0] >= min_lon) & (b[:, 1] >= min_lat) & (b[:, 2] <= max_lon) \
            & (b[:, 3] <= max_lat)
        swapped = (b[:, 1] >= min_lon) & (b[:, 0] >= min_lat) & (b[:, 3] <= max_lon) \
            & (b[:, 2] <= max_lat)
    _mark(codes, judged & ~inside & swapped, 2)
    _mark(codes, judged & ~inside, 1)
    return codes


BOUNDARY_AREA_REASONS = ("too_small", "too_large")
_METRES_PER_DEGREE = 6_371_008.8 * np.pi / 180  # on the sphere of the earth's mean radius


def approximate_areas(geometries: np.ndarray) -> np.ndarray:
    """Areas in m² of longitude/latitude polygons: the planar area in square degrees,
    scaled at each shape's centroid latitude (a sphere of the earth's mean radius).
    Within about 0.5 % of the geodesic area for shapes of a grid's size; NaN where a
    shape has no area to measure."""
    with np.errstate(invalid="ignore"):
        lat = np.asarray(shapely.get_y(shapely.centroid(geometries)), dtype=np.float64)
        return (np.asarray(shapely.area(geometries), dtype=np.float64)
                * _METRES_PER_DEGREE ** 2 * np.cos(np.radians(lat)))


def boundary_area(values: Any, smallest: float, largest: float) -> np.ndarray:
    """The area a valid longitude/latitude boundary encloses lies in [smallest, largest]
    m². Reasons: 1 too small, 2 too large. Evaluated for valid polygons with plausible
    coordinates (|lon| <= 180, |lat| <= 90); the other geometry checks judge the rest."""
    s = strings(values)
    _, _, _, valid = _shape_flags(s)
    if not valid.any():
        return _codes(len(s))
    g = s.geometries()
    b = np.asarray(shapely.bounds(g), dtype=np.float64).reshape(len(s), 4)
    with np.errstate(invalid="ignore"):
        judged = valid & (np.abs(b[:, [0, 2]]) <= 180).all(axis=1) \
            & (np.abs(b[:, [1, 3]]) <= 90).all(axis=1)
    codes = _evaluated_where(judged)
    area = np.full(len(s), np.nan)
    area[judged] = approximate_areas(g[judged])
    _mark(codes, judged & (area < smallest), 1)
    _mark(codes, judged & (area > largest), 2)
    return codes


THING_CODE_REASONS = ("component_format", "component_division", "device_format", "device_type")
COMPONENT = "component"
# The GB/T 28181 type digits of the video network's devices, as conform reads them.
DEVICE_TYPES_FILE = (Path(__file__).resolve().parent.parent / "schemas" / "mappings" / "video"
                     / "device_types.csv")


@cache
def device_types() -> Mapping[str, tuple[str, ...]]:
    """Thing type -> the type digits (11–13) its GB/T 28181 ids may carry, e.g.
    camera -> 131, 132."""
    out: dict[str, tuple[str, ...]] = {}
    with DEVICE_TYPES_FILE.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["thing_type"]] = (*out.get(row["thing_type"], ()), row["type_code"])
    return out


def thing_code(
    values: Any,
    thing_types: Any,
    division_codes: Collection[str] | pa.Array,
    retired_codes: Collection[str] | pa.Array | None = None,
) -> np.ndarray:
    """部件 codes: 16 digits (17 under GB/T 47678) whose first 6 are a division code
    (current or retired); devices of the video network (`device_types`: cameras, NVRs):
    20-digit GB/T 28181 ids whose type digits (11–13) are their type's. Other thing
    types are not constrained.
    Reasons: 1 component format, 2 component division prefix, 3 device id format,
    4 device type digits.
    """
    s = strings(values)
    kinds = strings(thing_types)
    codes = _evaluated_where(s.present())
    digits = s.digits()

    component = kinds.equals(COMPONENT)
    comp_ok = digits & ((s.lens == 16) | (s.lens == 17))
    _mark(codes, component & ~comp_ok, 1)
    prefix = Strings(pc.utf8_slice_codeunits(s.arr, 0, 6))
    known = prefix.isin(as_value_set(division_codes))
    if retired_codes is not None:
        known |= prefix.isin(as_value_set(retired_codes))
    _mark(codes, component & comp_ok & ~known, 2)

    device = np.zeros(len(s), dtype=bool)
    type_ok = np.zeros(len(s), dtype=bool)
    type_digits = Strings(pc.utf8_slice_codeunits(s.arr, 10, 13))
    for kind, allowed in device_types().items():  # two device kinds, not rows
        this = kinds.equals(kind)
        device |= this
        type_ok |= this & type_digits.isin(pa.array(allowed, pa.string()))
    dev_ok = digits & (s.lens == 20)
    _mark(codes, device & ~dev_ok, 3)
    _mark(codes, device & dev_ok & ~type_ok, 4)
    return codes

