"""The dags/ folder as Airflow's DagBag parses it: one ingest DAG per enabled source.

Parsing runs in a subprocess (`LocalAirflow.list_dags`), as the DAG processor
does, with a throw-away AIRFLOW_HOME and the sources file under test. Every parse
here also proves that parsing connects to nothing: the warehouse URL points at a
socket that records any connection, and HUB_HOME is an empty folder that must
stay empty (the embedded server would create its data there).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from base.settings import DEFAULT_SOURCES_FILE, SourceConfig, load_sources
from connectors.registry import connector_class
from hub.dag_factory import (
    INGEST_DAG_PREFIX,
    MIGRATE_TASK,
    RETRY_BACKOFF,
    ingest_dag_id,
    source_pool,
    stream_alias,
)
from hub.dag_refresh import CHECKS_TASK, LINK_TASK, REFRESH_DAG_ID, refresh_tables
from hub.dag_reports import REPORT_CRON, REPORT_DAG_ID
from hub.lineage import tables_written
from sandbox.airflow_runner import PROJECT_DAGS_FOLDER, DagBagReport, LocalAirflow

# Airflow's start-up plus the DAG file; the DAG file alone must be far quicker.
PARSE_BUDGET_S = 5.0


class Parse:
    def __init__(self, airflow: LocalAirflow, trap: socket.socket, home: Path) -> None:
        self.airflow, self.trap, self.home = airflow, trap, home
        self.project: DagBagReport | None = None

    def __call__(self, sources_file: Path) -> DagBagReport:
        if sources_file == DEFAULT_SOURCES_FILE:  # the project's: parsed once per module
            if self.project is None:
                self.project = self.parse(sources_file)
            return self.project
        return self.parse(sources_file)

    def parse(self, sources_file: Path) -> DagBagReport:
        port = self.trap.getsockname()[1]
        report = self.airflow.list_dags(
            extra_env={
                "HUB_SOURCES_FILE": str(sources_file),
                "HUB_WAREHOUSE_URL": f"postgresql://hub:never@127.0.0.1:{port}/hub?connect_timeout=2",
                "HUB_HOME": str(self.home),
            },
        )
        readable, _, _ = select.select([self.trap], [], [], 0)
        assert not readable, "parsing the DAGs opened a connection to the warehouse"
        assert list(self.home.iterdir()) == [], "parsing the DAGs wrote into HUB_HOME"
        assert report.parse_s < PARSE_BUDGET_S
        return report


@pytest.fixture(scope="module")
def parse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parse]:
    root = tmp_path_factory.mktemp("dag-integrity")
    home = root / "hub-home"
    home.mkdir()
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(8)
        yield Parse(LocalAirflow(home=root / "airflow", dags_folder=PROJECT_DAGS_FOLDER), trap, home)


def check_ingest_dag(report: DagBagReport, source: SourceConfig, timezone: str) -> None:
    """`migrate`, then one task per stream of the connector, each downstream of the
    streams it is declared `after` (of `migrate` when none), in the source's pool, with
    its alias as its only outlet (Asset events only when it changed rows)."""
    dag = report.dags[ingest_dag_id(source.name)]
    assert Path(dag.fileloc) == PROJECT_DAGS_FOLDER / "hub_ingest.py"
    assert dag.schedule == source.schedule
    assert dag.timezone == timezone
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.tags == sorted({"hub", "ingest", *source.tags})
    assert dag.doc_md and (source.description or source.name) in dag.doc_md

    streams = connector_class(source.connector).streams
    assert set(dag.tasks) == {MIGRATE_TASK, *(s.name for s in streams)}
    migrate: dict[str, Any] = dag.tasks[MIGRATE_TASK]
    assert migrate["upstream"] == [] and migrate["is_setup"]
    for stream in streams:
        task: dict[str, Any] = dag.tasks[stream.name]
        assert task["upstream"] == sorted(stream.after or [MIGRATE_TASK]), stream.name
        assert task["trigger_rule"] == "all_success"
        assert (task["pool"], task["pool_slots"]) == (source_pool(source.name), 1)
        assert task["retries"] == source.retries
        assert task["retry_exponential_backoff"] == RETRY_BACKOFF > 1
        assert task["max_retry_delay_s"] >= task["retry_delay_s"] > 0
        assert task["outlets"] == [
            {"name": stream_alias(source.name, stream.name), "uri": None, "type": "AssetAlias"}]


def test_the_declared_stream_order_is_the_dags(parse: Parse) -> None:
    """gridmgmt as a data engineer expects it: grids first, the rest after the grids."""
    report = parse(DEFAULT_SOURCES_FILE)
    tasks = report.dags[ingest_dag_id("gridmgmt")].tasks
    assert {t: v["upstream"] for t, v in tasks.items()} == {
        "migrate": [], "grids": ["migrate"], "houses": ["grids"], "orgs": ["grids"],
        "residents": ["grids"], "events": ["grids"]}
    assert report.dags[ingest_dag_id("zongzhi")].tasks["disputes"]["upstream"] == [
        "mediation_orgs"]


def test_the_refresh_dag_is_scheduled_on_the_core_assets(parse: Parse) -> None:
    report = parse(DEFAULT_SOURCES_FILE)
    refresh = report.dags[REFRESH_DAG_ID]
    assert Path(refresh.fileloc) == PROJECT_DAGS_FOLDER / "hub_refresh.py"
    assert refresh.timetable == "AssetTriggeredTimetable"
    assert sorted(refresh.schedule_assets) == sorted(refresh_tables())
    assert {"core.event", "core.person", "core.organization", "core.grid"} <= set(
        refresh.schedule_assets)
    assert (refresh.catchup, refresh.max_active_runs) == (False, 1)
    assert set(refresh.tasks) == {CHECKS_TASK, LINK_TASK}
    # Every table an ingest DAG's task can emit an event for wakes it.
    written = {t for s in load_sources(DEFAULT_SOURCES_FILE).sources.values()
               for t in tables_written(s.connector)}
    assert written <= set(refresh.schedule_assets)


def test_project_sources_give_one_dag_per_enabled_source(parse: Parse) -> None:
    report = parse(DEFAULT_SOURCES_FILE)
    config = load_sources(DEFAULT_SOURCES_FILE)

    assert report.import_errors == {}
    enabled = [s for s in config.sources.values() if s.enabled]
    assert enabled, "the project's sources file enables no source"
    ingest = {d for d in report.dags if d.startswith(INGEST_DAG_PREFIX)}
    assert ingest == {ingest_dag_id(s.name) for s in enabled}
    assert set(report.dags) - ingest == {"hub_quality_report", REFRESH_DAG_ID}
    for source in enabled:
        check_ingest_dag(report, source, config.city.timezone)


def test_a_second_instance_and_a_disabled_source(parse: Parse, tmp_path: Path) -> None:
    sources = {
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45], "timezone": "Asia/Shanghai"},
        "sources": {
            "hotline_city": {
                "connector": "hotline12345", "description": "市级 12345 热线",
                "schedule": "*/20 * * * *", "retries": 5, "tags": ["hotline", "city"],
                "settings": {"base_url": "http://127.0.0.1:1"},
            },
            "hotline_dawa": {
                "connector": "hotline12345", "description": "大洼区 12345 分中心",
                "schedule": None, "retries": 0,
                "settings": {"base_url": "http://127.0.0.1:1"},
            },
            "hotline_retired": {
                "connector": "hotline12345", "enabled": False,
                "settings": {"base_url": "http://127.0.0.1:1"},
            },
        },
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    config = load_sources(path)

    report = parse(path)

    assert report.import_errors == {}
    assert {d for d in report.dags if d.startswith(INGEST_DAG_PREFIX)} == {
        "hub_ingest_hotline_city", "hub_ingest_hotline_dawa"}
    for name in ("hotline_city", "hotline_dawa"):
        check_ingest_dag(report, config.sources[name], "Asia/Shanghai")
    assert report.dags["hub_ingest_hotline_dawa"].timetable == "NullTimetable"
    assert report.dags["hub_ingest_hotline_city"].cron == "*/20 * * * *"


def test_a_broken_sources_file_is_an_import_error_not_a_crash(parse: Parse, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("city: {code: '2111', extent: [1, 2, 3, 4]}\nsources:\n  x: {connector: nope}\n")

    report = parse(path)

    # The report reads the city block alone; the refresh DAG no sources file at all.
    assert set(report.dags) == {"hub_quality_report", REFRESH_DAG_ID}
    [(file, error)] = report.import_errors.items()
    assert file.endswith("hub_ingest.py")
    assert "nope" in error


def test_every_dag_runs_on_the_city_s_time_zone(parse: Parse, tmp_path: Path) -> None:
    sources = {
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45], "timezone": "Asia/Urumqi"},
        "sources": {"hotline_xj": {"connector": "hotline12345", "schedule": "0 7 * * *",
                                   "settings": {"base_url": "http://127.0.0.1:1"}}},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")

    report = parse(path)

    assert report.import_errors == {}
    check_ingest_dag(report, load_sources(path).sources["hotline_xj"], "Asia/Urumqi")
    weekly = report.dags[REPORT_DAG_ID]
    assert (weekly.cron, weekly.timezone) == (REPORT_CRON, "Asia/Urumqi")
