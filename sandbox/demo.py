"""`make demo` (`python -m sandbox demo`): the real pipeline on embedded defaults, end to end, in one command.

Starts a simulator for every enabled source of the sources file, points a copy of
that file at them, runs each source's real ingest DAG with `airflow dags test` (an
embedded SQLite metadata database under .hub/airflow), lets the platforms move on
(orders get handled, residents move), pulls again to show incremental loading with
history, and prints what landed where and how to look at it.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import psycopg
import yaml
from psycopg import sql
from rich.console import Console

from base import clock
from base.settings import load_sources, settings
from hub.console import print_table
from hub.dag_factory import MIGRATE_TASK, ingest_dag_id
from hub.pipeline import run_source
from link.evaluate import evaluate, format_evaluation
from link.run import link_all
from quality.report import build_report
from sandbox.airflow_runner import dags_test
from sandbox.city import City
from sandbox.platform import STARTERS, DemoPlatform, start
from sandbox.truth import write_truth
from schemas.model import ENTITIES
from warehouse import access
from warehouse.db import Role, connect, describe
from warehouse.migrate import migrate, record_city_settings


def write_simulated_sources(config_path: Path, settings_by_source: dict[str, dict],
                            path: Path, header: str) -> Path:
    """A copy of the sources file with each simulated platform's real address, at `path`."""
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for name, values in settings_by_source.items():
        raw["sources"][name].setdefault("settings", {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def _demo_sources(config_path: Path, settings_by_source: dict[str, dict]) -> Path:
    """The sources file with each simulated platform's real address."""
    return write_simulated_sources(
        config_path, settings_by_source, settings().home / "demo-sources.yaml",
        "# written by `make demo`: the sources file pointed at the simulators\n")


def run_demo(*, scale: float, days: int, console: Console) -> None:
    console.rule("governance data hub: demo")
    config_path = settings().sources_file
    config = load_sources(config_path)
    with console.status("preparing the embedded warehouse"):
        migrate()
        with connect(Role.OWNER) as conn:
            record_city_settings(conn, config.city)
    console.print(f"warehouse: {describe()}")
    sources = [s for s in config.sources.values() if s.enabled and s.connector in STARTERS]
    city = City(config.city.code, scale=scale)

    with ExitStack() as stack:
        platforms: dict[str, DemoPlatform] = {}
        for src in sources:
            with console.status(f"starting the {src.name} simulator"):
                platform = start(src.connector, city, days, settings().home / "demo" / src.name,
                                 src.name)
            stack.callback(platform.stop)
            platforms[src.name] = platform
            console.print(f"{src.name} simulator: {_where(platform.settings)}")
        demo_file = _demo_sources(config_path, {n: p.settings for n, p in platforms.items()})
        env = {k: v for p in platforms.values() for k, v in p.env.items()}
        env["HUB_SOURCES_FILE"] = str(demo_file)
        os.environ.update(env)

        console.rule("first run: the ingest DAGs, with Airflow")
        for src in sources:
            dag_id = ingest_dag_id(src.name)
            with console.status(f"airflow dags test {dag_id}"):
                result = dags_test(dag_id, extra_env=env)
            if not result.ok:
                console.print(f"[red]{result.summary()}[/red]\n{result.log_tail}")
                for error in result.errors:
                    console.print(error)
                raise SystemExit(1)
            console.print(f"[green]{result.summary()}[/green]")
            # One task per stream, each its own recorded run (the setup task aside).
            for task_id in result.task_states:  # in the order they ran
                if task_id != MIGRATE_TASK:
                    _print_run(console, result.return_values.get(task_id))

        console.rule("the platforms move on; the same pipeline pulls what changed")
        for src in sources:
            changed = platforms[src.name].advance()
            with console.status(f"hub run {src.name}"):
                summary = run_source(src.name, demo_file, trigger="demo")
            console.print(f"{src.name}: {changed} records changed on the platform")
            _print_run(console, summary.as_dict())
        show_linking(console, platforms)
    summarise(console)

    with console.status("writing the weekly quality report"):
        # The simulators' history is the days up to today: report the current week.
        path = build_report(_iso_week(clock.local_now(config.city.timezone).date()),
                            partial=True)
    console.print(f"\nthe weekly quality report: {path}\n(open it in a browser; "
                  "`hub report --week YYYY-Www [--pdf]` writes any week's)")
    show_department(console)


def link_and_evaluate(console: Console, platforms: dict[str, DemoPlatform], truth: Path
                      ) -> None:
    """`hub link run` over what the platforms' runs loaded, then its scores against the
    simulators' truth (written to `truth`): people, organizations, incidents."""
    started = time.perf_counter()
    with console.status("hub link run"), connect(Role.LOADER) as conn:
        linked = link_all(conn)
    for entity, summary in linked.items():
        console.print(f"{entity}: " + ", ".join(
            f"{k} {v}" for k, v in summary.items() if isinstance(v, int | float | str)))
    console.print(f"linked in {time.perf_counter() - started:.1f} s")
    write_truth(platforms, truth)
    with connect(Role.OWNER) as conn:
        console.print(format_evaluation(evaluate(conn, truth)), soft_wrap=True)


def show_linking(console: Console, platforms: dict[str, DemoPlatform]) -> None:
    """Link people, organizations and incidents; score the links against the simulators'
    truth; show one person across platforms and one incident reported through several."""
    console.rule("one person, one organization, one incident: hub link run")
    link_and_evaluate(console, platforms, settings().home / "demo" / "truth.csv")
    with connect(Role.OWNER) as conn:
        person = conn.execute(LINKED_PERSON).fetchall()
        incident = conn.execute(LINKED_INCIDENT).fetchall()
    print_table(["", "platform", "record", "name", "detail"], person,
                title="one resident on every platform, with what she reported (masked)")
    print_table(["platform", "record", "channel", "category", "reported", "cluster"], incident,
                title="one incident reported through several channels (cluster_key)")


LINKED_PERSON = """
WITH k AS (
    SELECT person_key FROM core.person WHERE valid_to IS NULL AND person_key IS NOT NULL
     GROUP BY 1 HAVING count(DISTINCT source_system) >= 2
     ORDER BY count(DISTINCT source_system) DESC, person_key LIMIT 1)
SELECT 'record', p.source_system, mart.record_ref(p.source_id), mart.mask_name(p.name),
       p.role || ' ' || coalesce(mart.mask_address(p.current_address), '')
  FROM core.person p JOIN k USING (person_key) WHERE p.valid_to IS NULL
UNION ALL
SELECT 'reported', e.source_system, e.source_id, e.reporter_name_masked,
       e.category_code || ' ' || to_char(e.reported_at, 'YYYY-MM-DD HH24:MI')
  FROM core.event e JOIN k ON e.reporter_person_key = k.person_key WHERE e.valid_to IS NULL
"""
LINKED_INCIDENT = """
WITH c AS (
    SELECT cluster_key FROM core.event WHERE valid_to IS NULL AND cluster_key IS NOT NULL
     GROUP BY 1 ORDER BY count(DISTINCT source_system) DESC, cluster_key LIMIT 1)
SELECT e.source_system, e.source_id, e.channel, e.category_code,
       to_char(e.reported_at, 'MM-DD HH24:MI'), e.cluster_key
  FROM core.event e JOIN c USING (cluster_key) WHERE e.valid_to IS NULL ORDER BY e.reported_at
"""


# The example department: 兴隆台区城管局 sees 兴隆台区 (211103), masked, and nothing else.
DEMO_LOGIN, DEMO_DEPARTMENT, DEMO_DISTRICT = "xlt_cgj", "兴隆台区城管局", "211103"


def show_department(console: Console) -> None:
    """Let one department in, as `hub access grant` does, and query as its login."""
    console.rule(f"a department logs in: {DEMO_DEPARTMENT}")
    with connect(Role.OWNER) as conn:
        held = [g for g in access.grants(conn) if g.login == DEMO_LOGIN]
        if not held:
            access.grant(conn, DEMO_LOGIN, DEMO_DEPARTMENT,
                         access.Jurisdiction(districts=(DEMO_DISTRICT,)), clear_pii=False,
                         granted_by="make demo", reason="the demo's example department")
        city_events = conn.execute("SELECT count(*) FROM mart.event").fetchone()
    console.print(f"hub access grant {DEMO_LOGIN} --department {DEMO_DEPARTMENT}"
                  f" --district {DEMO_DISTRICT}")
    with psycopg.connect(access.login_conninfo(DEMO_LOGIN)) as conn:
        seen = conn.execute(
            "SELECT count(*), count(DISTINCT division_code) FROM mart.event").fetchone()
        figures = conn.execute(DEPARTMENT_FIGURES).fetchall()
        people = conn.execute(DEPARTMENT_PEOPLE).fetchall()
    console.print(f"as {DEMO_LOGIN}: {seen[0] if seen else 0:,} of the city's"
                  f" {city_events[0] if city_events else 0:,} events, all in district"
                  f" {DEMO_DISTRICT} (row-level security)")
    print_table(["week", "district", "events", "办结率", "按期办结率", "满意率"], figures,
                title=f"{DEMO_LOGIN}> {' '.join(DEPARTMENT_FIGURES.split())}")
    print_table(["platform", "name", "ID number", "phone", "address"], people,
                title=f"{DEMO_LOGIN}> {' '.join(DEPARTMENT_PEOPLE.split())}")
    console.print(f"connect as the department: psql \"{access.login_conninfo(DEMO_LOGIN)}\"\n"
                  "what it may read: `hub docs` (the data dictionary)")


DEPARTMENT_FIGURES = """SELECT report_week, district_name, events, closure_rate, on_time_rate,
  satisfaction_rate FROM mart.governance_weekly_district ORDER BY report_week DESC LIMIT 3"""
DEPARTMENT_PEOPLE = """SELECT source_system, name_masked, id_number_masked, phone_masked,
  current_address_masked FROM mart.person WHERE current_address_masked IS NOT NULL LIMIT 3"""


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _where(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _print_run(console: Console, summary: object) -> None:
    if not isinstance(summary, dict):
        return
    streams = summary.get("streams") or []
    label = f" ({', '.join(streams)})" if streams else ""
    console.print(
        f"  run {summary['run_id']}{label}: {summary['extracted']:,} extracted = {summary['loaded']:,}"
        f" loaded + {summary['quarantined']:,} quarantined; {summary['inserted']:,} new,"
        f" {summary['updated']:,} changed, {summary['unchanged']:,} unchanged,"
        f" {summary.get('closed', 0):,} closed"
    )


def summarise(console: Console) -> None:
    """What is in the warehouse now, and how to look at it."""

    per_table = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS t, source_system, count(*) FILTER (WHERE valid_to IS NULL),"
                " count(*) FROM {table} GROUP BY 2").format(
            name=sql.Literal(e.table), table=sql.Identifier(*e.table.split(".")))
        for e in ENTITIES
    )
    with connect(Role.OWNER) as conn:
        counts = conn.execute(sql.SQL("SELECT * FROM ({}) x ORDER BY 1, 2").format(per_table)
                              ).fetchall()
        held = conn.execute(
            "SELECT source_system, rule, count(*), min(reason) FROM quality.quarantine"
            " WHERE state = 'open' GROUP BY 1, 2 ORDER BY 1, 3 DESC"
        ).fetchall()
        warnings = conn.execute(
            "SELECT source_system, rule, count(*) FROM quality.finding"
            " WHERE severity = 'warning' GROUP BY 1, 2 ORDER BY 1, 3 DESC"
        ).fetchall()
    console.print()
    print_table(["table", "source", "current rows", "all versions"], counts,
                title="rows per core table")
    print_table(["source", "rule", "records", "example reason"], held,
                title="quarantined (quality.quarantine), by reason")
    print_table(["source", "rule", "rows flagged"], warnings,
                title="loaded with findings (quality.finding)")
    console.print(f"\nThe data is in PostgreSQL at {describe()}")
    console.print(EXAMPLES.format(url=describe(Role.READER).replace(":***", "")))


EXAMPLES = """Look at it with, for example:
  .venv/bin/hub sql "select count(*) from mart.event"
  .venv/bin/hub sql "select status, count(*) from mart.event group by 1 order by 2 desc"
  .venv/bin/hub status
  .venv/bin/hub quarantine list
  psql "{url}"
"""
