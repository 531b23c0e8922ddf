"""Airflow DAGs built from the sources file: one ingest DAG per enabled source.

The DAG files under dags/ only call `ingest_dags()`; everything a DAG is made of
is decided here, where it can be tested without a scheduler. Parsing reads the
sources file and the connector registry (the streams a connector serves, which
streams each needs loaded first, which core tables each writes) and nothing else:
no warehouse, no platform, no secrets. A task imports the pipeline only when it runs.

An ingest DAG, `hub_ingest_<source>`:

    migrate ─▶ grids ─┬─▶ houses
                      ├─▶ orgs
                      ├─▶ residents
                      └─▶ events          (gridmgmt; the shape comes from the connector)

- `migrate` brings the warehouse up to date (cheap when it is);
- one task per stream of the connector, task id = the stream's name, downstream of
  the streams it is declared `after` (connectors.base.Stream), retried alone; each
  is one recorded run of the source covering that stream (`run_source(…,
  streams=[stream])`): locked, counted, crash-safe like `hub run`;
- every stream task is in the source's pool (`hub_source_<source>`, one slot: the
  runs of a source hold its lock one at a time anyway, and the pool keeps the
  waiting out of the workers);
- a stream task that changed rows emits an Asset event per core table it changed
  (extra: the counts), through the task's AssetAlias; one that changed nothing
  emits none, so Asset-scheduled DAGs (`hub_refresh`) wake only for news.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from base.settings import SourceConfig, load_city, load_sources
from hub.lineage import connector_class, stream_tables, tables_written

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

# Airflow is imported where a DAG is built, not here: `ingest_dag_id` and the
# constants serve the CLI and tests, which should not pay Airflow's start-up
# (seconds) nor have it create ~/airflow.

INGEST_DAG_PREFIX = "hub_ingest_"
ASSET_URI_PREFIX = "hub://warehouse/"
MIGRATE_TASK = "migrate"
POOL_PREFIX = "hub_source_"
# One run of a source at a time (its lock): a pool slot each.
POOL_SLOTS = 1

# A scheduled DAG needs a start date; with catchup off it only anchors the
# schedule, so any fixed day before the first deployment will do.
SCHEDULE_ANCHOR = (2026, 1, 1)

# First retry after RETRY_DELAY, then x2 each time, capped. Airflow 3 takes the
# backoff as a multiplier: True would mean x1, i.e. no backoff at all.
RETRY_DELAY = timedelta(minutes=2)
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(minutes=30)
# How long a stream task waits for its source's lock when another run holds it (a
# `hub run` by hand, the refresh DAG's checks) before failing into a retry.
LOCK_WAIT = timedelta(minutes=10)

# Third-party loggers whose INFO and DEBUG lines bury the hub's own in a task log
# (Great Expectations logs every expectation, metric and renderer it registers).
QUIET_LOGGERS = ("great_expectations",)
HUB_LOGGERS = ("hub", "warehouse", "quality", "connectors", "conform", "link")

log = logging.getLogger(__name__)


def ingest_dag_id(source: str) -> str:
    return f"{INGEST_DAG_PREFIX}{source}"


def source_pool(source: str) -> str:
    """The Airflow pool of a source's stream tasks."""
    return f"{POOL_PREFIX}{source}"


def pool_command(source: SourceConfig | str) -> str:
    """The command creating a source's pool (`airflow pools set NAME SLOTS DESCRIPTION`)."""
    name = source if isinstance(source, str) else source.name
    return (f"airflow pools set {source_pool(name)} {POOL_SLOTS} "
            f"'hub: the runs of source {name}, one at a time'")


def pool_definitions(sources: Iterable[SourceConfig]) -> dict[str, dict[str, Any]]:
    """The pools of these sources as `airflow pools import FILE` reads them (JSON)."""
    return {source_pool(s.name): {"slots": POOL_SLOTS, "description":
                                  f"hub: the runs of source {s.name}, one at a time",
                                  "include_deferred": False}
            for s in sources}


def source_pools(sources_path: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The pools the enabled sources' stream tasks need (default file: HUB_SOURCES_FILE or
    ./sources.yaml), for `airflow pools import`."""
    return pool_definitions(s for s in load_sources(sources_path).sources.values() if s.enabled)


def stream_alias(source: str, stream: str) -> str:
    """The AssetAlias a stream task emits its Asset events through."""
    return f"{ingest_dag_id(source)}.{stream}"


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


def stream_graph(connector: str) -> dict[str, tuple[str, ...]]:
    """Each stream of a connector → the streams it needs loaded first, in declared order."""
    return {s.name: tuple(s.after) for s in connector_class(connector).streams}


# ------------------------------------------------------------ what a task emits


def asset_events(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The Asset events a stream run calls for: core table → the event's extra, for each
    table the run changed (rows inserted, updated or closed); none when nothing changed.

    `summary` is a run summary as the task returns it (`RunSummary.as_dict()`)."""
    events: dict[str, dict[str, Any]] = {}
    for table, counts in sorted((summary.get("changed") or {}).items()):
        inserted, updated, closed = (int(counts.get(k, 0)) for k in ("inserted", "updated",
                                                                    "closed"))
        if inserted + updated + closed == 0:
            continue
        events[table] = {
            "source": summary["source"], "streams": list(summary.get("streams") or []),
            "run_id": summary["run_id"], "inserted": inserted, "updated": updated,
            "closed": closed, "extracted": summary.get("extracted", 0),
            "loaded": summary.get("loaded", 0), "quarantined": summary.get("quarantined", 0),
        }
    return events


