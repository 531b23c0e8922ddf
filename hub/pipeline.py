"""One source, end to end: extract → conform → validate → quarantine / merge, per batch.

Each batch is one transaction holding everything it changes: the merged core
rows, its quarantined records and findings, its rule counts, the run's counters
and the source's cursor. A crash between two batches loses nothing (the next run
resumes from the committed cursor, minus the overlap window); a crash inside a
batch leaves no trace of it. Extracted = loaded + quarantined, per batch, hence
per run (ops.run has a CHECK constraint on it).

The same function runs from the CLI (`hub run`), from Airflow, and from tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from base.settings import SourceConfig, SourcesFile, load_sources, settings
from conform.base import Conformer
from conform.grid_assign import GridIndex
from conform.protect import protect
from conform.registry import conformer_class
from connectors.base import Connector, Extract, ReadContext, Stream
from connectors.registry import connector_class
from hub.dedupe import drop_rereads
from hub.failpoints import failpoint
from quality import store
from quality.consistency import run_checks
from quality.context import rule_context
from quality.display import mask_text
from quality.rules import RuleContext
from quality.validate import Validated, validate
from schemas.model import Entity, entity
from warehouse import ops
from warehouse.db import connect
from warehouse.loader import MergeCounts, close_missing, merge, record_seen
from warehouse.migrate import migrate

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: int
    source: str
    outcome: str = "running"
    batches: int = 0
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0
    reread: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    rejected_files: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[RunSummary], None]


def run_source(
    source: str,
    sources_path: Path | str | None = None,
    *,
    trigger: str = "cli",
    progress: Progress | None = None,
) -> RunSummary:
    """Pull every stream of one configured source into the warehouse. Raises on failure."""

    def pull(run: Run) -> None:
        for stream in run.connector.streams:
            run.load_stream(stream)

    return execute(source, pull, sources_path, trigger=trigger, progress=progress)


def execute(
    source: str,
    body: Callable[[Run], None],
    sources_path: Path | str | None = None,
    *,
    trigger: str,
    progress: Progress | None = None,
) -> RunSummary:
    """Run `body` as one recorded run of `source`: locked, counted, finished or failed."""
    config = load_sources(sources_path)
    src = config.source(source)
    if not src.enabled:
        raise RuntimeError(f"source {source!r} is disabled in the sources file")
    connector = connector_class(src.connector)(src, config.city)
    migrate()
    with ops.source_lock(source):
        with connect() as conn:
            abandoned = ops.abandon_stale_runs(conn, source)
            run_id = ops.start_run(conn, source, src.connector, trigger)
        if abandoned:
            log.warning("%s: %d earlier run(s) had died unfinished; resuming from the cursor",
                        source, abandoned)
        summary = RunSummary(run_id=run_id, source=source)
        started = time.monotonic()
        try:
            body(Run(src, config, connector, summary, progress))
            with connect() as conn:
                run_checks(conn, src.connector, source, run_id)
        except BaseException as exc:
            # Shown by `hub status` to every operator: no personal data, whatever the
            # message quotes (a driver error may quote a row).
            summary.outcome, summary.error = "failed", mask_text(f"{type(exc).__name__}: {exc}")
            summary.seconds = time.monotonic() - started
            ops.finish_run(run_id, "failed", summary.error, {"total_s": round(summary.seconds, 3)})
            raise
        summary.seconds = time.monotonic() - started
        failpoint("before_finish")
        summary.outcome = "succeeded"
        summary.http = dict(connector.http_stats)
        ops.finish_run(run_id, "succeeded", None,
                       {"total_s": round(summary.seconds, 3), "http": summary.http})
        return summary


class Run:
    def __init__(self, src: SourceConfig, config: SourcesFile, connector: Connector,
                 summary: RunSummary, progress: Progress | None):
        self.src = src
        self.config = config
        self.connector = connector
        self.summary = summary
        self.progress = progress
        self.ctx: RuleContext | None = None
        self.grids: GridIndex | None = None
        # Streams whose batch has been through GX in this run (once is the record).
        self.gx_done: set[str] = set()

    def conformer(self, stream: Stream) -> Conformer:
        return conformer_class(self.connector.name, stream.name)(
            self.connector.settings, self.config.city)

    def load_stream(self, stream: Stream) -> None:
        conformer = self.conformer(stream)
        # Re-read what rules check against: an earlier stream of this run may have
        # just loaded the grids that this one's records refer to.
        self.ctx = None
        self.grids = None
        with connect() as conn:
            state = ops.read_cursor(conn, self.src.name, stream.name)
            context = self.read_context(conn, stream, conformer)
        clock = time.monotonic()
        for batch in _batches(self.connector.extract(stream, state, context),
                              settings().batch_rows):
            self._tick("extract_s", clock)
            failpoint("after_extract")
            self.load_batch(stream, conformer, batch)
            clock = time.monotonic()

    def read_context(self, conn: psycopg.Connection, stream: Stream,
                     conformer: Conformer) -> ReadContext:
        """What the connector needs to know of the warehouse to read `stream`."""
        if not stream.snapshot:
            return ReadContext()
        return ReadContext(
            current_records=ops.current_records(conn, conformer.primary.table, self.src.name,
                                                stream.name),
            accepted_snapshots=ops.accepted_snapshots(conn, self.src.name, stream.name))

    def _tick(self, what: str, since: float) -> float:
        now = time.monotonic()
        self.summary.timings[what] = self.summary.timings.get(what, 0.0) + now - since
        return now

    def load_batch(self, stream: Stream, conformer: Conformer, batch: Extract, *,
                   replay: bool = False) -> None:
        """Conform, validate and load one batch, and commit it with its cursor.

        A replay loads records taken back out of quarantine: it moves no cursor,
        and the entries it loads are resolved as 'replayed'.
        """
        clock = time.monotonic()
        raw, superseded = drop_rereads(batch.records, stream.key_field, stream.updated_field)
        reread = batch.reread + superseded
        conformed = conformer.conform(raw)
        clock = self._tick("conform_s", clock)

        primary = conformer.primary
        if self.ctx is None:
            with connect() as conn:
                self.ctx = rule_context(conn, self.config.city)
                self.grids = grid_index(conn)
        table = assign_grids(conformed.table, self.grids)
        ctx = self.ctx
        if batch.conflicting_keys:
            # Keys the whole snapshot holds twice with different records: whichever
            # batch a record falls in, it goes to quarantine with the others.
            conflicting = pc.is_in(raw[stream.key_field],
                                   value_set=pa.array(sorted(batch.conflicting_keys), pa.string()))
            ctx = replace(ctx, conflicting_keys=frozenset(
                table["source_id"].filter(conflicting).drop_null().to_pylist()))
        checked = validate(primary, table, ctx, conformed.unparseable, raw)
        passed = ~checked.quarantine
        derived: dict[str, Validated] = {}
        for name, rows in conformer.derive(raw.filter(pa.array(passed)),
                                           table.filter(pa.array(passed))).items():
            derived[name] = validate(entity(name), rows, ctx)
        clock = self._tick("validate_s", clock)

        source, run_id = self.src.name, self.summary.run_id
        closed = 0
        with connect() as conn:
            fixed = "replayed" if replay else "superseded"
            counts = store_validated(conn, primary, checked, source=source, stream=stream.name,
                                     run_id=run_id, payload=raw, fixed_state=fixed)
            store.record_rejects(conn, run_id, source, stream.name, primary, batch.rejects)
            ops.record_rejected_files(conn, run_id, source, stream.name, batch.rejected_files)
            ops.add_warnings(conn, run_id, batch.warnings)
            for name, result in derived.items():
                store_validated(conn, entity(name), result, source=source, stream=stream.name,
                                run_id=run_id, payload=None, fixed_state=fixed)
            if batch.snapshot_id is not None:
                # Quarantined records were in the snapshot too: present, not gone; so
                # were rows held as unreadable whose key could still be told.
                unreadable = [r.source_id for r in batch.rejects if r.source_id is not None]
                record_seen(conn, source, stream.name, batch.snapshot_id, pa.concat_arrays([
                    raw[stream.key_field].combine_chunks().cast(pa.string()),
                    pa.array(unreadable, pa.string())]))
                if batch.snapshot_complete:
                    closed = close_missing(
                        conn, primary, source, stream.name, batch.snapshot_id,
                        min_ratio=self.connector.settings.min_snapshot_ratio)
            if stream.name not in self.gx_done:
                store.record_gx(conn, run_id, primary, self.summary.batches, checked, ctx)
                self.gx_done.add(stream.name)
            failpoint("after_merge")
            # Rows the connector could not read as records are extracted and quarantined.
            counts_now = {
                "extracted": raw.num_rows + len(batch.rejects),
                "loaded": int(passed.sum()),
                "quarantined": int(checked.quarantine.sum()) + len(batch.rejects),
                "reread": reread,
                "inserted": counts.inserted,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "closed": closed,
            }
            self._tick("load_s", clock)
            ops.add_batch(conn, run_id, counts_now, self.summary.timings)
            if not replay:
                ops.save_cursor(conn, source, stream.name, batch.cursor, run_id)
            failpoint("before_commit")
        for k, v in counts_now.items():
            setattr(self.summary, k, getattr(self.summary, k) + v)
        self.summary.batches += 1
        self.summary.rejected_files += len(batch.rejected_files)
        self.summary.warnings.extend(batch.warnings)
        failpoint("after_commit")
        if self.progress:
            self.progress(self.summary)


def grid_index(conn: psycopg.Connection) -> GridIndex | None:
    """The current grids' polygons, indexed; None while no grid is loaded."""
    rows = conn.execute("SELECT grid_code, boundary_wkt FROM core.grid WHERE valid_to IS NULL"
                        " AND boundary_wkt IS NOT NULL ORDER BY grid_code").fetchall()
    if not rows:
        return None
    codes, wkts = zip(*rows, strict=True)
    return GridIndex.from_wkt(list(codes), list(wkts))


