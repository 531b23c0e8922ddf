"""Values the hub derives never block; every platform has an acceptance time; retired
division codes are folded to their successor with the platform's code kept.

- A 12345 order in 已回访 is closed at its last update (closed_at = updateTime): a
  time the hub derives. Where the platform's updateTime is earlier than its
  finishTime, nothing the platform sent is wrong: the order loads with a warning
  (derived_time_order), it is not quarantined (lifecycle_order judges sent times).
- Grid events are accepted (受理) at their report time once the status is past 上报.
- 211121 大洼县 is loaded as 211104 大洼区 with 211121 in source_division_code, and still
  reported (a warning).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from base.settings import CityConfig
from conform.citymgmt import CityMgmtCaseConformer
from conform.gridmgmt import EventsConformer, GridsConformer
from conform.hotline12345 import Hotline12345Conformer
from quality.rules import evaluate
from quality.validate import validate
from schemas.model import EVENT, GRID
from tests.support.profile_rules import conformed_table, panjin_context, panjin_grids

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
CTX = panjin_context()  # now = 2026-11-22 08:00 UTC
GRID_CODE = panjin_grids()[0]

ORDER: dict[str, Any] = {
    "orderNo": "HL20261110000001", "acceptTime": "2026-11-10 09:00:00", "channel": "电话",
    "callerName": "张三", "callerPhone": "13800138000", "callerIdNo": "",
    "appealType": "投诉", "categoryCode": "110101", "categoryName": "城乡建设/市容环境/占道经营",
    "title": "占道经营", "content": "门口有人摆摊", "address": "兴隆台区 石油大街 1 号",
    "districtCode": "211103", "streetCode": None, "longitude": None, "latitude": None,
    "handleDept": "兴隆台区城管局", "dispatchTime": "2026-11-10 10:00:00",
    "deadline": "2026-11-15 10:00:00", "finishTime": "2026-11-12 16:00:00", "status": "已回访",
    "satisfaction": "满意", "isUrgent": "false", "updateTime": "2026-11-13 09:00:00",
    "firstContactTime": None, "isSolved": None,  # optional: older platforms lack them
}


def orders(*overrides: dict[str, Any]) -> pa.Table:
    rows = [{**ORDER, "orderNo": f"HL{i:014d}", **o} for i, o in enumerate(overrides)]
    return pa.table({k: pa.array([r[k] for r in rows], pa.string()) for k in ORDER})


def conform_orders(*overrides: dict[str, Any]):
    conformer = Hotline12345Conformer(SimpleNamespace(), CITY)
    conformed = conformer.conform(orders(*overrides))
    raw = orders(*overrides)
    return validate(EVENT, conformed.table, CTX, conformed.unparseable, raw)


# ---------------------------------------------------------------- derived times


def test_an_order_closed_at_an_update_before_its_finish_loads_with_a_warning():
    checked = conform_orders({}, {"updateTime": "2026-11-12 15:00:00"})  # < finishTime
    rows = checked.table.to_pylist()
    assert [r["derived_times"] for r in rows] == ["reported_at,closed_at"] * 2
    assert checked.quarantine.tolist() == [False, False]
    found = checked.findings.to_pylist()
    assert [(f["row_index"], f["rule"], f["severity"]) for f in found] == [
        (1, "derived_time_order", "warning")]
    assert found[0]["reason"] == (
        "中心推算的时间次序不一致：closed_at 早于 resolved_at / derived times out of order:"
        " closed_at before resolved_at: 2026-11-12 15:00:00 < 2026-11-12 16:00:00")
    assert checked.evaluation.result("lifecycle_order").failed == 0


def test_times_the_platform_sent_out_of_order_still_quarantine():
    # finishTime before acceptTime: both sent, the platform's own contradiction.
    checked = conform_orders({"finishTime": "2026-11-09 09:00:00"})
    assert checked.quarantine.tolist() == [True]
    rules = {f["rule"]: f for f in checked.findings.to_pylist()}
    assert rules["lifecycle_order"]["severity"] == "blocking"
    assert "resolved_at before dispatched_at" in rules["lifecycle_order"]["reason"]
    # Told once: the warning leaves rows the blocking rule judged to it.
    assert "derived_time_order" not in rules


def test_orders_not_yet_closed_derive_only_the_report_time():
    checked = conform_orders({"status": "已办结", "satisfaction": "未评价"})
    row = checked.table.to_pylist()[0]
    assert row["closed_at"] is None and row["derived_times"] == "reported_at"
    assert not checked.quarantine.any() and checked.findings.num_rows == 0


def test_a_derived_time_never_blocks_whatever_its_order():
    # Derived times out of order everywhere (conformed rows as a platform would never
    # send them): only warnings.
    t = CTX.now
    from datetime import timedelta

    def ago(h: float):
        return t - timedelta(hours=h)

    table = conformed_table(EVENT, [
        {"source_id": "a", "channel": "网格员", "category_code": "SR01", "source_category": "x",
         "status": "closed", "source_status": "已归档", "source_updated_at": ago(1),
         "reported_at": ago(10), "accepted_at": ago(10), "closed_at": ago(20),
         "derived_times": "accepted_at,closed_at"},
        {"source_id": "b", "channel": "网格员", "category_code": "SR01", "source_category": "x",
         "status": "closed", "source_status": "已归档", "source_updated_at": ago(1),
         "reported_at": ago(10), "accepted_at": ago(10), "closed_at": ago(20)},
    ])
    ev = evaluate(EVENT, table, CTX)
    assert ev.blocking_failed.tolist() == [False, True]
    found = [(f["row_index"], f["rule"]) for f in ev.findings.to_pylist()]
    assert found == [(0, "derived_time_order"), (1, "lifecycle_order")]


def test_citymgmt_closes_at_the_check_only_as_a_derived_time():
    base = {"case_no": "C1", "source": "监督员上报", "class_type": "事件", "big_class": "01",
            "small_class": "01", "description": "x", "address": "x",
            "grid_code": "211103001001001", "x": None, "y": None, "component_code": None,
            "status": "结案", "report_time": "2026-11-10 08:00:00",
            "register_time": "2026-11-10 09:00:00", "dispatch_time": "2026-11-10 10:00:00",
            "deadline": "2026-11-12 10:00:00", "dispose_time": "2026-11-11 10:00:00",
            "check_time": "2026-11-11 09:00:00", "close_time": None, "dept_code": "D1",
            "dept_name": "城管局", "reporter_id": "R1", "update_time": "2026-11-11 12:00:00"}
    rows = [base, {**base, "case_no": "C2", "close_time": "2026-11-11 13:00:00"}]
    raw = pa.table({k: pa.array([r[k] for r in rows], pa.string()) for k in base})
    conformed = CityMgmtCaseConformer(SimpleNamespace(), CITY).conform(raw)
    assert conformed.table["derived_times"].to_pylist() == ["closed_at", None]
    checked = validate(EVENT, conformed.table, CTX, conformed.unparseable, raw)
    # C1's check came before its disposal: the hub's reading of it, a warning only.
    assert checked.quarantine.tolist() == [False, False]
    assert [(f["row_index"], f["rule"]) for f in checked.findings.to_pylist()
            if f["rule"].endswith("_order")] == [(0, "derived_time_order")]


# ---------------------------------------------------------------- grid acceptance


def grid_events(*statuses: str) -> pa.Table:
    n = len(statuses)
    return pa.table({
        "eventId": pa.array([f"GE{i}" for i in range(n)]),
        "gridCode": pa.array([GRID_CODE] * n),
        "reporterId": pa.array(["WG1"] * n),
        "reportTime": pa.array(["2026-11-10 08:00:00"] * n),
        "eventType": pa.array(["环境卫生"] * n),
        "description": pa.array(["x"] * n),
        "longitude": pa.array([None] * n, pa.string()),
        "latitude": pa.array([None] * n, pa.string()),
        "partyIdNos": pa.array([None] * n, pa.string()),
        "status": pa.array(list(statuses)),
        "updateTime": pa.array(["2026-11-11 08:00:00"] * n),
    })


def test_grid_events_are_accepted_at_their_report_once_past_reported():
    statuses = ("上报", "受理", "处置中", "已办结", "已归档", "新状态")
    raw = grid_events(*statuses)
    conformed = EventsConformer(SimpleNamespace(), CITY).conform(raw)
    rows = conformed.table.to_pylist()
    accepted = [r["accepted_at"] for r in rows]
    assert accepted[0] is None and accepted[5] is None  # 上报, and a status no mapping knows
    assert all(a == rows[0]["reported_at"] for a in accepted[1:5])
    assert [r["derived_times"] for r in rows] == [
        None, "accepted_at", "accepted_at", "accepted_at,resolved_at", "accepted_at,closed_at",
        None]
    checked = validate(EVENT, conformed.table, CTX, conformed.unparseable, raw)
    assert not checked.quarantine.any()


def test_a_grid_event_updated_before_its_report_is_a_warning_not_a_quarantine():
    raw = grid_events("已办结").set_column(10, "updateTime", pa.array(["2026-11-09 08:00:00"]))
    conformed = EventsConformer(SimpleNamespace(), CITY).conform(raw)
    checked = validate(EVENT, conformed.table, CTX, conformed.unparseable, raw)
    assert not checked.quarantine.any()
    assert [f["rule"] for f in checked.findings.to_pylist()] == ["derived_time_order"]


# ---------------------------------------------------------------- retired divisions


def test_a_retired_division_is_folded_and_still_reported():
    checked = conform_orders({}, {"districtCode": "211121"}, {"districtCode": "320684"},
                             {"districtCode": "219999"})
    rows = checked.table.to_pylist()
    assert [(r["division_code"], r["source_division_code"]) for r in rows] == [
        ("211103", "211103"), ("211104", "211121"), ("320614", "320684"), ("219999", "219999")]
    found = {f["row_index"]: f for f in checked.findings.to_pylist()
             if f["rule"] == "division_code_known"}
    assert sorted(found) == [1, 2, 3]
    assert all(f["severity"] == "warning" for f in found.values())
    assert found[1]["reason"] == "已撤销的区划代码 211121（现 211104）/ retired code 211121, now 211104"
    assert "unknown division code: 219999" in found[3]["reason"]
    assert not checked.quarantine.any()


def test_callers_keep_the_division_as_sent_too():
    conformer = Hotline12345Conformer(SimpleNamespace(), CITY)
    raw = orders({"districtCode": "211121"})
    conformed = conformer.conform(raw)
    callers = conformer.derive(raw, conformed.table)["person"].to_pylist()
    assert [(c["division_code"], c["source_division_code"]) for c in callers] == [
        ("211104", "211121")]


def test_grids_read_off_a_retired_code_are_folded():
    raw = pa.table({f: pa.array([v], pa.string()) for f, v in {
        "网格编码": "211121001001001", "网格名称": "x", "网格类型": "综合", "所属社区": "x",
        "网格员": "王伟", "网格员电话": "13800138000",
        "geometry": '{"type": "Polygon", "coordinates": [[[122.0, 41.0], [122.01, 41.0],'
                    ' [122.01, 41.01], [122.0, 41.01], [122.0, 41.0]]]}'}.items()})
    row = GridsConformer(SimpleNamespace(), CITY).conform(raw).table.to_pylist()[0]
    assert (row["division_code"], row["source_division_code"]) == ("211104", "211121")
    assert row["street_code"] == "211121001"  # street codes are not renumbered here


@pytest.mark.parametrize("entity", [e for e in (EVENT, GRID)], ids=lambda e: e.name)
def test_the_rule_judges_the_code_as_sent(entity):
    base = {"channel": "x", "category_code": "SR01", "source_category": "x", "status": "closed",
            "source_status": "x", "source_updated_at": CTX.now, "grid_type": "综合",
            "grid_code": "g"}
    table = conformed_table(entity, [
        {**base, "source_id": "1", "division_code": "211104", "source_division_code": "211121"},
        {**base, "source_id": "2", "division_code": "211121"},  # not folded (a test row)
        {**base, "source_id": "3", "division_code": "211104"},
    ])
    ev = evaluate(entity, table, CTX)
    found = [(f["row_index"], f["rule"]) for f in ev.findings.to_pylist()
             if f["rule"] == "division_code_known"]
    assert found == [(0, "division_code_known"), (1, "division_code_known")]


# ---------------------------------------------------------------- through the pipeline


def test_the_pipeline_loads_a_late_updated_callback_and_folds_retired_districts(
        db, hotline, hotline_data_factory):
    from hub.pipeline import run_source
    from sandbox.hotline12345 import RETIRED_DISTRICT
    from tests.support.warehouse_checks import findings, quarantined

    data = hotline_data_factory()
    late = sorted(no for no, r in data.orders.items()
                  if r["status"] == "已回访" and r["finishTime"] and not data.truth[no].defects)[:3]
    assert late
    for no in late:  # updateTime lags finishTime: nothing the platform sent is wrong
        data.orders[no]["updateTime"] = _earlier(data.orders[no]["finishTime"], minutes=30)
    source, config, _ = hotline(data=data)
    run_source(source, config)

    held = quarantined(db, source, "event")
    flagged = findings(db, source, "event")
    loaded = dict(db.execute(
        "SELECT source_id, derived_times FROM core.event WHERE source_system = %s"
        " AND valid_to IS NULL", (source,)).fetchall())
    for no in late:
        assert no not in held, (no, held.get(no))
        assert loaded[no] == "reported_at,closed_at"
        assert "derived_time_order" in flagged.get(no, set())

    retired = [no for no, r in data.orders.items() if r["districtCode"] == RETIRED_DISTRICT]
    assert retired
    rows = db.execute(
        "SELECT source_id, division_code, source_division_code FROM core.event"
        " WHERE source_system = %s AND valid_to IS NULL AND source_id = ANY(%s)",
        (source, retired)).fetchall()
    assert rows and all(r[1:] == ("211104", RETIRED_DISTRICT) for r in rows)
    assert all("division_code_known" in flagged.get(r[0], set()) for r in rows)
    districts = {r[0]: r[1] for r in db.execute(
        "SELECT DISTINCT division_code, district_name FROM mart.event_current"
        " WHERE source_system = %s", (source,)).fetchall()}
    assert RETIRED_DISTRICT not in districts and districts["211104"] == "大洼区"


def _earlier(local_time: str, minutes: int) -> str:
    from datetime import datetime, timedelta

    fmt = "%Y-%m-%d %H:%M:%S"
    return (datetime.strptime(local_time, fmt) - timedelta(minutes=minutes)).strftime(fmt)
