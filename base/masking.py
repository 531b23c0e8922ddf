"""Personal data as people may see it: the one masking policy of the hub.

Quarantine keeps a masked copy of what a platform sent (its clear payload is sealed,
base.pii.seal_payload), findings and errors may quote values, and the CLI and the weekly
report show records: everything shown passes through here.

- `mask_text`: every ID number (18 characters or legacy 15 digits) and mainland
  mobile or landline number inside a text, however keyed in (full-width digits and
  `Ｘ`, spaces, dashes, `+86`), is masked: `211103********123X`, `138****8000`,
  `0427****2345`. Longer digit runs (order numbers, device codes) are left alone.
- `mask_name`: the surname only, one `*` per other character (`张三丰` → `张**`),
  as `base.pii.mask_name` masks the core tables' names.
- `mask_address`: the address down to the street (`街道`, `镇`, `乡`), else the
  district or county, then `***` (`辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼501` →
  `辽宁省盘锦市兴隆台区兴隆街道***`).
- `mask_payload`: a record, structure kept. A field's key says what its value is
  (`field_kind`: a person's name, an address, an ID number, a phone), at any depth
  and case-insensitively; every other text gets `mask_text`, and so does a whole number
  (a phone read from a spreadsheet), not one with a fraction. A JSON list or object
  sent as text (a platform's `parties`) is masked inside. A key the hub derived from a
  keyed hash (`resident:<64 hex>`) is shown as its short reference (`record_ref`).

Every function is idempotent: masking a masked value changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# ------------------------------------------------------------------ text

# Characters read as what NFKC makes of them (full-width digits, `Ｘ`, `＋`, `－`,
# the ideographic and other spaces) plus the dashes people key between digit groups.
# One character for one, so a match in the folded text is at the same place in the
# original; other scripts' decimal digits are folded likewise (`_fold`).
_FOLD = str.maketrans({
    **{chr(0xFF10 + i): str(i) for i in range(10)},
    "Ｘ": "X", "ｘ": "x", "＋": "+", "（": "(", "）": ")",
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                    "\u200a\u202f\u205f\u3000", " "),
    **dict.fromkeys("\uff0d\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"),
})
# Any of them: str.translate looks up every character (5 µs for a line of Chinese), a
# class search does not, and most texts hold none.
_FOLDABLE = re.compile("[" + "".join(re.escape(chr(c)) for c in _FOLD) + "]")
# A decimal digit of another script (a class, not a look-ahead: one pass over the text).
_OTHER_DIGIT = re.compile(r"[^\D0-9]")
_ANY_DIGIT = re.compile(r"\d")

# A separator between digit groups (after folding): one space or dash.
_S = r"[ -]?"
# 18 characters: 6-8-4 as printed, or 3-3-4-4-4 / 6-4-4-4 as read aloud, with any
# check character (a wrong one is exactly what gets a record quarantined). No region
# code starts with 0: a 0 in front is a trunk or international prefix (0086…).
_ID18 = re.compile(rf"(?<![0-9])([1-9][0-9]{{2}}){_S}([0-9]{{3}}){_S}([0-9]{{4}}){_S}([0-9]{{4}})"
                   rf"{_S}([0-9]{{3}}[0-9Xx])(?![0-9])")
# Legacy 15 digits: region, yymmdd, sequence.
_ID15 = re.compile(rf"(?<![0-9])([1-9][0-9]{{5}}){_S}([0-9]{{5}}){_S}([0-9]){_S}([0-9]{{3}})(?![0-9])")
_MOBILE = re.compile(rf"(?<![0-9])(?:(?:\+|00)?86{_S})?(1[3-9][0-9]){_S}([0-9]{{4}}){_S}"
                     rf"([0-9]{{4}})(?![0-9])")
_LANDLINE = re.compile(rf"(?<![0-9])\(?(0[0-9]{{2,3}})\)?{_S}([0-9]{{3,4}})([0-9]{{4}})(?![0-9])")

_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_ID18, lambda m: m[1] + m[2] + "*" * 8 + m[5]),
    (_ID15, lambda m: m[1] + "*" * 5 + m[3] + m[4]),
    (_MOBILE, lambda m: f"{m[1]}****{m[3]}"),
    (_LANDLINE, lambda m: f"{m[1]}****{m[3]}"),
)

# What every one of them needs (after folding): seven digits in a row (a landline's
# number after its area code) or eleven digits at most one separator apart (a mobile's
# 3-4-4, an ID number's groups). A text without either, such as a reason quoting two
# times (`2026-11-14 05:01:04`: ten digits) or coordinates, is passed over in one scan.
_CANDIDATE = re.compile(r"[0-9]{7}|[0-9](?:[ -]?[0-9]){10}")


def _fold(text: str) -> str:
    """`text` with full-width (and other scripts') digits, `Ｘ`, signs and spaces in
    their ASCII form, character for character."""
    if text.isascii():
        return text
    folded = text.translate(_FOLD) if _FOLDABLE.search(text) else text

    def one(m: re.Match[str]) -> str:
        digit = unicodedata.decimal(m[0], None)
        return m[0] if digit is None else str(digit)

    return _OTHER_DIGIT.sub(one, folded)


def mask_text(text: object) -> str:
    """`text` with every ID number and phone number in it masked (211103********123X,
    138****8000); what was keyed in full-width comes out masked in ASCII."""
    s = "" if text is None else str(text)
    if not _ANY_DIGIT.search(s):
        return s
    work = _fold(s)
    if not _CANDIDATE.search(work):
        return s  # most texts: one scan, not one per pattern
    return _masked_numbers(s, work)


def _masked_numbers(s: str, work: str) -> str:
    """`s` with what the patterns find in `work` (`s` folded) masked."""
    spans: list[tuple[int, int, str]] = []
    for pattern, mask in _PATTERNS:
        found = [(m.start(), m.end(), mask(m)) for m in pattern.finditer(work)]
        if not found:
            continue
        spans.extend(found)
        # A number masked is no longer digits for the next pattern (a phone inside an
        # ID number is not a phone).
        parts: list[str] = []
        at = 0
        for start, end, _ in found:
            parts += [work[at:start], "\0" * (end - start)]
            at = end
        work = "".join(parts) + work[at:]
    if not spans:
        return s
    out: list[str] = []
    at = 0
    for start, end, masked in sorted(spans):
        out += [s[at:start], masked]
        at = end
    return "".join(out) + s[at:]


# ------------------------------------------------------------------ names and addresses


def mask_name(name: str) -> str:
    """张三丰 → 张**: the first character kept, one `*` per other one (at least one)."""
    t = name.strip()
    if not t:
        return name
    return t[0] + "*" * max(len(t) - 1, 1)


# A place name inside an administrative division's name: no digits or punctuation,
# and none of the words that start what lies below the street (roads, compounds,
# shops), so a compound's 小区 or a shop's 超市 is never taken for a district or city.
_PLACE_CHAR = (r"(?:(?!大道|大街|小区|社区|校区|景区|厂区|片区|街区|园区|超市|菜市|市场|乡村|城乡)"
               r"[^\s0-9*#,，。;；:：、()（）\[\]【】<>/\\|路巷弄号室\-_.])")
_ADMIN_PREFIX = re.compile(
    rf"(?:{_PLACE_CHAR}{{1,7}}?(?:省|自治区|特别行政区))?"
    rf"(?:{_PLACE_CHAR}{{1,9}}?(?:自治州|地区|盟|市))?"
    rf"(?:{_PLACE_CHAR}{{1,9}}?(?:区|县|旗|市))?"
    rf"(?:{_PLACE_CHAR}{{1,9}}?(?:街道|镇|乡|苏木))?"
)


def mask_address(address: str) -> str:
    """The address down to the street (街道/镇/乡), else the district, county or city,
    then `***`: 辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼501 → 辽宁省盘锦市兴隆台区兴隆街道***.
    An address without a recognisable division is `***` whole."""
    t = address.strip()
    if not t:
        return address
    m = _ADMIN_PREFIX.match(t)
    prefix = m[0] if m else ""
    return t if prefix == t else prefix + "***"


# ------------------------------------------------------------------ fields


class FieldKind(StrEnum):
    """What a field's key says its value is."""

    NAME = "name"
    ADDRESS = "address"
    ID_NUMBER = "id_number"
    PHONE = "phone"
    CODE = "code"  # a grid, division or device code: shown as it is


# Keys are compared as their words joined and lower-cased: callerName, caller_name and
# CALLER-NAME are all "callername".
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\x00-\x7f]+")
_PERSON = ("caller", "reporter", "worker", "owner", "contact", "person", "real", "full",
           "party", "applicant", "respondent", "resident", "citizen", "complainant",
           "householder", "holder", "guardian", "mediator", "informant", "victim", "legal",
           "patient", "inspector", "visitor", "petitioner")
