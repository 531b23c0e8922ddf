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
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import typer
from typer.core import TyperGroup

from base.pii import unseal
from base.settings import load_city
from hub.collector import collect as run_collector
from hub.console import console, err, print_table
from hub.pipeline import RunSummary, run_source
from hub.replay import replay
from link.evaluate import evaluate, format_evaluation
from link.people import merge as merge_people
from link.people import split as split_people
from link.run import link_all
from quality.report import build
from warehouse import access, dictionary, ops
from warehouse.access import Jurisdiction
from warehouse.db import Role, connect, describe
from warehouse.migrate import (
    SchemaNotCurrent,
    record_city_settings,
    require_current,
    schema_behind,
)
from warehouse.migrate import migrate as do_migrate

__all__ = ["app", "console", "err", "main", "print_table"]

class _OneLineErrors(TyperGroup):
    """A command's failure ends as one line on stderr (what failed, and the error's own
    words on what to do) and exit code 1; the traceback only with `hub -v`."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: an exit code, a usage error, said as typer says them
        except Exception as exc:
            if ctx.find_root().params.get("verbose"):
                raise
            err.print(f"[red]error:[/red] {_one_line(exc)} (hub -v … shows the traceback)",
                      soft_wrap=True)
            raise typer.Exit(1) from None


def _one_line(exc: BaseException) -> str:
    # A KeyError's str() is its key's repr, quotes and all: its message is args[0].
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first


app = typer.Typer(rich_markup_mode=None, help="The governance data hub (人地事物组织 shared base database).",
                  no_args_is_help=True, add_completion=False, cls=_OneLineErrors,
                  pretty_exceptions_enable=False)

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
        city = load_city(config)
    except (OSError, ValueError) as exc:
        err.print(f"[red]the city's settings were not recorded:[/red] {exc}")
        raise typer.Exit(1) from None
    with connect(Role.OWNER) as conn:
        for change in record_city_settings(conn, city):
            console.print(change)


@app.command()
def run(
    source: Annotated[str, typer.Argument(help="source name from the sources file")],
    stream: Annotated[list[str] | None, typer.Option(
        help="only this stream (repeatable; loaded in the connector's order)")] = None,
    config: ConfigOption = None,
) -> None:
    """Run one source's pipeline now, without a scheduler (on a migrated warehouse)."""
    with console.status(f"{source}: starting") as status:
        def progress(s: RunSummary) -> None:
            status.update(f"{source}: batch {s.batches}, {s.extracted:,} extracted, "
                          f"{s.loaded:,} loaded, {s.quarantined:,} quarantined")

        try:
            summary = run_source(source, config, progress=progress, streams=stream or None)
        except Exception as exc:
            err.print(f"[red]run of {source} failed:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(
        f"[green]{source}[/green] run {summary.run_id}: {summary.extracted:,} extracted = "
        f"{summary.loaded:,} loaded + {summary.quarantined:,} quarantined "
        f"({summary.inserted:,} new, {summary.updated:,} changed, {summary.unchanged:,} unchanged,"
        f" {summary.closed:,} closed; {summary.reread:,} re-read) in {summary.seconds:.1f}s"
    )


class SqlRole(StrEnum):
    """Who `hub sql` runs as: a reader unless said otherwise."""

    reader = "reader"
    steward = "steward"


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="one SQL statement")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout, for machines")] = False,
    as_role: Annotated[SqlRole, typer.Option(
        "--as", help="the role to query as (reader: marts and masked views of the whole city)"
    )] = SqlRole.reader,
    write: Annotated[bool, typer.Option(
        "--write", help="run as the owner (hub_owner) in a read-write transaction that commits:"
                        " for maintenance, not for reading")] = False,
) -> None:
    """Run one statement against the warehouse and print the result.

    By default as hub_reader, in a read-only transaction: the marts and masked views
    (`hub docs` lists them). Several statements at once are refused."""
    role = Role.OWNER if write else Role[as_role.name.upper()]
    if write:
        err.print(f"[yellow]--write: running as {role.value} in a read-write transaction; the"
                  " statement commits if it succeeds[/yellow]")
    with connect(role) as conn, conn.cursor() as cur:
        try:
            if not write:
                cur.execute("BEGIN READ ONLY")
            # prepare=True: the extended protocol takes exactly one statement, so the
            # server itself refuses "select 1; drop table …" instead of running both.
            cur.execute(query.encode(), prepare=True)  # the user's query, run with the role's rights
        except psycopg.Error as exc:
            err.print(_sql_refusal(exc, role))
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


