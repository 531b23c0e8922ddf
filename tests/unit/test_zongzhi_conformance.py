"""The 综治 connector and conform step on recorded pages, without the simulator or a database.

tests/fixtures/zongzhi/ holds what the platform answered a read, exchange by exchange
(recorded from sandbox.zongzhi_server through the connector): a first page, a 503 with
Retry-After and a RATE_LIMITED answer on the next, a cursor that expired mid-read
and the restart from the update time reached, then a second read from the cursor the
first one left; and the list of mediation committees. They are replayed through the
connector's HTTP transport, so every request it makes must be one that was recorded.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from base.identity import citizen_id_identity
from base.settings import CityConfig, SourceConfig
from conform.mapped import stream_mapping
from conform.zongzhi import ZongzhiDisputes, ZongzhiMediationOrgs
from connectors.base import Extract
from connectors.zongzhi import DISPUTES, MEDIATION_ORGS, Zongzhi
from quality.rules import RuleContext
from quality.validate import validate
from schemas.arrow import conformed_schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zongzhi"
KEY = "recorded-key"
CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
# As the pages were recorded: 3 a page, from this time, no overlap.
SETTINGS = {"base_url": "http://zongzhi.recorded", "page_size": 3, "overlap_minutes": 0,
            "start_from": "2026-11-17T00:00:00+08:00", "backoff_seconds": 0}
NOW = datetime.fromisoformat("2026-11-20T00:00:00+08:00")


class Replay(httpx.BaseTransport):
    """Answers each request with the next recorded exchange for exactly that request."""

    def __init__(self, exchanges: list[dict[str, Any]]):
        self.pending = list(exchanges)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert request.headers.get("X-Api-Key") == KEY
        asked = {"method": request.method, "path": request.url.path,
                 "params": dict(request.url.params)}
        match = next((x for x in self.pending if x["request"] == asked), None)
        assert match is not None, f"not recorded: {asked}"
        self.pending.remove(match)
        response = match["response"]
        return httpx.Response(response["status"], headers=response.get("headers", {}),
                              content=json.dumps(response["body"], ensure_ascii=False).encode())


def recorded(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def served(exchanges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record the platform served, in order (re-reads included)."""
    return [item for x in exchanges if x["response"]["body"]["success"]
            for item in x["response"]["body"]["result"]["items"]]


@pytest.fixture
def connector(monkeypatch):
    monkeypatch.setenv("HUB_ZZ_RECORDED_API_KEY", KEY)
    return Zongzhi(SourceConfig(name="zz_recorded", connector="zongzhi", settings=SETTINGS), CITY)


def read(connector: Zongzhi, stream, state=None) -> tuple[list[Extract], list[float]]:
    slept: list[float] = []
    connector.sleep = slept.append
    return list(connector.extract(stream, state)), slept


def test_every_platform_field_is_mapped_or_said_why_not():
    for stream in (DISPUTES, MEDIATION_ORGS):
        mapping = stream_mapping("zongzhi", stream.name)
        assert mapping.fields == set(stream.fields), stream.name
        for rule in mapping.rules:
            assert rule.to is not None or rule.why, f"{stream.name}.{rule.field}: say why"


