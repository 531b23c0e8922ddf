"""quality.rules / quality.checks: every rule passes a clean row and fails each bad
variant with the right reason; the vectorised check digits agree with python-stdnum."""

from __future__ import annotations

import random
import string
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from base.pii import mask_id_number, mask_phone
from base.settings import settings
from quality import checks
from quality.consistency import TRANSFER_RULE
from quality.rules import (
    FINDINGS_SCHEMA,
    FUTURE_TOLERANCE,
    RULES,
    RULES_FILE,
    RuleContext,
    Severity,
    applied_rules,
    definitions,
    evaluate,
)
from quality.validate import validate
from schemas.model import ENTITIES, EVENT, GRID, ORGANIZATION, PERSON, THING
from tests.support.profile_rules import (
    NOW,
    PANJIN_EXTENT,
    conformed_table,
    panjin_context,
    panjin_grids,
    panjin_streets,
    synthetic_events,
)

CTX = panjin_context()
STREET = panjin_streets()[0]
GRID_CODE = panjin_grids()[0]


def t(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


def valid_id(body: str) -> str:
    return body + ric.calc_check_digit(body + "0")


GOOD_ID = valid_id("21110319900307123")
GOOD_USCC = "91110000802100433B"

CLEAN_EVENT: dict[str, Any] = {
    "source_id": "HL-1",
    "channel": "电话",
    "category_code": "SR01",
    "source_category": "0101 占道经营",
    "status": "closed",
    "source_status": "已回访",
    "division_code": "211103",
    "street_code": STREET,
    "grid_code": GRID_CODE,
    "longitude": 122.07,
    "latitude": 41.12,
    "reported_at": t(50),
    "accepted_at": t(49),
    "dispatched_at": t(48),
    "resolved_at": t(30),
    "closed_at": t(20),
    "deadline_at": t(-70),
    "satisfaction": "满意",
    "reporter_phone": "13800138000",
    "reporter_id_number": GOOD_ID,
    "source_updated_at": t(1),
}


def events(*overrides: dict[str, Any]) -> pa.Table:
    rows = [{**CLEAN_EVENT, "source_id": f"HL-{i}", **o} for i, o in enumerate(overrides)]
    return conformed_table(EVENT, rows)


def findings_of(table: pa.Table, entity=EVENT, ctx: RuleContext = CTX) -> list[dict[str, Any]]:
    return evaluate(entity, table, ctx).findings.to_pylist()


def only_finding(table: pa.Table, entity=EVENT, ctx: RuleContext = CTX) -> dict[str, Any]:
    found = findings_of(table, entity, ctx)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- the clean row


def test_clean_event_passes_every_rule():
    ev = evaluate(EVENT, events({}), CTX)
    assert ev.findings.num_rows == 0
    assert not ev.blocking_failed.any()
    assert {r.rule for r in ev.results} == {r.name for r in applied_rules(EVENT)}
    assert all(r.failed == 0 for r in ev.results)
    assert all(r.evaluated == 1 for r in ev.results)


# ---------------------------------------------------------------- each rule, each way to fail

CASES = [
    # (overrides, rule, severity, text the reason must contain)
    ({"channel": None}, "required_present:channel", "blocking",
     "必填字段 channel 缺失 / required field channel is missing"),
    ({"channel": " \u3000"}, "required_present:channel", "blocking", "channel is missing"),
    ({"source_updated_at": None}, "required_present:source_updated_at", "blocking",
     "source_updated_at"),
    ({"reporter_id_number": "211103199003071234"}, "citizen_id_valid", "warning",
     "公民身份号码校验位错误 / bad check digit: 211103********1234"),
    ({"reporter_id_number": "21110319900307123"}, "citizen_id_valid", "warning",
     "malformed ID number: 211103*******7123"),
    ({"reporter_id_number": GOOD_ID[:-1] + "x"}, "citizen_id_valid", "warning", "malformed"),
    ({"reporter_id_number": valid_id("21110319900230123")}, "citizen_id_valid", "warning",
     "invalid birth date"),
    ({"reporter_id_number": valid_id("21110320991231123")}, "citizen_id_valid", "warning",
     "invalid birth date"),
    ({"reporter_id_number": valid_id("21110318991231123")}, "citizen_id_valid", "warning",
     "invalid birth date"),
    ({"reporter_phone": "1380013800"}, "phone_format", "warning",
     "电话号码格式错误 / not a mainland mobile or landline number: 138***3800"),
    ({"reporter_phone": "12800138000"}, "phone_format", "warning", "128****8000"),
    ({"reporter_phone": "8613800138000"}, "phone_format", "warning", "861******8000"),
    ({"reporter_phone": "0427-2812345"}, "phone_format", "warning", "not a mainland"),
    ({"reporter_phone": "00427281234"}, "phone_format", "warning", "not a mainland"),
    ({"division_code": "211121"}, "division_code_known", "warning",
     "已撤销的区划代码 211121（现 211104）/ retired code 211121, now 211104"),
    ({"division_code": "219999"}, "division_code_known", "warning",
     "未知的区划代码 / unknown division code: 219999"),
    ({"street_code": "211103999"}, "street_code_known", "warning",
     "unknown street code: 211103999"),
    ({"grid_code": "211103001999999"}, "grid_code_known", "warning",
     "unknown grid code: 211103001999999"),
    ({"longitude": 0.0, "latitude": 0.0}, "coordinates_in_city", "warning",
     "坐标为 (0, 0) / coordinates at (0, 0)"),
    ({"longitude": 41.12, "latitude": 122.07}, "coordinates_in_city", "warning",
     "longitude and latitude swapped: (41.12, 122.07)"),
    ({"longitude": 116.4, "latitude": 39.9}, "coordinates_in_city", "warning",
     "outside the city extent: (116.4, 39.9)"),
    ({"latitude": None}, "coordinates_in_city", "warning",
     "only one of longitude and latitude: (122.07, NULL)"),
    ({"longitude": float("nan")}, "coordinates_in_city", "warning", "only one of"),
    ({"category_code": "unmapped"}, "category_mapped", "warning",
     "平台分类未映射 / category not mapped: 0101 占道经营"),
    ({"category_code": "ZZ99"}, "category_mapped", "warning", "not a hub category code: ZZ99"),
    ({"status": "unmapped", "satisfaction": None}, "status_mapped", "warning",
     "status not mapped: 已回访"),
    ({"status": "done", "satisfaction": None}, "status_mapped", "warning",
     "not a hub status: done"),
    ({"deadline_at": t(49.5)}, "deadline_after_accept", "warning",
     "办理时限早于受理时间 / deadline before acceptance"),
    ({"status": "resolved", "closed_at": None}, "satisfaction_only_if_evaluated", "warning",
     "satisfaction on an event that is not closed: 满意 (status resolved)"),
]


@pytest.mark.parametrize(("overrides", "rule", "severity", "reason"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_variant_fails_with_reason(overrides, rule, severity, reason):
    table = events({}, overrides)  # a clean row first: it must stay clean
    ev = evaluate(EVENT, table, CTX)
    found = ev.findings.to_pylist()
    assert [f["row_index"] for f in found] == [1], found
    assert (found[0]["rule"], found[0]["severity"]) == (rule, severity)
    assert reason in found[0]["reason"]
    assert ev.blocking_failed.tolist() == [False, severity == "blocking"]
    assert ev.result(rule).failed == 1


def test_times_in_the_future_are_blocking_with_a_tolerance():
    soon = NOW + FUTURE_TOLERANCE - timedelta(seconds=1)
    late = NOW + timedelta(hours=8)
    table = events({"source_updated_at": soon, "closed_at": soon},
                   {"closed_at": late, "satisfaction": "满意"})
    found = findings_of(table)
    assert [(f["row_index"], f["rule"]) for f in found] == [(1, "not_in_future")]
    assert found[0]["reason"] == (
        f"closed_at 晚于当前时间 / closed_at is in the future: "
        f"{(late + timedelta(hours=8)).strftime('%Y-%m-%d %H:%M:%S')}"
    )
    assert found[0]["severity"] == "blocking"


def test_dates_and_reasons_follow_the_city_time_zone():
    late = datetime(2026, 11, 24, 17, 30, tzinfo=UTC)  # 01:30 the next day in Beijing
    table = events({"closed_at": late})
    now = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # the 22nd in Beijing, the 21st in Ürümqi
    urumqi = replace(CTX, now=now, timezone="Asia/Urumqi")
    assert replace(CTX, now=now).today == date(2026, 11, 22)
    assert urumqi.today == date(2026, 11, 21)
    assert RuleContext.from_reference("2111", PANJIN_EXTENT, now, timezone="Asia/Urumqi") \
        .today == date(2026, 11, 21)
    assert only_finding(table)["reason"].endswith("2026-11-25 01:30:00")
    future = [f for f in findings_of(table, ctx=urumqi) if f["rule"] == "not_in_future"]
    assert future[0]["reason"].endswith("2026-11-24 23:30:00")
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/City'"):
        replace(CTX, timezone="Nowhere/City")


def test_lifecycle_out_of_order_names_both_steps():
    table = events(
        {"resolved_at": t(49.5)},  # resolved before dispatched (and accepted)
        {"reported_at": t(48.5)},  # reported after accepted
        {"dispatched_at": None, "resolved_at": t(48.9)},  # missing step skipped
        {"accepted_at": None, "dispatched_at": None, "resolved_at": None},
    )
    found = findings_of(table)
    assert [(f["row_index"], f["rule"]) for f in found] == [
        (0, "lifecycle_order"), (1, "lifecycle_order")]
    assert "resolved_at 早于 dispatched_at / resolved_at before dispatched_at" in found[0]["reason"]
    assert "accepted_at 早于 reported_at" in found[1]["reason"]
    assert all(f["severity"] == "blocking" for f in found)


def test_satisfaction_rules():
    table = events({"status": "resolved", "closed_at": None, "satisfaction": "未评价"},
                   {"status": "resolved", "closed_at": None, "satisfaction": None},
                   {"satisfaction": "不满意"})
    assert findings_of(table) == []
    ev = evaluate(EVENT, table, CTX)
    assert ev.result("satisfaction_only_if_evaluated").evaluated == 2


def test_every_record_under_a_repeated_source_key_is_quarantined():
    # Re-reads and superseded versions are dropped before validation: two rows under
    # one key here are different records, and the hub does not guess which is right.
    table = events({"source_id": "A"}, {"source_id": "B"}, {"source_id": "A"},
                   {"source_id": "A"}, {"source_id": "C"})
    ev = evaluate(EVENT, table, CTX)
    found = ev.findings.to_pylist()
    assert [(f["row_index"], f["rule"]) for f in found] == [
        (0, "source_key_unique"), (2, "source_key_unique"), (3, "source_key_unique")]
    assert all(f["severity"] == "blocking" for f in found)
    assert found[0]["reason"] == (
        "同一批次内同一源记录键有多条不同记录，全部隔离 / two or more different records under"
        " one source key in this batch; all are quarantined: A")
    assert ev.blocking_failed.tolist() == [True, False, True, True, False]
    assert ev.result("source_key_unique").failed == 3


def test_keys_the_snapshot_holds_twice_are_quarantined_in_every_batch():
    # "B" occurs once in this batch, but the file snapshot holds another, different
    # record under it (in another batch): both go to quarantine, wherever they fall.
    ctx = replace(CTX, conflicting_keys=frozenset({"B", "Z"}))
    table = events({"source_id": "A"}, {"source_id": "B"}, {"source_id": "A"},
                   {"source_id": "C"})
    ev = evaluate(EVENT, table, ctx)
    found = {f["row_index"]: f["reason"] for f in ev.findings.to_pylist()}
    assert sorted(found) == [0, 1, 2]
    assert "in this batch; all are quarantined: A" in found[0]
    assert found[1] == (
        "同一快照内同一源记录键有多条不同记录（可能在其他批次），全部隔离 / the snapshot holds two"
        " or more different records under this source key (possibly in other batches);"
        " all are quarantined: B")
    assert ev.blocking_failed.tolist() == [True, True, True, False]
    # The default context knows no conflicts.
    assert CTX.conflicting_keys == frozenset()
    assert not evaluate(EVENT, events({"source_id": "B"}), CTX).blocking_failed.any()


def test_unique_keys_match_pandas_on_long_and_colliding_keys():
    import pandas as pd

    rng = random.Random(7)
    pool = ["x" * 70 + str(i) for i in range(50)] + ["", "a", "ab", "abcdefgh", "abcdefghi"]
    keys = [rng.choice(pool) for _ in range(3000)] + [None, None] + ["once", "conflict"]
    codes = checks.unique_keys(pa.array(keys), frozenset({"conflict", "a"}))
    s = pd.Series(keys)
    repeated = s.duplicated(keep=False) & s.notna() & (s != "")
    assert ((codes == 1) == repeated.to_numpy()).all()
    assert ((codes == 2) == (s == "conflict").to_numpy()).all()
    assert (codes[-4:-2] == checks.NOT_EVALUATED).all()


def test_coordinates_both_missing_is_not_evaluated():
    ev = evaluate(EVENT, events({"longitude": None, "latitude": None}), CTX)
    assert ev.findings.num_rows == 0
    assert ev.result("coordinates_in_city").evaluated == 0


def test_grid_rule_skipped_without_grids():
    ctx = panjin_context(with_grids=False)
    ev = evaluate(EVENT, events({"grid_code": "nonsense"}), ctx)
    result = ev.result("grid_code_known")
    assert (result.evaluated, result.failed) == (0, 0)
    assert ev.findings.num_rows == 0


def test_the_headline_is_the_first_blocking_rule_of_each_row():
    table = events(
        {"division_code": "211121"},  # warning only
        {"channel": None, "source_updated_at": None, "resolved_at": t(49.5)},
        {"closed_at": NOW + timedelta(days=2)},
    )
    ev = evaluate(EVENT, table, CTX)
    assert ev.blocking_failed.tolist() == [False, True, True]
    rules, reasons = validate(EVENT, table, CTX).headline()
    assert rules == ["required_present:channel", "not_in_future"]
    assert "channel" in reasons[0]
    # and findings keep every failure, ordered by row then rule
    assert [f["rule"] for f in ev.findings.to_pylist() if f["row_index"] == 1] == [
        "required_present:channel", "required_present:source_updated_at", "lifecycle_order"]


def test_empty_table():
    ev = evaluate(EVENT, conformed_table(EVENT, []), CTX)
    assert ev.blocking_failed.shape == (0,)
    assert ev.findings.schema.equals(FINDINGS_SCHEMA)
    assert ev.findings.num_rows == 0
    assert all(r.evaluated == 0 and r.failed == 0 for r in ev.results)
    rules, reasons = validate(EVENT, conformed_table(EVENT, []), CTX).headline()
    assert len(rules) == len(reasons) == 0


def test_chunked_and_sliced_input_gives_the_same_outcome():
    table = synthetic_events(3000, seed=3)
    chunked = pa.concat_tables([table.slice(0, 1000), table.slice(1000, 2000)])
    # a slice with a non-zero offset into combined buffers
    sliced = pa.concat_tables([synthetic_events(500, seed=4), table]).combine_chunks().slice(500)
    a = evaluate(EVENT, table, CTX)
    b = evaluate(EVENT, chunked, CTX)
    c = evaluate(EVENT, sliced, CTX)
    assert a.findings.equals(b.findings)
    assert a.findings.equals(c.findings)
    assert a.results == b.results == c.results


def test_reasons_never_show_personal_data_in_clear():
    table = synthetic_events(20_000, seed=5)
    ev = evaluate(EVENT, table, CTX)
    reasons = "\n".join(ev.findings["reason"].to_pylist())
    bad_ids = ev.findings.filter(
        pa.compute.equal(ev.findings["rule"], "citizen_id_valid"))["row_index"].to_pylist()
    bad_phones = ev.findings.filter(
        pa.compute.equal(ev.findings["rule"], "phone_format"))["row_index"].to_pylist()
    assert bad_ids and bad_phones
    for column, rows in (("reporter_id_number", bad_ids), ("reporter_phone", bad_phones)):
        for value in table[column].take(pa.array(rows)).to_pylist():
            assert value not in reasons


def test_synthetic_batch_has_a_realistic_failure_mix():
    ev = evaluate(EVENT, synthetic_events(50_000, seed=1), CTX)
    rows_with_findings = len(set(ev.findings["row_index"].to_pylist()))
    assert 0.03 < rows_with_findings / 50_000 < 0.08
    assert {r.rule for r in ev.results if r.failed} >= {
        "source_key_unique", "citizen_id_valid", "phone_format", "division_code_known",
        "coordinates_in_city", "not_in_future", "lifecycle_order", "category_mapped"}


# ---------------------------------------------------------------- other entities


def test_unit_grid_codes():
    rows = [
        {"source_id": "g1", "grid_code": "211103001001001", "grid_type": "单元"},
        {"source_id": "g2", "grid_code": "21110300100100", "grid_type": "单元"},
        {"source_id": "g3", "grid_code": "2111030010010", "grid_type": "单元"},
        {"source_id": "g4", "grid_code": "21110300100100A", "grid_type": "单元"},
        {"source_id": "g5", "grid_code": "兴隆台-03", "grid_type": "综合"},
        {"source_id": "g6", "grid_code": "2111030010010", "grid_type": "专属",
         "worker_phone": "13912345678"},
    ]
    square = "POLYGON ((122 41, 122.01 41, 122.01 41.01, 122 41.01, 122 41))"  # ~0.93 km²
    rows = [{**r, "boundary_wkt": square} for r in rows]
    found = findings_of(conformed_table(GRID, rows), GRID)
    assert [(f["row_index"], f["rule"]) for f in found] == [
        (2, "unit_grid_code_format"), (3, "unit_grid_code_format")]
    assert "unit grid code must be 14 or 15 digits: 2111030010010" in found[0]["reason"]


def test_thing_codes():
    rows = [
        ("component", "2111030101000001", None),
        ("component", "21110301010000001", None),
        ("component", "2111210101000001", None),  # retired county prefix still identifies it
        ("component", "211103010100001", "component code must be 16 or 17 digits"),
        ("component", "9999990101000001", "does not start with a division code"),
        ("camera", "21110300001310000001", None),
        ("camera", "21110300001320000001", None),
        ("nvr", "21110300001180000001", None),
        ("camera", "21110300001180000001", "type digits do not match camera"),
        ("nvr", "21110300001310000001", "type digits do not match nvr"),
        ("camera", "2111030000131000001", "device id must be 20 digits"),
        ("sensor", "whatever", None),
    ]
    table = conformed_table(THING, [
        {"source_id": str(i), "thing_type": k, "thing_code": c} for i, (k, c, _) in enumerate(rows)])
    found = {f["row_index"]: f for f in findings_of(table, THING)}
    for i, (_, _, reason) in enumerate(rows):
        if reason is None:
            assert i not in found
        else:
            assert found[i]["rule"] == "thing_code_format"
            assert reason in found[i]["reason"]


def test_uscc():
    n2 = "N2" + "211103" + "MA0ABCD31"
    n2 += uscc.calc_check_digit(n2)
    rows = [GOOD_USCC, GOOD_USCC[:-1] + "C", GOOD_USCC[:-1], "91110000802100433I", n2, None]
    table = conformed_table(ORGANIZATION, [
        {"source_id": str(i), "org_name": "x", "uscc": v} for i, v in enumerate(rows)])
    found = findings_of(table, ORGANIZATION)
    assert [(f["row_index"], f["rule"]) for f in found] == [(1, "uscc_valid"), (2, "uscc_valid"),
                                                             (3, "uscc_valid")]
    assert "bad check character: 91110000802100433C" in found[0]["reason"]
    assert "malformed credit code" in found[1]["reason"]
    assert not uscc.is_valid(n2)  # stdnum wants digits in positions 1-2; GB 32100 does not


def test_person_rules_and_masking():
    table = conformed_table(PERSON, [
        {"source_id": "p1", "role": "resident", "id_number": GOOD_ID, "phone": "02488888888"},
        {"source_id": "p2", "role": "resident", "id_number": GOOD_ID[:-1] + "5",
         "phone": "139123456"},
        {"source_id": "p3", "role": None},
    ])
    found = findings_of(table, PERSON)
    assert [(f["row_index"], f["rule"]) for f in found] == [
        (1, "citizen_id_valid"), (1, "phone_format"), (2, "required_present:role")]
    assert GOOD_ID[:-1] not in found[0]["reason"]
    assert "139**3456" in found[1]["reason"]


# ---------------------------------------------------------------- oracle: python-stdnum


def _ric_oracle(number: str) -> bool:
    """stdnum.cn.ric, minus its birth-place lookup (places are division_code_known's job)."""
    try:
        ric.validate(number)
        return True
    except stdnum_errors.InvalidComponent:
        try:
            ric.get_birth_date(number)
        except stdnum_errors.InvalidComponent:
            return False
        return True
    except stdnum_errors.ValidationError:
        return False


def _corrupt(rng: random.Random, value: str, alphabet: str) -> str:
    kind = rng.randrange(4)
    chars = list(value)
    if kind == 0:  # one character changed
        i = rng.randrange(len(chars))
        chars[i] = rng.choice([c for c in alphabet if c != chars[i]])
    elif kind == 1:  # two neighbours swapped
        i = rng.randrange(len(chars) - 1)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    elif kind == 2:  # one dropped or one added
        i = rng.randrange(len(chars))
        if rng.random() < 0.5:
            del chars[i]
        else:
            chars.insert(i, rng.choice(alphabet))
    else:  # random
        chars = [rng.choice(alphabet) for _ in range(len(chars))]
    return "".join(chars)


def _random_ids(rng: random.Random, count: int) -> list[str]:
    prefixes = ["211103", "211102", "110105", "320684", "440305", "510107"]
    out = []
    for _ in range(count):
        born = date(1900, 1, 1) + timedelta(days=rng.randrange(0, 125 * 365))
        body = f"{rng.choice(prefixes)}{born:%Y%m%d}{rng.randrange(1000):03d}"
        out.append(body + ric.calc_check_digit(body + "0"))
    return out


def test_citizen_id_agrees_with_stdnum():
    rng = random.Random(11643)
    valid = _random_ids(rng, 3000)
    corrupted = [_corrupt(rng, v, string.digits + "X") for v in valid]
    # calendar-invalid dates with a correct check character
    bad_dates = []
    for v in valid[:600]:
        body = v[:10] + rng.choice(["1301", "0230", "0431", "0001", "0000", "0229"]) + v[14:17]
        if body[10:14] == "0229" and int(body[6:10]) % 4 == 0:
            continue
        bad_dates.append(body + ric.calc_check_digit(body + "0"))
    numbers = valid + corrupted + bad_dates
    assert len(numbers) >= 6000
    codes = checks.citizen_id(pa.array(numbers), date(2026, 11, 22))
    ours = codes == checks.PASSED
    theirs = np.array([_ric_oracle(n) for n in numbers])
    disagree = [n for n, a, b in zip(numbers, ours, theirs, strict=True) if a != b]
    assert not disagree, disagree[:10]
    assert ours[:3000].all() and not ours[6000:].any()
    assert 0.02 < theirs[3000:6000].mean() < 0.3  # some random corruptions stay valid


def test_uscc_agrees_with_stdnum():
    rng = random.Random(32100)
    alphabet = checks.USCC_ALPHABET
    valid = []
    for _ in range(3000):
        body = (rng.choice("159") + rng.choice("1239") + "".join(rng.choices(string.digits, k=6))
                + "".join(rng.choices(alphabet, k=9)))
        valid.append(body + uscc.calc_check_digit(body))
    corrupted = [_corrupt(rng, v, alphabet + "IOSVZ") for v in valid]
    numbers = valid + corrupted
    ours = checks.uscc(pa.array(numbers)) == checks.PASSED
    theirs = np.array([uscc.is_valid(n) for n in numbers])
    # where stdnum and GB 32100 differ (letters in positions 1-2), compare on the standard
    comparable = np.array([n[:2].isdigit() for n in numbers])
    disagree = [n for n, a, b, c in zip(numbers, ours, theirs, comparable, strict=True)
                if c and a != b]
    assert not disagree, disagree[:10]
    assert ours[:3000].all()


def test_mobile_numbers_agree_with_a_regular_expression():
    import re

    rng = random.Random(3)
    values = ["".join(rng.choices(string.digits, k=rng.choice([9, 10, 11, 12, 13])))
              for _ in range(5000)]
    values += ["1" + rng.choice("3456789") + "".join(rng.choices(string.digits, k=9))
               for _ in range(1000)]
    pattern = re.compile(r"1[3-9]\d{9}|0[1-9]\d{8,10}")
    ours = checks.phone(pa.array(values)) == checks.PASSED
    theirs = np.array([bool(pattern.fullmatch(v)) for v in values])
    assert (ours == theirs).all()


def test_masks():
    ids = mask_id_number(pa.array([GOOD_ID, "12345", None])).to_pylist()
    assert ids == [GOOD_ID[:6] + "********" + GOOD_ID[-4:], "*****", None]
    phones = mask_phone(pa.array(["13800138000", "123"])).to_pylist()
    assert phones == ["138****8000", "***"]


# ---------------------------------------------------------------- definitions and context


def test_every_rule_named_in_the_model_is_defined():
    defs = definitions()
    for entity in ENTITIES:
        for rule in applied_rules(entity):
            d = rule.definition
            assert set(d.reasons) == set(rule.impl.reasons), rule.name
            assert d.severity in (Severity.BLOCKING, Severity.WARNING)
    # Every rule is checked row by row, except the cross-source ones (quality.consistency).
    assert set(RULES) == set(defs) - {TRANSFER_RULE}
    blocking = {n for n, d in defs.items() if d.severity is Severity.BLOCKING}
    assert blocking == {"required_present", "source_key_unique", "not_in_future",
                        "lifecycle_order", "boundary_valid", "boundary_in_city"}


def test_a_rules_file_names_every_rule_with_every_reason(tmp_path, monkeypatch):
    spec = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    del spec["phone_format"]["reasons"]["format"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    settings.cache_clear()
    definitions.cache_clear()
    try:
        with pytest.raises(ValueError, match="phone_format: no reason template for format"):
            definitions()
    finally:
        monkeypatch.undo()
        settings.cache_clear()
        definitions.cache_clear()


def test_context_from_reference():
    ctx = RuleContext.from_reference("2111", PANJIN_EXTENT, NOW)
    assert "211103" in ctx.division_codes and "21" in ctx.division_codes
    assert "211121" not in ctx.division_codes
    assert ctx.retired_divisions["320684"] == "320614"
    assert STREET in ctx.street_codes
    assert ctx.grid_codes is None
    assert ctx.today == date(2026, 11, 22)
    with pytest.raises(ValueError, match="timezone-aware"):
        RuleContext.from_reference("2111", PANJIN_EXTENT, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown city"):
        RuleContext.from_reference("9999", PANJIN_EXTENT, NOW)
    assert RuleContext.from_reference("2111", PANJIN_EXTENT, NOW.astimezone(UTC)).now == NOW
