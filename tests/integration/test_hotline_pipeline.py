"""The spine end to end: the 12345 simulator over real HTTP into a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from base.settings import settings
from hub.pipeline import run_source
from sandbox.hotline_server import Faults
from tests.support.warehouse_checks import assert_one_current_row_each, quarantined

CORE = ("core.event", "core.person", "core.organization")


def current(db: psycopg.Connection, source: str, table: str = "core.event") -> dict[str, tuple]:
    """source_id → (record_hash, status) of the current rows a source loaded."""
    status = sql.SQL("status" if table == "core.event" else "NULL")
    rows = db.execute(sql.SQL("SELECT source_id, record_hash, {} FROM {} WHERE source_system = %s"
                              " AND valid_to IS NULL").format(status, sql.Identifier(*table.split("."))),
                      (source,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_first_run_loads_every_order_and_counts_reconcile(db, hotline):
    source, config, server = hotline()
    summary = run_source(source, config)
    orders = server.data.orders
    assert summary.outcome == "succeeded"
    assert summary.extracted == len(orders)
    assert summary.extracted == summary.loaded + summary.quarantined
    loaded, held = current(db, source), quarantined(db, source, "event")
    assert set(loaded) | set(held) == set(orders)
    assert not set(loaded) & set(held)
    assert (len(loaded), len(held)) == (summary.loaded, summary.quarantined)
    run = db.execute("SELECT outcome, extracted, loaded, quarantined FROM ops.run"
                     " WHERE run_id = %s", (summary.run_id,)).fetchone()
    assert run == ("succeeded", summary.extracted, summary.loaded, summary.quarantined)
    # Callers and handling departments came along.
    assert current(db, source, "core.person") and current(db, source, "core.organization")


def test_running_again_adds_no_duplicate(db, hotline):
    source, config, _ = hotline()
    run_source(source, config)
    again = run_source(source, config)
    assert (again.inserted, again.updated) == (0, 0)
    assert_one_current_row_each(db, source, CORE)


def gx_results(db: psycopg.Connection, run_id: int) -> list[tuple[str, int, bool]]:
    return db.execute("SELECT entity, batch_no, success FROM quality.gx_validation"
                      " WHERE run_id = %s ORDER BY batch_no", (run_id,)).fetchall()


def test_great_expectations_validates_what_a_run_brings_and_nothing_else(
        db, hotline, hotline_data_factory, monkeypatch):
    monkeypatch.setenv("HUB_BATCH_ROWS", "100")
    settings.cache_clear()
    source, config, server = hotline(data=hotline_data_factory(days=5))
    first = run_source(source, config)
    # The stream's first batch, once per run, however many batches.
    assert first.batches > 1
    assert [(e, b) for e, b, _ in gx_results(db, first.run_id)] == [("event", 0)]
    # Nothing changed on the platform: nothing new to validate.
    idle = run_source(source, config)
    assert (idle.inserted, idle.updated, idle.quarantined) == (0, 0, 0)
    assert gx_results(db, idle.run_id) == []
    # Read again from the start (an operator lowered the cursor): every record as it
    # was, the bad ones held again in their open entries: still nothing new.
    db.execute("DELETE FROM ops.cursor WHERE source_system = %s", (source,))
    again = run_source(source, config)
    assert again.extracted == first.extracted and again.quarantined == first.quarantined > 0
    assert (again.inserted, again.updated) == (0, 0)
    assert gx_results(db, again.run_id) == []
    server.advance(15)
    changed = run_source(source, config)
    assert changed.updated + changed.inserted > 0
    assert [e for e, _, _ in gx_results(db, changed.run_id)] == ["event"]


def test_an_updated_order_shows_its_new_status_and_keeps_the_old(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    before = current(db, source)
    changed = [no for no in server.advance(15) if no in before]
    assert changed
    second = run_source(source, config)
    assert second.updated == len(changed)
    after = current(db, source)
    for no in changed:
        status = server.data.orders[no]["status"]
        assert after[no][1] != before[no][1], f"{no} still {before[no][1]} ({status})"
        versions = db.execute("SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL)"
                              " FROM core.event WHERE source_system = %s AND source_id = %s",
                              (source, no)).fetchone()
        assert versions == (2, 1)


def test_faults_and_token_expiry_load_exactly_what_a_clean_run_loads(db, hotline,
                                                                     hotline_data_factory):
    clean, clean_config, _ = hotline()
    run_source(clean, clean_config)
    faults = Faults(error_rate=0.1, seed=7, slow_seconds=3,
                    kinds=["429", "500", "502", "503", "busy", "slow", "drop"],
                    token_ttl_seconds=1.5, revoke_every=5)
    faulty, faulty_config, server = hotline(faults=faults, page_size=10)
    summary = run_source(faulty, faulty_config)
    stats = server.stats()
    assert sum(stats["faults"].values()) > 0, "the simulator produced no faults"
    assert stats["tokens_issued"] > 1, "the token never had to be refreshed"
    assert summary.http.get("token_refresh", 0) > 1
    ours = {k: v[0] for k, v in current(db, faulty).items()}
    theirs = {k: v[0] for k, v in current(db, clean).items()}
    assert ours == theirs
    assert set(quarantined(db, faulty, "event")) == set(quarantined(db, clean, "event"))


def test_pages_shifting_under_the_read_lose_and_duplicate_nothing(db, hotline):
    source, config, server = hotline(faults=Faults(error_rate=0, mutate_during_paging=4),
                                     page_size=50)
    run_source(source, config)
    server.set_faults(Faults())
    run_source(source, config)  # picks up what moved past the first run's window
    loaded, held = current(db, source), quarantined(db, source, "event")
    assert set(loaded) | set(held) == set(server.data.orders)
    for no, (_, status) in loaded.items():
        assert server.data.orders[no]["status"] in _SOURCE_STATUSES[status], no


_SOURCE_STATUSES = {
    "reported": {"待受理"}, "dispatched": {"已派单"}, "in_progress": {"办理中"},
    "resolved": {"已办结"}, "closed": {"已回访"}, "returned": {"已退回"},
    "unmapped": {"挂起"},
}


def test_bad_records_are_quarantined_or_flagged_with_reasons(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    truth = server.data.truth
    held = quarantined(db, source, "event")
    findings: dict[str, set[str]] = {}
    for sid, rule in db.execute("SELECT source_id, rule FROM quality.finding WHERE"
                                " source_system = %s AND entity = 'event'", (source,)):
        findings.setdefault(sid, set()).add(rule)

    def orders_with(defect: str) -> list[str]:
        found = [no for no, t in truth.items() if defect in t.defects]
        assert found, f"the simulator planted no {defect}"
        return found

    for no in orders_with("finish_before_accept"):
        assert held.get(no) == "lifecycle_order"
    for no in orders_with("future_time"):
        assert no in held
    for no in orders_with("unknown_category"):
        if no not in held:
            assert "category_mapped" in findings.get(no, set())
    for defect, rule in [("coords_zero", "coordinates_in_city"),
                         ("coords_swapped", "coordinates_in_city"),
                         ("id_bad_check_digit", "citizen_id_valid"),
                         ("retired_division", "division_code_known")]:
        for no in orders_with(defect):
            assert no in held or rule in findings.get(no, set()), (defect, no)
    reasons = db.execute("SELECT reason FROM quality.quarantine WHERE source_system = %s",
                         (source,)).fetchall()
    assert all(r[0] for r in reasons)


def test_hostile_text_is_stored_verbatim(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    hostile = [no for no, t in server.data.truth.items() if "hostile_text" in t.defects]
    assert hostile
    stored = dict(db.execute("SELECT source_id, description FROM core.event WHERE source_system"
                             " = %s AND valid_to IS NULL", (source,)).fetchall())
    for no in hostile:
        if no in stored:
            assert stored[no] == server.data.orders[no]["content"]


def test_a_secret_in_the_sources_file_is_refused(hotline):
    source, config, _ = hotline(app_secret="oops")
    with pytest.raises(ValueError, match="must not be in the sources file"):
        run_source(source, config)


def test_wrong_credentials_fail_the_run_clearly(db, hotline, monkeypatch):
    source, config, _ = hotline()
    monkeypatch.setenv(f"HUB_{source.upper()}_APP_SECRET", "wrong")
    with pytest.raises(Exception, match="token refused"):
        run_source(source, config)
    outcome = db.execute("SELECT outcome, error FROM ops.run WHERE source_system = %s",
                         (source,)).fetchone()
    assert outcome[0] == "failed" and "token refused" in outcome[1]
