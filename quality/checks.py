"""Vectorised standard checks: one function per check, whole columns at a time.

Every check takes Arrow arrays (or anything `pa.array` accepts) and returns one
int8 *code* per row:

- ``NOT_EVALUATED`` (-1): the check has nothing to say about the row (the value is
  missing, or the rule does not apply to it);
- ``PASSED`` (0);
- ``k`` > 0: failed for the k-th reason of the check's ``*_REASONS`` tuple.

`quality.rules` (row outcomes, quarantine reasons) and the custom expectations of
`quality.gx_suite` (the recorded GX results) both call these functions, so the two
count exactly the same failures. Nothing here loops over rows: strings of a fixed
width are viewed as a byte matrix, sets are hashed by Arrow, times compared as int64.

A *blank* value (null, empty or whitespace only, or NaN for numbers) counts as
missing everywhere: the required-field check fails it, every other check skips it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NOT_EVALUATED = -1
PASSED = 0

CODE_DTYPE = np.int8

Column = pa.Array | pa.ChunkedArray

_ZERO = ord("0")
_NINE = ord("9")
_X = ord("X")

# ---------------------------------------------------------------- array plumbing


def as_array(values: Any, type_: pa.DataType | None = None) -> pa.Array:
    """One contiguous Arrow array (chunks combined; pandas/numpy input converted)."""
    if isinstance(values, pa.ChunkedArray):
        arr = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
        if values.num_chunks == 0:
            arr = pa.array([], type=values.type)
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


def _bool(arr: pa.Array | pa.ChunkedArray, null: bool = False) -> np.ndarray:
    """Arrow boolean → numpy bool, nulls as `null`."""
    filled = pc.fill_null(arr, null)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def lengths(values: pa.StringArray) -> np.ndarray:
    """Byte length per value, -1 for null."""
    return np.asarray(pc.fill_null(pc.binary_length(values), -1).to_numpy(), dtype=np.int64)


def present(values: Any) -> np.ndarray:
    """True where a value is given: not null, not NaN, not empty or whitespace only."""
    arr = as_array(values)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        blank = pc.or_(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
        return _bool(pc.invert(blank), null=False)
    if pa.types.is_floating(arr.type):
        return _bool(pc.invert(pc.is_nan(arr)), null=False)
    if pa.types.is_null(arr.type):
        return np.zeros(len(arr), dtype=bool)
    return _bool(pc.is_valid(arr))


def _offsets(values: pa.StringArray) -> np.ndarray:
    buf = values.buffers()[1]
    if buf is None:  # pragma: no cover - zero-length arrays
        return np.zeros(len(values) + 1, dtype=np.int64)
    return np.frombuffer(buf, dtype=np.int32, count=len(values) + 1 + values.offset)[
        values.offset :
    ]


def _data(values: pa.StringArray) -> np.ndarray:
    buf = values.buffers()[2]
    return np.zeros(0, np.uint8) if buf is None else np.frombuffer(buf, dtype=np.uint8)


def leading_bytes(values: pa.StringArray, count: int) -> np.ndarray:
    """(n, count) matrix of each value's first bytes; 0 past the end of a value."""
    n = len(values)
    out = np.zeros((n, count), dtype=np.uint8)
    if n == 0:
        return out
    starts = _offsets(values)[:-1].astype(np.int64)
    lens = np.maximum(lengths(values), 0)
    data = _data(values)
    for k in range(count):  # a few columns, not rows
        has = lens > k
        idx = np.where(has, starts + k, 0)
        if data.size:
            out[:, k] = np.where(has, data[np.minimum(idx, data.size - 1)], 0)
    return out