_NAME_KEYS = frozenset({
    "name", "xm", "legalrep", "legalrepresentative", "legalperson", "contact",
    "contactperson", "mediator", "姓名", "法定代表人", "法人代表", "法人", "网格员", "联系人",
    "调解员", "户主", "产权人", "监护人", "申请人", "被申请人", "当事人", "举报人", "投诉人",
    "来电人", "反映人", "上报人", "报告人", "负责人", "信访人", "求助人",
    *(f"{p}name" for p in _PERSON),
})
_ADDRESS_WORDS = frozenset({"address", "addr", "adress", "addresses"})
_ADDRESS_CJK = re.compile(r"地址|住址|户籍地|居住地|住所")
_ID_PAIRS = frozenset({(a, b) for a in ("id", "cert", "certificate")
                       for b in ("no", "nos", "number", "num", "card", "cardno")})
_ID_WORDS = frozenset({"idno", "idnumber", "idcard", "idcardno", "citizenid", "certno",
                       "sfzh", "sfzhm", "zjhm"})
_ID_CJK = re.compile(r"身份证|身份号码|证件号")
_PHONE_WORDS = frozenset({"phone", "phones", "mobile", "tel", "telephone", "cellphone", "telno",
                          "phoneno", "mobileno", "lxdh", "sjhm"})
