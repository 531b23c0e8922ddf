"""How an ID number or a phone was meant, whatever way it was keyed in.

Platforms key the same number in many spellings: full-width digits (`１３８…`),
a full-width or lower-case `x`, spaces and dashes, `+86`/`0086`, a legacy 15-digit
ID. One person must have one identity on every platform, so the normal forms and
the identity forms that personal data is hashed as live here, at the bottom, for
the conform step and the personal-data keys alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.cn import ric

Column: TypeAlias = pa.Array | pa.ChunkedArray


def present(values: Column) -> pa.Array:
    """Not null and not blank."""
    return pc.and_(pc.is_valid(values),
                   pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0))


def blank_to_null(values: Column) -> Column:
    """Empty and whitespace-only text → null (a platform's way of saying "none")."""
    return pc.if_else(present(values), values, pa.scalar(None, pa.string()))


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
    """`citizen_id` of each value. A value already in normal form (17 ASCII digits and a
    digit or X: nearly every one) is its own; only the others go one by one."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    normal = pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{17}[0-9X]$"), False)
    if pc.all(normal).as_py():
        return values
    odd = pc.invert(normal)
    return pc.replace_with_mask(values, odd, per_distinct(values.filter(odd), citizen_id))


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



# GB 11643's check character of a 17-digit body: weights 2^(17-i) mod 11, and the
# character for each remainder of the weighted sum (ISO 7064 MOD 11-2).
_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_CHECK = "10X98765432"


def identities(values: pa.Array, identity: Callable[[str], str]) -> list[str]:
    """`identity` of each (non-null) value, as `[identity(v) for v in values]` gives,
    with the common spellings done vectorised: an ID number of 18 ASCII characters whose
    first 17 are digits, a phone already in national form. Others go one by one."""
    if identity is citizen_id_identity:
        common = pc.and_(pc.equal(pc.binary_length(values), 18),
                         pc.match_substring_regex(values, r"^[0-9]{17}"))
        formed = _check_completed(values.filter(common))
    elif identity is phone_identity:
        common = pc.and_(pc.match_substring_regex(values, r"^[01][0-9]*$"),
                         pc.invert(pc.starts_with(values, "00")))
        formed = values.filter(common)
    else:
        return [identity(v) for v in values.to_pylist()]
    common_np = common.to_numpy(zero_copy_only=False)
    if common_np.all():
        return list(formed.to_pylist())
    out: list[str] = values.to_pylist()
    positions = common_np.nonzero()[0]
    for pos, form in zip(positions.tolist(), formed.to_pylist(), strict=True):
        out[pos] = form
    for pos in (~common_np).nonzero()[0].tolist():
        out[pos] = identity(out[pos])
    return out


def _check_completed(ids: pa.Array) -> pa.Array:
    """18-character ID numbers with their check character computed from the body."""
    n = len(ids)
    if n == 0:
        return ids
    bodies = pc.utf8_slice_codeunits(ids, 0, 17).cast(pa.binary()).cast(pa.binary(17))
    digits = np.frombuffer(bodies.buffers()[1], np.uint8,
                           count=17 * n, offset=17 * bodies.offset).reshape(n, 17)
    # The digits' codes weighted; 48 ('0') times the weights' sum taken off after.
    remainder = (digits @ np.array(_WEIGHTS, np.int64) - 48 * sum(_WEIGHTS)) % 11
    checks = pa.array(list(_CHECK)).take(pa.array(remainder))
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(ids, 0, 17), checks, "")
