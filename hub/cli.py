"""`hub`: run the pipeline, query the warehouse, look after quality, run the demo.

Only `hub migrate` (and the demo) changes the warehouse's schema; it also records the
sources file's `city.timezone`, which the marts count weeks and days in. Commands that
read (`sql`, `status`, `quarantine list|show`) never migrate, so they answer while a
load holds its locks; commands that write (`run`, `quarantine replay`, `collect`,
`snapshot accept`) refuse a warehouse that is behind, saying to run `hub migrate`.
Times are shown in the city's time zone.
"""

from __future__ import annotations

import csv
import getpass
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from base.settings import load_city
from hub.collector import collect as run_collector
from hub.console import console, err, print_table
from hub.pipeline import RunSummary, run_source
from hub.replay import replay
from quality.display import mask_payload
from quality.report import build
from warehouse import ops
from warehouse.db import connect, describe
from warehouse.migrate import SchemaNotCurrent, record_city_timezone, require_current
from warehouse.migrate import migrate as do_migrate

__all__ = ["app", "console", "err", "main", "print_table"]

app = typer.Typer(help="The governance data hub (人地事物组织 shared base database).",
                  no_args_is_help=True, add_completion=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="sources file (default: HUB_SOURCES_FILE or sources.yaml)"),
]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _city_timezone(config: Path | None) -> str:
    """The city's time zone from the sources file; UTC, said on stderr, when the file
    cannot be read (a read command still answers)."""
    try:
        return load_city(config).timezone
    except (OSError, ValueError) as exc:
        err.print(f"[yellow]times in UTC: the sources file gives no city time zone ({exc})[/yellow]")
        return "UTC"


@app.command()
def migrate(
    force: Annotated[bool, typer.Option(
        "--force", help="compare every core table with the model even if the warehouse"
                        " records it is current (after a change by hand)")] = False,
    config: ConfigOption = None,
) -> None:
    """Create or upgrade the warehouse schemas, load the reference tables, and record the
    city's time zone (the sources file's city.timezone) for the marts."""
    applied = do_migrate(force=force)
    console.print(f"warehouse {describe()}: " + (f"applied {', '.join(applied)}" if applied
                                                 else "up to date"))
    try:
        timezone = load_city(config).timezone
    except (OSError, ValueError) as exc:
        err.print(f"[red]the city's time zone was not recorded:[/red] {exc}")
        raise typer.Exit(1) from None
    with connect() as conn:
        if record_city_timezone(conn, timezone):
            console.print(f"the marts now count weeks and days in {timezone}")


