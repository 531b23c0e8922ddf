"""The refresh DAG, `hub_refresh`: what follows a load, whenever a core table changed.

`dags/hub_refresh.py` only calls `refresh_dag()`. The DAG is scheduled on the core
Assets (any of them updated: `AssetAny`), whose events the ingest DAGs' stream tasks
emit only when they changed rows, so it runs after news and not on the hour. Two
tasks, independent of each other:

- `consistency_checks`: the cross-source checks (quality.consistency) of every
  enabled source whose connector calls for one, each as a recorded run of its source
  covering no stream (trigger `refresh`, `ops.run.streams = '{}'`): a 12345 load
  can settle a 数字城管 case's transfer that was judged missing an hour ago.
- `link`: entity resolution, when the `link` package is installed: `link.run.link_all`
  if it exists, else each of `link.people.link_people`,
  `link.orgs.link_organizations` and `link.incidents.cluster_incidents` that exists,
  in that order, each in its own transaction as the loader.

Parsing reads the connector registry (which core tables exist to be scheduled on)
and nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from base.settings import load_sources
from connectors.registry import PLATFORMS
from hub.dag_factory import LOCK_WAIT, SCHEDULE_ANCHOR, core_asset, quiet_third_party_logs
from hub.lineage import tables_written

if TYPE_CHECKING:
    from airflow.sdk import DAG

log = logging.getLogger(__name__)

REFRESH_DAG_ID = "hub_refresh"
CHECKS_TASK = "consistency_checks"
LINK_TASK = "link"
# The linking steps, in order, when `link` has no single entry point (`link.run.link_all`).
LINK_ENTRY = ("link.run", "link_all")
LINK_STEPS: tuple[tuple[str, str], ...] = (
    ("link.people", "link_people"),
    ("link.orgs", "link_organizations"),
    ("link.incidents", "cluster_incidents"),
)


def refresh_tables() -> tuple[str, ...]:
    """The core tables the refresh DAG is scheduled on: every table an ingest can write."""
    tables: list[str] = []
    for platform in PLATFORMS:
        tables.extend(t for t in tables_written(platform) if t not in tables)
    return tuple(sorted(tables))


def run_consistency_checks(sources_path: Path | str | None = None) -> dict[str, Any]:
    """Every enabled source's cross-source checks, each a recorded run of its source:
    source → {run_id, checks}. A source whose checks fail does not stop the others; the
    task fails at the end, naming them."""
    quiet_third_party_logs()
    from hub.pipeline import check_source
    from quality.consistency import checks_for

    quiet_third_party_logs()
    config = load_sources(sources_path)
    done: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, src in config.sources.items():
        if not src.enabled or not checks_for(src.connector):
            continue
        try:
            summary = check_source(name, sources_path, lock_wait=LOCK_WAIT.total_seconds())
        except Exception as exc:  # the other sources' checks still run
            log.exception("%s: consistency checks failed", name)
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        done[name] = {"run_id": summary.run_id, "checks": summary.checks}
    if not done and not failed:
        log.info("no enabled source calls for a cross-source check")
    if failed:
        raise RuntimeError("consistency checks failed for " + "; ".join(
            f"{name} ({error})" for name, error in failed.items()))
    return done


def link_steps() -> list[tuple[str, Callable[..., Any]]]:
    """The linking functions present: `link.run.link_all` alone if it exists, else those
    of LINK_STEPS that exist, in order; none without the `link` package."""
    found: list[tuple[str, Callable[..., Any]]] = []
    for module, name in (LINK_ENTRY, *LINK_STEPS):
        try:
            fn = getattr(importlib.import_module(module), name, None)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue  # that module (or `link` itself) does not exist
            raise  # it exists and fails to import: a real error
        if callable(fn):
            if (module, name) == LINK_ENTRY:
                return [(f"{module}.{name}", fn)]
            found.append((f"{module}.{name}", fn))
    return found


def link_entities() -> dict[str, Any]:
    """Run the linking steps present (`link_steps`), each in its own transaction as the
    loader: step → its summary."""
    quiet_third_party_logs()
    from warehouse.db import Role, connect
    from warehouse.migrate import require_current

    steps = link_steps()
    if not steps:
        log.info("no linking step installed (package `link`): nothing to link")
        return {}
    require_current()
    done: dict[str, Any] = {}
    for name, fn in steps:
        with connect(Role.LOADER) as conn:
            result = fn(conn)
        done[name] = _plain(result)
        log.info("%s: %s", name, done[name])
    return done


def _plain(value: Any) -> Any:
    """A step's summary as XCom can hold it."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return repr(value)


def refresh_dag(sources_path: Path | str | None = None) -> DAG:
    """`hub_refresh`: scheduled on any core Asset's update (see the module's docstring)."""
    import pendulum
    from airflow.sdk import AssetAny, dag, task

    path = str(sources_path) if sources_path is not None else None
    tables = refresh_tables()

    @dag(
        dag_id=REFRESH_DAG_ID,
        doc_md=__doc__,
        schedule=AssetAny(*(core_asset(t) for t in tables)),
        start_date=pendulum.datetime(*SCHEDULE_ANCHOR, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["hub", "refresh", "quality", "link"],
        default_args={"owner": "hub", "retries": 2, "retry_delay": timedelta(minutes=5)},
    )
    def refresh() -> None:
        @task(task_id=CHECKS_TASK)
        def consistency_checks() -> dict[str, Any]:
            return run_consistency_checks(path)

        @task(task_id=LINK_TASK)
        def link() -> dict[str, Any]:
            return link_entities()

        consistency_checks()
        link()

    return refresh()
