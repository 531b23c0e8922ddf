"""The 综治 simulator: deterministic dirty data with ground truth, and §5 on the wire."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from sandbox.city import City
from sandbox.hotline12345 import HotlineData
from sandbox.zongzhi import DEFECT_KINDS, DISPUTE_FIELDS, ORG_FIELDS, STATUSES, ZongzhiData
from sandbox.zongzhi_server import DISPUTES_PATH, ORGS_PATH, Faults, ZongzhiServer
from tests.support.hotline import SIM_END

KEY = "sandbox-key"
END = datetime.fromisoformat(SIM_END)


def make(scale: float = 0.06, hotline: bool = True) -> ZongzhiData:
    city = City("2111", scale=scale)
    return ZongzhiData(city, days=3, end=END,
                       hotline=HotlineData(city, days=3, end=END) if hotline else None)


@pytest.fixture
def server():
    with ZongzhiServer(make(), KEY) as s:
        yield s


def get(server: ZongzhiServer, path: str, key: str | None = KEY, **params: object) -> httpx.Response:
    headers = {"X-Api-Key": key} if key else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=5)


def test_the_data_is_deterministic_and_as_the_contract_says():
    a, b = make(), make()
    assert a.disputes == b.disputes and a.orgs == b.orgs
    for record in a.disputes.values():
        assert tuple(record) == DISPUTE_FIELDS
        assert record["status"] in STATUSES or "unknown_status" in a.truth[record["caseId"]].defects
        assert record["updateTime"].endswith(("+08:00", "Z"))
        assert [p["role"] for p in record["parties"]][:2] == ["申请人", "被申请人"]
    assert all(tuple(o) == ORG_FIELDS for o in a.orgs)
    assert {o["level"] for o in a.orgs} == {"县", "乡镇街道", "村社区"}


def test_every_kind_of_dirt_is_planted_and_recorded():
    data = make()
    planted = {k for t in data.truth.values() for k in t.defects}
    assert planted == set(DEFECT_KINDS)
    for no, t in data.truth.items():
        applicant = data.disputes[no]["parties"][0]["idNo"]
        clean = data.city.person(t.party_indices[0]).id_number
        if "party_id_bad_check_digit" in t.defects:
            assert applicant[:17] == clean[:17] and applicant != clean
        if "party_id_lower_x" in t.defects:
            assert applicant == clean.lower() and applicant.endswith("x")
        if "times_in_utc" in t.defects:
            assert data.disputes[no]["registerTime"].endswith("Z")


def test_transfers_name_real_12345_orders_and_their_callers():
    data = make()
    transfers = {no: t for no, t in data.truth.items() if t.transfer_no}
    assert transfers and all(t.transfer_in_hotline for t in transfers.values())
    assert data.hotline is not None
    for no, t in transfers.items():
        record = data.disputes[no]
        assert record["source"] == "12345转办" and record["transferNo"] == t.transfer_no
        order = data.hotline.orders[t.transfer_no]
        assert data.hotline.truth[t.transfer_no].person_index == t.party_indices[0]
        assert record["registerTime"] > order["acceptTime"].replace(" ", "T")
    # Without hotline data, a transfer still carries an order number of the hotline's form.
    (alone,) = [t for t in make(hotline=False).truth.values() if t.transfer_no]
    assert len(alone.transfer_no or "") == 16 and not alone.transfer_in_hotline


def test_the_key_is_checked_and_bad_parameters_refused(server):
    denied = get(server, DISPUTES_PATH, key="wrong")
    assert denied.status_code == 403 and denied.json()["errorCode"] == "UNAUTHORIZED"
    assert get(server, ORGS_PATH, key=None).status_code == 403
    assert get(server, DISPUTES_PATH, limit=501).json()["errorCode"] == "INVALID_PARAMETER"
    naive = get(server, DISPUTES_PATH, updatedSince="2026-11-18 00:00:00")
    assert naive.status_code == 400
    orgs = get(server, ORGS_PATH).json()
    assert orgs["success"] and len(orgs["result"]["items"]) == len(server.data.orgs)


def test_pages_hold_still_while_their_token_is_followed(server):
    first = get(server, DISPUTES_PATH, limit=5, updatedSince="2026-11-01T00:00:00+08:00").json()
    assert first["success"] and first["errorCode"] is None
    seen = [r["caseId"] for r in first["result"]["items"]]
    token = first["result"]["nextToken"]
    server.advance(len(server.data.disputes))  # everything moves on meanwhile
    while token:
        page = get(server, DISPUTES_PATH, limit=5, nextToken=token).json()["result"]
        seen += [r["caseId"] for r in page["items"]]
        token = page["nextToken"]
    assert sorted(seen) == sorted(server.data.disputes) and len(seen) == len(set(seen))
    # Ordered by update time, then caseId; updatedSince is inclusive.
    fresh = get(server, DISPUTES_PATH, limit=500, updatedSince="2026-11-01T00:00:00Z").json()
    items = fresh["result"]["items"]
    keys = [(datetime.fromisoformat(r["updateTime"]), r["caseId"]) for r in items]
    assert keys == sorted(keys)
    last = items[-1]["updateTime"]
    assert items[-1] in get(server, DISPUTES_PATH, updatedSince=last).json()["result"]["items"]


def test_tokens_expire_and_faults_come_as_the_contract_says(server):
    server.set_faults(Faults(cursor_ttl_seconds=0.2))
    token = get(server, DISPUTES_PATH, limit=3).json()["result"]["nextToken"]
    time.sleep(0.3)
    expired = get(server, DISPUTES_PATH, limit=3, nextToken=token)
    assert expired.status_code == 200
    assert expired.json()["success"] is False and expired.json()["errorCode"] == "CURSOR_EXPIRED"
    assert get(server, DISPUTES_PATH, nextToken="made-up").json()["errorCode"] == "CURSOR_EXPIRED"

    server.set_faults(Faults(error_rate=1.0, retry_after_seconds=3))
    limited, unavailable = get(server, DISPUTES_PATH), get(server, DISPUTES_PATH)
    assert limited.status_code == 200 and limited.json()["errorCode"] == "RATE_LIMITED"
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "3"
