"""Cross-source consistency: a 12345 order transferred to 数字城管 or 综治 appears in both.

The checks are keyed by connector, never by a source's name: every source here is named
otherwise than its connector, and the 综治 one is checked against a second 12345 instance.
"""

from __future__ import annotations

from datetime import datetime

from base.settings import secret_env_var
from connectors.registry import connector_class
from hub.pipeline import run_source
from quality.consistency import (
    CHECKS,
    HOTLINE_CONNECTORS,
    TRANSFER_RULE,
    TRANSFERRED_FROM_HOTLINE,
    checks_for,
)
from sandbox.city import City
from sandbox.citymgmt import CityMgmtData, CityMgmtDatabase
from sandbox.hotline12345 import HotlineData
from sandbox.hotline_server import HotlineServer
from sandbox.zongzhi import ZongzhiData
from sandbox.zongzhi_server import ZongzhiServer
from tests.support.hotline import HOTLINE_KEY, HOTLINE_SECRET
from tests.support.sources import write_sources_file

# A history of its own: order numbers carry their date, so no other test's orders
# can stand in for this one's.
END = datetime(2026, 10, 10)


def _result(db, run_id: int) -> tuple[int, int]:
    row = db.execute("SELECT evaluated, failed FROM quality.rule_result WHERE run_id = %s"
                     " AND rule = %s", (run_id, TRANSFER_RULE)).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def test_transferred_cases_are_checked_against_the_hotline(db, tmp_path, monkeypatch):
    city = City("2111", scale=0.05)
    cases = CityMgmtDatabase(CityMgmtData(city, days=2, end=END),
                             f"sqlite:///{tmp_path / 'cm.sqlite'}").start()
    hotline = HotlineServer(HotlineData(city, days=2, end=END), HOTLINE_KEY,
                            HOTLINE_SECRET).start()
    try:
        monkeypatch.setenv("HUB_XS_HOTLINE_APP_KEY", HOTLINE_KEY)
        monkeypatch.setenv("HUB_XS_HOTLINE_APP_SECRET", HOTLINE_SECRET)
        path = write_sources_file(tmp_path / "sources.yaml", {
            "xs_cases": {"connector": "citymgmt", "settings": {
                "url": cases.reader_url, "start_from": "2000-01-01 00:00:00"}},
            "xs_hotline": {"connector": "hotline12345", "settings": {
                "base_url": hotline.url, "start_from": "2026-09-01 00:00:00"}},
        })

        alone = run_source("xs_cases", path)
        evaluated, missing_alone = _result(db, alone.run_id)
        assert evaluated > 0 and missing_alone == evaluated  # no hotline data yet

        run_source("xs_hotline", path)
        both = run_source("xs_cases", path)
        evaluated_both, failed = _result(db, both.run_id)
        assert evaluated_both == evaluated
        reasons = [r[0] for r in db.execute(
            "SELECT reason FROM quality.finding WHERE run_id = %s AND rule = %s",
            (both.run_id, TRANSFER_RULE))]
        assert len(reasons) == failed < evaluated
        # What still fails is explained: no order number quoted (hostile text planted in
        # its place) or an order the hotline load held in quarantine.
        held = {r[0] for r in db.execute(
            "SELECT source_id FROM quality.quarantine WHERE source_system = 'xs_hotline'")}
        for reason in reasons:
            assert "names no 12345 order" in reason or any(no in reason for no in held), reason
    finally:
        hotline.stop()
        cases.stop()


# The 综治 test's own history: other order numbers than the 数字城管 test's.
ZZ_END = datetime(2026, 9, 20)
ZZ_KEY = "test-zongzhi-key"


def _findings(db, run_id: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT reason FROM quality.finding WHERE run_id = %s"
                                     " AND rule = %s", (run_id, TRANSFER_RULE))]


def test_transferred_disputes_are_checked_against_a_second_hotline(db, tmp_path, monkeypatch):
    city = City("2111", scale=0.05)
    hotline_data = HotlineData(city, days=2, end=ZZ_END)
    disputes = ZongzhiServer(ZongzhiData(city, days=2, end=ZZ_END, hotline=hotline_data),
                             ZZ_KEY).start()
    hotline = HotlineServer(HotlineData(city, days=2, end=ZZ_END), HOTLINE_KEY,
                            HOTLINE_SECRET).start()
    try:
        monkeypatch.setenv(secret_env_var("county_disputes", "api_key"), ZZ_KEY)
        monkeypatch.setenv(secret_env_var("dawa_12345", "app_key"), HOTLINE_KEY)
        monkeypatch.setenv(secret_env_var("dawa_12345", "app_secret"), HOTLINE_SECRET)
        path = write_sources_file(tmp_path / "sources.yaml", {
            "county_disputes": {"connector": "zongzhi", "settings": {
                "base_url": disputes.url, "start_from": "2026-09-01T00:00:00+08:00"}},
            "dawa_12345": {"connector": "hotline12345", "settings": {
                "base_url": hotline.url, "start_from": "2026-09-01 00:00:00"}},
        })
        transfers = {no for no, t in disputes.data.truth.items() if t.transfer_no}
        assert transfers

        alone = run_source("county_disputes", path)
        evaluated, missing = _result(db, alone.run_id)
        loaded = {r[0] for r in db.execute(
            "SELECT source_id FROM core.event WHERE source_system = 'county_disputes'"
            " AND valid_to IS NULL AND transfer_ref IS NOT NULL")}
        assert evaluated == len(loaded) > 0 and loaded <= transfers
        assert missing == evaluated  # the 12345 orders are not loaded yet
        assert all("not in the hotline data" in r for r in _findings(db, alone.run_id))

        run_source("dawa_12345", path)
        both = run_source("county_disputes", path)
        evaluated_both, failed = _result(db, both.run_id)
        assert evaluated_both == evaluated
        # What still fails is an order the hotline load held in quarantine.
        held = {r[0] for r in db.execute(
            "SELECT source_id FROM quality.quarantine WHERE source_system = 'dawa_12345'")}
        reasons = _findings(db, both.run_id)
        assert len(reasons) == failed < evaluated
        for reason in reasons:
            assert any(no in reason for no in held), reason
    finally:
        hotline.stop()
        disputes.stop()


def test_checks_are_declared_by_connector():
    for check in CHECKS:
        for connector in check.applies_to | HOTLINE_CONNECTORS:
            connector_class(connector)  # a real connector, not a source's name
    assert [c.rule for c in checks_for("citymgmt")] == [TRANSFER_RULE]
    assert [c.rule for c in checks_for("zongzhi")] == [TRANSFER_RULE]
    assert checks_for("hotline12345") == checks_for("video") == []
    assert set(TRANSFERRED_FROM_HOTLINE) == {"citymgmt", "zongzhi"}