def _sql_refusal(exc: psycopg.Error, role: Role) -> str:
    """One clear line for a refused or failed statement."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "cannot insert multiple commands" in first:
        return ("[red]refused:[/red] hub sql runs one statement at a time; "
                "run each statement separately")
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return (f"[red]refused:[/red] {first} (hub sql reads as {role.value}; changes go through"
                " the pipeline, or `--write` as the owner for maintenance)")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return (f"[red]refused:[/red] {first} (as {role.value}: readers see the mart schema;"
                " `hub docs` lists what each role may read)")
    return f"[red]query failed:[/red] {first}"


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="runs shown per source")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="everything, as JSON, for machines")
                       ] = False,
    config: ConfigOption = None,
) -> None:
    """Recent runs per source with their counts, where each stream's next read starts,
    files rejected as a whole, and the latest runs' warnings."""
    tz = _city_timezone(config)
    with connect(Role.STEWARD) as conn:
        runs = conn.execute(
            "SELECT source_system, run_id, outcome, started_at, finished_at, extracted, loaded,"
            " quarantined, inserted, updated, closed, error"
            " FROM (SELECT *, row_number() OVER (PARTITION BY source_system"
            "   ORDER BY started_at DESC) AS n FROM ops.run_review) r"
            " WHERE n <= %(limit)s ORDER BY source_system, started_at DESC",
            {"limit": limit}).fetchall()
        cursors = conn.execute(
            "SELECT c.source_system, c.stream, c.state, c.updated_at, c.run_id, r.outcome"
            " FROM ops.cursor c LEFT JOIN ops.run_review r USING (run_id)"
            " ORDER BY c.source_system, c.stream").fetchall()
        rejected = conn.execute(
            "SELECT source_system, stream, file_name, kind, attempts, last_seen_at, reason"
            " FROM ops.rejected_file f WHERE NOT EXISTS (SELECT 1 FROM ops.snapshot_acceptance a"
            "   WHERE a.source_system = f.source_system AND a.stream = f.stream"
            "   AND a.snapshot_id = f.file_name || '#' || f.sha256)"
            " ORDER BY last_seen_at DESC LIMIT 50").fetchall()
        warnings = conn.execute(
            "SELECT source_system, run_id, w FROM (SELECT *, row_number() OVER (PARTITION BY"
            "   source_system ORDER BY started_at DESC) AS n FROM ops.run_review) r,"
            " jsonb_array_elements_text(r.warnings) w WHERE n = 1"
            " ORDER BY source_system").fetchall()
    if as_json:
        keys = ("source", "run", "outcome", "started_at", "finished_at", "extracted", "loaded",
                "quarantined", "new", "changed", "closed", "error")
        print(json.dumps({
            "timezone": tz,
            "runs": [dict(zip(keys, r, strict=True)) for r in runs],
            "cursors": [{"source": c[0], "stream": c[1], "position": c[2], "updated_at": c[3],
                         "run": c[4], "outcome": c[5]} for c in cursors],
            "rejected_files": [dict(zip(("source", "stream", "file", "kind", "attempts",
                                         "last_seen_at", "reason"), f, strict=True))
                               for f in rejected],
            "warnings": [{"source": w[0], "run": w[1], "warning": w[2]} for w in warnings],
        }, ensure_ascii=False, default=str, indent=2))
        return
    print_table(["source", "run", "started", "outcome", "extracted", "loaded", "held", "closed"],
                [(r[0], r[1], _short_time(r[3], tz), "ok" if r[2] == "succeeded" else r[2],
                  f"{r[5]:,}", f"{r[6]:,}", f"{r[7]:,}", f"{r[10]:,}") for r in runs],
                title=f"recent runs (times in {tz})")
    failed = [(r[0], r[1], r[11]) for r in runs if r[11]]
    if failed:
        print_table(["source", "run", "error"], failed, title="why runs failed")
    print_table(["source", "stream", "next read from", "run", "outcome"],
                [(c[0], c[1], _position(c[2]), c[4], c[5]) for c in cursors],
                title="where each stream's next read starts (--json: in full)")
    if rejected:
        print_table(["source", "stream", "file", "kind", "attempts", "reason"],
                    [(f[0], f[1], f[2], f[3], f[4], f[6]) for f in rejected],
                    title="files rejected as a whole (not loaded)")
    if warnings:
        print_table(["source", "run", "warning"], warnings, title="warnings of the latest runs")