def test_recorded_disputes_parse_restart_and_conform(connector):
    exchanges = recorded("disputes.json")
    first_read = [x for x in exchanges if x is not exchanges[-1]]
    connector.transport = Replay(first_read)
    extracts, slept = read(connector, DISPUTES)
    assert connector.transport.pending == []  # the connector asked exactly what was recorded

    # Retries: the 503 waited its Retry-After; RATE_LIMITED and the expiry were retried.
    assert slept[0] == 1.0 and len(slept) == 2
    assert {"HTTP 503", "errorCode RATE_LIMITED", "cursor_expired"} <= set(connector.stats)

    # Every record once: the restart re-read one record, counted and skipped.
    items = served(first_read)
    records = pa.concat_tables([e.records for e in extracts])
    assert records.num_rows == len({i["caseId"] for i in items}) == len(items) - 1
    assert sum(e.reread for e in extracts) == 1
    assert records.column_names == list(DISPUTES.fields)

    # The cursor only moves forward, and ends at the last update time read.
    cursors = [datetime.fromisoformat(e.cursor["updated_since"]) for e in extracts]
    assert cursors == sorted(cursors)
    assert cursors[-1] == max(datetime.fromisoformat(i["updateTime"]) for i in items)

    conformer = ZongzhiDisputes(connector.settings, CITY)
    conformed = conformer.conform(records)
    table = conformed.table
    assert table.schema.equals(conformed_schema(conformer.primary))
    assert table.num_rows == records.num_rows
    # Every column the mapping fills is filled somewhere on these pages.
    mapped = {r.to for r in stream_mapping("zongzhi", "disputes").rules} - {None, "person"}
    empty = {c for c in mapped if table[c].null_count == table.num_rows}
    assert not empty

    by_id = {r["source_id"]: r for r in table.to_pylist()}
    raw = {i["caseId"]: i for i in items}
    for case_id, row in by_id.items():
        sent = raw[case_id]
        # Instants as sent, whatever the offset: no local-time assumption.
        assert row["accepted_at"] == _instant(sent["acceptTime"])
        assert row["source_updated_at"] == _instant(sent["updateTime"])
        assert row["closed_at"] == _instant(sent["closeTime"])
        assert row["resolved_at"] == (_instant(sent["mediateTime"])
                                      if sent["status"] == "调解成功" else None)
        assert row["channel"] == sent["source"]
        assert row["handling_org"] == (sent["mediationOrg"] or {}).get("name")
        assert row["description"] == sent["summary"]  # verbatim, hostile text too
    utc = [i for i in items if i["updateTime"].endswith("Z")]
    assert utc, "the recording holds times in UTC"
    categories = {r["source_category"]: r["category_code"] for r in by_id.values()}
    assert categories["邻里纠纷"] == "MD01" and categories["医疗纠纷"] == "unmapped"
    statuses = {r["source_status"]: r["status"] for r in by_id.values()}
    assert statuses["调解成功"] == "resolved" and statuses["中止调解"] == "unmapped"

    ctx = RuleContext.from_reference("2111", CITY.extent, NOW)
    checked = validate(conformer.primary, table, ctx, conformed.unparseable, records)
    held = {table["source_id"][i].as_py() for i in range(table.num_rows) if checked.quarantine[i]}
    closed_before_accept = {i["caseId"] for i in items
                            if i["closeTime"] and i["closeTime"] < i["acceptTime"]}
    assert held == closed_before_accept and held
    rules = set(checked.findings["rule"].to_pylist())
    assert {"citizen_id_valid", "category_mapped", "status_mapped"} <= rules

    # Parties of the disputes that passed: one person each, keyed by the ID's identity.
    passed = pa.array(~checked.quarantine)
    persons = conformer.derive(records.filter(passed), table.filter(passed))["person"]
    identities = {("id", citizen_id_identity(p["idNo"].upper())) if p["idNo"]
                  else ("tel", p["phone"]) for i in items if i["caseId"] not in held
                  for p in i["parties"]}
    assert persons.num_rows == len(identities)
    assert set(persons["role"].to_pylist()) == {"party"}
    assert all(s.startswith("party:") for s in persons["source_id"].to_pylist())

    # A second read from where the first ended brings nothing new.
    connector.transport = Replay([exchanges[-1]])
    again, _ = read(connector, DISPUTES, extracts[-1].cursor)
    versions = {(i["caseId"], i["updateTime"]) for i in items}
    for e in again:
        assert set(zip(e.records["caseId"].to_pylist(), e.records["updateTime"].to_pylist(),
                       strict=True)) <= versions
        assert e.cursor == extracts[-1].cursor


def test_recorded_committees_are_a_snapshot_keyed_by_credit_code(connector):
    exchanges = recorded("mediation-orgs.json")
    connector.transport = Replay(exchanges)
    extracts, _ = read(connector, MEDIATION_ORGS)
    assert connector.transport.pending == []
    (extract,) = extracts
    assert extract.snapshot_complete and extract.snapshot_id
    items = served(exchanges)
    assert extract.records.num_rows == len(items)

    conformer = ZongzhiMediationOrgs(connector.settings, CITY)
    conformed = conformer.conform(extract.records)
    rows = conformed.table.to_pylist()
    assert [r["source_id"] for r in rows] == [i["code"] for i in items]
    assert all(r["uscc"] == i["code"] and r["org_type"] == "mediation_committee"
               for r, i in zip(rows, items, strict=True))
    for r, i in zip(rows, items, strict=True):
        assert r["division_code"] == i["divisionCode"][:6]
        assert r["street_code"] == (i["divisionCode"] if len(i["divisionCode"]) == 9 else None)
    ctx = RuleContext.from_reference("2111", CITY.extent, NOW)
    checked = validate(conformer.primary, conformed.table, ctx, conformed.unparseable,
                       extract.records)
    assert not checked.quarantine.any()
    assert "uscc_valid" not in set(checked.findings["rule"].to_pylist())


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
