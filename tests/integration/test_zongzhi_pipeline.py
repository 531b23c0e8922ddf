"""The 综治 platform end to end: its simulator over real HTTP into a real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import psycopg
import pytest
from psycopg import sql

from base.identity import citizen_id_identity
from base.pii import keyed_hash
from base.settings import secret_env_var
from connectors.base import SourceError
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.zongzhi import ZongzhiData
from sandbox.zongzhi_server import Faults, ZongzhiServer
from tests.support.hotline import SIM_END
from tests.support.sources import write_sources_file
from tests.support.warehouse_checks import assert_one_current_row_each, quarantined

KEY = "test-zongzhi-key"
CORE = ("core.event", "core.person", "core.organization")


@pytest.fixture
def zongzhi(tmp_path, monkeypatch, hotline_data_factory, warehouse, sim_clock):
    """Start a 综治 simulator and configure a source for it: returns a factory."""
    from base.settings import settings

    servers: list[ZongzhiServer] = []
    monkeypatch.setenv("HUB_BATCH_ROWS", "100")

    def start(faults: Faults | None = None, scale: float = 0.06, **options: object):
        name = f"zongzhi_{uuid.uuid4().hex[:8]}"
        data = ZongzhiData(City("2111", scale=scale), days=3, end=datetime.fromisoformat(SIM_END),
                           hotline=hotline_data_factory(scale=scale))
        server = ZongzhiServer(data, KEY, faults=faults).start()
        servers.append(server)
        monkeypatch.setenv(secret_env_var(name, "api_key"), KEY)
        path = write_sources_file(tmp_path / f"{name}.yaml", {name: {
            "connector": "zongzhi", "settings": {
                "base_url": server.url, "page_size": 10, "timeout_seconds": 2,
                "backoff_seconds": 0.05, "max_backoff_seconds": 0.5, "max_attempts": 12,
                "start_from": "2026-11-01T00:00:00+08:00", **options}}})
        return name, path, server

    settings.cache_clear()
    yield start
    settings.cache_clear()
    for s in servers:
        s.stop()


def current(db: psycopg.Connection, source: str, table: str, *columns: str) -> dict[str, tuple]:
    """source_id → (record_hash, *columns) of the current rows a source loaded."""
    rows = db.execute(sql.SQL("SELECT source_id, record_hash{} FROM {} WHERE source_system = %s"
                              " AND valid_to IS NULL").format(
        sql.SQL("").join(sql.SQL(", ") + sql.Identifier(c) for c in columns),
        sql.Identifier(*table.split("."))), (source,)).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_first_run_loads_disputes_parties_and_committees(db, zongzhi):
    source, config, server = zongzhi()
    data = server.data
    summary = run_source(source, config)
    assert summary.outcome == "succeeded"
    assert summary.extracted == len(data.disputes) + len(data.orgs)
    assert summary.extracted == summary.loaded + summary.quarantined

    events = current(db, source, "core.event", "accepted_at", "resolved_at", "closed_at",
                     "source_updated_at", "category_code", "channel", "handling_org",
                     "reporter_id_number_hash")
    held = quarantined(db, source, "event")
    assert set(events) | set(held) == set(data.disputes) and not set(events) & set(held)
    # Only the planted closing times before acceptance are held back.
    assert set(held) == {no for no, t in data.truth.items() if "close_before_accept" in t.defects}
    assert set(held.values()) == {"lifecycle_order"}
    for no, (_, accepted, resolved, closed, updated, category, channel, org, reporter) in events.items():
        sent = data.disputes[no]
        assert accepted == _instant(sent["acceptTime"]) and closed == _instant(sent["closeTime"])
        assert updated == _instant(sent["updateTime"])
        assert resolved == (_instant(sent["mediateTime"]) if sent["status"] == "调解成功" else None)
        assert channel == sent["source"]
        assert org == (sent["mediationOrg"] or {}).get("name")
        assert (category == "unmapped") == ("unknown_dispute_type" in data.truth[no].defects)
        applicant = server.data.city.person(data.truth[no].party_indices[0])
        if "party_id_missing" not in data.truth[no].defects:
            assert reporter == keyed_hash(citizen_id_identity(applicant.id_number))

    # Every party of a loaded dispute is one person, keyed by its identity.
    people = current(db, source, "core.person", "id_number_hash", "role")
    expected: set[str] = set()
    for no in events:
        truth = data.truth[no]
        for k, index in enumerate(truth.party_indices):
            person = data.city.person(index)
            if k == 0 and "party_id_missing" in truth.defects:
                expected.add(f"tel:{person.phone}")
            else:
                expected.add(keyed_hash(citizen_id_identity(person.id_number)))
    assert len(people) == len(expected)
    assert {h for _, h, _ in people.values() if h} == {e for e in expected if ":" not in e}
    assert {role for _, _, role in people.values()} == {"party"}

    committees = current(db, source, "core.organization", "uscc",
                         "org_type")
    assert set(committees) == {o["code"] for o in data.orgs}
    assert all(uscc == code and kind == "mediation_committee"
               for code, (_, uscc, kind) in committees.items())


def test_a_rerun_adds_nothing(db, zongzhi):
    source, config, _ = zongzhi()
    run_source(source, config)
    again = run_source(source, config)
    assert (again.inserted, again.updated, again.closed) == (0, 0, 0), again.as_dict()
    # What the overlap window serves again was read by the first run: skipped before
    # conform, counted as re-read; the committee list is the same list.
    assert again.extracted == 0 < again.reread
    assert_one_current_row_each(db, source, CORE)


def test_the_committee_list_sent_again_loads_nothing_and_one_gone_is_closed(db, zongzhi):
    source, config, server = zongzhi()
    first = run_source(source, config, streams=["mediation_orgs"])
    assert first.loaded == len(server.data.orgs) > 1
    # The same list (in another order): the snapshot already loaded, nothing to read.
    server.data.orgs.reverse()
    again = run_source(source, config, streams=["mediation_orgs"])
    assert (again.extracted, again.inserted, again.closed) == (0, 0, 0)
    gone = server.data.orgs.pop()
    changed = run_source(source, config, streams=["mediation_orgs"])
    assert (changed.extracted, changed.closed) == (len(server.data.orgs), 1)
    assert gone["code"] not in current(db, source, "core.organization")
    assert_one_current_row_each(db, source, ["core.organization"])


def test_moved_on_disputes_get_a_new_version(db, zongzhi):
    source, config, server = zongzhi()
    run_source(source, config)
    before = current(db, source, "core.event", "status")
    changed = [no for no in server.advance(10) if no in before]
    assert changed
    second = run_source(source, config)
    assert second.updated == len(changed) and second.inserted == 0
    after = current(db, source, "core.event", "status")
    assert all(after[no] != before[no] for no in changed)
    assert_one_current_row_each(db, source, CORE)


@pytest.mark.parametrize("page_size, expire_every", [(3, 12), (17, None)])
def test_versions_kept_from_the_overlap_lose_nothing_while_records_move(
        db, zongzhi, page_size, expire_every):
    """The cursor keeps the versions read inside the overlap window: whatever the page
    size, with disputes moving on while pages are read and cursors expiring, every
    dispute ends at its latest version, and a run after the platform stood still reads
    nothing again."""
    source, config, server = zongzhi(Faults(advance_during_paging=2, expire_every=expire_every),
                                     page_size=page_size)
    run_source(source, config)
    server.advance(8)
    run_source(source, config)
    server.set_faults(Faults())
    run_source(source, config)  # what moved on during the last paged read
    idle = run_source(source, config)
    assert idle.extracted == 0
    loaded, held = current(db, source, "core.event", "status"), quarantined(db, source, "event")
    assert set(loaded) | set(held) == set(server.data.disputes)
    for no in loaded:
        assert _instant(server.data.disputes[no]["updateTime"]) == db.execute(
            "SELECT source_updated_at FROM core.event WHERE source_system = %s AND source_id = %s"
            " AND valid_to IS NULL", (source, no)).fetchone()[0]
    assert_one_current_row_each(db, source, CORE)


def test_expired_cursors_lose_and_duplicate_nothing(db, zongzhi):
    clean, clean_config, _ = zongzhi()
    run_source(clean, clean_config)
    # Every second token-following request finds its cursor gone.
    source, config, server = zongzhi(Faults(expire_every=2))
    summary = run_source(source, config)
    assert server.stats()["cursor.expired"] > 0 and summary.http["cursor_expired"] > 0
    assert summary.reread > 0  # the restarts read the records at the time reached again
    assert _hashes(db, source) == _hashes(db, clean)
    assert set(quarantined(db, source, "event")) == set(quarantined(db, clean, "event"))
    assert_one_current_row_each(db, source, CORE)


def test_a_cursor_left_for_longer_than_it_lives_restarts_the_read(db, zongzhi):
    """The real expiry: a token older than its time to live (1 s here, 10 min on the
    platform), while the pipeline is busy with a batch, disputes moving on meanwhile."""
    source, config, server = zongzhi(Faults(cursor_ttl_seconds=1, advance_during_paging=1),
                                     scale=0.4)

    def slow(summary) -> None:
        # The committees and the first 100 disputes stored: the next 100 are in hand
        # (the pipeline reads a batch ahead), their last page's token waiting.
        if summary.batches == 2:
            time.sleep(1.5)

    summary = run_source(source, config, progress=slow)
    assert server.stats()["cursor.expired"] == 1 == summary.http["cursor_expired"]
    server.set_faults(Faults())
    run_source(source, config)  # what moved on past the first read's snapshot
    loaded, held = current(db, source, "core.event", "status"), quarantined(db, source, "event")
    assert set(loaded) | set(held) == set(server.data.disputes)
    for no in loaded:
        assert _instant(server.data.disputes[no]["updateTime"]) == db.execute(
            "SELECT source_updated_at FROM core.event WHERE source_system = %s AND source_id = %s"
            " AND valid_to IS NULL", (source, no)).fetchone()[0]
    assert_one_current_row_each(db, source, CORE)


def test_rate_limits_and_503s_are_retried(db, zongzhi):
    clean, clean_config, _ = zongzhi()
    run_source(clean, clean_config)
    source, config, server = zongzhi(Faults(error_rate=0.3, seed=5), page_size=5)
    summary = run_source(source, config)
    stats = server.stats()
    assert stats.get("faults.rate_limited", 0) > 0 and stats.get("faults.503", 0) > 0
    assert summary.http["errorCode RATE_LIMITED"] > 0 and summary.http["HTTP 503"] > 0
    assert _hashes(db, source) == _hashes(db, clean)


def test_disputes_appear_in_the_marts(db, zongzhi):
    source, config, server = zongzhi()
    run_source(source, config)
    loaded = current(db, source, "core.event")
    rows = db.execute("SELECT source_id, category_l1_code, is_accepted, is_closed, district_name"
                      " FROM mart.event_current WHERE source_system = %s", (source,)).fetchall()
    assert {r[0] for r in rows} == set(loaded)
    for no, l1, accepted, closed, district in rows:
        sent = server.data.disputes[no]
        assert l1 == ("unmapped" if sent["disputeType"] == "医疗纠纷" else "MD")
        assert accepted == (sent["acceptTime"] is not None)
        assert closed == (accepted and (sent["status"] == "调解成功" or sent["closeTime"] is not None))
        assert district


def test_a_dispute_transferred_from_12345_is_reported_by_the_caller_of_its_order(
        db, zongzhi, hotline):
    source, config, server = zongzhi()
    hotline_source, hotline_config, _ = hotline(data=server.data.hotline)
    run_source(source, config)
    run_source(hotline_source, hotline_config)
    disputes = current(db, source, "core.event", "reporter_phone_hash")
    orders = current(db, hotline_source, "core.event", "reporter_phone_hash")
    transfers = {no: t.transfer_no for no, t in server.data.truth.items() if t.transfer_in_hotline}
    assert transfers
    for no, order_no in transfers.items():
        assert disputes[no][1] == orders[order_no][1] is not None


def test_a_wrong_key_fails_the_run_clearly(db, zongzhi, monkeypatch):
    source, config, _ = zongzhi()
    monkeypatch.setenv(secret_env_var(source, "api_key"), "wrong")
    with pytest.raises(SourceError, match="HTTP 403"):
        run_source(source, config)
    outcome = db.execute("SELECT outcome, error FROM ops.run WHERE source_system = %s",
                         (source,)).fetchone()
    assert outcome[0] == "failed" and "UNAUTHORIZED" in outcome[1]


def test_the_key_is_refused_in_the_sources_file(zongzhi):
    source, config, _ = zongzhi(api_key="oops")
    with pytest.raises(ValueError, match="must not be in the sources file"):
        run_source(source, config)


def _hashes(db: psycopg.Connection, source: str) -> dict[str, dict[str, str]]:
    return {t: {k: v[0] for k, v in current(db, source, t).items()} for t in CORE}


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
