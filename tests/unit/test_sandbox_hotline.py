"""The 12345 hotline simulator, over real HTTP: protocol, faults, data and its dirt."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from stdnum.cn import ric

from conform.coords import gcj02_to_wgs84
from sandbox.city import HOSTILE_TEXT, City
from sandbox.hotline12345 import (
    DEFECT_KINDS,
    STATUSES,
    TIME_FORMAT,
    HotlineData,
    load_categories,
)
from sandbox.hotline_server import Faults, HotlineServer

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 11, 20)
END_TEXT = END.strftime(TIME_FORMAT)
KEY, SECRET = "k", "s"


def make_data(seed: int = 11, scale: float = 0.01, days: int = 3,
              coordinate_system: str = "wgs84") -> HotlineData:
    return HotlineData(City("2111", seed=seed, scale=scale), days=days, end=END,
                       coordinate_system=coordinate_system)


@pytest.fixture(scope="module")
def data() -> HotlineData:
    """Shared and never mutated: tests that advance orders build their own."""
    return make_data()


@pytest.fixture
def server(data: HotlineData) -> Iterator[HotlineServer]:
    with HotlineServer(data, app_key=KEY, app_secret=SECRET) as srv:
        yield srv


class Client:
    """A small client of the platform, as a connector would talk to it."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.token: str | None = None

    def login(self) -> dict[str, Any]:
        body = self.http.post("/api/v1/auth/token",
                              json={"appKey": KEY, "appSecret": SECRET}).json()
        assert body["code"] == 0, body
        self.token = body["data"]["accessToken"]
        return dict(body["data"])

    def get(self, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.get("/api/v1/workorders", params=params, headers=headers)

    def page(self, **params: Any) -> dict[str, Any]:
        """One page's data, logging in again when the token is refused."""
        for _ in range(5):
            response = self.get(**params)
            body = response.json()
            if response.status_code == 401 or body["code"] == 40101:
                self.login()
                continue
            assert response.status_code == 200 and body["code"] == 0, body
            return dict(body["data"])
        raise AssertionError("token refused again and again")

    def all_pages(self, page_size: int, **bounds: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        page_no = 1
        while True:
            data = self.page(pageNo=page_no, pageSize=page_size, **bounds)
            records += data["records"]
            if page_no * page_size >= data["total"]:
                return records
            page_no += 1


def is_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        assert response.json()["code"] == 401
        return True
    return response.status_code == 200 and response.json()["code"] == 40101


# ---- protocol ----------------------------------------------------------------

def test_token_flow(server: HotlineServer) -> None:
    http = httpx.Client(base_url=server.url)
    wrong = http.post("/api/v1/auth/token", json={"appKey": KEY, "appSecret": "nope"})
    assert wrong.status_code == 200
    assert wrong.json() == {"code": 40100, "msg": "invalid appKey/appSecret", "data": None}
    assert http.post("/api/v1/auth/token", content=b"not json").json()["code"] == 40000

    client = Client(server.url)
    assert is_rejected(client.get())  # no token yet
    issued = client.login()
    assert issued["expiresIn"] == 7200 and len(issued["accessToken"]) >= 16
    ok = client.get(pageSize=5)
    assert ok.status_code == 200 and ok.json()["code"] == 0
    client.token = "forged"
    assert is_rejected(client.get())
    stats = server.stats()
    assert stats["tokens_issued"] == 1 and stats["bad_credentials"] == 1
    assert stats["auth_rejected"] == {"401": 1, "40101": 1}  # they alternate


def test_paging_returns_every_order_once_in_order(server: HotlineServer,
                                                  data: HotlineData) -> None:
    client = Client(server.url)
    client.login()
    first = client.page(pageNo=1, pageSize=7)
    assert first["total"] == len(data.orders) and first["pageNo"] == 1
    assert first["pageSize"] == 7 and len(first["records"]) == 7
    records = client.all_pages(page_size=7)
    assert [r["orderNo"] for r in records] == [r["orderNo"] for r in data.query()]
    assert len({r["orderNo"] for r in records}) == len(data.orders)
    keys = [(r["updateTime"], r["orderNo"]) for r in records]
    assert keys == sorted(keys)
    assert records == [data.orders[r["orderNo"]] for r in records]
    beyond = client.page(pageNo=100, pageSize=7)
    assert beyond["records"] == [] and beyond["total"] == len(data.orders)
    # Served fields: those of the protocol, in its order; the optional ones after them,
    # sent on some orders and left out on others (older platforms).
    optional = ("firstContactTime", "isSolved")
    assert any("firstContactTime" in r for r in records)
    assert any("firstContactTime" not in r and r["dispatchTime"] for r in records)
    assert [k for k in records[0] if k not in optional] == [
        "orderNo", "acceptTime", "channel", "callerName", "callerPhone", "callerIdNo",
        "appealType", "categoryCode", "categoryName", "title", "content", "address",
        "districtCode", "streetCode", "longitude", "latitude", "handleDept", "dispatchTime",
        "deadline", "finishTime", "status", "satisfaction", "isUrgent", "updateTime"]


def test_update_time_bounds_are_inclusive(server: HotlineServer, data: HotlineData) -> None:
    client = Client(server.url)
    client.login()
    every = data.query()
    t = every[len(every) // 2]["updateTime"]
    since = client.all_pages(100, updatedFrom=t)
    until = client.all_pages(100, updatedTo=t)
    exactly = client.all_pages(100, updatedFrom=t, updatedTo=t)
    assert [r["orderNo"] for r in since] == [r["orderNo"] for r in every if r["updateTime"] >= t]
    assert [r["orderNo"] for r in until] == [r["orderNo"] for r in every if r["updateTime"] <= t]
    assert exactly and all(r["updateTime"] == t for r in exactly)
    assert len(since) + len(until) - len(exactly) == len(every)
    window = client.all_pages(100, updatedFrom=every[3]["updateTime"],
                              updatedTo=every[-4]["updateTime"])
    assert [r["orderNo"] for r in window] == [r["orderNo"] for r in every[3:-3]]


def test_bad_parameters_are_body_errors(server: HotlineServer) -> None:
    client = Client(server.url)
    client.login()
    for params in ({"pageSize": 1001}, {"pageSize": 0}, {"pageNo": 0}, {"pageSize": "x"},
                   {"updatedFrom": "20261101"}):
        response = client.get(**params)
        assert response.status_code == 200 and response.json()["code"] == 40001, params
        assert response.json()["data"] is None
    biggest = client.get(pageSize=1000).json()
    assert biggest["code"] == 0 and biggest["data"]["pageSize"] == 1000


# ---- faults ------------------------------------------------------------------

@pytest.mark.parametrize("kind, status", [("429", 429), ("500", 500), ("502", 502),
                                          ("503", 503), ("busy", 200)])
def test_answering_fault_kinds(server: HotlineServer, kind: str, status: int) -> None:
    client = Client(server.url)
    client.login()
    server.set_faults(Faults(error_rate=1.0, kinds=[kind]))
    response = client.get(pageSize=5)
    assert response.status_code == status
    if kind == "429":
        assert response.headers["Retry-After"] == "1"
    if kind == "busy":
        assert response.json() == {"code": 50001, "msg": "系统繁忙", "data": None}
    if kind in ("502", "503"):
        assert response.headers["Content-Type"].startswith("text/html")
    assert server.stats()["faults"][kind] == 1
    # Token requests are counted but never failed.
    assert client.login()["accessToken"]
    assert server.stats()["requests"]["auth"] == 2


def test_slow_fault_times_out_a_client(server: HotlineServer) -> None:
    client = Client(server.url, timeout=0.3)
    client.login()
    server.set_faults(Faults(error_rate=1.0, kinds=["slow"], slow_seconds=1.0))
    with pytest.raises(httpx.TimeoutException):
        client.get(pageSize=5)
    server.set_faults(Faults())
    assert client.get(pageSize=5).json()["code"] == 0
    assert server.stats()["faults"]["slow"] == 1


def test_drop_fault_closes_the_connection(server: HotlineServer) -> None:
    client = Client(server.url)
    client.login()
    # Switched over HTTP this time, as a demo or another process would.
    set_to = httpx.post(f"{server.url}/_sandbox/faults",
                        json={"error_rate": 1.0, "kinds": ["drop"]}).json()
    assert set_to["kinds"] == ["drop"] and server.faults.error_rate == 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(pageSize=5)
    assert httpx.get(f"{server.url}/_sandbox/stats").json()["faults"]["drop"] == 1
    bad = httpx.post(f"{server.url}/_sandbox/faults", json={"kinds": ["meteor"]})
    assert bad.status_code == 400


def test_error_rate_is_a_seeded_fraction(data: HotlineData) -> None:
    def outcomes(seed: int) -> list[int]:
        faults = Faults(error_rate=0.3, kinds=["500", "busy", "429"], seed=seed)
        with HotlineServer(data, KEY, SECRET, faults=faults) as srv:
            client = Client(srv.url)
            client.login()
            seen = []
            for _ in range(80):
                response = client.get(pageSize=1)
                seen.append(response.status_code * 100_000 + response.json()["code"])
            faults_served = srv.stats()["faults"]
        assert sum(faults_served.values()) == sum(s != 200 * 100_000 for s in seen)
        return seen

    first = outcomes(seed=5)
    failed = sum(s != 200 * 100_000 for s in first)
    assert 10 <= failed <= 40
    assert {s // 100_000 for s in first} == {200, 429, 500}
    assert outcomes(seed=5) == first
    assert outcomes(seed=6) != first


def test_expired_token_gets_401_or_40101(data: HotlineData) -> None:
    with HotlineServer(data, KEY, SECRET, faults=Faults(token_ttl_seconds=1)) as srv:
        client = Client(srv.url)
        assert client.login()["expiresIn"] == 1
        assert client.get(pageSize=1).json()["code"] == 0
        time.sleep(1.1)
        seen = {client.get(pageSize=1).status_code for _ in range(4)}
        assert seen == {200, 401}  # both styles, for one and the same expired token
        stats = srv.stats()
        assert stats["rejected_reasons"]["expired"] == 4
        assert stats["auth_rejected"] == {"401": 2, "40101": 2}
        client.login()
        assert client.get(pageSize=1).json()["code"] == 0


def test_revoked_token_forces_a_refresh_mid_run(data: HotlineData) -> None:
    with HotlineServer(data, KEY, SECRET, faults=Faults(revoke_every=3)) as srv:
        client = Client(srv.url)
        client.login()
        records = client.all_pages(page_size=4)
        assert [r["orderNo"] for r in records] == [r["orderNo"] for r in data.query()]
        stats = srv.stats()
    assert stats["tokens_revoked"] >= 3
    assert stats["tokens_issued"] == stats["tokens_revoked"] + 1
    assert stats["auth_rejected"]["401"] >= 1 and stats["auth_rejected"]["40101"] >= 1


def test_mutation_during_paging_shifts_pages_but_keyset_paging_holds() -> None:
    data = make_data()
    later = END + timedelta(hours=10)  # every mutation moves an order out of the window
    faults = Faults(mutate_during_paging=2)
    with HotlineServer(data, KEY, SECRET, faults=faults, clock=lambda: later) as srv:
        client = Client(srv.url)
        client.login()
        # Offset paging over a window fixed at the run's start misses orders that move.
        naive = client.all_pages(page_size=8, updatedTo=END_TEXT)
        # Keyset paging (restart from the last updateTime seen) does not.
        got: dict[str, dict[str, Any]] = {}
        since: str | None = None
        page_no = 1
        while True:
            bounds = {"updatedTo": END_TEXT} | ({"updatedFrom": since} if since else {})
            records = client.page(pageNo=page_no, pageSize=8, **bounds)["records"]
            got.update((r["orderNo"], r) for r in records)
            if len(records) < 8:
                break
            last = records[-1]["updateTime"]
            since, page_no = (last, page_no + 1) if last == since else (last, 1)
        advanced = srv.stats()["orders_advanced"]
    assert advanced > 0
    in_window = {no: r for no, r in data.orders.items() if r["updateTime"] <= END_TEXT}
    assert all(got[no] == r for no, r in in_window.items())
    assert set(in_window) - {r["orderNo"] for r in naive}, "pages should have shifted"
    assert any(r["updateTime"] == later.strftime(TIME_FORMAT) for r in data.orders.values())


# ---- data ----------------------------------------------------------------------

def test_same_inputs_same_orders() -> None:
    a, b = make_data(seed=3), make_data(seed=3)
    assert a.orders == b.orders
    assert a.truth == b.truth
    assert make_data(seed=4).orders != a.orders


def test_every_defect_kind_is_planted_and_shows(data: HotlineData) -> None:
    counts = Counter(k for t in data.truth.values() for k in t.defects)
    assert 25 <= len(data.orders) and set(counts) == set(DEFECT_KINDS)
    bigger = make_data(scale=0.02)
    assert len(bigger.orders) >= 50
    assert min(Counter(k for t in bigger.truth.values() for k in t.defects).values()) >= 2

    city = data.city
    streets = {s.code for s in city.streets}
    mapped = {r["source_category_code"] for r in _mapping_rows()}
    for no, truth in data.truth.items():
        r = data.orders[no]
        person = city.person(truth.person_index)
        id_no = r["callerIdNo"]
        for kind in truth.defects:
            if kind == "id_bad_check_digit":
                assert len(id_no) == 18 and not ric.is_valid(id_no)
                assert id_no[:17] == person.id_number[:17]
            elif kind == "id_malformed":
                assert not re.fullmatch(r"\d{17}[\dX]", id_no) and not ric.is_valid(id_no)
            elif kind == "id_lower_x":
                assert id_no.endswith("x") and id_no.upper() == person.id_number
            elif kind == "id_spaces":
                assert " " in id_no and id_no.replace(" ", "").upper() == person.id_number
            elif kind == "id_legacy15":
                assert re.fullmatch(r"\d{15}", id_no)
                assert ric.get_birth_date(person.id_number).year < 2000
            elif kind == "phone_variant":
                assert r["callerPhone"] != person.phone
                assert re.sub(r"\D", "", r["callerPhone"]).removeprefix("86") == person.phone
            elif kind == "name_variant":
                assert r["callerName"] != person.name
            elif kind == "name_typo":  # one character keyed in wrongly
                assert len(r["callerName"]) == len(person.name)
                assert sum(x != y for x, y in zip(r["callerName"], person.name, strict=True)) == 1
            elif kind == "id_fullwidth":
                assert id_no != person.id_number
                assert unicodedata.normalize("NFKC", id_no) == person.id_number
            elif kind == "phone_fullwidth":
                assert r["callerPhone"] != person.phone
                assert unicodedata.normalize("NFKC", r["callerPhone"]) == person.phone
            elif kind == "unknown_category":
                assert r["categoryCode"] not in mapped
            elif kind == "unknown_status":
                assert r["status"] not in STATUSES
            elif kind == "retired_division":
                assert r["districtCode"] == "211121"
            elif kind == "unknown_street":
                assert re.fullmatch(r"\d{9}", r["streetCode"]) and r["streetCode"] not in streets
            elif kind == "finish_before_accept":
                assert r["finishTime"] < r["acceptTime"]
            elif kind == "future_time":
                assert r["acceptTime"] > END_TEXT >= r["updateTime"]
            elif kind == "coords_zero":
                assert (r["longitude"], r["latitude"]) == (0.0, 0.0)
            elif kind == "coords_swapped":
                assert (r["latitude"], r["longitude"]) == pytest.approx(truth.point_wgs84)
            elif kind == "coords_missing":
                assert r["longitude"] is None and r["latitude"] is None
            elif kind == "hostile_text":
                assert r["content"] in HOSTILE_TEXT
            elif kind == "satisfaction_not_evaluated":
                assert r["satisfaction"] == "满意" and r["status"] != "已回访"
            else:
                raise AssertionError(f"untested defect kind {kind}")


def _mapping_rows() -> list[dict[str, str]]:
    path = ROOT / "schemas" / "mappings" / "hotline12345" / "categories.csv"
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_category_catalogue_and_mapping_agree() -> None:
    catalogue = load_categories()
    assert len({c.code for c in catalogue}) == len(catalogue) >= 30
    assert all(c.name.count("/") == 2 for c in catalogue)
    with open(ROOT / "schemas" / "taxonomy.csv", encoding="utf-8", newline="") as f:
        taxonomy = {r["code"] for r in csv.DictReader(f)}
    rows = _mapping_rows()
    by_code = {c.code: c for c in catalogue}
    assert {r["source_category_code"] for r in rows} == {c.code for c in catalogue
                                                         if c.in_hub_mapping}
    assert sum(not c.in_hub_mapping for c in catalogue) == 3
    for row in rows:
        assert row["category_code"] in taxonomy
        assert row["source_category_name"] == by_code[row["source_category_code"]].name


def test_clean_orders_are_clean(data: HotlineData) -> None:
    city = data.city
    districts = {d.code for d in city.districts}
    streets = {s.code for s in city.streets}
    mapped = {r["source_category_code"] for r in _mapping_rows()}
    clean = [(no, t) for no, t in data.truth.items() if not t.defects]
    assert len(clean) >= len(data.orders) // 3
    for r in data.orders.values():
        assert r["updateTime"] <= END_TEXT
        assert re.fullmatch(r"2111\d{12}", r["orderNo"])
        assert isinstance(r["isUrgent"], bool)
    for no, truth in clean:
        r = data.orders[no]
        person = city.person(truth.person_index)
        assert no[4:10] == datetime.strptime(r["acceptTime"], TIME_FORMAT).strftime("%y%m%d")
        assert r["acceptTime"] <= r["updateTime"] <= END_TEXT
        assert r["status"] in STATUSES
        assert (r["satisfaction"] != "未评价") <= (r["status"] == "已回访")
        assert r["callerIdNo"] in ("", person.id_number)
        assert (r["callerName"], r["callerPhone"]) == (person.name, person.phone)
        assert r["districtCode"] in districts and r["streetCode"] in streets | {None}
        assert r["categoryCode"] in mapped
        x0, y0, x1, y1 = city.grid_by_code[truth.grid_code].bbox
        margin = 0.002  # repeat reports sit up to 80 m from the first
        assert x0 - margin <= r["longitude"] <= x1 + margin
        assert y0 - margin <= r["latitude"] <= y1 + margin
        if r["status"] != "待受理":
            assert r["acceptTime"] <= r["dispatchTime"] < r["deadline"]
            assert r["handleDept"]
        if r["finishTime"]:
            assert r["dispatchTime"] <= r["finishTime"] <= r["updateTime"]
    assert Counter(data.orders[no]["callerIdNo"] != "" for no, _ in clean)[True] > 0


def test_incidents_are_reported_again_nearby_by_others(data: HotlineData) -> None:
    by_incident: dict[str, list[str]] = {}
    for no, t in data.truth.items():
        by_incident.setdefault(t.incident_id, []).append(no)
    repeated = [nos for nos in by_incident.values() if len(nos) > 1]
    assert repeated
    for nos in repeated:
        truths = [data.truth[no] for no in sorted(nos)]
        assert len({t.person_index for t in truths}) == len(truths)
        lon0, lat0 = truths[0].point_wgs84
        for t in truths[1:]:
            lon, lat = t.point_wgs84
            metres = math.hypot((lon - lon0) * 111_320 * math.cos(math.radians(lat0)),
                                (lat - lat0) * 111_320)
            assert 5 <= metres <= 85
    bigger = make_data(scale=0.1)
    categories_per_incident = Counter(
        len({bigger.orders[no]["categoryCode"] for no, t in bigger.truth.items()
             if t.incident_id == inc}) for inc in {t.incident_id for t in bigger.truth.values()})
    assert categories_per_incident[2] + categories_per_incident[3] > 0


def test_hostile_text_round_trips_byte_exact() -> None:
    data = make_data()
    planted = [no for no, t in data.truth.items() if "hostile_text" in t.defects]
    assert planted
    # Put every hostile text on some order too, to send each one over the wire.
    others = [no for no, t in data.truth.items() if not t.defects]
    for no, text in zip(others, HOSTILE_TEXT, strict=False):
        data.orders[no]["content"] = text
    with HotlineServer(data, KEY, SECRET) as srv:
        client = Client(srv.url)
        client.login()
        response = client.get(pageSize=1000)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    served = {r["orderNo"]: r for r in json.loads(response.content.decode("utf-8"))["data"]["records"]}
    seen = {served[no]["content"] for no in planted + others[:len(HOSTILE_TEXT)]}
    assert seen == set(HOSTILE_TEXT) | {data.orders[no]["content"] for no in planted}
    for no in planted + others[:len(HOSTILE_TEXT)]:
        assert served[no]["content"].encode("utf-8") == data.orders[no]["content"].encode("utf-8")


def test_advance_moves_orders_one_step() -> None:
    data, twin = make_data(), make_data()
    before = {no: dict(r) for no, r in data.orders.items()}
    now = END + timedelta(days=1, hours=9)
    changed = data.advance(6, now)
    assert len(changed) == 6 and changed == twin.advance(6, now)
    stamp = now.strftime(TIME_FORMAT)
    next_status = {"待受理": {"已派单"}, "已派单": {"办理中", "已退回"}, "办理中": {"已办结"},
                   "已办结": {"已回访"}, "已退回": {"已派单"}}
    for no in changed:
        old, new = before[no], data.orders[no]
        assert new["status"] in next_status[old["status"]]
        assert new["updateTime"] == stamp
        if new["status"] == "已派单":
            assert new["dispatchTime"] == stamp and new["handleDept"] and new["deadline"] > stamp
        if new["status"] == "已办结":
            assert new["finishTime"] == stamp
        if new["status"] == "已回访":
            assert new["satisfaction"] in ("满意", "基本满意", "不满意", "未评价")
    unchanged = set(data.orders) - set(changed)
    assert all(data.orders[no] == before[no] for no in unchanged)
    assert [r["orderNo"] for r in data.query(updated_from=stamp)] == changed


def test_advance_over_http_uses_the_server_clock() -> None:
    data = make_data()
    at = datetime(2026, 11, 20, 8, 30, 15)
    with HotlineServer(data, KEY, SECRET, clock=lambda: at) as srv:
        answer = httpx.post(f"{srv.url}/_sandbox/advance", json={"orders": 4}).json()
        client = Client(srv.url)
        client.login()
        fresh = client.all_pages(50, updatedFrom="2026-11-20 08:30:15")
    assert len(answer["orderNos"]) == 4 and answer["updateTime"] == "2026-11-20 08:30:15"
    assert [r["orderNo"] for r in fresh] == answer["orderNos"]


def test_gcj02_mode_serves_offset_coordinates() -> None:
    data = make_data(coordinate_system="gcj02")
    checked = 0
    for no, truth in data.truth.items():
        r = data.orders[no]
        if truth.defects & {"coords_zero", "coords_swapped", "coords_missing"}:
            continue
        lon, lat = gcj02_to_wgs84(r["longitude"], r["latitude"])
        assert abs(float(lon) - truth.point_wgs84[0]) < 1e-5
        assert abs(float(lat) - truth.point_wgs84[1]) < 1e-5
        assert abs(r["longitude"] - truth.point_wgs84[0]) > 1e-3  # really shifted
        checked += 1
    assert checked >= 20
    wgs = make_data()
    assert [r["orderNo"] for r in wgs.query()] == [r["orderNo"] for r in data.query()]


def test_standalone_server_prints_its_url() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.hotline_server", "--port", "0", "--scale", "0.01",
         "--days", "1", "--end", "2026-11-20", "--app-key", "K", "--app-secret", "S"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        token = httpx.post(f"{url}/api/v1/auth/token",
                           json={"appKey": "K", "appSecret": "S"}).json()["data"]["accessToken"]
        page = httpx.get(f"{url}/api/v1/workorders", params={"pageSize": 3},
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert page["code"] == 0 and len(page["data"]["records"]) == 3
        truth = httpx.get(f"{url}/_sandbox/truth").json()
        assert len(truth) == page["data"]["total"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