def quiet_third_party_logs() -> None:
    """Keep a task log to the hub's own lines: the chatty libraries at WARNING (their
    loggers that already exist too, some set their own level), the hub's at INFO."""
    for prefix in QUIET_LOGGERS:
        logging.getLogger(prefix).setLevel(logging.WARNING)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith(prefix + "."):
                logging.getLogger(name).setLevel(logging.WARNING)
    for name in HUB_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def run_stream(source: str, stream: str, sources_path: str | None,
               outlet_events: Any = None) -> dict[str, Any]:
    """A stream task: one recorded run of `source` covering `stream`, and its Asset
    events (through the stream's alias in `outlet_events`) when it changed rows."""
    quiet_third_party_logs()
    from hub.pipeline import run_source  # imports Great Expectations: after the above

    quiet_third_party_logs()
    summary = run_source(source, sources_path, trigger="airflow", streams=[stream],
                         lock_wait=LOCK_WAIT.total_seconds()).as_dict()
    events = asset_events(summary)
    if outlet_events is not None:
        from airflow.sdk import AssetAlias

        alias = AssetAlias(stream_alias(source, stream))
        for table, extra in events.items():
            outlet_events[alias].add(core_asset(table), extra=extra)
    if events:
        log.info("%s/%s: Asset events for %s", source, stream, ", ".join(events))
    else:
        log.info("%s/%s: nothing changed, no Asset event", source, stream)
    return summary


def migrate_warehouse(sources_path: str | None) -> list[str]:
    """The setup task: the warehouse up to date, the city's settings recorded (the time
    zone the marts count days in, the response limits, the small-count threshold)."""
    quiet_third_party_logs()
    from warehouse.db import Role, connect
    from warehouse.migrate import migrate, record_city_settings

    applied = migrate()
    with connect(Role.OWNER) as conn:
        for change in record_city_settings(conn, load_city(sources_path)):
            log.info("%s", change)
    log.info("warehouse migrated: %s", ", ".join(applied) if applied else "already current")
    return applied


# ------------------------------------------------------------------ the DAGs


def build_ingest_dag(
    source: SourceConfig,
    tables: Iterable[str] | None = None,
    *,
    timezone: str = "Asia/Shanghai",
    sources_path: Path | str | None = None,
) -> DAG:
    """One DAG, `hub_ingest_<source>`: `migrate`, then a task per stream in the order
    the connector declares the streams need (see the module's docstring).

    `max_active_runs=1` because runs of a source share its cursors; `catchup=False`
    because a run reads everything since the cursor, so a missed interval is
    picked up by the next run rather than by a backfill of its own.
    """
    import pendulum
    from airflow.sdk import AssetAlias, dag, get_current_context, setup, task

    source_name = source.name
    tables = tuple(tables) if tables is not None else tables_written(source.connector)
    graph = stream_graph(source.connector)
    if MIGRATE_TASK in graph:
        raise ValueError(f"connector {source.connector!r} has a stream named {MIGRATE_TASK!r},"
                         " the name of the ingest DAG's setup task")
    path = str(sources_path) if sources_path is not None else None

    @dag(
        dag_id=ingest_dag_id(source_name),
        doc_md=_doc_md(source, tables, timezone, graph),
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
        # warehouse is current (two small reads, no lock). A setup task: clearing a
        # stream task in the UI runs it again first.
        @setup
        @task(task_id=MIGRATE_TASK)
        def migrate() -> list[str]:
            return migrate_warehouse(path)

        def stream_task(stream: str) -> Any:
            writes = ", ".join(f"`{t}`" for t in stream_tables(source.connector, stream))

            @task(task_id=stream, pool=source_pool(source_name), pool_slots=POOL_SLOTS,
                  outlets=[AssetAlias(stream_alias(source_name, stream))],
                  doc_md=f"Stream `{stream}` of `{source_name}`: writes {writes}.")
            def load() -> dict[str, Any]:
                return run_stream(source_name, stream, path,
                                  get_current_context()["outlet_events"])

            return load()

        migrated = migrate()
        tasks: dict[str, Any] = {}
        for stream, after in graph.items():
            tasks[stream] = stream_task(stream)
            for upstream in [tasks[a] for a in after] or [migrated]:
                upstream >> tasks[stream]

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


def _doc_md(source: SourceConfig, tables: tuple[str, ...], timezone: str,
            graph: Mapping[str, tuple[str, ...]]) -> str:
    description = source.description or f"Source `{source.name}`."
    schedule = f"`{source.schedule}`" if source.schedule else "manual only"
    order = "; ".join(f"`{s}` after {', '.join(f'`{a}`' for a in after)}"
                      for s, after in graph.items() if after) or "none"
    return "\n".join([
        f"### {source.name}",
        "",
        description,
        "",
        f"- connector: `{source.connector}`",
        f"- schedule: {schedule}, {timezone} time",
        f"- streams: {', '.join(f'`{s}`' for s in graph)} (one task each; loaded first: {order})",
        f"- writes: {', '.join(f'`{t}`' for t in tables) or 'nothing'}"
        " (an Asset event per table a task changed)",
        f"- pool: `{source_pool(source.name)}` (`{pool_command(source)}`)",
        f"- without Airflow: `hub run {source.name}`",
    ])
