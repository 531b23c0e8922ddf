"""Normal forms a person's details are compared in: one spelling per name, gender and address.

Platforms key the same name in many ways: traditional characters (`劉偉`), a space or a
middle dot between surname and given name (`刘 伟`, `阿卜杜·热合曼`), full-width letters
(`ＬＩ　Ｍｉｎｇ`), or a homophone of a character (`张玮` for `张伟`). The normal form is
NFKC, traditional → simplified (OpenCC's `t2s`), separators and honorifics (`王女士`)
dropped, Latin letters folded to lower case; the pinyin form (tones dropped, a surname
read as a surname: `曾` is zeng, `单` shan) catches homophones.

ID numbers and phones reach the warehouse as keyed hashes of their identity form
(`base.pii`), already normalised, so they are compared as they are; the birth date is
the column's (a hashed ID no longer gives it). Everything here is pure and runs once
per distinct value of a column.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import opencc
import pyarrow as pa
import pyarrow.compute as pc
from pypinyin import Style, lazy_pinyin

from base.identity import Column

# Two-character surnames (复姓) seen in registers: the rest of the name is the given name.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 端木 南宫 "
    "西门 独孤 呼延 澹台 百里 东郭 申屠 闻人 公羊 万俟 赫连 鲜于 第五 太史 仲孙 濮阳 淳于 单于 "
    "公冶 宗政 拓跋 司空 亓官 左丘 谷梁 巫马 梁丘 漆雕 乐正 壤驷 公良 羊舌 微生 南门".split())
# Surnames read otherwise than the character's common reading.
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou", "查": "zha",
    "盖": "ge", "乐": "yue", "覃": "qin", "翟": "zhai", "尉": "yu", "缪": "miao", "秘": "bi",
    "种": "chong", "黑": "he", "员": "yun", "召": "shao", "繁": "po", "句": "gou", "能": "nai",
    "长": "chang", "重": "chong", "沈": "shen", "任": "ren", "华": "hua", "纪": "ji", "燕": "yan",
}
# What callers give instead of a given name (王女士, 李先生): the surname is all that is known.
HONORIFICS = ("先生", "女士", "小姐", "同志", "师傅", "老师", "大爷", "大妈", "阿姨", "老人")
# Spaces of every width, dots, dashes and brackets people put in a name (RE2, Arrow's
# regular expressions: \p{Z} is every Unicode space, the rest are the characters).
_NAME_SEPARATORS = ("[\\s\\p{Z}\u00b7\u2022\u2027\u30fb\uff0e\u0387.\\-_\u2010\u2011\u2013\u2014"
                    "'\u2019,\uff0c()\uff08\uff09\u200b\u200c\u200d\ufeff]")
_HAN = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ffff]")

GENDERS = {"男": "男", "女": "女", "m": "男", "male": "男", "f": "女", "female": "女",
           "1": "男", "2": "女", "男性": "男", "女性": "女"}

# Below the road number an address names a building, unit, floor or room: dropped for
# the coarse key that one household shares with its neighbours.
# (RE2, Arrow's regular expressions.)
_ADDRESS_DETAIL = (r"(?:\d+|[一二三四五六七八九十百]+)(?:号楼|幢|栋|座|单元|层|楼|室|户|号院)"
                   r"|\d+(?:-\d+)+(?:室|号)?$|\d+室?$")
_ADDRESS_NOISE = r"[\s\p{Z},，。;；:：、()（）\[\]【】#\"'“”‘’]"


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _simplified(values: list[str]) -> list[str]:
    """OpenCC t2s of many texts in one call (one call per text costs 20 times more);
    the texts hold no line break (`normal_names` removed every blank)."""
    if not values:
        return []
    return _t2s().convert("\n".join(values)).split("\n")


# A name of one or more Han characters before the honorific (RE2).
_HONORIFIC = "^(\\p{Han}.*?)(?:" + "|".join(HONORIFICS) + ")$"


def normal_names(values: Column) -> pa.Array:
    """`name_normal` of every name of a column, vectorised: NFKC, separators out, Latin
    letters lower case, honorific dropped (Arrow), traditional → simplified (one OpenCC
    call for the column's distinct names)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = pc.utf8_normalize(values.cast(pa.string()), form="NFKC")
    text = pc.replace_substring_regex(text, _NAME_SEPARATORS, "")
    text = pc.utf8_lower(_simplified_column(text))
    text = pc.replace_substring_regex(text, _HONORIFIC, r"\1")
    return _blank_to_null(text)


def name_normal(value: str | None) -> str | None:
    """The normal form of a name: NFKC, simplified characters, no separators or
    honorific, Latin letters in lower case; None when nothing is left."""
    if value is None:
        return None
    out = normal_names(pa.array([value], pa.string()))[0].as_py()
    return None if out is None else str(out)


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """(surname, given name) of a normal-form name; a Latin name is not split."""
    if not name:
        return None, None
    if not _HAN.match(name):
        return None, name
    if len(name) > 2 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], (name[1:] or None)


