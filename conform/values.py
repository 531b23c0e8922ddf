"""Vectorised parsing and normalisation of the values platforms send as text.

Each parser returns the parsed column and a mask of values that were present
but could not be parsed, so the caller can quarantine them with a reason
instead of loading a silent NULL.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.cn import ric

from schemas import reference_data
from schemas.arrow import ARROW_TYPES
from schemas.model import Kind

Column: TypeAlias = pa.Array | pa.ChunkedArray

UTC_TIMESTAMP = ARROW_TYPES[Kind.TIMESTAMP]
UNMAPPED = "unmapped"


def _present(values: Column) -> pa.Array:
    """Not null and not blank."""
    return pc.and_(pc.is_valid(values),
                   pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0))


def blank_to_null(values: Column) -> Column:
    return pc.if_else(_present(values), values, pa.scalar(None, pa.string()))


def _failed(values: Column, parsed: Column) -> np.ndarray:
    bad = pc.and_(_present(values), pc.is_null(parsed))
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


TRUE_WORDS = ("true", "1", "是", "y", "yes")
FALSE_WORDS = ("false", "0", "否", "n", "no")


def booleans(values: Column) -> tuple[pa.Array, np.ndarray]:
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    is_true = pc.is_in(lowered, pa.array(TRUE_WORDS))
    is_false = pc.is_in(lowered, pa.array(FALSE_WORDS))
    parsed = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    return parsed, _failed(values, parsed)


def map_codes(values: Column, mapping: Mapping[str, str]) -> pa.Array:
    """Platform codes → hub codes; a value no mapping covers becomes `unmapped`."""
    keys = pa.array(list(mapping.keys()), pa.string())
    targets = pa.array(list(mapping.values()), pa.string())
    index = pc.index_in(pc.utf8_trim_whitespace(values), value_set=keys)
    mapped = pc.take(targets, index)
    return pc.fill_null(mapped, UNMAPPED)


def nfkc(values: Column) -> Column:
    """Unicode NFKC: full-width digits and letters (`１３８`, `Ｘ`), the ideographic space
    and full-width signs (`＋`, `－`) become their ASCII forms."""
    return pc.utf8_normalize(values, form="NFKC")


# The country code in front of a national number: +86, 0086 (and ＋８６ after NFKC).
_INTERNATIONAL_MOBILE = r"^(?:\+|00)86(1[3-9]\d{9})$"
# A landline after +86 drops the trunk 0 of its area code (+86 427 2812345): put it back.
_INTERNATIONAL_LANDLINE = r"^(?:\+|00)860?([1-9]\d{8,10})$"
# A mobile keyed in with the country code but without + or 00 (8613812348000).
_BARE_86_MOBILE = r"^86(1[3-9]\d{9})$"


def phones(values: Column) -> pa.Array:
    """The national form of a phone number: NFKC, digits only, without the +86 / 0086
    country code (a landline after it gets its trunk 0 back); blank → null.

    `１３８-００１３-８０００`, `+86 138 0013 8000`, `0086-13800138000` are all
    `13800138000`; `+86 427 2812345` and `0427-2812345` are both `04272812345`.
    """
    text = nfkc(values)
    digits = pc.replace_substring_regex(text, r"[^0-9+]", "")
    digits = pc.replace_substring_regex(digits, _INTERNATIONAL_MOBILE, r"\1")
    digits = pc.replace_substring_regex(digits, _INTERNATIONAL_LANDLINE, r"0\1")
    digits = pc.replace_substring_regex(digits, _BARE_86_MOBILE, r"\1")
    digits = pc.replace_substring_regex(digits, r"\+", "")
    # Nothing numeric in it: keep what was sent so the phone rule can show it.
    return blank_to_null(pc.if_else(pc.equal(digits, ""), pc.utf8_trim_whitespace(values), digits))


def phone(value: str) -> str | None:
    """`phones` for one value (the identity a phone number is hashed as)."""
    out = phones(pa.array([value], pa.string()))[0].as_py()
    return None if out is None else str(out)


def per_distinct(values: Column, fn: Callable[[str], str | None]) -> pa.Array:
    """Apply a Python function once per distinct value (IDs repeat across a batch)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(mapped, encoded.indices)


def citizen_id_check(body: str) -> str:
    """GB 11643 check character of a 17-digit body (ISO 7064 MOD 11-2)."""
    # stdnum takes the full 18 characters and ignores the last one.
    return ric.calc_check_digit(body + "0")


# What people key into an ID number besides its characters: spaces of every width,
# hyphens and dashes of every kind, underscores, dots and middle dots.
_SEPARATORS = re.compile(r"[\s\-_.\u00b7\u30fb\u2010-\u2015\u2212\ufe63\uff0d]")


def citizen_id(value: str) -> str | None:
    """GB 11643 normal form: 18 characters, upper-case X; legacy 15-digit upgraded.

    Full-width characters (`２１１１…１０４Ｘ`) are read through Unicode NFKC, and
    separators (spaces, dashes, dots) are dropped, so every spelling of a number
    comes out the same. A value that cannot be put in normal form is returned
    cleaned but otherwise as given, so the validation rule can flag it with what
    was sent.
    """
    cleaned = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value)).upper()
    if not cleaned:
        return None
    if len(cleaned) == 15 and cleaned.isdigit():
        # Legacy numbers (before 1999) omit the century and the check character.
        body = cleaned[:6] + "19" + cleaned[6:]
        return body + citizen_id_check(body)
    return cleaned


def citizen_ids(values: Column) -> pa.Array:
    return per_distinct(values, citizen_id)


def trimmed(values: Column) -> Column:
    return blank_to_null(pc.utf8_trim_whitespace(values))


def citizen_id_identity(value: str) -> str:
    """The identity an ID number stands for: its normal form's 17-digit body plus the
    check character computed from it.

    Platforms mistype the check character far more often than the body, so the
    keyed hash used for linking is taken over this form: `…104X` keyed in wrongly
    and the legacy `…104` of the same person link. The wrong check character is
    still a finding (rule citizen_id_valid), checked on the value as sent. A value
    not yet normalised (full-width, with separators, 15 digits) is normalised first,
    so every spelling of a number has one identity.
    """
    if not (len(value) == 18 and value[:17].isdigit() and value.isascii()):
        value = citizen_id(value) or value
    body = value[:17]
    if len(value) == 18 and body.isdigit() and body.isascii():
        return body + citizen_id_check(body)
    return value


def phone_identity(value: str) -> str:
    """The identity a phone number stands for: its national form (see `phones`)."""
    if value.isascii() and value.isdigit() and value[:1] in ("0", "1") \
            and not value.startswith("00"):
        return value  # already national: the common case, no Arrow round trip
    return phone(value) or value


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
