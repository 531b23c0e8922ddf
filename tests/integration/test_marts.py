"""The department marts: governance figures on hand-made events, computed by hand.

The events belong to a source system of this module's own and sit in 2024, a
year no simulator produces, so the per-district view (all platforms together)
sees nothing but them.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

SOURCE = f"test_marts_{uuid.uuid4().hex[:8]}"
DISTRICT, STREET = "211103", "211103400"  # 兴隆台区 and one of its streets
ORG = "兴隆台区住房和城乡建设局"

# One week, 2024-W10 = Mon 2024-03-04 .. Sun 2024-03-10 in Beijing time.
#  id   accepted          dispatched        resolved          closed            deadline          satisfaction cluster
EVENTS: list[tuple[Any, ...]] = [
    ("E1", "03-04 09:00", "03-04 11:00", "03-05 07:00", "03-05 12:00", "03-06 09:00", "满意", "c1"),
    ("E2", "03-05 10:00", "03-05 14:00", "03-08 14:00", None, "03-07 10:00", "不满意", "c1"),
    ("E3", "03-06 08:00", "03-06 09:00", None, None, "03-09 08:00", "未评价", None),
    ("E5", "03-07 08:00", "03-07 16:00", None, "03-09 08:00", "03-10 08:00", "基本满意", None),
    ("E7", "03-08 10:00", "03-08 12:00", "03-08 18:00", None, None, None, None),
    # Monday 01:00 in Beijing is still Sunday in UTC: it belongs to the next week.
    ("E4", "03-11 01:00", None, None, None, None, None, None),
]
# By hand, for 2024-W10 (E1 E2 E3 E5 E7):
#   closed = E1 E2 E5 E7 (E5 by closed_at alone) = 4 of 5 accepted → 办结率 0.8
#   on time = E1 (07:00 ≤ 03-06) and E5 (03-09 ≤ 03-10); E2 late, E7 has no deadline → 2/4
#   evaluated = E1 E2 E5 (未评价 and empty are not) = 3, satisfied = E1 E5 → 2/3
#   response hours 2, 4, 1, 8, 2 → median 2, p90 = 4 + 0.6 × (8 − 4) = 6.4
#   handling hours E1 20, E2 72, E7 6 → median 20, p90 = 20 + 0.8 × (72 − 20) = 61.6
#   repeat: E1 and E2 share a cluster, E2 reported after E1 → 1 of 5


def _ts(day: str | None) -> str | None:
    return f"2024-{day}:00+08" if day else None


@pytest.fixture(scope="module")
def events(warehouse: str) -> str:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for no, acc, dis, res, clo, dl, sat, cluster in EVENTS:
            conn.execute(
                "INSERT INTO core.event (source_system, source_id, source_stream, valid_from,"
                " channel, category_code, source_category, status, source_status, division_code,"
                " street_code, handling_org, reported_at, accepted_at, dispatched_at, resolved_at,"
                " closed_at, deadline_at, satisfaction, cluster_key, source_updated_at)"
                " VALUES (%s, %s, 'orders', now(), '电话', 'SZ01', '110301 道路坑洼', 'accepted', '已受理',"
                " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                (SOURCE, no, DISTRICT, STREET, ORG, _ts(acc), _ts(acc), _ts(dis), _ts(res),
                 _ts(clo), _ts(dl), sat, f"{SOURCE}-{cluster}" if cluster else None),
            )
        # A superseded version must not count: only current rows do.
        conn.execute(
            "INSERT INTO core.event (source_system, source_id, valid_from, valid_to, channel,"
            " category_code, source_category, status, source_status, division_code, accepted_at,"
            " resolved_at, source_updated_at) VALUES (%s, 'E3', now() - interval '1 day', now(),"
            " '电话', 'SZ01', 'x', 'resolved', 'x', %s, %s, %s, now())",
            (SOURCE, DISTRICT, _ts("03-06 08:00"), _ts("03-06 10:00")),
        )
        # Not accepted yet, in a category no mapping covers: its week comes from reported_at.
        conn.execute(
            "INSERT INTO core.event (source_system, source_id, valid_from, channel, category_code,"
            " source_category, status, source_status, division_code, reported_at,"
            " source_updated_at) VALUES (%s, 'E8', now(), '电话', 'unmapped', '999 新分类',"
            " 'reported', '待受理', %s, %s, now())",
            (SOURCE, DISTRICT, _ts("03-20 10:00")),
        )
    return SOURCE


def one(db: psycopg.Connection, query: str, *params: object) -> dict[str, Any]:
    cur = db.execute(query, params)
    rows = cur.fetchall()
    assert len(rows) == 1, rows
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], rows[0], strict=True))


def test_weekly_figures_match_the_hand_count(db, events):
    row = one(db, "SELECT * FROM mart.governance_weekly WHERE source_system = %s"
                  " AND report_week = '2024-W10'", events)
    assert row["week_start"].isoformat() == "2024-03-04"
    assert (row["district_name"], row["handling_org"]) == ("兴隆台区", ORG)
    assert (row["category_l1_code"], row["category_l1_name"]) == ("SZ", "市政设施")
    assert (row["category_code"], row["category_name"]) == ("SZ01", "道路破损")
    counts = {k: row[k] for k in ("events", "accepted", "closed", "closed_on_time", "evaluated",
                                  "satisfied", "repeat_events")}
    assert counts == {"events": 5, "accepted": 5, "closed": 4, "closed_on_time": 2,
                      "evaluated": 3, "satisfied": 2, "repeat_events": 1}
    assert row["closure_rate"] == Decimal("0.8000")
    assert row["on_time_rate"] == Decimal("0.5000")
    assert row["satisfaction_rate"] == Decimal("0.6667")
    assert row["repeat_rate"] == Decimal("0.2000")
    assert (row["response_h_median"], row["response_h_p90"]) == (Decimal("2.00"), Decimal("6.40"))
    assert (row["handling_h_median"], row["handling_h_p90"]) == (Decimal("20.00"), Decimal("61.60"))


def test_street_name_comes_from_the_division_table(db, events):
    name = db.execute("SELECT name FROM core.division WHERE code = %s AND valid_to IS NULL",
                      (STREET,)).fetchone()
    row = one(db, "SELECT DISTINCT street_code, street_name FROM mart.event_current"
                  " WHERE source_system = %s AND street_code IS NOT NULL", events)
    assert name and row == {"street_code": STREET, "street_name": name[0]}


def test_the_week_is_beijing_time(db, events):
    row = one(db, "SELECT report_week, accepted FROM mart.governance_weekly"
                  " WHERE source_system = %s AND report_week = '2024-W11'", events)
    assert row["accepted"] == 1


def test_only_current_versions_count(db, events):
    rows = db.execute("SELECT source_id, is_closed FROM mart.event_current"
                      " WHERE source_system = %s AND source_id = 'E3'", (events,)).fetchall()
    assert rows == [("E3", False)]


def test_an_unaccepted_unmapped_event_has_no_closure_rate(db, events):
    row = one(db, "SELECT * FROM mart.governance_weekly WHERE source_system = %s"
                  " AND report_week = '2024-W12'", events)
    assert (row["category_l1_code"], row["category_code"]) == ("unmapped", "unmapped")
    assert (row["events"], row["accepted"], row["closure_rate"]) == (1, 0, None)


def test_the_district_view_rolls_up_with_the_same_definitions(db, events):
    row = one(db, "SELECT * FROM mart.governance_weekly_district WHERE report_week = '2024-W10'"
                  " AND division_code = %s", DISTRICT)
    assert (row["accepted"], row["closed"], row["closure_rate"]) == (5, 4, Decimal("0.8000"))
    assert row["response_h_p90"] == Decimal("6.40")


def test_marts_state_their_grain_and_document_their_columns(db, events):
    for view in ("mart.event_current", "mart.governance_weekly", "mart.governance_weekly_district"):
        comment = db.execute("SELECT obj_description(%s::regclass)", (view,)).fetchone()[0]
        assert comment and "Grain:" in comment, view
    undocumented = db.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'mart.governance_weekly'::regclass"
        " AND a.attnum > 0 AND a.attname NOT IN ('week_start', 'division_code', 'district_name',"
        " 'street_code', 'street_name', 'handling_org', 'category_l1_code', 'category_l1_name',"
        " 'category_code', 'category_name', 'source_system')"
        " AND col_description(a.attrelid, a.attnum) IS NULL").fetchall()
    assert undocumented == []


# ------------------------------------------------- the figures, declared once

# What only the figures' definition writes: the rate formulas, the percentiles, the counts.
FIGURE_TEXT = ("NULLIF(count(*) FILTER", "FILTER (WHERE", "percentile_cont(", "round(")


def test_the_figures_are_declared_once(db, events):
    definitions = dict(db.execute(
        "SELECT schemaname || '.' || viewname, definition FROM pg_views WHERE schemaname = 'mart'"
        " UNION ALL SELECT n.nspname || '.' || p.proname, pg_get_functiondef(p.oid)"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'mart' AND p.prokind = 'f'").fetchall())
    assert {"mart.governance_weekly", "mart.governance_weekly_district"} <= set(definitions)
    for text in FIGURE_TEXT:
        holding = {name for name, sql in definitions.items() if text in sql}
        assert holding == {"mart.governance_figures"}, (text, holding)
    for view in ("mart.governance_weekly", "mart.governance_weekly_district"):
        assert "mart.governance_figures(" in definitions[view], view


def test_both_views_keep_their_columns(db, events):
    columns = {view: [r[0] for r in db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " ORDER BY attnum", (view,))]
        for view in ("mart.governance_weekly", "mart.governance_weekly_district")}
    figures = ["events", "accepted", "closed", "closed_on_time", "evaluated", "satisfied",
               "repeat_events", "closure_rate", "on_time_rate", "satisfaction_rate",
               "repeat_rate", "response_h_median", "response_h_p90", "handling_h_median",
               "handling_h_p90"]
    # 0012 appended 响应率 and 解决率 with their counts, and the overdue open events.
    appended = ["response_due", "responded_on_time", "return_called", "solved", "overdue_open",
                "response_rate", "solution_rate"]
    assert columns["mart.governance_weekly_district"] == [
        "report_week", "week_start", "division_code", "district_name", *figures, *appended]
    assert columns["mart.governance_weekly"] == [
        "report_week", "week_start", "division_code", "district_name", "street_code",
        "street_name", "handling_org", "category_l1_code", "category_l1_name", "category_code",
        "category_name", "source_system", *figures, *appended]