@cache
def _syllable(char: str) -> str:
    return lazy_pinyin(char, style=Style.NORMAL, errors=lambda c: c)[0]


def name_pinyin(name: str | None) -> str | None:
    """The toneless pinyin of a normal-form name, one syllable per character and no
    separators (`zhangwei`), the surname read as a surname."""
    if not name:
        return None
    surname, given = split_name(name)
    if surname is None:
        return name
    head = "".join(SURNAME_READINGS.get(c, _syllable(c)) for c in surname)
    return head + "".join(_syllable(c) for c in (given or ""))


@dataclass(frozen=True)
class NameForms:
    """A name column's normal forms, row-aligned with it."""

    name: pa.Array
    surname: pa.Array
    given: pa.Array
    pinyin: pa.Array


def _per_distinct(values: Column, fns: tuple[Callable[[str], str | None], ...]) -> list[pa.Array]:
    """Each function once per distinct non-null value, spread back to the rows."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    out = []
    for fn in fns:
        mapped = pa.array([fn(v) for v in distinct], pa.string())
        out.append(pc.take(mapped, encoded.indices))
    return out


def name_forms(values: Column) -> NameForms:
    """`name_normal`, `split_name` and `name_pinyin` of every name of a column."""
    names = normal_names(values)
    encoded = pc.dictionary_encode(names)
    distinct = encoded.dictionary.to_pylist()
    parts = [split_name(v) for v in distinct]
    surname = pa.array([p[0] for p in parts], pa.string())
    given = pa.array([p[1] for p in parts], pa.string())
    pinyin = pa.array([name_pinyin(v) for v in distinct], pa.string())
    return NameForms(names, pc.take(surname, encoded.indices), pc.take(given, encoded.indices),
                     pc.take(pinyin, encoded.indices))


def gender(value: str | None) -> str | None:
    """男 / 女, or None for anything else (未知, blank)."""
    if value is None:
        return None
    return GENDERS.get(unicodedata.normalize("NFKC", value).strip().casefold())


def genders(values: Column) -> pa.Array:
    return _per_distinct(values, (gender,))[0]


def _simplified_column(text: pa.Array) -> pa.Array:
    """OpenCC t2s of a column (no line breaks in it), once per distinct value."""
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary.to_pylist()
    present = [v for v in distinct if v is not None]
    converted = iter(_simplified(present))
    simplified = pa.array([None if v is None else next(converted) for v in distinct],
                          pa.string())
    return pc.take(simplified, encoded.indices)


def _blank_to_null(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(pc.utf8_length(text), 0), pa.scalar(None, pa.string()), text)


def normal_addresses(values: Column) -> pa.Array:
    """`address_normal` of every address of a column, vectorised."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = pc.utf8_normalize(values.cast(pa.string()), form="NFKC")
    text = pc.replace_substring_regex(text, _ADDRESS_NOISE, "")
    return _blank_to_null(_simplified_column(text))


def address_normal(value: str | None) -> str | None:
    """NFKC, simplified characters, no spaces or punctuation; None when empty."""
    return addresses(pa.array([value], pa.string()))[0][0].as_py()


def address_coarse(value: str | None) -> str | None:
    """The normal form without building, unit, floor and room: the key a household
    shares with the rest of its estate or road number (`…兴隆大街12号幸福社区`)."""
    return addresses(pa.array([value], pa.string()))[1][0].as_py()


def addresses(values: Column) -> tuple[pa.Array, pa.Array]:
    """(`address_normal`, `address_coarse`) of every address of a column."""
    normal = normal_addresses(values)
    coarse = _blank_to_null(pc.replace_substring_regex(normal, _ADDRESS_DETAIL, ""))
    return normal, coarse