def assign_grids(table: pa.Table, grids: GridIndex | None) -> pa.Table:
    """Records with coordinates but no grid code get the grid their point lies in.

    A point outside every grid keeps no grid (the `grid_assigned` rule flags it):
    guessing the nearest grid would put an incident on the wrong worker's list.
    """
    if grids is None or not {"grid_code", "longitude", "latitude"} <= set(table.column_names):
        return table
    missing = pc.and_(pc.is_null(table["grid_code"]),
                      pc.and_(pc.is_valid(table["longitude"]), pc.is_valid(table["latitude"])))
    if not pc.any(missing).as_py():
        return table
    rows = np.flatnonzero(np.asarray(missing, dtype=bool))
    lon = table["longitude"].take(pa.array(rows)).to_numpy(zero_copy_only=False)
    lat = table["latitude"].take(pa.array(rows)).to_numpy(zero_copy_only=False)
    codes = table["grid_code"].to_pylist()
    for i, code in zip(rows, grids.assign(lon, lat), strict=True):
        codes[i] = code
    index = table.column_names.index("grid_code")
    return table.set_column(index, "grid_code", pa.array(codes, pa.string()))


def store_validated(conn: psycopg.Connection, ent: Entity, checked: Validated, *, source: str,
                    stream: str, run_id: int, payload: pa.Table | None,
                    fixed_state: str = "superseded") -> MergeCounts:
    """One entity's share of a batch: quarantine what failed, merge what passed."""
    keep = checked.table.filter(pa.array(~checked.quarantine))
    counts = merge(conn, ent, protect(ent, keep), source_system=source, stream=stream,
                   run_id=run_id)
    store.record(conn, run_id, source, stream, ent, checked, payload, fixed_state=fixed_state)
    return counts


def _batches(extracts: Iterator[Extract], rows: int) -> Iterator[Extract]:
    """Pages gathered into batches of about `rows` records, each with its cursor.

    A batch never spans two snapshots, and the extract completing a snapshot ends
    its batch. The last batch may be empty: it still commits the cursor.
    """
    pending: list[Extract] = []
    size = 0

    def flush() -> Extract:
        last = pending[-1]
        return Extract(pa.concat_tables([e.records for e in pending]), last.cursor,
                       sum(e.reread for e in pending), last.snapshot_id, last.snapshot_complete,
                       conflicting_keys=frozenset().union(*(e.conflicting_keys for e in pending)),
                       rejects=[r for e in pending for r in e.rejects],
                       rejected_files=[f for e in pending for f in e.rejected_files],
                       warnings=[w for e in pending for w in e.warnings])

    for ex in extracts:
        if pending and ex.snapshot_id != pending[-1].snapshot_id:
            yield flush()
            pending, size = [], 0
        pending.append(ex)
        size += ex.records.num_rows
        if size >= rows or ex.snapshot_complete:
            yield flush()
            pending, size = [], 0
    if pending:
        yield flush()
