"""A run of some streams of a source (what an ingest DAG's stream task runs) is a run
like any: recorded with the streams it covered, locked, counted and reconciled, checked
where it wrote what a check judges; the run of every stream after it finds nothing new."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from base.settings import secret_env_var, settings
from hub.dag_factory import asset_events
from hub.pipeline import check_source, run_source
from quality.consistency import TRANSFER_RULE
from sandbox.city import City
from sandbox.hotline12345 import HotlineData
from sandbox.zongzhi import ZongzhiData
from sandbox.zongzhi_server import ZongzhiServer
from tests.support.hotline import SIM_END
from tests.support.sources import write_sources_file
from warehouse import ops

KEY = "test-zongzhi-key"


@contextmanager
def zongzhi_source(folder: Path, mp: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A 综治 simulator (two streams: the committees, then the disputes naming them) and a
    source configured for it."""
    city = City("2111", scale=0.03)
    end = datetime.fromisoformat(SIM_END)
    data = ZongzhiData(city, days=2, end=end, hotline=HotlineData(city, days=2, end=end))
    server = ZongzhiServer(data, KEY).start()
    try:
        name = f"zz_{uuid.uuid4().hex[:8]}"
        mp.setenv(secret_env_var(name, "api_key"), KEY)
        mp.setenv("HUB_BATCH_ROWS", "100")
        settings.cache_clear()
        path = write_sources_file(folder / f"{name}.yaml", {name: {
            "connector": "zongzhi", "settings": {
                "base_url": server.url, "page_size": 50, "timeout_seconds": 2,
                "backoff_seconds": 0.05, "max_backoff_seconds": 0.5,
                "start_from": "2026-11-01T00:00:00+08:00"}}})
        yield name, path
    finally:
        server.stop()
        settings.cache_clear()


def run_row(db: psycopg.Connection, run_id: int) -> tuple:
    return db.execute(
        "SELECT streams, trigger, outcome, extracted, loaded, quarantined, inserted"
        " FROM ops.run WHERE run_id = %s", (run_id,)).fetchone()


def checked(db: psycopg.Connection, run_id: int) -> bool:
    return db.execute("SELECT count(*) FROM quality.rule_result WHERE run_id = %s AND rule = %s",
                      (run_id, TRANSFER_RULE)).fetchone()[0] > 0


def test_stream_by_stream_runs_are_recorded_checked_and_reconciled(
        db, tmp_path, monkeypatch, sim_clock):
    with zongzhi_source(tmp_path, monkeypatch) as (source, config):
        committees = run_source(source, config, trigger="airflow", streams=["mediation_orgs"])
        disputes = run_source(source, config, trigger="airflow", streams=["disputes"])
        cursors = dict(db.execute("SELECT stream, run_id FROM ops.cursor WHERE"
                                  " source_system = %s", (source,)).fetchall())
        everything = run_source(source, config)

    # Each run says which streams it covered, and reconciles on its own.
    s, trigger, outcome, extracted, loaded, quarantined, inserted = run_row(db, committees.run_id)
    assert (s, trigger, outcome) == (["mediation_orgs"], "airflow", "succeeded")
    assert extracted == loaded + quarantined and inserted == committees.inserted > 0
    assert committees.streams == ["mediation_orgs"]
    assert set(committees.changed) == {"core.organization"}
    assert run_row(db, disputes.run_id)[:3] == (["disputes"], "airflow", "succeeded")
    assert disputes.extracted == disputes.loaded + disputes.quarantined > 0
    assert {"core.event", "core.person"} <= set(disputes.changed)
    # Each stream's cursor moved with the run that read it.
    assert cursors == {"mediation_orgs": committees.run_id, "disputes": disputes.run_id}
    # The transfer check judges core.event: the committees' run did not call for it.
    assert not checked(db, committees.run_id) and checked(db, disputes.run_id)
    assert disputes.checks[TRANSFER_RULE][0] > 0

    # The run of every stream afterwards: recorded as such, and nothing new to emit.
    assert run_row(db, everything.run_id)[0] == ["mediation_orgs", "disputes"]
    assert (everything.inserted, everything.updated, everything.closed) == (0, 0, 0)
    assert asset_events(everything.as_dict()) == {}
    assert checked(db, everything.run_id)


def test_an_unknown_stream_is_refused_before_a_run_is_recorded(db, tmp_path, monkeypatch):
    with zongzhi_source(tmp_path, monkeypatch) as (source, config):
        with pytest.raises(KeyError, match="no stream 'cases'"):
            run_source(source, config, streams=["cases"])
    assert db.execute("SELECT count(*) FROM ops.run WHERE source_system = %s",
                      (source,)).fetchone() == (0,)


def test_the_checks_alone_are_a_run_covering_no_stream(db, tmp_path, monkeypatch, sim_clock):
    with zongzhi_source(tmp_path, monkeypatch) as (source, config):
        run_source(source, config)
        again = check_source(source, config)
    assert run_row(db, again.run_id)[:4] == ([], "refresh", "succeeded", 0)
    assert checked(db, again.run_id) and again.checks[TRANSFER_RULE][0] > 0


def test_a_stream_run_waits_for_the_source_s_lock_when_told_to(db, tmp_path, monkeypatch):
    with zongzhi_source(tmp_path, monkeypatch) as (source, config):
        with ops.source_lock(source):  # another run of the source holds it
            with pytest.raises(ops.RunInProgress):
                run_source(source, config, streams=["mediation_orgs"])
            done: list[object] = []
            waiting = threading.Thread(target=lambda: done.append(run_source(
                source, config, streams=["mediation_orgs"], lock_wait=30)))
            waiting.start()
            time.sleep(1.5)
            assert not done  # still waiting
        waiting.join(timeout=60)
    assert done and getattr(done[0], "outcome", None) == "succeeded"


def test_the_refresh_dag_s_tasks_check_every_source_that_calls_for_it_and_link(
        db, tmp_path, monkeypatch, sim_clock):
    from hub.dag_refresh import link_entities, run_consistency_checks

    with zongzhi_source(tmp_path, monkeypatch) as (source, config):
        run_source(source, config)
        checks = run_consistency_checks(config)
    assert list(checks) == [source]
    run_id = checks[source]["run_id"]
    assert run_row(db, run_id)[:3] == ([], "refresh", "succeeded") and checked(db, run_id)

    linked = link_entities()
    assert list(linked) == ["link.run.link_all"]
    assert set(linked["link.run.link_all"]) == {"person", "organization", "incident"}
