"""Airflow DAGs built from the sources file: one ingest DAG per enabled source.

The DAG files under dags/ only call `ingest_dags()`; everything a DAG is made of
is decided here, where it can be tested without a scheduler. Parsing reads the
sources file and the connector registry (which core tables a connector writes)
and nothing else: no warehouse, no platform, no secrets. The task imports the
pipeline only when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from base.settings import SourceConfig, load_city, load_sources
from hub.lineage import tables_written

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

# Airflow is imported where a DAG is built, not here: `ingest_dag_id` and the
# constants serve the CLI and tests, which should not pay Airflow's start-up
# (seconds) nor have it create ~/airflow.

INGEST_DAG_PREFIX = "hub_ingest_"
ASSET_URI_PREFIX = "hub://warehouse/"

# A scheduled DAG needs a start date; with catchup off it only anchors the
# schedule, so any fixed day before the first deployment will do.
SCHEDULE_ANCHOR = (2026, 1, 1)

# First retry after RETRY_DELAY, then x2 each time, capped. Airflow 3 takes the
# backoff as a multiplier: True would mean x1, i.e. no backoff at all.
RETRY_DELAY = timedelta(minutes=2)
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(minutes=30)


def ingest_dag_id(source: str) -> str:
    return f"{INGEST_DAG_PREFIX}{source}"


def core_asset(table: str) -> Asset:
    """The Airflow Asset of a warehouse table ("core.event"), for producers and consumers alike.

    The URI is the hub's own logical scheme, not `postgres://host:port/db/schema/table`:
    the warehouse's address differs between the embedded server and a deployment,
    and the postgres provider (when installed) rewrites such URIs, so the same
    table would otherwise have different identities in different places.
    """
    from airflow.sdk import Asset

    schema, sep, name = table.partition(".")
    if not sep or not schema or not name or "." in name:
        raise ValueError(f"expected a table as 'schema.table', got {table!r}")
    return Asset(name=table, uri=f"{ASSET_URI_PREFIX}{schema}/{name}")


def build_ingest_dag(
    source: SourceConfig,
    tables: Iterable[str],
    *,
    timezone: str = "Asia/Shanghai",
    sources_path: Path | str | None = None,
) -> DAG:
    """One DAG, `hub_ingest_<source>`: `migrate` (the warehouse up to date), then `ingest`
    (`hub.pipeline.run_source`).

    `max_active_runs=1` because runs of a source share its cursor; `catchup=False`
    because a run reads everything since the cursor, so a missed interval is
    picked up by the next run rather than by a backfill of its own.
    """
    import pendulum
    from airflow.sdk import dag, task

    source_name = source.name
    tables = tuple(tables)
    path = str(sources_path) if sources_path is not None else None

    @dag(
        dag_id=ingest_dag_id(source_name),
        doc_md=_doc_md(source, tables, timezone),
        schedule=source.schedule,
        start_date=pendulum.datetime(*SCHEDULE_ANCHOR, tz=timezone),
        catchup=False,
        max_active_runs=1,
        tags=["hub", "ingest", *source.tags],
        default_args={
            "owner": "hub",
            "retries": source.retries,
            "retry_delay": RETRY_DELAY,
            "retry_exponential_backoff": RETRY_BACKOFF,
            "max_retry_delay": MAX_RETRY_DELAY,
        },
    )
    def ingest_dag() -> None:
        # Migrating is an explicit step: here, before a load, and cheap when the
        # warehouse is current (two small reads, no lock).
        @task(task_id="migrate")
        def migrate_warehouse() -> list[str]:
            from warehouse.db import Role, connect
            from warehouse.migrate import migrate, record_city_timezone

            applied = migrate()
            with connect(Role.OWNER) as conn:  # the marts count days in the city's time zone
                record_city_timezone(conn, load_city(path).timezone)
            return applied

        @task(task_id="ingest", outlets=[core_asset(t) for t in tables])
        def ingest() -> dict[str, Any]:
            from hub.pipeline import run_source

            return run_source(source_name, path, trigger="airflow").as_dict()

        migrate_warehouse() >> ingest()

    return ingest_dag()


def ingest_dags(sources_path: Path | str | None = None) -> dict[str, DAG]:
    """Every enabled source's ingest DAG, by DAG id (default file: HUB_SOURCES_FILE or ./sources.yaml)."""
    config = load_sources(sources_path)
    return {
        ingest_dag_id(name): build_ingest_dag(
            src,
            tables_written(src.connector),
            timezone=config.city.timezone,
            sources_path=sources_path,
        )
        for name, src in config.sources.items()
        if src.enabled
    }


def _doc_md(source: SourceConfig, tables: tuple[str, ...], timezone: str) -> str:
    description = source.description or f"Source `{source.name}`."
    schedule = f"`{source.schedule}`" if source.schedule else "manual only"
    return "\n".join([
        f"### {source.name}",
        "",
        description,
        "",
        f"- connector: `{source.connector}`",
        f"- schedule: {schedule}, {timezone} time",
        f"- writes: {', '.join(f'`{t}`' for t in tables) or 'nothing'}",
        f"- without Airflow: `hub run {source.name}`",
    ])