_PHONE_CJK = re.compile(r"电话|手机|联系方式")
_CODE_WORDS = frozenset({"code", "codes", "gridcode", "divisioncode"})
_CODE_CJK = re.compile(r"网格(?!员)|编码|代码|区划")
# Derived values are no personal data in clear: a keyed hash, a value masked already.
_DERIVED_WORDS = frozenset({"hash", "masked"})


def field_kind(key: object) -> FieldKind | None:
    """What a field named `key` holds, if personal: NAME, ADDRESS, ID_NUMBER or PHONE."""
    return _field_kind(str(key))


@lru_cache(maxsize=4096)
def _field_kind(key: str) -> FieldKind | None:
    # A payload's keys repeat record after record: each is read once.
    words = [w.lower() for w in _WORDS.findall(key)]
    if not words or words[-1] in _DERIVED_WORDS:
        return None
    joined = "".join(words)
    if (joined in _ID_WORDS or _ID_CJK.search(joined)
            or any(pair in _ID_PAIRS for pair in zip(words, words[1:], strict=False))
            or any(w in _ID_WORDS for w in words)):
        return FieldKind.ID_NUMBER
    if _PHONE_CJK.search(joined) or any(w in _PHONE_WORDS for w in words):
        return FieldKind.PHONE
    if _ADDRESS_CJK.search(joined) or any(w in _ADDRESS_WORDS for w in words):
        return FieldKind.ADDRESS
    if joined in _NAME_KEYS or joined.endswith("姓名"):
        return FieldKind.NAME
    # A 15-digit grid code reads like a legacy ID number: its key says it is a code.
    if _CODE_CJK.search(joined) or any(w in _CODE_WORDS for w in words):
        return FieldKind.CODE
    return None


def _mask_number(text: str, head: int, short: int) -> str:
    """A value under an ID-number or phone key that `mask_text` does not recognise (a
    malformed number): masked by length, as base.pii masks the core tables' values."""
    t = text.strip()
    if not _ANY_DIGIT.search(t):
        return text  # 无, 不详: no number in it
    n = len(t)
    if n < short:
        return "*" * n
    return t[:head] + "*" * (n - head - 4) + t[-4:]


