"""`hub demo`: the real pipeline on embedded defaults, end to end, in one command.

Starts the platform simulators on this machine, points a copy of the sources
file at them, runs each source's real ingest DAG with `airflow dags test` (an
embedded SQLite metadata database under .hub/airflow), lets the platforms move on
(orders get handled), runs again to show incremental loading with history, and
prints what landed where and how to look at it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console

from hub.config import load_sources, secret_env_var, settings

if TYPE_CHECKING:
    from sandbox.hotline_server import HotlineServer

DEMO_SOURCE = "hotline12345"


@contextmanager
def _hotline_simulator(scale: float, days: int) -> Iterator[tuple[str, dict[str, str],
                                                                  HotlineServer]]:
    from sandbox.city import City
    from sandbox.hotline12345 import HotlineData
    from sandbox.hotline_server import HotlineServer

    # Fresh credentials each demo: the simulator and the hub agree through the
    # environment, the way a real deployment's secrets reach the hub.
    key, secret = secrets.token_hex(8), secrets.token_hex(16)
    data = HotlineData(City("2111", scale=scale), days=days)
    with HotlineServer(data, key, secret) as server:
        env = {secret_env_var(DEMO_SOURCE, "app_key"): key,
               secret_env_var(DEMO_SOURCE, "app_secret"): secret}
        yield server.url, env, server


def _demo_sources(urls: dict[str, str]) -> Path:
    """The project's sources file with each simulated platform's real address."""
    raw = yaml.safe_load(settings().sources_file.read_text(encoding="utf-8"))
    for name, url in urls.items():
        raw["sources"][name]["settings"]["base_url"] = url
    path = settings().home / "demo-sources.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by `hub demo`: sources.yaml pointed at the simulators\n"
                    + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_demo(*, scale: float, days: int, console: Console) -> None:
    from hub.airflow_runner import dags_test
    from hub.dag_factory import ingest_dag_id
    from warehouse.db import describe
    from warehouse.migrate import migrate

    console.rule("governance data hub: demo")
    with console.status("preparing the embedded warehouse"):
        migrate()
    console.print(f"warehouse: {describe()}")

    with ExitStack() as stack:
        url, env, server = stack.enter_context(_hotline_simulator(scale, days))
        console.print(f"12345 hotline simulator: {url} "
                      f"({len(server.data.orders):,} work orders over {days} days)")
        sources_file = _demo_sources({DEMO_SOURCE: url})
        env = {**env, "HUB_SOURCES_FILE": str(sources_file)}
        os.environ.update(env)
        config = load_sources(sources_file)

        for round_no, label in ((1, "first run"), (2, "after the platforms moved on")):
            if round_no == 2:
                changed = server.advance(max(10, len(server.data.orders) // 20))
                console.print(f"\n12345: {len(changed)} work orders were handled since the last run")
            for name, src in config.sources.items():
                if not src.enabled:
                    continue
                dag_id = ingest_dag_id(name)
                with console.status(f"airflow dags test {dag_id} ({label})"):
                    result = dags_test(dag_id, extra_env=env)
                if not result.ok:
                    console.print(f"[red]{result.summary()}[/red]\n{result.log_tail}")
                    for error in result.errors:
                        console.print(error)
                    raise SystemExit(1)
                console.print(f"[green]{result.summary()}[/green]")
                _print_run(console, result.return_values.get("ingest"))
    summarise(console)


def _print_run(console: Console, summary: object) -> None:
    if not isinstance(summary, dict):
        return
    console.print(
        f"  run {summary['run_id']}: {summary['extracted']:,} extracted = {summary['loaded']:,}"
        f" loaded + {summary['quarantined']:,} quarantined; {summary['inserted']:,} new,"
        f" {summary['updated']:,} changed, {summary['unchanged']:,} unchanged"
    )


def summarise(console: Console) -> None:
    """What is in the warehouse now, and how to look at it."""
    from hub.cli import print_table
    from warehouse.db import connect, describe

    with connect() as conn:
        counts = conn.execute(
            "SELECT t, source_system, current_rows, all_versions FROM ("
            " SELECT 'core.event' t, source_system, count(*) FILTER (WHERE valid_to IS NULL)"
            "   current_rows, count(*) all_versions FROM core.event GROUP BY 2"
            " UNION ALL SELECT 'core.person', source_system, count(*) FILTER (WHERE valid_to IS"
            "   NULL), count(*) FROM core.person GROUP BY 2"
            " UNION ALL SELECT 'core.organization', source_system, count(*) FILTER (WHERE"
            "   valid_to IS NULL), count(*) FROM core.organization GROUP BY 2"
            " UNION ALL SELECT 'core.division', source_system, count(*) FILTER (WHERE valid_to"
            "   IS NULL), count(*) FROM core.division GROUP BY 2) x ORDER BY 1, 2"
        ).fetchall()
        held = conn.execute(
            "SELECT source_system, rule, count(*), min(reason) FROM quality.quarantine"
            " WHERE state = 'open' GROUP BY 1, 2 ORDER BY 3 DESC"
        ).fetchall()
        warnings = conn.execute(
            "SELECT r.source_system, r.rule, r.severity, sum(r.failed)"
            " FROM quality.rule_result r JOIN ops.run o USING (run_id)"
            " WHERE r.failed > 0 AND r.severity = 'warning'"
            " AND o.run_id IN (SELECT max(run_id) FROM ops.run WHERE outcome = 'succeeded'"
            "   AND batches > 0 GROUP BY source_system)"
            " GROUP BY 1, 2, 3 ORDER BY 4 DESC"
        ).fetchall()
    console.print()
    print_table(["table", "source", "current rows", "all versions"], counts,
                title="rows per core table")
    print_table(["source", "rule", "records", "example reason"], held,
                title="quarantined (quality.quarantine), by reason")
    print_table(["source", "rule", "severity", "rows flagged"], warnings,
                title="loaded with findings (quality.finding), latest run")
    console.print(f"\nThe data is in PostgreSQL at {describe()}")
    console.print(EXAMPLES.format(url=describe().replace(":***", "")))


EXAMPLES = """Look at it with, for example:
  .venv/bin/hub sql "select count(*) from core.event"
  .venv/bin/hub sql "select category_code, status, count(*) from core.event
                     where valid_to is null group by 1, 2 order by 3 desc"
  .venv/bin/hub status
  psql "{url}"
"""
