"""The real ingest DAGs under `airflow dags test` (dags/hub_ingest.py, a throw-away
Airflow home) against the simulators: one task per stream, a failing stream failing
alone, Asset events only when rows changed, and a task log of the hub's own lines.

Each run pays Airflow's start-up (about 10 s), hence the `slow` mark and few runs.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.dag_factory import MIGRATE_TASK, asset_events, ingest_dag_id
from sandbox.airflow_runner import PROJECT_DAGS_FOLDER, DagTestResult, LocalAirflow
from sandbox.city import City
from sandbox.gridmgmt import GridData
from sandbox.gridmgmt_server import GridPlatform
from tests.support.sources import write_sources_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> LocalAirflow:
    """One throw-away Airflow home for the module: its metadata database migrated once."""
    return LocalAirflow(home=tmp_path_factory.mktemp("ingest-runs") / "airflow",
                        dags_folder=PROJECT_DAGS_FOLDER)


def emitted(airflow: LocalAirflow, result: DagTestResult) -> dict[str, dict[str, Any]]:
    """The Asset events a DAG run emitted: table → the event's extra."""
    with closing(sqlite3.connect(f"file:{airflow.db_path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE e.source_dag_id = ? AND e.source_run_id = ?",
            (result.dag_id, result.run_id)).fetchall()
    return {name: json.loads(extra) if isinstance(extra, str) else extra for name, extra in rows}


def log_lines(result: DagTestResult) -> list[str]:
    assert result.log_path is not None
    return result.log_path.read_text(encoding="utf-8").splitlines()


def test_a_stream_task_emits_asset_events_with_counts_and_none_when_nothing_changed(
        airflow: LocalAirflow, hotline, db) -> None:
    source, sources_file, server = hotline()
    env = {"HUB_SOURCES_FILE": str(sources_file)}

    first = airflow.dags_test(ingest_dag_id(source), extra_env=env, timeout=300)

    assert first.ok, "\n".join(first.errors) or first.log_tail
    assert first.task_states == {MIGRATE_TASK: "success", "workorders": "success"}
    summary = first.return_values["workorders"]
    assert summary["source"] == source and summary["streams"] == ["workorders"]
    assert summary["extracted"] == len(server.data.orders) > 0
    assert summary["extracted"] == summary["loaded"] + summary["quarantined"]
    run = db.execute("SELECT trigger, outcome, loaded, streams FROM ops.run WHERE run_id = %s",
                     (summary["run_id"],)).fetchone()
    assert run == ("airflow", "succeeded", summary["loaded"], ["workorders"])
    # One event per table the task changed, its counts in the extra.
    events = emitted(airflow, first)
    assert events == asset_events(summary)
    assert "core.event" in events
    assert events["core.event"]["inserted"] == summary["changed"]["core.event"]["inserted"] > 0
    assert events["core.event"]["run_id"] == summary["run_id"]
    # The task log: the hub's progress, and no Great Expectations registration noise.
    lines = log_lines(first)
    assert [line for line in lines if "great_expectations" in line] == []
    assert any(f"{source}/workorders batch 1:" in line for line in lines)
    assert any(f"{source}: run {summary['run_id']} succeeded" in line for line in lines)

    # Nothing moved on the platform: the second run changes nothing, and says nothing.
    second = airflow.dags_test(ingest_dag_id(source), extra_env=env, timeout=300)

    assert second.ok, "\n".join(second.errors) or second.log_tail
    again = second.return_values["workorders"]
    assert (again["inserted"], again["updated"], again["closed"]) == (0, 0, 0)
    assert again["extracted"] == again["loaded"] + again["quarantined"]
    assert emitted(airflow, second) == {}
    assert any("nothing changed, no Asset event" in line for line in log_lines(second))


def test_a_failing_stream_fails_alone(airflow: LocalAirflow, db, tmp_path: Path) -> None:
    """gridmgmt with a token the events API refuses: `events` fails; the grids, and the
    houses, organizations and residents loaded after them, succeed."""
    data = GridData(City("2111", scale=0.001), days=2, end=datetime(2026, 11, 20))
    with GridPlatform(data, tmp_path / "landing", api_token="the-right-token") as platform:
        platform.landing.drop_all()
        name = f"grid_{uuid.uuid4().hex[:8]}"
        sources_file = write_sources_file(tmp_path / "sources.yaml", {name: {
            "connector": "gridmgmt", "settings": {
                "folder": str(platform.folder), "base_url": platform.url, "page_size": 50,
                "timeout_seconds": 2, "backoff_seconds": 0.01, "max_backoff_seconds": 0.1}}})
        result = airflow.dags_test(ingest_dag_id(name), timeout=300, extra_env={
            "HUB_SOURCES_FILE": str(sources_file), f"HUB_{name.upper()}_API_TOKEN": "wrong"})

    assert not result.ok and result.run_state == "failed"
    assert result.task_states == {MIGRATE_TASK: "success", "grids": "success",
                                  "houses": "success", "orgs": "success",
                                  "residents": "success", "events": "failed"}
    runs = dict(db.execute(
        "SELECT streams[1], outcome FROM ops.run WHERE source_system = %s", (name,)).fetchall())
    assert runs == {"grids": "succeeded", "houses": "succeeded", "orgs": "succeeded",
                    "residents": "succeeded", "events": "failed"}
    assert emitted(airflow, result).keys() >= {"core.grid", "core.house", "core.person"}