@app.command()
def run(
    source: Annotated[str, typer.Argument(help="source name from the sources file")],
    config: ConfigOption = None,
) -> None:
    """Run one source's pipeline now, without a scheduler (on a migrated warehouse)."""
    with console.status(f"{source}: starting") as status:
        def progress(s: RunSummary) -> None:
            status.update(f"{source}: batch {s.batches}, {s.extracted:,} extracted, "
                          f"{s.loaded:,} loaded, {s.quarantined:,} quarantined")

        try:
            summary = run_source(source, config, progress=progress)
        except Exception as exc:
            err.print(f"[red]run of {source} failed:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(
        f"[green]{source}[/green] run {summary.run_id}: {summary.extracted:,} extracted = "
        f"{summary.loaded:,} loaded + {summary.quarantined:,} quarantined "
        f"({summary.inserted:,} new, {summary.updated:,} changed, {summary.unchanged:,} unchanged;"
        f" {summary.reread:,} re-read) in {summary.seconds:.1f}s"
    )


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout, for machines")] = False,
) -> None:
    """Run a query against the configured warehouse and print the result."""
    with connect() as conn, conn.cursor() as cur:
        try:
            cur.execute(query.encode())  # the user's own query, run with the user's rights
        except Exception as exc:
            err.print(f"[red]query failed:[/red] {exc}")
            raise typer.Exit(1) from None
        if cur.description is None:
            console.print(f"{cur.statusmessage}")
            return
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    print_table(columns, rows)


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="runs shown per source")] = 5,
    config: ConfigOption = None,
) -> None:
    """Recent runs per source, with counts and outcomes."""
    tz = _city_timezone(config)
    with connect() as conn:
        rows = conn.execute(
            "SELECT source_system, run_id, outcome, to_char(started_at AT TIME ZONE"
            " %(tz)s, 'YYYY-MM-DD HH24:MI:SS'),"
            " round(extract(epoch FROM finished_at - started_at)::numeric, 1),"
            " extracted, loaded, quarantined, inserted, updated, left(error, 80)"
            " FROM (SELECT *, row_number() OVER (PARTITION BY source_system"
            "   ORDER BY started_at DESC) AS n FROM ops.run) r"
            " WHERE n <= %(limit)s ORDER BY source_system, started_at DESC",
            {"tz": tz, "limit": limit},
        ).fetchall()
        cursors = conn.execute("SELECT source_system, state::text FROM ops.cursor").fetchall()
        rejected = conn.execute(
            "SELECT source_system, stream, file_name, kind, attempts,"
            " to_char(last_seen_at AT TIME ZONE %s, 'YYYY-MM-DD HH24:MI'), reason"
            " FROM ops.rejected_file f WHERE NOT EXISTS (SELECT 1 FROM ops.snapshot_acceptance a"
            "   WHERE a.source_system = f.source_system AND a.stream = f.stream"
            "   AND a.snapshot_id = f.file_name || '#' || f.sha256)"
            " ORDER BY last_seen_at DESC LIMIT 50", (tz,)).fetchall()
        warnings = conn.execute(
            "SELECT source_system, run_id, w FROM (SELECT *, row_number() OVER (PARTITION BY"
            "   source_system ORDER BY started_at DESC) AS n FROM ops.run) r,"
            " jsonb_array_elements_text(r.warnings) w WHERE n = 1"
            " ORDER BY source_system").fetchall()
    print_table(["source", "run", "outcome", f"started ({tz})", "seconds", "extracted", "loaded",
                 "quarantined", "new", "changed", "error"], rows, title="recent runs")
    print_table(["source", "cursor"], cursors, title="cursors")
    if rejected:
        print_table(["source", "stream", "file", "kind", "attempts", f"last seen ({tz})", "reason"],
                    rejected, title="files rejected as a whole (not loaded)")
    if warnings:
        print_table(["source", "run", "warning"], warnings, title="warnings of the latest runs")


