"""Linking organizations and clustering incident reports across platforms (issue 10).

Small hand-made records go straight into the core tables; each test names source
systems of its own, and the events sit in 2031, a year no simulator and no other test
produces, each test in a month of its own, so the linking (which reads the whole
warehouse) finds nothing of anyone else's near them. The linking runs as the pipeline
does, as hub_loader.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from stdnum.cn import uscc

from link.incident_rules import bigrams, overlap
from link.incidents import IncidentSummary, cluster_incidents
from link.orgs import OrgLinkSummary, branch_parent, link_organizations, normal_name
from warehouse.db import Role, connect

BEIJING = timezone(timedelta(hours=8))
DISTRICT = "211103"  # 兴隆台区, 盘锦市
# A point in 兴隆台区 and metres in degrees there (41.1° N).
LON, LAT = 121.98, 41.12
M_LAT, M_LON = 1 / 111_000, 1 / (111_000 * 0.7536)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def loader(warehouse: str) -> Iterator[psycopg.Connection]:
    with connect(Role.LOADER) as conn:
        yield conn


def link_orgs(loader: psycopg.Connection) -> OrgLinkSummary:
    return link_organizations(loader)


def cluster(loader: psycopg.Connection) -> IncidentSummary:
    return cluster_incidents(loader)


# ------------------------------------------------------------------ organizations


def credit_code(rng: random.Random, *, valid: bool = True) -> str:
    body = "91" + DISTRICT + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    check = uscc.calc_check_digit(body)
    if not valid:
        check = next(c for c in USCC_ALPHABET if c != check)
    return body + check


def add_org(db: psycopg.Connection, source: str, source_id: str, name: str, *,
            code: str | None = None, org_type: str = "enterprise", legal_rep: str | None = None,
            address: str | None = None, division: str | None = DISTRICT) -> None:
    db.execute(
        "INSERT INTO core.organization (source_system, source_id, source_stream, valid_from,"
        " org_name, uscc, org_type, legal_rep, address, division_code)"
        " VALUES (%s, %s, 'orgs', now(), %s, %s, %s, %s, %s, %s)",
        (source, source_id, name, code, org_type, legal_rep, address, division))


def org_keys(db: psycopg.Connection, *sources: str) -> dict[tuple[str, str], str]:
    return {(r[0], r[1]): r[2] for r in db.execute(
        "SELECT source_system, source_id, org_key FROM core.organization"
        " WHERE valid_to IS NULL AND source_system = ANY(%s)", (list(sources),))}


def test_names_compare_in_their_normal_form():
    assert normal_name("盘锦 鑫达商贸有限责任公司") == normal_name("盘锦鑫达商贸有限公司")
    assert normal_name("盘锦鑫达商贸股份有限公司") != normal_name("盘锦鑫达商贸有限公司")
    assert normal_name("ＡＢＣ　物流（盘锦）有限公司") == normal_name("ABC物流(盘锦)有限公司")
    assert normal_name("  ") is None
    assert branch_parent(normal_name("盘锦鑫达商贸有限公司兴隆台分公司") or "") \
        == normal_name("盘锦鑫达商贸有限公司")
    assert branch_parent(normal_name("盘锦鑫达商贸有限公司") or "") is None
    assert overlap(bigrams("井盖缺失，行人易摔"), bigrams("井盖缺失了 行人容易摔倒")) > 0.3


def test_a_department_named_three_ways_is_one_organization(db, loader):
    hot, cm, grid = (f"org3_{k}_{tag()}" for k in ("hotline", "citymgmt", "grid"))
    add_org(db, hot, "兴隆台区城管局", "兴隆台区城管局", org_type="department", division=None)
    add_org(db, cm, "211103000", "兴隆台区城市管理局", org_type="department")
    add_org(db, grid, "D-17", "城管局（兴隆台）", org_type="department", division=None)
    # A department of another district is another organization.
    add_org(db, grid, "D-18", "城管局（双台子）", org_type="department", division=None)
    db.execute(
        "INSERT INTO core.event (source_system, source_id, valid_from, channel, category_code,"
        " source_category, status, source_status, handling_org, reported_at, source_updated_at)"
        " VALUES (%s, 'E1', now(), '电话', 'SR01', 'x', 'dispatched', 'x', ' 兴隆台区城管局 ',"
        " '2031-01-02 10:00+08', now())", (hot,))

    summary = link_orgs(loader)

    keys = org_keys(db, hot, cm, grid)
    one = keys[(hot, "兴隆台区城管局")]
    assert one and keys[(cm, "211103000")] == one == keys[(grid, "D-17")]
    assert keys[(grid, "D-18")] not in (None, one)
    assert summary.linked_by.get("alias", 0) >= 2
    golden = db.execute("SELECT members, name_normal, source_systems, provenance"
                        " FROM core.org_golden WHERE org_key = %s", (one,)).fetchone()
    assert golden[0] >= 3 and golden[1] == "兴隆台区城市管理综合行政执法局"
    assert {hot, cm, grid} <= set(golden[2])
    assert "城管局（兴隆台）" in golden[3]["names"]
    # The 承办单位 of events joins through core.org_alias, as the marts would.
    joined = db.execute(
        "SELECT a.org_key, a.ambiguous, a.events FROM core.event e JOIN core.org_alias a"
        " ON a.name = btrim(e.handling_org) WHERE e.source_system = %s", (hot,)).fetchall()
    assert joined == [(one, False, joined[0][2])] and joined[0][2] >= 1


def test_an_invalid_credit_code_does_not_link_by_code(db, loader):
    rng = random.Random(tag())
    src_a, src_b = f"uscc_a_{tag()}", f"uscc_b_{tag()}"
    bad, good = credit_code(rng, valid=False), credit_code(rng)
    add_org(db, src_a, "1", "盘锦甲乙商贸有限公司", code=bad)
    add_org(db, src_b, "1", "盘锦丙丁物流有限公司", code=bad)
    # A valid code links whatever the names say …
    add_org(db, src_a, "2", "盘锦戊己科技有限公司", code=good)
    add_org(db, src_b, "2", "戊己科技（盘锦）", code=good)
    # … and one name with two valid codes is two organizations; a record without a code
    # joins the one whose legal representative it shares.
    twin_1, twin_2 = credit_code(rng), credit_code(rng)
    inn = f"盘锦庚辛饭店{tag()}"
    add_org(db, src_a, "3", inn, code=twin_1, legal_rep="张伟", address="兴隆大街1号")
    add_org(db, src_a, "4", inn, code=twin_2, legal_rep="李娜", address="石油大街9号")
    add_org(db, src_b, "3", inn, legal_rep="李娜")

    link_orgs(loader)

    keys = org_keys(db, src_a, src_b)
    assert keys[(src_a, "1")] != keys[(src_b, "1")]
    assert keys[(src_a, "2")] == keys[(src_b, "2")]
    assert keys[(src_a, "3")] != keys[(src_a, "4")]
    assert keys[(src_b, "3")] == keys[(src_a, "4")]
    rejected = db.execute("SELECT provenance -> 'uscc_rejected' FROM core.org_golden"
                          " WHERE org_key = %s", (keys[(src_a, "1")],)).fetchone()[0]
    assert rejected == [bad]
    golden_codes = db.execute("SELECT uscc FROM core.org_golden WHERE org_key = %s",
                              (keys[(src_a, "2")],)).fetchone()[0]
    assert golden_codes == good
    ambiguous = db.execute("SELECT bool_and(ambiguous), count(DISTINCT org_key)"
                           " FROM core.org_alias WHERE name = %s", (inn,)).fetchone()
    assert ambiguous == (True, 2)


def test_a_branch_is_its_own_organization_linked_to_its_parent(db, loader):
    rng = random.Random(tag())
    src = f"branch_{tag()}"
    parent = f"盘锦{tag()}商贸有限责任公司"
    add_org(db, src, "P", parent, code=credit_code(rng))
    add_org(db, src, "B", parent.replace("有限责任", "有限") + "兴隆台分公司", code=credit_code(rng))
    link_orgs(loader)
    keys = org_keys(db, src)
    assert keys[(src, "P")] != keys[(src, "B")]
    assert db.execute("SELECT parent_key FROM core.org_golden WHERE org_key = %s",
                      (keys[(src, "B")],)).fetchone()[0] == keys[(src, "P")]


def test_organization_keys_are_stable(db, loader):
    rng = random.Random(tag())
    src = f"orgstable_{tag()}"
    code = credit_code(rng)
    add_org(db, src, "1", "盘锦壬癸建材有限公司", code=code)
    add_org(db, src, "2", "盘锦壬癸建材有限责任公司")
    link_orgs(loader)
    before = org_keys(db, src)
    assert before[(src, "1")] == before[(src, "2")]

    again = link_orgs(loader)
    assert org_keys(db, src) == before
    assert again.records_updated == 0
    logged = db.execute("SELECT records, summary -> 'records_updated' FROM ops.link_run"
                        " WHERE entity = 'organization' ORDER BY link_run_id DESC LIMIT 1").fetchone()
    assert logged == (again.records, 0)

    # The coded record leaves; the key stays while a member remains.
    db.execute("UPDATE core.organization SET valid_to = now() WHERE source_system = %s"
               " AND source_id = '1' AND valid_to IS NULL", (src,))
    link_orgs(loader)
    assert org_keys(db, src)[(src, "2")] == before[(src, "2")]


# ------------------------------------------------------------------ incidents


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2031, month, day, hour, minute, tzinfo=BEIJING)


def add_event(db: psycopg.Connection, source: str, source_id: str, reported: datetime, *,
              category: str, text: str, east_m: float = 0, north_m: float = 0,
              channel: str = "电话", title: str | None = None, transfer_ref: str | None = None,
              located: bool = True, grid: str | None = "211103001001001") -> None:
    lon = LON + east_m * M_LON if located else None
    lat = LAT + north_m * M_LAT if located else None
    db.execute(
        "INSERT INTO core.event (source_system, source_id, source_stream, valid_from, channel,"
        " category_code, source_category, status, source_status, title, description,"
        " longitude, latitude, grid_code, division_code, reported_at, accepted_at,"
        " transfer_ref, source_updated_at)"
        " VALUES (%s, %s, 'events', now(), %s, %s, %s, 'accepted', 'x', %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s, now())",
        (source, source_id, channel, category, category, title, text, lon, lat, grid, DISTRICT,
         reported, reported, transfer_ref))


def cluster_keys(db: psycopg.Connection, *sources: str) -> dict[str, str | None]:
    return {f"{r[0]}/{r[1]}": r[2] for r in db.execute(
        "SELECT source_system, source_id, cluster_key FROM core.event"
        " WHERE valid_to IS NULL AND source_system = ANY(%s)", (list(sources),))}


VENDOR_1 = "兴隆大街幸福小区北门有流动商贩占道摆摊卖水果，堵住了人行道"
VENDOR_2 = "幸福小区北门兴隆大街上流动商贩摆摊卖水果占道，人行道走不了"
POTHOLE = "惠宾街与泰山路交叉口路面塌陷出现大坑，车辆无法通行"
SCHOOL = "咨询孩子明年上小学的入学政策和需要准备的材料"


def test_a_transferred_order_and_its_cases_share_a_cluster(db, loader):
    hot, cm, zz = (f"tr_{k}_{tag()}" for k in ("hotline", "citymgmt", "zongzhi"))
    order = f"2111{random.Random(tag()).randrange(10**11):011d}"
    add_event(db, hot, order, at(1, 5, 9), category="SZ02", text="小区门口井盖缺失，很危险")
    # Three days later, a kilometre away, in other words: the order number links it.
    add_event(db, cm, "C-1", at(1, 8, 11), category="SZ01", east_m=1000,
              text=f"【12345转办】工单号：{order}。小区门口井盖缺失", channel="12345转办")
    add_event(db, zz, "Z-1", at(1, 9, 9), category="MD01", east_m=3000,
              text="邻里因井盖问题发生争执", channel="12345转办", transfer_ref=order)
    add_event(db, cm, "C-2", at(1, 8, 12), category="SZ01", east_m=1000, text="工单号：不存在")

    summary = cluster(loader)

    keys = cluster_keys(db, hot, cm, zz)
    assert keys[f"{hot}/{order}"] is not None
    assert keys[f"{cm}/C-1"] == keys[f"{hot}/{order}"] == keys[f"{zz}/Z-1"]
    assert keys[f"{cm}/C-2"] is None
    assert summary.pairs["transfer"] >= 2
    row = db.execute("SELECT lead_source_system, lead_source_id, members, evidence"
                     " FROM core.incident_cluster WHERE cluster_key = %s",
                     (keys[f"{cm}/C-1"],)).fetchone()
    assert row[:3] == (hot, order, 3)
    rules = {(m["source_system"], m["rule"]) for m in row[3]["members"]}
    assert rules == {(hot, "lead"), (cm, "transfer"), (zz, "transfer")}


def test_reports_close_in_time_and_place_cluster_and_others_do_not(db, loader):
    hot, grid, cam = (f"near_{k}_{tag()}" for k in ("hotline", "grid", "video"))
    # 20 minutes and 100 m apart, 市容环境 and 街面秩序, saying the same: one incident.
    add_event(db, hot, "H1", at(2, 3, 9), category="SR01", text=VENDOR_1)
    add_event(db, grid, "G1", at(2, 3, 9, 20), category="JM03", text=VENDOR_2,
              east_m=60, north_m=80, channel="网格员")
    # A camera's alarm of the very category nearby: it has no words, the category speaks.
    add_event(db, cam, "V1", at(2, 3, 10), category="SR01", channel="视频", title="占道经营",
              text="AI告警 置信度 0.91；设备 21110300001320000001", north_m=120)
    # The same two texts a week apart: two incidents.
    add_event(db, hot, "H2", at(2, 10, 9), category="SR01", text=VENDOR_1)
    add_event(db, grid, "G2", at(2, 17, 9), category="JM03", text=VENDOR_2, channel="网格员")
    # Different categories far apart, the same hour: nothing in common.
    add_event(db, hot, "H3", at(2, 20, 9), category="SZ01", text=POTHOLE)
    add_event(db, grid, "G3", at(2, 20, 9, 30), category="MS03", text=SCHOOL, east_m=5000,
              channel="网格员")
    # Without coordinates, the grid stands for the place (and, the distance unknown, the
    # words must agree the more).
    add_event(db, hot, "H4", at(2, 24, 9), category="SZ01", text=POTHOLE, located=False,
              grid="211103001001077")
    add_event(db, grid, "G4", at(2, 24, 10), category="SZ01",
              text="惠宾街与泰山路交叉口路面塌陷出现大坑，车辆过不去", grid="211103001001077",
              channel="网格员")
    # Longitude and latitude swapped on the platform (a quality finding, kept as given):
    # clustering reads the place it meant.
    add_event(db, hot, "H5", at(2, 27, 9), category="SZ01", text=POTHOLE, grid=None)
    db.execute("UPDATE core.event SET longitude = latitude, latitude = longitude"
               " WHERE source_system = %s AND source_id = 'H5'", (hot,))
    add_event(db, grid, "G5", at(2, 27, 10), category="SZ01", text=POTHOLE, east_m=50,
              grid=None, channel="网格员")

    cluster(loader)

    keys = cluster_keys(db, hot, grid, cam)
    assert keys[f"{hot}/H1"] is not None
    assert keys[f"{grid}/G1"] == keys[f"{hot}/H1"] == keys[f"{cam}/V1"]
    assert keys[f"{hot}/H2"] is None and keys[f"{grid}/G2"] is None
    assert keys[f"{hot}/H3"] is None and keys[f"{grid}/G3"] is None
    assert keys[f"{hot}/H4"] is not None and keys[f"{hot}/H4"] == keys[f"{grid}/G4"]
    assert keys[f"{hot}/H5"] is not None and keys[f"{hot}/H5"] == keys[f"{grid}/G5"]
    evidence = db.execute("SELECT evidence FROM core.incident_cluster WHERE cluster_key = %s",
                          (keys[f"{hot}/H1"],)).fetchone()[0]
    joined = {m["source_id"]: m for m in evidence["members"]}
    assert joined["H1"]["rule"] == "lead"
    assert joined["G1"]["rule"] == "near" and 90 <= joined["G1"]["distance_m"] <= 110
    assert joined["G1"]["minutes"] == 20 and joined["G1"]["text_similarity"] >= 0.2
    assert joined["V1"]["rule"] == "near" and "text_similarity" not in joined["V1"]
    assert evidence["params"]["window_hours"] == 72


def test_cluster_keys_are_stable_and_marts_count_repeats(db, loader):
    hot, grid = (f"stable_{k}_{tag()}" for k in ("hotline", "grid"))
    add_event(db, hot, "H1", at(3, 3, 9), category="SR01", text=VENDOR_1)
    add_event(db, grid, "G1", at(3, 3, 9, 20), category="JM03", text=VENDOR_2, east_m=60,
              channel="网格员")
    add_event(db, hot, "H9", at(3, 4, 9), category="MS03", text=SCHOOL, east_m=4000)
    cluster(loader)
    first = cluster_keys(db, hot, grid)
    assert first[f"{hot}/H1"] is not None and first[f"{hot}/H1"] == first[f"{grid}/G1"]

    again = cluster(loader)
    assert cluster_keys(db, hot, grid) == first
    assert again.events_updated == 0
    logged = db.execute("SELECT records, summary -> 'events_updated' FROM ops.link_run"
                        " WHERE entity = 'incident' ORDER BY link_run_id DESC LIMIT 1").fetchone()
    assert logged == (again.events, 0)

    # A later report joins; the cluster keeps its key while its lead remains.
    add_event(db, hot, "H2", at(3, 4, 8), category="SR01", text=VENDOR_1, north_m=50)
    cluster(loader)
    after = cluster_keys(db, hot, grid)
    assert after[f"{hot}/H2"] == first[f"{hot}/H1"] == after[f"{grid}/G1"]

    repeats = dict(db.execute(
        "SELECT source_id, is_repeat FROM mart.event_current WHERE source_system = ANY(%s)",
        ([hot, grid],)).fetchall())
    # The reports after the incident's first (H1) are the repeats: (3 − 1) of 4 reports.
    assert repeats == {"H1": False, "G1": True, "H2": True, "H9": False}
    rate = db.execute(
        "SELECT sum(repeat_events), sum(events) FROM mart.governance_weekly"
        " WHERE source_system = ANY(%s)", ([hot, grid],)).fetchone()
    assert rate == (2, 4)
    district = db.execute(
        "SELECT repeat_rate FROM mart.governance_weekly_district WHERE report_week = '2031-W10'"
        " AND division_code = %s", (DISTRICT,)).fetchone()
    assert district is not None and district[0] > 0