def _short_time(at: datetime | None, tz: str) -> str:
    return "" if at is None else f"{at.astimezone(ZoneInfo(tz)):%m-%d %H:%M}"


def _position(state: object, width: int = 26) -> str:
    """A stream's cursor as a person reads it: the file, time, page or snapshot it is at."""
    if not isinstance(state, dict):
        return str(state)[:width]
    if "last" in state:
        text = f"after {state['last']}"
    elif "snapshot_id" in state:
        text = f"snapshot {state['snapshot_id']}" + ("" if state.get("complete") else " (partial)")
    elif any(k.startswith("updated") for k in state):
        text = "since " + str(next(v for k, v in state.items() if k.startswith("updated")))
    elif "cursor" in state:
        text = f"page token {str(state['cursor'])[:8]}…"
    elif "landing_id" in state:
        text = f"landing id {state['landing_id']}"
    else:
        text = json.dumps(state, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


snapshot_app = typer.Typer(rich_markup_mode=None, help="Complete snapshots the size guard refused.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("accept")
def snapshot_accept(
    source: str, stream: str,
    snapshot_id: Annotated[str, typer.Argument(help="as `hub status` and the refusal name it:"
                                               " <file name>#<sha256> (or the file name alone), a list's <stream>#<digest>")],
    reason: Annotated[str, typer.Option(help="why the drop is real (kept with the decision)")],
) -> None:
    """Accept a refused snapshot: the next run loads it and closes the records it lacks."""
    _require_current()
    with connect(Role.LOADER) as conn:
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


quarantine_app = typer.Typer(rich_markup_mode=None, help="Records held back by blocking rules: list, inspect, replay.",
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
    with connect(Role.STEWARD) as conn:
        rows = conn.execute(
            "SELECT source_system, entity, rule, state, count(*), min(quarantine_id),"
            " to_char(max(quarantined_at) AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI'),"
            " left(min(reason), 70) FROM quality.quarantine_review"
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
        "--unmasked", help="show the payload in clear (as hub_pii_reader; the read is recorded"
                           " in ops.pii_read with --reason)")] = False,
    reason: Annotated[str | None, typer.Option(
        help="why the clear payload is needed (required with --unmasked; kept in the audit)"
    )] = None,
    config: ConfigOption = None,
) -> None:
    """One quarantined record: why it was held and what the platform sent (masked)."""
    if unmasked and not (reason and reason.strip()):
        err.print("[red]--unmasked needs --reason[/red]: say why the clear payload is needed"
                  " (it is recorded with your name in ops.pii_read)")
        raise typer.Exit(2)
    tz = _city_timezone(config)
    with connect(Role.STEWARD) as conn:
        row = conn.execute(
            "SELECT quarantine_id, source_system, stream, entity, source_id, run_id, rule, reason,"
            " failed_rules, payload, state, quarantined_at, resolved_run_id"
            " FROM quality.quarantine_review WHERE quarantine_id = %s", (quarantine_id,)
        ).fetchone()
    if row is None:
        err.print(f"no quarantine entry {quarantine_id}; see `hub quarantine list`")
        raise typer.Exit(1)
    (qid, src, stream, ent, sid, run_id, rule, why, failed, payload, state, at, resolved) = row
    if unmasked:
        payload = _clear_payload(qid, reason or "")
    console.print(f"[bold]quarantine {qid}[/bold]: {src}/{stream} {ent} {sid} (run {run_id},"
                  f" {_local(at, tz)}), state {state}"
                  + (f", resolved by run {resolved}" if resolved else ""))
    console.print(f"rule [bold]{rule}[/bold]: {why}")
    for f in failed:
        console.print(f"  - {f['severity']}: {f['rule']}: {f['reason']}")
    console.print_json(json.dumps(payload, ensure_ascii=False))
    if not unmasked:
        console.print("(personal data masked; --unmasked --reason … shows it and records the read)")


def _clear_payload(quarantine_id: int, reason: str) -> object:
    """The clear payload through the audited function, opened with the hub's key."""
    with connect(Role.PII_READER) as conn:
        try:
            row = conn.execute("SELECT ops.quarantine_payload_clear(%s, %s, %s)",
                               (quarantine_id, reason, getpass.getuser())).fetchone()
        except psycopg.Error as exc:
            err.print(f"[red]clear read refused:[/red] {str(exc).splitlines()[0]}")
            raise typer.Exit(1) from None
    if row is None or row[0] is None:
        err.print(f"quarantine entry {quarantine_id} has no sealed payload")
        raise typer.Exit(1)
    return json.loads(unseal(bytes(row[0])))


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


access_app = typer.Typer(rich_markup_mode=None, help="Department logins: their jurisdiction, and the audit of clear reads.",
                          no_args_is_help=True)
app.add_typer(access_app, name="access")


@access_app.command("grant")
def access_grant(
    login: Annotated[str, typer.Argument(help="the department's database login, e.g. xlt_cgj")],
    department: Annotated[str, typer.Option(help="the department, e.g. 兴隆台区城管局")],
    city: Annotated[bool, typer.Option("--city", help="the whole city")] = False,
    district: Annotated[list[str] | None, typer.Option(
        help="6-digit county code (repeatable), e.g. 211103")] = None,
    street: Annotated[list[str] | None, typer.Option(help="9-digit street code (repeatable)")
                      ] = None,
    grid: Annotated[list[str] | None, typer.Option(help="grid code (repeatable)")] = None,
    category: Annotated[list[str] | None, typer.Option(
        help="only events of this taxonomy code and its sub-codes (repeatable)")] = None,
    handling_org: Annotated[list[str] | None, typer.Option(
        help="only events handled by this 承办单位 (repeatable)")] = None,
    clear_pii: Annotated[bool, typer.Option(
        "--clear-pii", help="may read clear personal data through the audited functions")] = False,
    reason: Annotated[str | None, typer.Option(help="why (kept with the grant)")] = None,
    password: Annotated[bool, typer.Option(
        "--password", help="set the login's password (asked for, not echoed); without it the"
                           " server's own authentication applies (certificate, LDAP, peer)")
                        ] = False,
) -> None:
    """Let a department login read the marts and masked views of its jurisdiction
    (creating the login if needed); the grant is recorded in ops.access_grant."""
    where = Jurisdiction(city, tuple(district or ()), tuple(street or ()), tuple(grid or ()),
                         tuple(category) if category else None,
                         tuple(handling_org) if handling_org else None)
    secret = typer.prompt(f"password for {login}", hide_input=True,
                          confirmation_prompt=True) if password else None
    with connect(Role.OWNER) as conn:
        try:
            grant_id = access.grant(conn, login, department, where, clear_pii=clear_pii,
                                    granted_by=_operator(conn), reason=reason, password=secret)
        except access.AccessError as exc:
            err.print(f"[red]not granted:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(f"grant {grant_id}: {login} ({department}) reads {where.describe()}"
                  + ("; may read clear personal data, audited" if clear_pii else "")
                  + f"\nconnect: psql \"{access.login_conninfo(login)}\"")


@access_app.command("revoke")
def access_revoke(
    login: str,
    department: Annotated[str | None, typer.Option(help="only this department's grant")] = None,
) -> None:
    """End a login's grants (all, or one department's); with none left it cannot log in."""
    with connect(Role.OWNER) as conn:
        try:
            ended = access.revoke(conn, login, revoked_by=_operator(conn), department=department)
        except access.AccessError as exc:
            err.print(f"[red]not revoked:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(f"revoked {ended} grant(s) of {login}")


@access_app.command("list")
def access_list(
    all_grants: Annotated[bool, typer.Option("--all", help="revoked grants too")] = False,
    config: ConfigOption = None,
) -> None:
    """Who may read what: every login's grants, who granted them and when."""
    tz = _city_timezone(config)
    with connect(Role.OWNER) as conn:
        rows = access.grants(conn, include_revoked=all_grants)
    print_table(["id", "login", "department", "jurisdiction", "clear PII", "granted by",
                 f"granted ({tz})", "revoked"],
                [(g.grant_id, g.login, g.department, g.jurisdiction.describe(),
                  "yes" if g.clear_pii else "", g.granted_by, _local(g.granted_at, tz),
                  f"{_local(g.revoked_at, tz)} by {g.revoked_by}" if g.revoked_at else "")
                 for g in rows], title="ops.access_grant")


@access_app.command("audit")
def access_audit(
    login: Annotated[str | None, typer.Option(help="only this login's reads")] = None,
    limit: Annotated[int, typer.Option(help="rows shown, newest first")] = 100,
    config: ConfigOption = None,
) -> None:
    """The audit of clear reads of personal data (ops.pii_read): who, when, what, why."""
    tz = _city_timezone(config)
    with connect(Role.OWNER) as conn:
        rows = access.clear_reads(conn, login=login, limit=limit)
    print_table(["id", f"read at ({tz})", "login", "for", "what", "record", "reason"],
                [(r[0], _local(r[1], tz), *r[2:]) for r in rows], title="ops.pii_read")


def _operator(conn: psycopg.Connection) -> str:
    """Who is granting: the OS user, and the database login they act through."""
    row = conn.execute("SELECT session_user").fetchone()
    return f"{getpass.getuser()} (as {row[0] if row else '?'})"



link_app = typer.Typer(rich_markup_mode=None,
                        help="One person, organization, incident across platforms: link, steward, evaluate.",
                        no_args_is_help=True)
app.add_typer(link_app, name="link")


@link_app.command("run")
def link_run(
    full: Annotated[bool, typer.Option(
        "--full", help="link every person afresh (unchanged records keep their keys)")] = False,
) -> None:
    """Link people (and event reporters), organizations and incidents now; the refresh DAG
    does it after every load."""
    _require_current()
    with connect(Role.LOADER) as conn:
        done = link_all(conn, full=full)
    for entity, summary in done.items():
        console.print(f"[bold]{entity}[/bold]: " + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in summary.items()
            if not isinstance(v, dict | list)))


def _record(ref: str) -> tuple[str, str]:
    system, _, source_id = ref.partition("/")
    if not (system and source_id):
        raise typer.BadParameter(f"{ref!r}: give a record as <source_system>/<source_id>")
    return system, source_id


@link_app.command("split")
def link_split(
    record_a: Annotated[str, typer.Argument(help="<source_system>/<source_id> of one record")],
    record_b: Annotated[str, typer.Argument(help="… of a record wrongly linked to it")],
    reason: Annotated[str, typer.Option(help="why they are different people (kept)")],
) -> None:
    """Two person records are different people: every later run keeps them apart."""
    with connect(Role.LOADER) as conn:
        decision = split_people(conn, _record(record_a), _record(record_b),
                                getpass.getuser(), reason)
    console.print(f"decision {decision}: {record_a} and {record_b} stay apart from the next"
                  " `hub link run` on")


@link_app.command("merge")
def link_merge(
    key_a: Annotated[str, typer.Argument(help="a person_key")],
    key_b: Annotated[str, typer.Argument(help="another person_key of the same person")],
    reason: Annotated[str, typer.Option(help="why they are one person (kept)")],
) -> None:
    """Two golden persons are one: every later run keeps their records together."""
    with connect(Role.LOADER) as conn:
        decision = merge_people(conn, key_a, key_b, getpass.getuser(), reason)
    console.print(f"decision {decision}: {key_a} and {key_b} are one person from the next"
                  " `hub link run` on")


@link_app.command("evaluate")
def link_evaluate(
    truth: Annotated[Path, typer.Option(help="truth CSV: entity,source_system,source_id,"
                                             "truth_id (the simulators write one)")],
) -> None:
    """Person, organization and incident linking scored against a known truth: pairwise
    precision, recall, F1 and B-cubed."""
    with connect(Role.LOADER) as conn:
        console.print(format_evaluation(evaluate(conn, truth)), soft_wrap=True)


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
        built = build(week, pdf=pdf, out_dir=out, timezone=load_city(config).timezone,
                      config=config)
    except (RuntimeError, ValueError, OSError) as exc:
        err.print(f"[red]report failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(str(built.html_path))
    if built.pdf_path:
        console.print(str(built.pdf_path))


class DocsRole(StrEnum):
    """Whose view of the warehouse `hub docs` describes."""

    reader = "reader"
    steward = "steward"


@app.command()
def docs(
    out: Annotated[Path, typer.Option("--out", help="folder to write into")] = Path("docs"),
    as_role: Annotated[DocsRole, typer.Option(
        "--role", help="reader: what every department login may read; steward: the quality"
                       " review's")] = DocsRole.reader,
) -> None:
    """Write the data dictionary (Markdown and one self-contained HTML page): every table and
    view the role may read, each column's meaning, masking and code standard, the taxonomy,
    the statuses, the governance figures and an example query per mart view."""
    role = Role[as_role.name.upper()]
    with connect(role) as conn:
        behind = schema_behind(conn)
        if behind is not None:
            err.print(f"[yellow]the warehouse is not current ({behind}): the dictionary describes"
                      " what it holds; run `hub migrate` first[/yellow]")
        paths = dictionary.write(dictionary.build(conn, role), out)
    for path in paths:
        console.print(str(path))


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