def fixed_width(values: pa.StringArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose value is exactly `width` bytes, and those bytes as a (k, width) matrix."""
    lens = lengths(values)
    rows = np.flatnonzero(lens == width)
    if rows.size == 0:
        return rows, np.zeros((0, width), dtype=np.uint8)
    picked = values.filter(pa.array(lens == width))
    start = int(_offsets(picked)[0])
    mat = _data(picked)[start : start + rows.size * width].reshape(rows.size, width)
    return rows, mat


def _is_digit(mat: np.ndarray) -> np.ndarray:
    return (mat >= _ZERO) & (mat <= _NINE)


def _all_digits(values: pa.StringArray) -> np.ndarray:
    return _bool(pc.ascii_is_decimal(values))


def _codes(n: int) -> np.ndarray:
    return np.full(n, NOT_EVALUATED, dtype=CODE_DTYPE)


def _mark(codes: np.ndarray, where: np.ndarray, code: int) -> None:
    """Set `code` where `where` holds and no earlier reason was recorded."""
    codes[where & (codes == PASSED)] = code


def as_value_set(values: Collection[str] | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    return pa.array(sorted(values), type=pa.string())


# ---------------------------------------------------------------- completeness, uniqueness

PRESENT_REASONS = ("missing",)


def required(values: Any) -> np.ndarray:
    """Every row is evaluated; 1 where the value is blank."""
    ok = present(values)
    return np.where(ok, PASSED, 1).astype(CODE_DTYPE)


LAST_IN_BATCH_REASONS = ("superseded",)


def last_in_batch(keys: Any) -> np.ndarray:
    """1 for every occurrence of a key except its last one in the batch."""
    arr = as_strings(keys)
    n = len(arr)
    ok = present(arr)
    codes = np.where(ok, PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    if n < 2:
        return codes
    encoded = pc.dictionary_encode(arr)
    idx = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(), dtype=np.int64)
    counts = np.bincount(idx[idx >= 0], minlength=len(encoded.dictionary))
    dup_rows = np.flatnonzero((idx >= 0) & (counts[np.maximum(idx, 0)] > 1))
    if dup_rows.size:
        last = np.full(len(encoded.dictionary), -1, dtype=np.int64)
        np.maximum.at(last, idx[dup_rows], dup_rows)
        superseded = dup_rows[last[idx[dup_rows]] != dup_rows]
        codes[superseded] = 1
    codes[~ok] = NOT_EVALUATED
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
    arr = as_strings(values)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    rows, mat = fixed_width(arr, 18)
    well_formed = np.zeros(len(arr), dtype=bool)
    if rows.size:
        body_ok = _is_digit(mat[:, :17]).all(axis=1)
        last = mat[:, 17]
        last_ok = _is_digit(last) | (last == _X)
        ok = body_ok & last_ok
        well_formed[rows[ok]] = True
        good = rows[ok]
        m = mat[ok]
        total = (m[:, :17].astype(np.int64) - _ZERO) @ _RIC_WEIGHTS
        check_ok = _RIC_CHECK[total % 11] == m[:, 17]
        birth = _number(m[:, 6:14])
        year, month, day = birth // 10000, birth // 100 % 100, birth % 100
        latest = today.year * 10000 + today.month * 100 + today.day
        date_ok = (
            valid_dates(year, month, day) & (year >= EARLIEST_BIRTH_YEAR) & (birth <= latest)
        )
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
    arr = as_strings(values)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    rows, mat = fixed_width(arr, 18)
    well_formed = np.zeros(len(arr), dtype=bool)
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
    arr = as_strings(values)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    lens = lengths(arr)
    head = leading_bytes(arr, 2)
    digits = _all_digits(arr)
    mobile = (lens == 11) & (head[:, 0] == ord("1")) & (head[:, 1] >= ord("3")) & (
        head[:, 1] <= _NINE
    )
    landline = (lens >= 10) & (lens <= 12) & (head[:, 0] == _ZERO) & (head[:, 1] > _ZERO)
    _mark(codes, ~(digits & (mobile | landline)), 1)
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
    arr = as_strings(values)
    if known is None:
        return _codes(len(arr))
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    missing = ~_bool(pc.is_in(arr, value_set=as_value_set(known)), null=True)
    if retired is not None and missing.any():
        was = _bool(pc.is_in(arr, value_set=as_value_set(retired)))
        _mark(codes, missing & was, 2)
    _mark(codes, missing, 1)
    return codes


MAPPED_REASONS = ("unmapped", "unknown")
UNMAPPED = "unmapped"


def mapped(values: Any, known: Collection[str] | pa.Array) -> np.ndarray:
    """1 where conform left the value 'unmapped', 2 where it is not a hub value at all."""
    arr = as_strings(values)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    _mark(codes, _bool(pc.equal(arr, UNMAPPED)), 1)
    _mark(codes, ~_bool(pc.is_in(arr, value_set=as_value_set(known)), null=True), 2)
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
    """Timestamps as int64 microseconds since the epoch (UTC), and a presence mask."""
    arr = as_array(values)
    if pa.types.is_timestamp(arr.type) and arr.type.unit != "us":
        arr = arr.cast(pa.timestamp("us", tz=arr.type.tz))
    ok = _bool(pc.is_valid(arr))
    raw = pc.fill_null(arr.cast(pa.int64()), _NULL_TIME).to_numpy()
    return np.asarray(raw, dtype=np.int64), ok


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


def in_order(columns: Sequence[Any]) -> np.ndarray:
    """Code k where the k-th column (1-based) is the first to hold a time earlier than
    a time in a column before it; missing times are skipped."""
    n = len(columns[0]) if columns else 0
    codes = np.full(n, NOT_EVALUATED, dtype=CODE_DTYPE)
    running = np.full(n, _NULL_TIME, dtype=np.int64)
    for k, col in enumerate(columns, start=1):
        t, ok = micros(col)
        codes[ok & (codes == NOT_EVALUATED)] = PASSED
        _mark(codes, ok & (t < running), k)
        running = np.where(ok, np.maximum(running, t), running)
    return codes


def latest_before(columns: Sequence[Any], rows: np.ndarray, k: int) -> np.ndarray:
    """For `rows`, the index (0-based) of the column before column k (1-based) that holds
    the latest time: the partner of an `in_order` failure."""
    best = np.full(rows.size, -1, dtype=np.int64)
    best_t = np.full(rows.size, _NULL_TIME, dtype=np.int64)
    for j in range(k - 1):
        t, ok = micros(columns[j])
        t, ok = t[rows], ok[rows]
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
    arr = as_strings(values)
    given = present(arr)
    codes = np.where(given, PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    neutral_set = pa.array(sorted(set(neutral)), type=pa.string())
    rated = given & ~_bool(pc.is_in(arr, value_set=neutral_set))
    closed = _bool(pc.equal(as_strings(status), required_status))
    _mark(codes, rated & ~closed, 1)
    return codes


# ---------------------------------------------------------------- grid and thing codes

UNIT_GRID_REASONS = ("format",)
UNIT_GRID_TYPE = "单元"


def unit_grid_code(codes_: Any, grid_types: Any) -> np.ndarray:
    """单元网格 codes are 15 digits (14 in older systems); other grid codes any value."""
    arr = as_strings(codes_)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    unit = _bool(pc.equal(as_strings(grid_types), UNIT_GRID_TYPE))
    lens = lengths(arr)
    ok = _all_digits(arr) & ((lens == 14) | (lens == 15))
    _mark(codes, unit & ~ok, 1)
    return codes


THING_CODE_REASONS = ("component_format", "component_division", "device_format", "device_type")
DEVICE_TYPES: Mapping[str, tuple[str, ...]] = {"camera": ("131", "132"), "nvr": ("118",)}
COMPONENT = "component"


def thing_code(
    codes_: Any, thing_types: Any, division_codes: Collection[str] | pa.Array
) -> np.ndarray:
    """部件 codes: 16 digits (17 under GB/T 47678) whose first 6 are a division code;
    cameras and NVRs: 20-digit GB/T 28181 ids whose type digits (11–13) are 131/132 or
    118. Other thing types are not constrained.
    Reasons: 1 component format, 2 component division prefix, 3 device id format,
    4 device type digits.
    """
    arr = as_strings(codes_)
    kinds = as_strings(thing_types)
    codes = np.where(present(arr), PASSED, NOT_EVALUATED).astype(CODE_DTYPE)
    lens = lengths(arr)
    digits = _all_digits(arr)

    component = _bool(pc.equal(kinds, COMPONENT))
    comp_ok = digits & ((lens == 16) | (lens == 17))
    _mark(codes, component & ~comp_ok, 1)
    prefix = pc.utf8_slice_codeunits(arr, 0, 6)
    known = _bool(pc.is_in(prefix, value_set=as_value_set(division_codes)))
    _mark(codes, component & comp_ok & ~known, 2)

    device = _bool(pc.is_in(kinds, value_set=pa.array(sorted(DEVICE_TYPES))))
    dev_ok = digits & (lens == 20)
    _mark(codes, device & ~dev_ok, 3)
    type_digits = pc.utf8_slice_codeunits(arr, 10, 13)
    type_ok = np.zeros(len(arr), dtype=bool)
    for kind, allowed in DEVICE_TYPES.items():  # two device kinds, not rows
        this = _bool(pc.equal(kinds, kind))
        type_ok |= this & _bool(pc.is_in(type_digits, value_set=pa.array(allowed)))
    _mark(codes, device & dev_ok & ~type_ok, 4)
    return codes


# ---------------------------------------------------------------- masking personal data


def mask_id_number(values: Any) -> pa.StringArray:
    """``211103********123X``: first 6 and last 4 characters kept when at least 11 long,
    everything masked otherwise."""
    return _mask(as_strings(values), head=6, tail=4)


def mask_phone(values: Any) -> pa.StringArray:
    """``138****8000``: first 3 and last 4 digits kept when at least 8 long."""
    return _mask(as_strings(values), head=3, tail=4)


def _mask(arr: pa.StringArray, head: int, tail: int) -> pa.StringArray:
    n_chars = pc.utf8_length(arr)
    keep = pc.greater_equal(n_chars, head + tail + 1)
    stars_kept = pc.binary_repeat("*", pc.max_element_wise(pc.subtract(n_chars, head + tail), 0))
    kept = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(arr, 0, head),
        stars_kept,
        pc.utf8_slice_codeunits(arr, -tail) if tail else pa.scalar(""),
        "",
    )
    all_stars = pc.binary_repeat("*", n_chars)
    return pc.if_else(keep, kept, all_stars)
