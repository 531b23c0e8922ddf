"""响应率, 解决率, overdue open events and the weekly 考核 table per handling organization,
on hand-made events counted by hand; and the 12345 fields they come from.

The events sit in 2022-W20 (Mon 2022-05-16 .. Sun 2022-05-22, Beijing time), a week no
simulator and no other test produces, under organizations named for this module only.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from base.settings import CityConfig, ReportConfig, ResponseLimits
from conform.hotline12345 import Hotline12345Conformer
from warehouse.db import Role, connect
from warehouse.migrate import record_city_settings

SOURCE = f"test_resp_{uuid.uuid4().hex[:8]}"
TAG = uuid.uuid4().hex[:6]
ORG_A, ORG_B, ORG_C = f"甲局{TAG}", f"乙局{TAG}", f"丙局{TAG}"
DISTRICT = "211102"  # 双台子区
WEEK = "2022-W20"
CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
# A deadline no clock of the test runs reaches: open events with it are not overdue.
LATER = "2099-01-01 00:00"

#  id   org    urgent accepted       first contact  dispatched     resolved       deadline       solved sat.    status
EVENTS: list[tuple[Any, ...]] = [
    # 1 h after acceptance: in time for an urgent event (2 h).
    ("A1", ORG_A, True, "05-16 09:00", "05-16 10:00", "05-16 12:00", "05-16 15:00", "05-17 09:00",
     True, "满意", "closed"),
    # No first contact: dispatch 3 h after acceptance is late for an urgent event.
    ("A2", ORG_A, True, "05-16 09:00", None, "05-16 12:00", "05-19 09:00", "05-17 09:00",
     False, "不满意", "closed"),
    # 23 h: in time for a normal event (24 h).
    ("A3", ORG_A, False, "05-17 08:00", "05-18 07:00", "05-17 09:00", None, LATER,
     None, None, "in_progress"),
    # The first contact (25 h) counts, not the earlier dispatch: late. Urgency unknown = normal.
    ("A4", ORG_A, None, "05-17 08:00", "05-18 09:00", "05-17 09:00", None, LATER,
     True, None, "in_progress"),
    # Never responded, long past its limit and its deadline: due, late, overdue and open.
    ("A5", ORG_A, False, "05-18 08:00", None, None, None, "05-20 08:00", None, None, "accepted"),
    # Cancelled: past its deadline but not overdue; due and not responded.
    ("A6", ORG_A, False, "05-18 08:00", None, None, None, "05-20 08:00", None, None, "cancelled"),
    # One event, everything perfect: a small organization.
    ("C1", ORG_C, False, "05-19 08:00", "05-19 09:00", "05-19 09:00", "05-19 12:00", "05-20 08:00",
     True, "满意", "closed"),
] + [
    # Twelve events, each contacted within the hour: not small.
    (f"B{i}", ORG_B, False, "05-20 08:00", "05-20 08:30", None, None, LATER, None, None,
     "accepted") for i in range(12)
]
# By hand, 甲局 (A1–A6):
#   response due = A1–A6 (all accepted, each responded or past its limit) = 6
#   responded on time = A1, A3 = 2 → 响应率 0.3333
#   return called = A1 A2 A4 = 3, solved = A1 A4 = 2 → 解决率 0.6667
#   closed = A1 A2, on time = A1 → 按期办结率 0.5; rated A1 A2, satisfied A1 → 满意率 0.5
#   overdue open = A5 (A6 is cancelled; A3, A4 have a deadline yet to come) = 1
#   考核得分 = (0.3333 + 0.5 + 0.6667 + 0.5) / 4 = 0.5
# 乙局: 12 accepted, 12 responded on time → 响应率 1, the only rate → 考核得分 1
# 丙局: every rate 1 → 考核得分 1, but 1 accepted event (< 10): ranked after 乙局.


def _ts(day: str | None) -> str | None:
    if day and day.startswith("20"):
        return f"{day}:00+08"
    return f"2022-{day}:00+08" if day else None


@pytest.fixture(scope="module")
def events(warehouse: str) -> str:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for no, org, urgent, acc, contact, dis, res, dl, solved, sat, status in EVENTS:
            conn.execute(
                "INSERT INTO core.event (source_system, source_id, source_stream, valid_from,"
                " channel, category_code, source_category, status, source_status, division_code,"
                " handling_org, is_urgent, reported_at, accepted_at, first_contact_at,"
                " dispatched_at, resolved_at, deadline_at, is_solved, satisfaction,"
                " source_updated_at) VALUES (%s, %s, 'workorders', now(), '电话', 'SZ01',"
                " '110301 道路坑洼', %s, 'x', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                (SOURCE, no, status, DISTRICT, org, urgent, _ts(acc), _ts(acc), _ts(contact),
                 _ts(dis), _ts(res), _ts(dl), solved, sat))
        # Reported, not accepted: no response is due yet.
        conn.execute(
            "INSERT INTO core.event (source_system, source_id, valid_from, channel, category_code,"
            " source_category, status, source_status, division_code, handling_org, reported_at,"
            " deadline_at, source_updated_at) VALUES (%s, 'A7', now(), '电话', 'SZ01', 'x',"
            " 'reported', 'x', %s, %s, %s, %s, now())",
            (SOURCE, DISTRICT, ORG_A, _ts("05-18 08:00"), _ts("05-19 08:00")))
    return SOURCE


def rows(db: psycopg.Connection, query: str, *params: object) -> list[dict[str, Any]]:
    cur = db.execute(query, params)
    assert cur.description is not None
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_per_event_response_flags(db, events):
    got = {r["source_id"]: r for r in rows(
        db, "SELECT source_id, responded_at, response_limit_h, is_response_due,"
            " is_responded_on_time, is_return_called, is_solved, is_overdue_open"
            " FROM mart.event_current WHERE source_system = %s", events)}
    assert {k: float(v["response_limit_h"]) for k, v in got.items() if k.startswith("A")} == {
        "A1": 2.0, "A2": 2.0, "A3": 24.0, "A4": 24.0, "A5": 24.0, "A6": 24.0, "A7": 24.0}
    assert {k for k, v in got.items() if v["is_responded_on_time"]} == {
        "A1", "A3", "C1", *(f"B{i}" for i in range(12))}
    assert {k for k, v in got.items() if not v["is_response_due"]} == {"A7"}
    assert {k for k, v in got.items() if v["is_return_called"]} == {"A1", "A2", "A4", "C1"}
    assert {k for k, v in got.items() if v["is_overdue_open"]} == {"A5"}
    # The first contact where sent, else the dispatch.
    assert got["A4"]["responded_at"].isoformat() == "2022-05-18T01:00:00+00:00"
    assert got["A2"]["responded_at"].isoformat() == "2022-05-16T04:00:00+00:00"


def test_weekly_response_and_solution_rates(db, events):
    [row] = rows(db, "SELECT * FROM mart.governance_weekly WHERE source_system = %s"
                     " AND report_week = %s AND handling_org = %s", events, WEEK, ORG_A)
    assert {k: row[k] for k in ("accepted", "response_due", "responded_on_time", "return_called",
                                "solved", "overdue_open")} == {
        "accepted": 6, "response_due": 6, "responded_on_time": 2, "return_called": 3,
        "solved": 2, "overdue_open": 1}
    assert (row["response_rate"], row["solution_rate"]) == (Decimal("0.3333"), Decimal("0.6667"))
    [district] = rows(db, "SELECT * FROM mart.governance_weekly_district WHERE report_week = %s"
                          " AND division_code = %s", WEEK, DISTRICT)
    assert (district["response_due"], district["responded_on_time"]) == (19, 15)
    assert (district["return_called"], district["solved"]) == (4, 3)


def test_assessment_ranks_organizations_and_marks_small_ones(db, events):
    got = {r["handling_org"]: r for r in rows(
        db, "SELECT * FROM mart.assessment_weekly WHERE report_week = %s"
            " AND handling_org = ANY(%s)", WEEK, [ORG_A, ORG_B, ORG_C])}
    a, b, c = got[ORG_A], got[ORG_B], got[ORG_C]
    assert (a["accepted"], a["response_rate"], a["on_time_rate"], a["solution_rate"],
            a["satisfaction_rate"], a["overdue_open"]) == (
        6, Decimal("0.3333"), Decimal("0.5000"), Decimal("0.6667"), Decimal("0.5000"), 1)
    assert (a["assessment_score"], b["assessment_score"], c["assessment_score"]) == (
        Decimal("0.5000"), Decimal("1.0000"), Decimal("1.0000"))
    assert (a["is_small"], b["is_small"], c["is_small"]) == (True, False, True)
    # 丙局 scores as well as 乙局 from one event: it ranks after every organization that is
    # not small, and before the small one that scores less.
    assert b["rank_in_week"] < c["rank_in_week"] < a["rank_in_week"]


def test_the_limits_are_the_city_s(db, events):
    def response_rate() -> Decimal:
        return rows(db, "SELECT response_rate FROM mart.assessment_weekly WHERE report_week = %s"
                        " AND handling_org = %s", WEEK, ORG_A)[0]["response_rate"]

    looser = CITY.model_copy(update={"response_limits": ResponseLimits(urgent_hours=3,
                                                                       normal_hours=26),
                                     "report": ReportConfig(min_ratings=5)})
    try:
        with connect(Role.OWNER) as conn:
            changes = record_city_settings(conn, looser)
        assert changes and "3 h (urgent)" in changes[-1]
        # A2 (3 h, urgent) and A4 (25 h) are in time now: A1 A2 A3 A4 of 6.
        assert response_rate() == Decimal("0.6667")
        assert rows(db, "SELECT is_small FROM mart.assessment_weekly WHERE report_week = %s"
                        " AND handling_org = %s", WEEK, ORG_A)[0]["is_small"] is False
        with connect(Role.OWNER) as conn:
            assert record_city_settings(conn, looser) == []  # already so: nothing written
    finally:
        with connect(Role.OWNER) as conn:
            record_city_settings(conn, CITY)
    assert response_rate() == Decimal("0.3333")


def test_readers_may_read_the_assessment(db, events):
    with connect(Role.READER) as conn:
        n = conn.execute("SELECT count(*) FROM mart.assessment_weekly WHERE report_week = %s",
                         (WEEK,)).fetchone()
    assert n and n[0] >= 3


# ------------------------------------------------------- the 12345 fields behind them

ORDER = {
    "orderNo": "HL1", "acceptTime": "2026-11-10 09:00:00", "channel": "电话", "callerName": "",
    "callerPhone": "", "callerIdNo": "", "appealType": "投诉", "categoryCode": "110101",
    "categoryName": "x", "title": "x", "content": "x", "address": "x", "districtCode": "211103",
    "streetCode": None, "longitude": None, "latitude": None, "handleDept": "兴隆台区城管局",
    "dispatchTime": "2026-11-10 10:00:00", "deadline": "2026-11-15 10:00:00",
    "finishTime": None, "status": "办理中", "satisfaction": None, "isUrgent": "false",
    "updateTime": "2026-11-10 10:00:00", "firstContactTime": None, "isSolved": None,
}


def test_the_hotline_s_first_contact_and_return_call_are_mapped():
    sent = [{"firstContactTime": "2026-11-10 09:30:00", "isSolved": "已解决"},
            {"firstContactTime": "", "isSolved": "未解决"},
            {"firstContactTime": None, "isSolved": ""},
            {"isSolved": "true"}]
    records = [{**ORDER, "orderNo": f"HL{i}", **s} for i, s in enumerate(sent)]
    raw = pa.table({k: pa.array([r[k] for r in records], pa.string()) for k in ORDER})
    conformed = Hotline12345Conformer(SimpleNamespace(), CITY).conform(raw)
    got = conformed.table.select(["first_contact_at", "is_solved"]).to_pylist()
    assert [g["is_solved"] for g in got] == [True, False, None, True]
    assert got[0]["first_contact_at"].isoformat() == "2026-11-10T01:30:00+00:00"
    assert [g["first_contact_at"] for g in got[1:]] == [None, None, None]
    assert "isSolved" not in conformed.unparseable or not conformed.unparseable["isSolved"].any()
    # A verdict that is no yes or no is a value that cannot be read, as anywhere else.
    bad = pa.table({k: pa.array([{**ORDER, "isSolved": "部分解决"}[k]], pa.string())
                    for k in ORDER})
    assert Hotline12345Conformer(SimpleNamespace(), CITY).conform(bad).unparseable[
        "isSolved"].tolist() == [True]