snapshot_app = typer.Typer(help="Complete snapshots the size guard refused.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("accept")
def snapshot_accept(
    source: str, stream: str,
    snapshot_id: Annotated[str, typer.Argument(help="as `hub status` and the refusal name it:"
                                               " <file name>#<sha256>, or the file name alone")],
    reason: Annotated[str, typer.Option(help="why the drop is real (kept with the decision)")],
) -> None:
    """Accept a refused snapshot: the next run loads it and closes the records it lacks."""
    _require_current()
    with connect() as conn:
        if "#" not in snapshot_id:
            found = conn.execute(
                "SELECT file_name || '#' || sha256 FROM ops.rejected_file WHERE source_system = %s"
                " AND stream = %s AND file_name = %s AND kind = 'too_small'"
                " ORDER BY last_seen_at DESC LIMIT 1", (source, stream, snapshot_id)).fetchone()
            if found is None:
                raise typer.BadParameter(f"no refused snapshot {snapshot_id!r} of {source}/{stream}"
                                         "; see `hub status`")
            snapshot_id = found[0]
        ops.accept_snapshot(conn, source, stream, snapshot_id, getpass.getuser(), reason)
    console.print(f"accepted {snapshot_id} of {source}/{stream}; the next run loads it"
                  " and closes the records it lacks")


quarantine_app = typer.Typer(help="Records held back by blocking rules: list, inspect, replay.",
                              no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    all_states: Annotated[bool, typer.Option("--all", help="replayed/superseded too")] = False,
    config: ConfigOption = None,
) -> None:
    """Quarantined records grouped by source and rule, with counts."""
    tz = _city_timezone(config)
    with connect() as conn:
        rows = conn.execute(
            "SELECT source_system, entity, rule, state, count(*), min(quarantine_id),"
            " to_char(max(quarantined_at) AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI'),"
            " left(min(reason), 70) FROM quality.quarantine"
            " WHERE (%(source)s::text IS NULL OR source_system = %(source)s)"
            " AND (%(all)s OR state = 'open') GROUP BY 1, 2, 3, 4 ORDER BY 1, 5 DESC",
            {"source": source, "all": all_states, "tz": tz},
        ).fetchall()
    print_table(["source", "entity", "rule", "state", "records", "first id", f"latest ({tz})",
                 "example reason"], rows, title="quality.quarantine")
    if rows:
        console.print("inspect one with `hub quarantine show <id>`; after a fix, "
                      "`hub quarantine replay [--source S] [--rule R]`")


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[int, typer.Argument(help="id from `hub quarantine list`")],
    unmasked: Annotated[bool, typer.Option(
        "--unmasked", help="show personal data in clear (the read is recorded in ops.pii_read)"
    )] = False,
    config: ConfigOption = None,
) -> None:
    """One quarantined record: why it was held and what the platform sent."""
    tz = _city_timezone(config)
    with connect() as conn:
        row = conn.execute(
            "SELECT quarantine_id, source_system, stream, entity, source_id, run_id, rule, reason,"
            " failed_rules, payload, state, quarantined_at, resolved_run_id"
            " FROM quality.quarantine WHERE quarantine_id = %s", (quarantine_id,)).fetchone()
        if row is None:
            err.print(f"no quarantine entry {quarantine_id}")
            raise typer.Exit(1)
        if unmasked:
            conn.execute("INSERT INTO ops.pii_read (what, reference) VALUES (%s, %s)",
                         ("quality.quarantine.payload", str(quarantine_id)))
    (qid, src, stream, ent, sid, run_id, rule, reason, failed, payload, state, at, resolved) = row
    console.print(f"[bold]quarantine {qid}[/bold]: {src}/{stream} {ent} {sid} (run {run_id},"
                  f" {_local(at, tz)}), state {state}"
                  + (f", resolved by run {resolved}" if resolved else ""))
    console.print(f"rule [bold]{rule}[/bold]: {reason}")
    for f in failed:
        console.print(f"  - {f['severity']}: {f['rule']}: {f['reason']}")
    shown = payload if unmasked else mask_payload(payload)
    console.print_json(json.dumps(shown, ensure_ascii=False))
    if not unmasked:
        console.print("(personal data masked; --unmasked shows it and records the read)")


@quarantine_app.command("replay")
def quarantine_replay(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    rule: Annotated[str | None, typer.Option(help="only records held by this rule")] = None,
    config: ConfigOption = None,
) -> None:
    """Run held records through conform, validate and load again (after a fix)."""
    try:
        summaries = replay(source, rule, config)
    except Exception as exc:
        err.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(1) from None
    if not summaries:
        console.print("nothing to replay")
    for s in summaries:
        console.print(f"{s.source} run {s.run_id} (replay): {s.extracted:,} replayed = "
                      f"{s.loaded:,} loaded (left quarantine) + {s.quarantined:,} still held")


@app.command()
def collect(
    source: Annotated[str, typer.Argument(help="a source whose connector pushes (video)")],
    config: ConfigOption = None,
) -> None:
    """Run the durable MQTT alarm collector of a source until Ctrl-C / SIGTERM.

    It lands every alarm in raw.video_alarm as it arrives (persistent session,
    QoS 1, acknowledged only after the insert committed); the ingest DAG loads them.
    """
    _require_current()
    stats = run_collector(source, config)
    console.print(f"collector of {source} stopped: {stats}")


@app.command()
def report(
    week: Annotated[str | None, typer.Option(
        "--week", help="ISO week, e.g. 2026-W47 (default: last week)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also a PDF (headless Chromium)")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="folder (default: HUB_HOME/reports)")
                   ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the weekly quality report (one self-contained HTML file) and archive it.

    The week, its days and the times shown are the city's (the sources file's city.timezone)."""
    try:
        built = build(week, pdf=pdf, out_dir=out, timezone=load_city(config).timezone)
    except (RuntimeError, ValueError, OSError) as exc:
        err.print(f"[red]report failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(str(built.html_path))
    if built.pdf_path:
        console.print(str(built.pdf_path))


def _local(at: datetime, tz: str) -> str:
    return f"{at.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M} {tz}"


def _require_current() -> None:
    try:
        require_current()
    except SchemaNotCurrent as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def main() -> None:  # pragma: no cover - console entry point
    app()