def _mask_id_number(text: str) -> str:
    masked = mask_text(text)
    return masked if masked != text or "*" in text else _mask_number(text, 6, 11)


def _mask_phone(text: str) -> str:
    masked = mask_text(text)
    if masked != text or "*" in text:
        return masked
    return _mask_number(text, 4 if _fold(text).strip().startswith("0") else 3, 8)


_MASK: dict[FieldKind | None, Callable[[str], str]] = {
    FieldKind.NAME: mask_name, FieldKind.ADDRESS: mask_address,
    FieldKind.ID_NUMBER: _mask_id_number, FieldKind.PHONE: _mask_phone,
    FieldKind.CODE: str, None: mask_text,
}


# A key the hub derived from a keyed hash (resident:<64 hex>, party:<32 hex>, a bare
# hash): shown as mart.record_ref shows it, a reference that cannot be joined to the hash.
_HASH_KEYED = re.compile(r"(?:[a-z_]+:)?[0-9a-f]{32,64}")
_DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghijkmnpqr")


def record_ref(key: str) -> str:
    """A record's key as people see it: the twin of mart.record_ref (migration 0017),
    the prefix and 12 letters of the key's md5 for a hash-derived key, else the key."""
    if not _HASH_KEYED.fullmatch(key):
        return key
    prefix = key[:key.index(":") + 1] if ":" in key else ""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[:12].translate(_DIGITS_AS_LETTERS)


def mask_field(key: object, value: Any) -> Any:
    """One field's value as shown: by what its key says it is (see `field_kind`)."""
    return _mask(value, field_kind(key))


def mask_payload(payload: Any) -> Any:
    """The payload, structure kept, with personal data masked: names, addresses, ID
    numbers and phones by their field's key at any depth, and every other text's ID
    numbers and phone numbers."""
    return _mask(payload, None)


# What `_mask_str` may change of a text under a key that says nothing: a decimal digit of
# any script (RE2's `\p{Nd}` is Python's `\d`), a JSON list or object, a hash-derived key.
_WORTH_A_LOOK = r"\p{Nd}|[\[{]|^(?:[a-z_]+:)?[0-9a-f]{32,64}$"


def mask_column(key: object, column: pa.Array | pa.ChunkedArray, values: list[Any]) -> list[Any]:
    """`mask_field(key, v)` of each of `column`'s values (`values`: its records' values,
    a time as its text or as an object), with the column's type in view: times and flags
    hold no personal data; of the texts under a key that says nothing, only those one
    vectorised scan finds worth a look go through `mask_text` (most hold no digit)."""
    kind = field_kind(key)
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_boolean(t) \
            or pa.types.is_null(t):
        return values
    if kind is None and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        look = pc.fill_null(pc.match_substring_regex(column, _WORTH_A_LOOK), False)
        return [_mask_str(v, None) if worth else v
                for v, worth in zip(values, look.to_numpy(zero_copy_only=False), strict=True)]
    return [_mask(v, kind) for v in values]


def _mask(value: Any, kind: FieldKind | None) -> Any:
    if isinstance(value, Mapping):
        # A key that says nothing (`zh`, `value`) inherits what its parent holds.
        return {k: _mask(v, field_kind(k) or kind) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, kind) for v in value]
    if isinstance(value, str):
        return _mask_str(value, kind)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        if kind is None and not (isinstance(value, int) or float(value).is_integer()):
            # A coordinate or an amount: no phone or ID number has a fraction (122.0427123456
            # is no landline), where one read from a spreadsheet as 13800138000.0 is a phone.
            return value
        text = str(value)
        masked = _mask_str(text, kind)
        return value if masked == text else masked
    return value  # dates, times: no personal data


def _mask_str(text: str, kind: FieldKind | None) -> str:
    if kind is None and _HASH_KEYED.fullmatch(text):
        # (Under a personal field's key the field's own mask hides it.)
        return record_ref(text)
    stripped = text.strip()
    if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            return json.dumps(_mask(parsed, kind), ensure_ascii=False)
    return _MASK[kind](text)
