"""The weekly report as people read it, on hand-made figures (no warehouse): platform
names, rates with their counts and small ones grey, the change from last week, the
考核 lists, examples that show no hash and no address below the street."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from base.settings import PROJECT_ROOT, load_city, load_sources
from quality.report import payload_excerpt, platform_names, render, shown_key, shown_reason
from quality.report_data import Assessment, CitySettings, ReportData, Trend, Week
from tests.support.sources import write_sources_file

HASH = "3da8af4fc4e9d864cc7ef551b381443561b0689abdcdff815becbde988285b70"


def test_the_shipped_sources_file_names_every_platform_in_chinese():
    sources = load_sources(PROJECT_ROOT / "sources.yaml").sources
    assert {s.label for s in sources.values()} == {
        "网格化服务管理平台", "12345热线", "数字城管", "雪亮工程", "综治"}
    city = load_city(PROJECT_ROOT / "sources.yaml")
    assert (city.response_limits.urgent_hours, city.response_limits.normal_hours,
            city.report.min_ratings) == (2, 24, 10)


def test_platform_names(tmp_path: Path):
    config = write_sources_file(tmp_path / "s.yaml", {
        "hl_a": {"connector": "hotline12345"},
        "hl_b": {"connector": "hotline12345"},
        "dcm": {"connector": "citymgmt", "display_name": "盘锦数字城管"},
    })
    names = platform_names(["hl_a", "hl_b", "dcm", "vid", "other"],
                           {"vid": "video", "other": "somewhere"}, config)
    assert names == {"hl_a": "12345热线（hl_a）", "hl_b": "12345热线（hl_b）", "dcm": "盘锦数字城管",
                     "vid": "雪亮工程", "other": "other"}
    # Without a readable sources file the connectors still name them.
    assert platform_names(["vid"], {"vid": "video"}, tmp_path / "none.yaml") == {"vid": "雪亮工程"}


def test_examples_show_references_not_hashes():
    key = f"resident:{HASH}"
    ref = "resident:hkpqgmnrjkab"
    assert shown_key(key, ref, "person") == ref
    assert shown_key("211102001001001", "211102001001001", "grid") == "211102001001001"
    assert shown_key("211103199001011234", "211103199001011234", "person") == "211103********1234"
    reason = f"two or more different records under one source key: {key}"
    assert shown_reason(reason, key, ref) == f"two or more different records under one source key: {ref}"
    # The key as recorded with digits of the hash masked, and another record's hash.
    masked = "resident:bd4b32556166f1cd6d5e8ba87fb752005*****0631c3a0633d42ef6e52b2d280"
    assert shown_reason(f"dup of {masked}", key, ref) == "dup of （散列键）"


def test_examples_mask_addresses_whatever_their_key():
    shown = dict(payload_excerpt({
        "位置": "盘锦市兴隆台区兴隆街道幸福小区3号楼2单元501室",
        "residentKey": f"resident:{HASH}",
        "现住址": "辽宁省盘锦市双台子区胜利街道建设路12号",
        "categoryName": "110301 道路坑洼",
    }))
    assert shown == {"位置": "盘锦市兴隆台区兴隆街道***", "现住址": "辽宁省盘锦市双台子区胜利街道***",
                     "categoryName": "110301 道路坑洼"}


def _org(name: str, rank: int, score: float | None, small: bool = False,
         **figures: Any) -> dict[str, Any]:
    return {"handling_org": name, "rank_in_week": rank, "is_small": small,
            "assessment_score": None if score is None else Decimal(str(score)),
            "accepted": 3 if small else 40, "response_rate": Decimal("0.9"), "response_due": 40,
            "on_time_rate": None, "closed": 0, "solution_rate": Decimal("0.5"),
            "return_called": 4, "satisfaction_rate": Decimal("1"), "evaluated": 12,
            "overdue_open": 2, **figures}


def test_the_assessment_lists():
    rows = [_org(f"单位{i:02d}", i, 1 - i / 100) for i in range(1, 26)]
    rows.append(_org("小单位", 26, 1.0, small=True))
    before = {r["handling_org"]: {**r, "assessment_score": Decimal("0.9")} for r in rows}
    before["单位01"] = {**rows[0], "assessment_score": Decimal("0.5")}  # it rose
    before["小单位"] = {**rows[-1], "is_small": True, "assessment_score": Decimal("1")}
    a = Assessment(rows, before)
    assert [r["handling_org"] for r in a.best] == [f"单位{i:02d}" for i in range(1, 11)]
    assert [r["handling_org"] for r in a.worst] == [f"单位{i:02d}" for i in range(25, 15, -1)]
    assert [r["handling_org"] for r in a.small] == ["小单位"]
    assert a.fallen[0]["handling_org"] == "单位25"  # 0.75 from 0.9: the largest fall
    assert "单位01" not in [r["handling_org"] for r in a.fallen]
    assert a.change(rows[0]) == pytest.approx(0.49)
    few = Assessment(rows[:12], {})
    assert len(few.best) == 10 and [r["rank_in_week"] for r in few.worst] == [12, 11]


def _data(week: Week, **changes: Any) -> ReportData:
    days = week.days
    data = ReportData(
        week=week, as_of=week.end, sources=["hl", "vid"],
        scores={"hl": {"完整性": {"score": 0.999, "previous": None, "delta": None,
                                  "evaluated": 1000, "failed": 1},
                       "有效性": {"score": 0.98, "previous": 0.99, "delta": -0.01,
                                  "evaluated": 1000, "failed": 20}}},
        daily_volume={"hl": {days[0]: 50, days[1]: 60}}, freshness=[], reconciliation=[],
        bad_runs=[], rejected_files=[], top_rules=[], unmapped=[], unknown_codes=[],
        grids_loaded=True, quarantine=[], quarantine_open_by_rule=[],
        districts=[{"district_name": "兴隆台区", "division_code": "211103", "events": 110,
                    "accepted": 100, "closed": 80, "closed_on_time": 70, "evaluated": 3,
                    "satisfied": 3, "repeat_events": 0, "closure_rate": Decimal("0.8"),
                    "on_time_rate": Decimal("0.875"), "satisfaction_rate": Decimal("1"),
                    "repeat_rate": Decimal("0"), "response_h_median": None,
                    "response_h_p90": None, "handling_h_median": None, "handling_h_p90": None,
                    "response_due": 90, "responded_on_time": 81, "return_called": 0,
                    "solved": 0, "overdue_open": 4, "response_rate": Decimal("0.9"),
                    "solution_rate": None}],
        daily_alarms={"vid": {days[0]: 1000}}, connectors={"hl": "hotline12345", "vid": "video"},
        trend=Trend([f"2026-W{n}" for n in range(40, 48)], {"hl": [None] * 6 + [0.99, 0.98]},
                    {"hl": [0] * 6 + [100, 110]}),
        assessment=Assessment([_org("兴隆台区城管局", 1, 0.8)], {}),
        city=CitySettings(2, 24, 10))
    for k, v in changes.items():
        setattr(data, k, v)
    return data


def test_the_page_names_platforms_greys_small_rates_and_shows_changes(tmp_path: Path):
    week = Week.parse("2026-W47", "Asia/Shanghai")
    config = write_sources_file(tmp_path / "s.yaml", {"hl": {"connector": "hotline12345"}})
    html = render(_data(week), datetime(2026, 11, 23, tzinfo=UTC), config)
    assert '<span class="nowrap">12345热线</span>' in html
    assert '<span class="nowrap">雪亮工程</span> · 机器告警' in html
    assert "上周无数据" in html and "▼ 1.0 个百分点" in html
    # 满意率 from 3 ratings: grey; 响应率 from 90 and 按期办结率 from 80: not.
    assert re.search(r'<span class="small"[^>]*>100\.0%</span><span class="cnt">（3）', html)
    assert '<span class="">90.0%</span><span class="cnt">（90）' in html
    assert '<span class="">87.5%</span><span class="cnt">（80）' in html
    assert '<span class="na">—</span><span class="cnt">（0）' in html  # 解决率: no return call
    assert "承办单位考核" in html and "兴隆台区城管局" in html
    assert html.count("<svg") == 2
    assert "本周尚未结束" not in html and "数据源文件中的响应时限" not in html


def test_a_week_under_way_and_other_limits_are_said(tmp_path: Path):
    week = Week.parse("2026-W47", "Asia/Shanghai")
    config = write_sources_file(tmp_path / "s.yaml", {}, response_limits={"urgent_hours": 4})
    data = _data(week, as_of=datetime(2026, 11, 19, tzinfo=UTC))
    html = render(data, datetime(2026, 11, 19, tzinfo=UTC), config)
    assert "本周尚未结束" in html
    assert "执行 hub migrate 后重新生成" in html
