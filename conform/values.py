"""Vectorised parsing and normalisation of the values platforms send as text.

Each parser returns the parsed column and a mask of values that were present
but could not be parsed, so the caller can quarantine them with a reason
instead of loading a silent NULL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base.identity import Column, blank_to_null, nfkc, present
from schemas import reference_data
from schemas.arrow import ARROW_TYPES
from schemas.model import Kind

UTC_TIMESTAMP = ARROW_TYPES[Kind.TIMESTAMP]
UNMAPPED = "unmapped"


def _failed(values: Column, parsed: Column) -> np.ndarray:
    bad = pc.and_(present(values), pc.is_null(parsed))
    return np.asarray(pc.fill_null(bad, False), dtype=bool)


def local_times(values: Column, timezone: str,
                fmt: str = "%Y-%m-%d %H:%M:%S") -> tuple[pa.Array, np.ndarray]:
    """`yyyy-MM-dd HH:mm:ss` local times → UTC timestamps."""
    text = blank_to_null(pc.utf8_trim_whitespace(values))
    naive = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    # strptime rolls impossible dates over (02-30 → 03-02): such a value is not a
    # date, so anything that does not print back as it was read is refused.
    naive = pc.if_else(pc.equal(pc.strftime(naive, format=fmt), text), naive,
                       pa.scalar(None, naive.type))
    aware = pc.assume_timezone(naive, timezone=timezone)
    return pc.cast(aware, UTC_TIMESTAMP), _failed(values, naive)


def epoch_millis(values: Column) -> tuple[pa.Array, np.ndarray]:
    """Epoch milliseconds (as MQTT alarms send them) → UTC timestamps."""
    ints = _to_int(values)
    return pc.cast(pc.multiply(ints, 1000), UTC_TIMESTAMP), _failed(values, ints)


def _to_int(values: Column) -> pa.Array:
    ok = pc.match_substring_regex(values, r"^\s*-?\d+\s*$")
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(values), pa.scalar(None, pa.string()))
    return pc.cast(cleaned, pa.int64())


def floats(values: Column) -> tuple[pa.Array, np.ndarray]:
    ok = pc.match_substring_regex(values, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(values), pa.scalar(None, pa.string()))
    parsed = pc.cast(cleaned, pa.float64())
    return parsed, _failed(values, parsed)


TRUE_WORDS = ("true", "1", "是", "y", "yes", "已解决")
FALSE_WORDS = ("false", "0", "否", "n", "no", "未解决")


def booleans(values: Column) -> tuple[pa.Array, np.ndarray]:
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    is_true = pc.is_in(lowered, pa.array(TRUE_WORDS))
    is_false = pc.is_in(lowered, pa.array(FALSE_WORDS))
    parsed = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    return parsed, _failed(values, parsed)


def map_codes(values: Column, mapping: Mapping[str, str],
              otherwise: str | Column | None = UNMAPPED) -> Column:
    """Platform codes → hub codes; a value no mapping covers becomes `otherwise`: `unmapped`,
    another fixed value, the row's value of a column, or (None) null."""
    keys = pa.array(list(mapping.keys()), pa.string())
    targets = pa.array(list(mapping.values()), pa.string())
    index = pc.index_in(pc.utf8_trim_whitespace(values), value_set=keys)
    mapped = pc.take(targets, index)
    return mapped if otherwise is None else pc.coalesce(mapped, otherwise)


def trimmed(values: Column) -> Column:
    return blank_to_null(pc.utf8_trim_whitespace(values))


def fold_divisions(codes: Column) -> pa.Array:
    """Retired county codes → the codes that replaced them (schemas/reference), others as
    they are: 211121 大洼县 is 211104 大洼区 today, 320684 海门市 is 320614 海门区."""
    successors = reference_data.successor_divisions()
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    if not successors:
        return codes
    index = pc.index_in(codes, value_set=pa.array(list(successors), pa.string()))
    return pc.coalesce(pc.take(pa.array(list(successors.values()), pa.string()), index), codes)


def listing(masks: Mapping[str, Column | np.ndarray], n: int) -> pa.Array:
    """Per row, the comma-separated names whose mask holds there (null where none does):
    e.g. the lifecycle times a conformer derived, for `derived_times`."""
    none = pa.scalar(None, pa.string())
    if not masks:
        return pa.nulls(n, pa.string())
    parts = []
    for name, mask in masks.items():
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        flags = pa.array(np.asarray(mask, dtype=bool)) if isinstance(mask, np.ndarray) \
            else pc.fill_null(mask, False)
        parts.append(pc.if_else(flags, pa.scalar(name), none))
    # (null_handling="skip" loses the rows where every part is null, pyarrow 26.)
    joined = pc.binary_join_element_wise(*parts, ",", null_handling="replace",
                                         null_replacement="")
    joined = pc.utf8_trim(pc.replace_substring_regex(joined, ",,+", ","), characters=",")
    return pc.if_else(pc.equal(joined, ""), none, joined)


def dates(values: Column, fmt: str = "%Y-%m-%d") -> tuple[pa.Array, np.ndarray]:
    """Calendar dates (`yyyy-MM-dd`) → date32; an impossible date (02-30) is refused."""
    text = blank_to_null(pc.utf8_trim_whitespace(values))
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    parsed = pc.if_else(pc.equal(pc.strftime(parsed, format=fmt), text), parsed,
                        pa.scalar(None, parsed.type))
    return pc.cast(parsed, pa.date32()), _failed(values, parsed)


def tag_lists(values: Column, separators: str = "、,，;；/|") -> pa.Array:
    """Tags keyed in with whatever separator (`低保户、残疾人`) → `低保户,残疾人`; blank → null."""
    pattern = f"\\s*[{re.escape(separators)}]+\\s*"
    joined = pc.replace_substring_regex(pc.utf8_trim_whitespace(values), pattern, ",")
    return blank_to_null(pc.utf8_trim(joined, characters=","))


def uscc_codes(values: Column) -> Column:
    """统一社会信用代码 as compared: NFKC (full-width characters), no blanks, upper case;
    blank is null. The GB 32100 check is the rule uscc_valid's."""
    return blank_to_null(pc.utf8_upper(pc.replace_substring_regex(nfkc(values), r"\s", "")))


def division_parts(values: Column) -> tuple[Column, Column]:
    """A 6- or 9-digit division code as (county code, street code or null); other text is
    kept as the county code, for the division rule to judge."""
    text = trimmed(values)
    street = pc.fill_null(pc.match_substring_regex(text, r"^\d{9}$"), False)
    county = pc.if_else(street, pc.utf8_slice_codeunits(text, 0, 6), text)
    return county, pc.if_else(street, text, pa.scalar(None, pa.string()))

