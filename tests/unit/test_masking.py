"""The masking policy (base.masking): ID numbers and phones however keyed in, names,
addresses, records at any depth; what stays readable stays."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base.identity import citizen_id_check
from base.masking import (
    _WORTH_A_LOOK,  # mask_column's scan: what it may pass over
    FieldKind,
    _fold,  # with _masked_numbers: mask_text without its quick test
    _masked_numbers,
    field_kind,
    mask_address,
    mask_name,
    mask_payload,
    mask_text,
    record_ref,
)

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
HALF_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")

# Text around a number: Chinese, letters, punctuation, blanks; never a digit (a digit
# next to a number makes it a longer number).
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
AROUND = st.text(st.one_of(CJK, st.sampled_from("，。：:；()（）【】 \u3000abcXYZ号楼室电话身份证")),
                 max_size=12)


def clear_digits(text: str) -> str:
    """The digits (and check characters) of a text, full-width ones as ASCII."""
    return re.sub(r"[^0-9Xx]", "", text.translate(HALF_WIDTH))


# ------------------------------------------------------------------ examples


@pytest.mark.parametrize("text, masked", [
    ("tel 13812348000.", "tel 138****8000."),
    ("+86 138-1234-8000", "138****8000"),
    ("ID 21110319900101123X ok", "ID 211103********123X ok"),
    ("legacy 211103900101123", "legacy 211103*****1123"),
    ("spaced 211103 19900101 104x", "spaced 211103********104x"),
    ("dashed 211103-19900101-104X", "dashed 211103********104X"),
    ("0427-2812345", "0427****2345"),
    ("order 2111261110000001 stays", "order 2111261110000001 stays"),
    ("street 211102008 stays", "street 211102008 stays"),
    # Full-width digits and Ｘ, an ideographic space, a full-width dash: masked in ASCII.
    ("身份证２１１１０３１９９００１０１１０４Ｘ。", "身份证211103********104X。"),
    ("电话：１３８　１２３４　８０００", "电话：138****8000"),
    ("211103－19900101－104X", "211103********104X"),
    # Read aloud in fours; glued to letters; the area code in brackets.
    ("211103 1990 0101 104X", "211103********104X"),
    ("ID211103199001011043abc", "ID211103********1043abc"),
    ("（0427）2812345", "0427****2345"),
    ("0086 13812348000", "138****8000"),
    # Two numbers side by side are two numbers.
    ("13812348000 13912348000", "138****8000 139****8000"),
    ("device 21110200001320000001 stays", "device 21110200001320000001 stays"),
    ("", ""),
    (None, ""),
])
def test_mask_text(text, masked):
    assert mask_text(text) == masked


def test_mask_name_keeps_the_surname_as_base_pii_does():
    assert mask_name("张三丰") == "张**"
    assert mask_name("张三") == "张*"
    assert mask_name("张") == "张*"
    assert mask_name(" 欧阳修 ") == "欧**"
    assert mask_name("") == "" and mask_name("张**") == "张**"


@pytest.mark.parametrize("address, masked", [
    ("辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼501", "辽宁省盘锦市兴隆台区兴隆街道***"),
    ("盘锦市兴隆台区渤海路12号幸福小区3号楼", "盘锦市兴隆台区***"),
    ("盘锦市盘山县太平镇胜利村3组", "盘锦市盘山县太平镇***"),
    ("营口市大石桥市官屯镇官屯村", "营口市大石桥市官屯镇***"),
    ("新疆维吾尔自治区乌鲁木齐市天山区解放路1号", "新疆维吾尔自治区乌鲁木齐市天山区***"),
    ("北京市朝阳区建国路88号", "北京市朝阳区***"),
    # A compound's 小区 or a shop's 超市 is no district or city.
    ("盘锦市幸福小区3号楼", "盘锦市***"),
    ("盘锦市幸福超市对面", "盘锦市***"),
    ("渤海路12号", "***"),
    # Nothing below the street: nothing to hide.
    ("盘锦市兴隆台区", "盘锦市兴隆台区"),
    ("辽宁省盘锦市兴隆台区兴隆街道***", "辽宁省盘锦市兴隆台区兴隆街道***"),
    ("", ""),
])
def test_mask_address(address, masked):
    assert mask_address(address) == masked


@pytest.mark.parametrize("key, kind", [
    ("name", FieldKind.NAME), ("姓名", FieldKind.NAME), ("callerName", FieldKind.NAME),
    ("caller_name", FieldKind.NAME), ("CALLER-NAME", FieldKind.NAME),
    ("reporterName", FieldKind.NAME), ("reporter_name", FieldKind.NAME),
    ("legal_rep", FieldKind.NAME), ("法定代表人", FieldKind.NAME), ("worker_name", FieldKind.NAME),
    ("网格员", FieldKind.NAME), ("联系人", FieldKind.NAME), ("contact", FieldKind.NAME),
    ("owner_name", FieldKind.NAME), ("mediator", FieldKind.NAME), ("户主姓名", FieldKind.NAME),
    ("address", FieldKind.ADDRESS), ("地址", FieldKind.ADDRESS), ("住址", FieldKind.ADDRESS),
    ("household_address", FieldKind.ADDRESS), ("current_address", FieldKind.ADDRESS),
    ("现住址", FieldKind.ADDRESS), ("户籍地址", FieldKind.ADDRESS),
    ("callerIdNo", FieldKind.ID_NUMBER), ("idNo", FieldKind.ID_NUMBER),
    ("公民身份号码", FieldKind.ID_NUMBER), ("产权人身份号码", FieldKind.ID_NUMBER),
    ("reporter_id_number", FieldKind.ID_NUMBER), ("owner_id_number", FieldKind.ID_NUMBER),
    ("callerPhone", FieldKind.PHONE), ("联系电话", FieldKind.PHONE), ("网格员电话", FieldKind.PHONE),
    ("worker_phone", FieldKind.PHONE), ("mobile", FieldKind.PHONE),
    # Not personal, or not in clear: codes, organisations, categories, hashes, masks.
    ("orderNo", None), ("reporterId", None), ("reporter_id", None), ("deviceId", None),
    ("名称", None), ("org_name", None), ("categoryName", None), ("community_name", None),
    ("grid_name", None), ("dept_name1", None), ("owner", None), ("handleDept", None),
    ("id_number_hash", None), ("reporter_name_masked", None), ("hotel", None),
])
def test_field_kind(key, kind):
    assert field_kind(key) == kind


def test_mask_payload_masks_by_key_at_any_depth():
    parties = [{"name": "张三丰", "idNo": "211103199001011043", "phone": "138 1234 8000",
                "role": "申请人"}]
    payload = {
        "caseId": "ZZ2026000123", "CallerName": "卢帅帆", "callerPhone": "１３４６６７１４５２５",
        "callerIdNo": "2111031969081965",  # malformed: 16 digits, still masked
        "地址": "辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼501",
        # A list of objects sent as JSON text (as connectors pass the zongzhi parties).
        "parties": json.dumps(parties, ensure_ascii=False),
        "residents": [{"姓名": "王小明", "现住址": "盘锦市大洼区田家街道1号", "联系电话": "无"}],
        "contact": {"zh": "李四", "tel": "0427-2812345"},
        "content": "市民张先生来电（13466714525）反映",
        "legal_rep": ["赵六", "钱七七"],
        "count": 3, "urgent": True, "nothing": None,
        "order": 13812348000,
    }
    masked = mask_payload(payload)
    assert masked["caseId"] == "ZZ2026000123"
    assert masked["CallerName"] == "卢**"
    assert masked["callerPhone"] == "134****4525"
    assert masked["callerIdNo"] == "211103******1965"
    assert masked["地址"] == "辽宁省盘锦市兴隆台区兴隆街道***"
    assert json.loads(masked["parties"]) == [
        {"name": "张**", "idNo": "211103********1043", "phone": "138****8000", "role": "申请人"}]
    assert masked["residents"] == [{"姓名": "王**", "现住址": "盘锦市大洼区田家街道***",
                                    "联系电话": "无"}]
    assert masked["contact"] == {"zh": "李*", "tel": "0427****2345"}
    assert masked["content"] == "市民张先生来电（134****4525）反映"  # free text: numbers only
    assert masked["legal_rep"] == ["赵*", "钱**"]
    assert (masked["count"], masked["urgent"], masked["nothing"]) == (3, True, None)
    assert masked["order"] == "138****8000"
    assert mask_payload(masked) == masked
    text = json.dumps(masked, ensure_ascii=False)
    for clear in ("卢帅帆", "张三丰", "王小明", "幸福小区", "13466714525", "211103199001011043",
                  "2111031969081965", "2812345"):
        assert clear not in clear_digits(text) and clear not in text


# ------------------------------------------------------------------ properties


@st.composite
def id_numbers(draw) -> tuple[str, str]:
    """(how an ID number was keyed in, its 18 characters)."""
    region = draw(st.from_regex(r"[1-9][0-9]{5}", fullmatch=True))
    born = draw(st.dates(date(1900, 1, 1), date(2025, 12, 31))).strftime("%Y%m%d")
    body = region + born + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    check = draw(st.sampled_from([citizen_id_check(body), *"0123456789Xx"]))
    number = body + check
    groups = draw(st.sampled_from([(18,), (6, 8, 4), (6, 4, 4, 4), (3, 3, 4, 4, 4)]))
    sep = draw(st.sampled_from(["", " ", "-", "\u3000", "－"]))
    parts, at = [], 0
    for g in groups:
        parts.append(number[at:at + g])
        at += g
    keyed = sep.join(parts)
    if draw(st.booleans()):
        keyed = keyed.translate(FULL_WIDTH)
    return keyed, number


@st.composite
def mobiles(draw) -> tuple[str, str]:
    number = draw(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    sep = draw(st.sampled_from(["", " ", "-"]))
    keyed = sep.join((number[:3], number[3:7], number[7:]))
    keyed = draw(st.sampled_from(["", "+86", "+86 ", "0086", "86-"])) + keyed
    if draw(st.booleans()):
        keyed = keyed.translate(FULL_WIDTH).replace("+", "＋")
    return keyed, number


@settings(max_examples=300)
@given(id_numbers(), AROUND, AROUND)
def test_no_id_number_survives_in_clear(keyed, before, after):
    keyed_in, number = keyed
    masked = mask_text(before + keyed_in + after)
    assert number.upper() not in clear_digits(masked).upper()
    assert number[6:14] not in clear_digits(masked)  # the birth date
    assert "********" in masked
    assert masked.startswith(before) and masked.endswith(after)


@settings(max_examples=300)
@given(mobiles(), AROUND, AROUND)
def test_no_mobile_survives_in_clear(keyed, before, after):
    keyed_in, number = keyed
    masked = mask_text(before + keyed_in + after)
    assert number not in clear_digits(masked)
    assert f"{number[:3]}****{number[-4:]}" in masked
    assert masked.startswith(before) and masked.endswith(after)


@settings(max_examples=300)
@given(st.one_of(st.integers(16, 17), st.integers(19, 30)).flatmap(
           lambda n: st.from_regex(rf"[1-9][0-9]{{{n - 1}}}", fullmatch=True)),
       st.booleans(), AROUND,
       # 17 digits and an X are an ID number's 18 characters, whatever was meant.
       AROUND.filter(lambda t: not t.startswith(("X", "x"))))
def test_long_order_numbers_are_not_mangled(number, full_width, before, after):
    text = before + (number.translate(FULL_WIDTH) if full_width else number) + after
    assert mask_text(text) == text


@given(st.text(CJK, min_size=1, max_size=4),
       st.sampled_from(["name", "Name", "姓名", "callerName", "caller_name", "REPORTER_NAME",
                        "legal_rep", "法定代表人", "worker_name", "网格员", "联系人", "contact",
                        "owner_name"]))
def test_names_keep_the_surname_only(name, key):
    masked = mask_payload({"outer": [{key: name}]})["outer"][0][key]
    assert masked == name[0] + "*" * max(len(name) - 1, 1)
    assert set(masked[1:]) == {"*"}  # nothing of the given name (一一 included)


PROVINCES = ["", "辽宁省", "内蒙古自治区"]
CITIES = ["", "盘锦市", "呼和浩特市", "延边朝鲜族自治州"]
COUNTIES = ["兴隆台区", "盘山县", "大石桥市", "土默特左旗", "经济技术开发区"]
STREETS = ["", "兴隆街道", "太平镇", "东郭乡"]


@given(st.sampled_from(PROVINCES), st.sampled_from(CITIES), st.sampled_from(COUNTIES),
       st.sampled_from(STREETS), st.sampled_from(["渤海路", "幸福小区", "胜利村", "中兴大街", ""]),
       st.integers(1, 999), st.sampled_from(["号", "号楼", "栋", "组"]),
       st.sampled_from(["address", "地址", "住址", "household_address", "current_address",
                        "现住址", "户籍地址"]))
def test_addresses_are_cut_at_the_street(province, city, county, street, place, no, unit, key):
    prefix = province + city + county + street
    detail = f"{place}{no}{unit}"
    masked = mask_payload({key: prefix + detail})[key]
    assert masked == prefix + "***"
    assert str(no) not in masked and (not place or place not in masked)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(
        st.one_of(CJK, st.sampled_from("0123456789０１２３ -+Xx，")), max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "idNo", "phone", "address", "content", "orderNo", "zh"]),
        children, max_size=5),
    max_leaves=20)


@settings(max_examples=300)
@given(JSON)
def test_masking_is_idempotent(payload):
    once = mask_payload(payload)
    assert mask_payload(once) == once


# Digits of every width and script, the separators people key between them, and what
# stands around numbers in records: times, decimals, brackets, a trunk or country code.
NUMBERISH = st.text(st.sampled_from("0123456789" "0123456789" "０１２３４５６７８９" "١٢"
                                    " --－\u3000()（）+＋Xx:.号年"), max_size=40)


@settings(max_examples=1000)
@given(NUMBERISH, AROUND)
def test_the_quick_test_passes_over_only_texts_with_nothing_to_mask(digits, around):
    """mask_text skips the patterns where a text lacks what every one of them needs:
    it must never skip a text any of them would mask."""
    text = around + digits + around
    assert mask_text(text) == _masked_numbers(text, _fold(text))


def test_numbers_with_a_fraction_are_measurements_not_phones() -> None:
    """A coordinate whose digits read like a landline stays a number; a phone that a
    spreadsheet turned into a float is still masked, and so is anything under a phone key."""
    masked = mask_payload({"longitude": 122.0427123456, "amount": Decimal("0.04271234567"),
                           "note": 13800138000.0, "count": 13800138000,
                           "tel": 13800138000.5})
    assert masked["longitude"] == 122.0427123456
    assert masked["amount"] == Decimal("0.04271234567")
    assert masked["note"] == "138****8000.0"
    assert masked["count"] == "138****8000"
    assert "8001380" not in str(masked["tel"])


def test_codes_are_shown_as_they_are() -> None:
    """A 15-digit grid code is no legacy ID number when its key says it is a code."""
    payload = {"所属网格": "211103001001001", "gridCode": "211103001001001",
               "网格员": "王小明", "remark": "身份证 211103900101123"}
    masked = mask_payload(payload)
    assert masked["所属网格"] == masked["gridCode"] == "211103001001001"
    assert masked["网格员"] == "王**"
    assert masked["remark"] == "身份证 211103*****1123"


def test_a_key_derived_from_a_keyed_hash_is_shown_as_its_reference():
    """A grid resident's key (`resident:<keyed hash of the ID number>`) in a quarantined
    record is shown as mart.record_ref shows it: the steward sees no hash to join on."""
    hashed = "resident:" + "0a65c6feae2d8524" * 4
    masked = mask_payload({"residentKey": hashed, "姓名": "孟小红", "deviceId": "B1024",
                           "nested": [{"id_hash": "ab" * 16}]})
    assert masked["residentKey"] == record_ref(hashed)
    assert re.fullmatch(r"resident:[a-r]{12}", masked["residentKey"])
    assert not re.search(r"[0-9a-f]{32}", json.dumps(masked))
    assert masked["deviceId"] == "B1024" and masked["姓名"] == "孟**"
    assert mask_payload(masked) == masked


def test_the_column_scan_finds_every_digit_python_reads_as_one() -> None:
    """mask_column passes over texts its scan (RE2) finds nothing in: it must see every
    character mask_text reads as a digit (Python's `\\d`, Unicode's decimal digits)."""
    digits = [chr(c) for c in range(0x110000)
              if not 0xD800 <= c <= 0xDFFF and re.fullmatch(r"\d", chr(c))]
    found = pc.match_substring_regex(pa.array(digits), _WORTH_A_LOOK)
    assert len(digits) > 600 and pc.all(found).as_py()
