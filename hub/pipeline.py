"""One source, end to end: each batch goes through the stages dedupe → conform → enrich →
validate → store.

Each stage is a function from one small value to the next (`Deduped`, `ConformedBatch`,
`Enriched`, `Checked`, `BatchCounts`); only the store stage touches the warehouse,
and it runs in one transaction holding everything the batch changes: the merged
core rows, its quarantined records and findings, its rule counts, the run's
counters and the source's cursor. A crash between two batches loses nothing (the
next run resumes from the committed cursor, minus the overlap window); a crash
inside a batch leaves no trace of it. Extracted = loaded + quarantined, per batch,
hence per run (ops.run has a CHECK constraint on it).

What the stages need from the warehouse is read once per stream, before its first
batch: the cursor, what the connector's read needs (`ReadContext`; for a stream the
collector lands, a reader of the landing), the lookups the conformer maps with
(`Lookups`), and what the rules check against and grids are assigned from
(`Reference`). Connectors and conformers never query the warehouse themselves.

The warehouse must be migrated (`hub migrate`): a run checks that cheaply and
refuses to start otherwise.

The same function runs from the CLI (`hub run`), from Airflow, and from tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from base.masking import mask_text
from base.settings import CityConfig, SourceConfig, SourcesFile, load_sources, settings
from conform.base import Conformed, Conformer, Lookups
from conform.grid_assign import GridIndex
from conform.protect import protect
from connectors.base import Connector, Extract, ReadContext, Stream
from connectors.mqtt_collector import LandedStream, LandingContext
from connectors.registry import connector_class
from hub.collector import LandingReader
from hub.dedupe import drop_rereads
from hub.failpoints import failpoint
from hub.lineage import conformer_class, stream_tables
from hub.unchanged import basis, held_digests, record_digests, skippable
from quality import store
from quality.consistency import run_checks
from quality.context import rule_context
from quality.rules import RuleContext
from quality.validate import Validated, validate
from schemas.model import Entity, entity
from warehouse import ops, record_digest
from warehouse.db import Role, connect
from warehouse.deferred_indexes import IndexDeferral, restore_indexes
from warehouse.first_loads import FirstLoads, KeyHashes, key_hashes
from warehouse.loader import MergeCounts, close_missing, merge, record_seen, row_hashes
from warehouse.migrate import require_current
from warehouse.record_digest import StreamDigests
from warehouse.statistics import analyze_beside_last_batch, analyze_stale

T = TypeVar("T")
U = TypeVar("U")
log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: int
    source: str
    # The streams the run covered, in loading order (empty: the consistency checks alone).
    streams: list[str] = field(default_factory=list)
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
    # What the run changed per core table ("core.event" → inserted, updated, closed):
    # the primary entity's and the derived entities' rows alike.
    changed: dict[str, dict[str, int]] = field(default_factory=dict)
    # The cross-source checks the run ran: rule → [evaluated, failed].
    checks: dict[str, list[int]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows_changed(self) -> int:
        """Rows of core tables the run inserted, updated or closed so far."""
        return sum(sum(counts.values()) for counts in self.changed.values())

    def add_changes(self, changes: Mapping[str, Mapping[str, int]]) -> None:
        for table, counts in changes.items():
            into = self.changed.setdefault(table, dict.fromkeys(CHANGE_KINDS, 0))
            for kind in CHANGE_KINDS:
                into[kind] += int(counts.get(kind, 0))


# What counts as a change of a core table (unchanged rows do not).
CHANGE_KINDS = ("inserted", "updated", "closed")


Progress = Callable[[RunSummary], None]


def run_source(
    source: str,
    sources_path: Path | str | None = None,
    *,
    trigger: str = "cli",
    progress: Progress | None = None,
    streams: Sequence[str] | None = None,
    lock_wait: float = 0.0,
) -> RunSummary:
    """Pull the streams of one configured source into the warehouse, as one recorded
    run: every stream (default), or those named in `streams`, in the connector's
    order (which loads the streams a stream is `after` first). Raises on failure.

    A run of some streams is a run like any: it holds the source's lock (waiting up to
    `lock_wait` seconds for it), commits each batch with its stream's cursor, runs the
    checks that judge the tables it wrote, and records the streams it covered."""

    def pull(run: Run) -> None:
        for stream in run.streams:
            run.load_stream(stream)

    return execute(source, pull, sources_path, trigger=trigger, progress=progress,
                   streams=streams, lock_wait=lock_wait)


def check_source(
    source: str,
    sources_path: Path | str | None = None,
    *,
    trigger: str = "refresh",
    lock_wait: float = 0.0,
) -> RunSummary:
    """Run the cross-source consistency checks of one source again (after another
    source's load, say), as a recorded run that covers no stream."""
    return execute(source, lambda run: None, sources_path, trigger=trigger, streams=(),
                   lock_wait=lock_wait)


def select_streams(connector: type[Connector] | Connector,
                   names: Sequence[str] | None) -> tuple[Stream, ...]:
    """The connector's streams named (all when None), in its declared (loading) order."""
    if names is None:
        return tuple(connector.streams)
    wanted = set(names)
    unknown = sorted(wanted - {s.name for s in connector.streams})
    if unknown:
        raise KeyError(f"{connector.name} has no stream {', '.join(map(repr, unknown))}; it has "
                       f"{', '.join(s.name for s in connector.streams)}")
    return tuple(s for s in connector.streams if s.name in wanted)


def execute(
    source: str,
    body: Callable[[Run], None],
    sources_path: Path | str | None = None,
    *,
    trigger: str,
    progress: Progress | None = None,
    streams: Sequence[str] | None = None,
    lock_wait: float = 0.0,
) -> RunSummary:
    """Run `body` as one recorded run of `source` covering `streams` (default all of the
    connector's; `Run.streams` holds them): locked, counted, checked, finished or failed."""
    config = load_sources(sources_path)
    src = config.source(source)
    if not src.enabled:
        raise RuntimeError(f"source {source!r} is disabled in the sources file")
    connector = connector_class(src.connector)(src, config.city)
    covered = select_streams(connector, streams)
    connector.preflight()  # a configuration that cannot work is no run to record
    require_current()
    names = [s.name for s in covered]
    with ops.source_lock(source, wait=lock_wait):
        with connect(Role.LOADER) as conn:
            abandoned = ops.abandon_stale_runs(conn, source)
            # What a killed first load of this source left waiting (it held this lock).
            rebuilt = restore_indexes(conn, source=source)
            run_id = ops.start_run(conn, source, src.connector, trigger, names)
        if abandoned:
            log.warning("%s: %d earlier run(s) had died unfinished; resuming from the cursor",
                        source, abandoned)
        if rebuilt:
            log.warning("%s: built %d index(es) an earlier first load had deferred and not"
                        " built", source, rebuilt)
        summary = RunSummary(run_id=run_id, source=source, streams=names)
        log.info("%s: run %d (%s) started: %s", source, run_id, trigger,
                 ", ".join(names) if names else "consistency checks only")
        started = time.monotonic()
        try:
            body(Run(src, config, connector, summary, progress, covered))
            # A run of every stream, or of none (the checks alone), calls for every
            # check; a run of some streams for those judging what they wrote.
            judged = None if streams is None or not covered else _tables_of(connector, covered)
            with connect(Role.LOADER) as conn:
                checked = run_checks(conn, src.connector, source, run_id, judged)
            summary.checks = {rule: [evaluated, failed]
                              for rule, (evaluated, failed) in checked.items()}
            for rule, (evaluated, failed) in checked.items():
                log.info("%s: check %s: %d evaluated, %d failed", source, rule, evaluated, failed)
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
        summary.http = dict(connector.stats)
        ops.finish_run(run_id, "succeeded", None,
                       {"total_s": round(summary.seconds, 3), "http": summary.http})
        log.info("%s: run %d succeeded in %.1f s: %d extracted = %d loaded + %d quarantined;"
                 " %d new, %d changed, %d unchanged, %d closed", source, run_id, summary.seconds,
                 summary.extracted, summary.loaded, summary.quarantined, summary.inserted,
                 summary.updated, summary.unchanged, summary.closed)
        return summary


def _tables_of(connector: Connector, streams: Sequence[Stream]) -> set[str]:
    """The core tables these streams write (their primary and derived entities)."""
    return {table for stream in streams for table in stream_tables(connector.name, stream.name)}


class Run:
    """One recorded run of a source: reads each stream and takes its batches through
    the stages, keeping the run's counters."""

    def __init__(self, src: SourceConfig, config: SourcesFile, connector: Connector,
                 summary: RunSummary, progress: Progress | None,
                 streams: Sequence[Stream] | None = None):
        self.src = src
        self.config = config
        self.connector = connector
        self.summary = summary
        self.progress = progress
        # The streams this run covers, in loading order.
        self.streams: tuple[Stream, ...] = (tuple(streams) if streams is not None
                                            else tuple(connector.streams))
        # What the stream at hand is checked and enriched against (None: not read yet).
        self.reference: Reference | None = None
        # Streams whose batch has been through GX in this run (once is the record).
        self.gx_done: set[str] = set()
        # The digests of the snapshot at hand: ((stream, snapshot id), its stream's).
        self.digests: tuple[tuple[str, str | None], StreamDigests] | None = None
        # The keys written where the run's loads are first loads (all its streams').
        self.first_loads = FirstLoads(src.name)
        # The stream at hand's load and the indexes it defers (None: no stream loading).
        self.deferral: IndexDeferral | None = None

    def open_stream(self, stream: Stream, conn: psycopg.Connection | None = None) -> Conformer:
        """The stream's conformer with the lookups it maps with, read now; what its
        batches are checked against is read afresh (an earlier stream of this run may
        have just loaded the grids that this one's records refer to)."""
        self.reference = None
        cls = conformer_class(self.connector.name, stream.name)
        with ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(connect(Role.LOADER))
            lookups = read_lookups(conn, cls.needs)
        return cls(self.connector.settings, self.config.city, lookups)

    def load_stream(self, stream: Stream) -> None:
        tables = _tables_of(self.connector, [stream])
        changed_before = self.summary.rows_changed()
        with connect(Role.LOADER) as conn:
            state = ops.read_cursor(conn, self.src.name, stream.name)
            conformer = self.open_stream(stream, conn)
            context = read_context(conn, self.src.name, stream, conformer.primary)
        with ExitStack() as stack:
            if isinstance(stream, LandedStream):
                # What the collector landed, read on a connection held while the stream is.
                context = LandingContext(
                    current_records=context.current_records,
                    accepted_snapshots=context.accepted_snapshots,
                    landed=stack.enter_context(LandingReader(self.src.name)))
            rows = settings().batch_rows
            batches = self._extracted(_batches(
                self.connector.extract(stream, state, context), rows,
                first_batch_rows(rows, settings().defer_indexes_from)))
            # Batch k+1 is conformed and checked while batch k is stored: the CPU's work
            # beside the server's COPY. Nothing is written before its batch's turn.
            # A snapshot's records that came before as they are skip the stages; a new
            # snapshot's first batch waits for the last one's store, whose digests tell.
            self.deferral = deferral = IndexDeferral(
                tables, source=self.src.name, run_id=self.summary.run_id,
                from_rows=settings().defer_indexes_from)

            analyzed_beside: list[str] = []

            def statistics_so_far() -> None:
                # Beside the last batch's store (no checks are left to run on the other
                # core): the planner's statistics of what the batches before changed, so
                # that a large table has no ANALYZE left at the stream's end. Not where
                # indexes wait to be built: their statistics come with them.
                if not deferral.deferred:
                    with connect(Role.LOADER) as conn:
                        analyzed_beside.extend(analyze_beside_last_batch(conn, tables))

            try:
                for batch, prepared in ahead(
                        batches, lambda b: self._prepare(stream, conformer, b,
                                                         set_aside=stream.snapshot),
                        fence=lambda before, b: before.snapshot_id != b.snapshot_id,
                        beside_last=statistics_so_far):
                    self._store(stream, batch, prepared)
            except BaseException:
                self._build_deferred(failing=True)
                raise
            self._build_deferred()
        # The planner's statistics of what the stream changed, kept current whether or not
        # the server's autovacuum runs (warehouse.statistics). A table analyzed beside the
        # last batch with at least ANALYZE's sample of rows is not analyzed again for that
        # batch alone: its statistics lag the load by one batch of the same records (the
        # planner scales its row count by the table's pages), and the batch counts toward
        # its next analyze. Analyzing again cost a 300,000-row load 0.8 s of its 6. A
        # smaller table is analyzed again: its pages, extended in bulk, do not tell.
        rest = tables.difference(analyzed_beside)
        if rest and self.summary.rows_changed() > changed_before:
            with connect(Role.LOADER) as conn:
                analyze_stale(conn, rest)

    def load_batch(self, stream: Stream, conformer: Conformer, batch: Extract, *,
                   replay: bool = False) -> None:
        """Take one batch through the stages and commit it with its cursor.

        A replay loads records taken back out of quarantine: it moves no cursor,
        and the entries it loads are resolved as 'replayed'.
        """
        self._store(stream, batch, self._prepare(stream, conformer, batch, replay=replay),
                    replay=replay)

    def _extracted(self, batches: Iterator[Extract]) -> Iterator[Extract]:
        clock = time.monotonic()
        for batch in batches:
            self._tick("extract_s", clock)
            failpoint("after_extract")
            yield batch
            clock = time.monotonic()

    def _prepare(self, stream: Stream, conformer: Conformer, batch: Extract, *,
                 replay: bool = False, set_aside: bool = False) -> Prepared | None:
        """Conform, enrich, validate and ready a batch for the store stage (None: a
        batch with nothing in it, the platform having nothing new, only moves the
        cursor: no stage has anything to do, and their fixed costs are most of a run
        that found nothing). A snapshot stream's records known unchanged are set aside
        first (`set_aside`)."""
        if _nothing_read(batch) and not replay:
            return None
        clock = time.monotonic()
        deduped = dedupe(batch, stream)
        if set_aside:
            deduped = set_aside_unchanged(deduped, stream,
                                          self._digests(stream, conformer, batch))
        conformed = conform(deduped, conformer)
        clock = self._tick("conform_s", clock)
        prepared = prepare(validate_batch(enrich(conformed, stream, self._reference()),
                                          conformer))
        self._tick("validate_s", clock)
        return prepared

    def _digests(self, stream: Stream, conformer: Conformer, batch: Extract) -> StreamDigests:
        """The stream's digests on the basis of now, as stored when the batch's snapshot
        began: read once per snapshot (load_stream's fence has the snapshot before
        stored by then)."""
        if self.digests is None or self.digests[0] != (stream.name, batch.snapshot_id):
            with connect(Role.LOADER) as conn:
                read = StreamDigests(conn, self.src.name, stream.name, basis(conn, conformer))
            self.digests = ((stream.name, batch.snapshot_id), read)
        return self.digests[1]

    def _tick(self, what: str, since: float) -> float:
        now = time.monotonic()
        self.summary.timings[what] = self.summary.timings.get(what, 0.0) + now - since
        return now

    def _build_deferred(self, *, failing: bool = False) -> None:
        """Build the indexes this stream's load deferred. When the load failed, a failure
        here is logged, not raised over the load's own: the next run of the source (or
        `hub migrate`) builds them."""
        deferral, self.deferral = self.deferral, None
        if deferral is None or not deferral.deferred:
            return
        tables = deferral.deferred
        clock = time.monotonic()
        try:
            with connect(Role.LOADER) as conn:
                deferral.build(conn)
        except Exception:
            if not failing:
                raise
            log.exception("%s: the indexes deferred on %s are left to the next run",
                          self.src.name, ", ".join(tables))
            return
        self._tick("index_s", clock)
        log.info("%s: indexes of %s built", self.src.name, ", ".join(tables))

    def _reference(self) -> Reference:
        if self.reference is None:
            with connect(Role.LOADER) as conn:
                self.reference = read_reference(conn, self.config.city)
        return self.reference

    def _store(self, stream: Stream, batch: Extract, prepared: Prepared | None, *,
               replay: bool = False) -> None:
        """Store a prepared batch and commit it with its cursor; count and log it."""
        target = Target(source=self.src.name, stream=stream.name, run_id=self.summary.run_id,
                        batch_no=self.summary.batches, replay=replay,
                        gx=stream.name not in self.gx_done,
                        min_snapshot_ratio=self.connector.settings.min_snapshot_ratio,
                        first_loads=self.first_loads)
        clock = time.monotonic()
        with connect(Role.LOADER) as conn:
            if prepared is not None and not replay and self.deferral is not None:
                # A first load into an empty table builds its indexes when it ends.
                self.deferral.consider(conn, prepared.primary.rows.num_rows)
            counts = (store_batch(conn, prepared, target) if prepared is not None
                      else BatchCounts(reread=batch.reread))
            if replay and prepared is not None:
                # Records an operator replayed lose their keys' digests (a key held
                # twice keeps one): sent again, they are judged afresh, not set aside.
                record_digest.forget(conn, self.src.name, stream.name,
                                     prepared.checked.raw[stream.key_field].combine_chunks())
            self._tick("load_s", clock)
            commit_position(conn, target, batch, counts, self.summary.timings)
        if counts.gx_recorded:
            self.gx_done.add(stream.name)
        for k, v in counts.as_dict().items():
            setattr(self.summary, k, getattr(self.summary, k) + v)
        self.summary.add_changes(counts.tables)
        self.summary.batches += 1
        self.summary.rejected_files += len(batch.rejected_files)
        self.summary.warnings.extend(batch.warnings)
        # The run's progress in the log (the Airflow task log, `hub -v run`).
        log.info("%s/%s batch %d: %d extracted = %d loaded + %d quarantined (%d re-read);"
                 " %d new, %d changed, %d unchanged, %d closed%s", self.src.name, stream.name,
                 self.summary.batches, counts.extracted, counts.loaded, counts.quarantined,
                 counts.reread, counts.inserted, counts.updated, counts.unchanged, counts.closed,
                 " (replay)" if replay else "")
        failpoint("after_commit")
        if self.progress:
            self.progress(self.summary)


# ------------------------------------------------- what is read once per stream


@dataclass(frozen=True)
class Reference:
    """What a stream's batches are checked and enriched against."""

    rules: RuleContext
    grids: GridIndex | None


def read_reference(conn: psycopg.Connection, city: CityConfig) -> Reference:
    return Reference(rule_context(conn, city), grid_index(conn))


# Readers of the lookups a conformer can name in `needs` (fields of conform.base.Lookups).
LOOKUP_READERS: dict[str, Callable[[psycopg.Connection], pa.Table]] = {
    "cameras": ops.current_cameras,
}


def read_lookups(conn: psycopg.Connection, needs: frozenset[str]) -> Lookups:
    """The lookups a conformer maps with, read from the warehouse."""
    unknown = needs - set(LOOKUP_READERS)
    if unknown:
        raise KeyError(f"no reader of the lookup(s) {sorted(unknown)}; known: "
                       f"{sorted(LOOKUP_READERS)}")
    return Lookups(**{name: LOOKUP_READERS[name](conn) for name in sorted(needs)})


def read_context(conn: psycopg.Connection, source: str, stream: Stream,
                 primary: Entity) -> ReadContext:
    """What the connector needs to know of the warehouse to read `stream`."""
    if not stream.snapshot:
        return ReadContext()
    return ReadContext(
        current_records=ops.current_records(conn, primary.table, source, stream.name),
        accepted_snapshots=ops.accepted_snapshots(conn, source, stream.name))


# ------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Deduped:
    """The batch without re-reads and superseded versions."""

    batch: Extract
    raw: pa.Table
    reread: int  # the connector's and dedupe's
    # A snapshot's: the stream's digests on the basis its records are processed on
    # (hub.unchanged), each record's key and digest (row-aligned with raw), and how many
    # records were set aside, no longer in raw: as loaded unchanged, and as held in
    # quarantine as they were (keys held twice with the same records).
    stored: StreamDigests | None = None
    keys: pa.Array | None = None
    digests: pa.Array | None = None
    unchanged: int = 0
    held: int = 0


@dataclass(frozen=True)
class ConformedBatch:
    """The batch's records and their model rows (row-aligned)."""

    deduped: Deduped
    entity: Entity  # the primary entity the records map to
    conformed: Conformed


@dataclass(frozen=True)
class Enriched:
    """Model rows with what the warehouse adds (grids by location), and the context
    the rules judge this batch in (the snapshot's conflicting keys)."""

    conformed: ConformedBatch
    table: pa.Table
    ctx: RuleContext


@dataclass(frozen=True)
class Checked:
    """Every row's verdict: the primary entity's and the derived entities'."""

    enriched: Enriched
    primary: Validated
    derived: dict[str, Validated]

    @property
    def batch(self) -> Extract:
        return self.enriched.conformed.deduped.batch

    @property
    def raw(self) -> pa.Table:
        return self.enriched.conformed.deduped.raw


@dataclass(frozen=True)
class Loadable:
    """One entity's share of a batch as the store stage takes it: the verdicts, and the
    passing rows as they are loaded (personal data protected) with their record hashes."""

    entity: Entity
    validated: Validated
    rows: pa.Table
    hashes: pa.Array
    # The quarantine entries and findings as stored (masked, sealed), made ahead too.
    outcome: store.Outcome
    # The passing rows' keys as a first load's filters read them, hashed ahead too.
    keys: KeyHashes


@dataclass(frozen=True)
class Prepared:
    """A checked batch ready to store: the primary entity's and each derived one's share."""

    checked: Checked
    primary: Loadable
    derived: tuple[Loadable, ...]


@dataclass(frozen=True)
class Target:
    """Where a checked batch is stored, and how."""

    source: str
    stream: str
    run_id: int
    batch_no: int  # batches of the run before this one
    replay: bool  # records back from quarantine: resolved 'replayed', no cursor moved
    gx: bool  # the stream's first batch in this run: validated through GX too
    min_snapshot_ratio: float
    first_loads: FirstLoads | None = None  # the run's: see warehouse.first_loads


@dataclass(frozen=True)
class BatchCounts:
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0
    reread: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    # What the batch changed per core table (CHANGE_KINDS), the derived entities' too.
    tables: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Whether Great Expectations validated the batch (and its result is archived).
    gx_recorded: bool = False

    def as_dict(self) -> dict[str, int]:
        """The counts ops.run adds up."""
        return {k: v for k, v in asdict(self).items() if k not in ("tables", "gx_recorded")}


def dedupe(batch: Extract, stream: Stream) -> Deduped:
    """A record read twice is loaded once (hub.dedupe)."""
    raw, superseded = drop_rereads(batch.records, stream.key_field, stream.updated_field)
    return Deduped(batch, raw, batch.reread + superseded)


def set_aside_unchanged(deduped: Deduped, stream: Stream, stored: StreamDigests) -> Deduped:
    """The batch without the snapshot records loaded before as they are, nor those of a
    key held twice with the same records as when they were quarantined (hub.unchanged);
    the digests of the rest, for the store to keep."""
    raw = deduped.raw
    digests = record_digests(raw, stream)
    keys = raw[stream.key_field].combine_chunks().cast(pa.string())
    conflicting = deduped.batch.conflicting_keys
    known = stored.known(keys, digests, held_digests(keys, conflicting))
    unchanged = skippable(known.unchanged, keys, conflicting)
    skip = pc.or_(unchanged, known.held)
    skipped = pc.sum(skip).as_py() or 0
    if not skipped:
        return replace(deduped, stored=stored, keys=keys, digests=digests)
    held = pc.sum(known.held).as_py() or 0
    log.info("%s: %d of %d records unchanged since loaded, %d held in quarantine as they"
             " were; set aside before conform", stream.name, skipped - held, raw.num_rows,
             held)
    stored.match(known.at[skip.to_numpy(zero_copy_only=False)])
    keep = pc.invert(skip)
    return replace(deduped, stored=stored, raw=raw.filter(keep), keys=keys.filter(keep),
                   digests=digests.filter(keep), unchanged=skipped - held, held=held)


def conform(deduped: Deduped, conformer: Conformer) -> ConformedBatch:
    """Platform records → model rows, one per record, in the same order."""
    return ConformedBatch(deduped, conformer.primary, conformer.conform(deduped.raw))


def enrich(conformed: ConformedBatch, stream: Stream, reference: Reference) -> Enriched:
    """Grids assigned by location, and the keys the whole snapshot holds twice."""
    table = assign_grids(conformed.conformed.table, reference.grids)
    ctx = reference.rules
    batch, raw = conformed.deduped.batch, conformed.deduped.raw
    if batch.conflicting_keys:
        # Keys the whole snapshot holds twice with different records: whichever
        # batch a record falls in, it goes to quarantine with the others.
        conflicting = pc.is_in(raw[stream.key_field],
                               value_set=pa.array(sorted(batch.conflicting_keys), pa.string()))
        ctx = replace(ctx, conflicting_keys=frozenset(
            table["source_id"].filter(conflicting).drop_null().to_pylist()))
    return Enriched(conformed, table, ctx)


def validate_batch(enriched: Enriched, conformer: Conformer) -> Checked:
    """Every row judged by the rules; the entities the passing records mention, derived
    and judged too."""
    raw = enriched.conformed.deduped.raw
    checked = validate(enriched.conformed.entity, enriched.table, enriched.ctx,
                       enriched.conformed.conformed.unparseable, raw)
    passed = pa.array(~checked.quarantine)
    derived = {name: validate(entity(name), rows, enriched.ctx)
               for name, rows in conformer.derive(raw.filter(passed),
                                                  enriched.table.filter(passed)).items()}
    return Checked(enriched, checked, derived)


def loadable(ent: Entity, validated: Validated, payload: pa.Table | None = None) -> Loadable:
    """The rows that passed, as loaded: personal data hashed and masked, hashed whole;
    and what failed, as quarantine keeps it (`payload`: the platform's records,
    row-aligned; None: the conformed rows are kept), masked and sealed."""
    rows = protect(ent, validated.table.filter(pa.array(~validated.quarantine)))
    return Loadable(ent, validated, rows, row_hashes(ent, rows),
                    store.outcome(ent, validated, payload), key_hashes(rows["source_id"]))


def prepare(checked: Checked) -> Prepared:
    """Every entity's share of the batch made loadable: the last stage before the store,
    and like the others no transaction (so it can run while the batch before is stored)."""
    return Prepared(checked, loadable(checked.enriched.conformed.entity, checked.primary,
                                      checked.raw),
                    tuple(loadable(entity(name), v) for name, v in checked.derived.items()))


def store_batch(conn: psycopg.Connection, prepared: Prepared, target: Target) -> BatchCounts:
    """Quarantine what failed and merge what passed, note the snapshot's keys and close
    what a complete snapshot lacked: on the caller's transaction."""
    checked = prepared.checked
    batch, raw, primary = checked.batch, checked.raw, checked.primary
    entity_ = prepared.primary.entity
    fixed = "replayed" if target.replay else "superseded"
    counts, opened = store_validated(conn, prepared.primary, source=target.source,
                                     stream=target.stream, run_id=target.run_id, payload=raw,
                                     fixed_state=fixed, first_loads=target.first_loads)
    tables: dict[str, dict[str, int]] = {}

    def changed(ent: Entity, merged: MergeCounts, closed: int = 0) -> None:
        into = tables.setdefault(ent.table, dict.fromkeys(CHANGE_KINDS, 0))
        into["inserted"] += merged.inserted
        into["updated"] += merged.updated
        into["closed"] += closed

    changed(entity_, counts)
    set_aside = (target.first_loads.set_aside(conn, entity_.name)
                 if target.first_loads is not None else None)
    store.record_rejects(conn, target.run_id, target.source, target.stream, entity_,
                         batch.rejects, set_aside=set_aside)
    ops.record_rejected_files(conn, target.run_id, target.source, target.stream,
                              batch.rejected_files)
    ops.add_warnings(conn, target.run_id, batch.warnings)
    for part in prepared.derived:
        changed(part.entity, store_validated(
            conn, part, source=target.source, stream=target.stream,
            run_id=target.run_id, payload=None, fixed_state=fixed,
            first_loads=target.first_loads)[0])
    deduped = checked.enriched.conformed.deduped
    if deduped.stored is not None:
        keep_digests(conn, target, checked, deduped.stored.basis)
    closed = 0
    if batch.snapshot_id is not None:
        record_seen(conn, target.source, target.stream, batch.snapshot_id,
                    snapshot_keys(checked))
        if batch.snapshot_complete:
            closed = close_missing(
                conn, entity_, target.source, target.stream, batch.snapshot_id,
                min_ratio=target.min_snapshot_ratio,
                set_aside=deduped.stored.set_aside() if deduped.stored is not None else None)
            if closed and deduped.stored is not None:
                record_digest.forget_closed(conn, entity_.table, target.source, target.stream)
            changed(entity_, MergeCounts(), closed)
    # GX validates what a run brings: a batch of records all stored (or held) before as
    # they are (a snapshot sent again, an overlap re-read) was validated when they came.
    quarantined = int(primary.quarantine.sum()) + len(batch.rejects)
    gx = target.gx and primary.table.num_rows > 0 and bool(
        counts.inserted or counts.updated or opened)
    if gx:
        store.record_gx(conn, target.run_id, entity_, target.batch_no, primary,
                        checked.enriched.ctx)
    failpoint("after_merge")
    # Rows the connector could not read as records are extracted and quarantined;
    # records set aside were extracted, and are loaded (or held) as they were.
    skipped = deduped.unchanged
    return BatchCounts(
        extracted=raw.num_rows + len(batch.rejects) + skipped + deduped.held,
        loaded=int((~primary.quarantine).sum()) + skipped,
        quarantined=quarantined + deduped.held,
        reread=deduped.reread,
        inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged + skipped,
        closed=closed, tables=tables, gx_recorded=gx)


def keep_digests(conn: psycopg.Connection, target: Target, checked: Checked,
                 on: int) -> None:
    """The loaded snapshot records leave their digests; the quarantined lose theirs (as
    do the unreadable rows' keys), so they go through every stage when they come again."""
    deduped = checked.enriched.conformed.deduped
    if deduped.keys is None or deduped.digests is None:
        return
    stream, keys, loaded = target.stream, deduped.keys, pa.array(~checked.primary.quarantine)
    ids = checked.enriched.table["source_id"]
    record_digest.remember(conn, target.source, stream, keys.filter(loaded),
                           deduped.digests.filter(loaded), ids.filter(loaded), on)
    # A key held twice keeps the digest of its records together: all are quarantined.
    group = held_digests(keys, checked.batch.conflicting_keys)
    twice = pc.and_(pc.and_(pc.invert(loaded), group.is_valid()), ids.is_valid())
    record_digest.remember(conn, target.source, stream, keys.filter(twice),
                           group.filter(twice), ids.filter(twice), on, held=True)
    unreadable = pa.array([r.source_id for r in checked.batch.rejects
                           if r.source_id is not None], pa.string())
    quarantined = pc.and_(pc.invert(loaded), pc.invert(group.is_valid()))
    record_digest.forget(conn, target.source, stream,
                         pa.concat_arrays([keys.filter(quarantined), unreadable]))


def _nothing_read(batch: Extract) -> bool:
    """Whether a batch holds nothing to store: no record, no unreadable row, no file
    or warning to record, and no snapshot (an empty snapshot closes what it lacks)."""
    return (batch.records.num_rows == 0 and batch.snapshot_id is None and not batch.rejects
            and not batch.rejected_files and not batch.warnings)


def snapshot_keys(checked: Checked) -> pa.Array:
    """The keys a snapshot batch contained, as the model knows them (the conformed rows'
    source_id): loaded or quarantined, its records were in the snapshot, not gone; so
    were rows held as unreadable whose key could still be told. Records set aside as
    unchanged are known to the close-out by the digests they matched instead."""
    ids = checked.enriched.table["source_id"]
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    unreadable = [r.source_id for r in checked.batch.rejects if r.source_id is not None]
    return pa.concat_arrays([ids.cast(pa.string()).drop_null(),
                             pa.array(unreadable, pa.string())])


def commit_position(conn: psycopg.Connection, target: Target, batch: Extract,
                    counts: BatchCounts, timings: Mapping[str, float]) -> None:
    """The run's counters and the stream's cursor, in the batch's transaction."""
    ops.add_batch(conn, target.run_id, counts.as_dict(), timings)
    if not target.replay:
        ops.save_cursor(conn, target.source, target.stream, batch.cursor, target.run_id)
    failpoint("before_commit")


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


def store_validated(conn: psycopg.Connection, part: Loadable, *, source: str, stream: str,
                    run_id: int, payload: pa.Table | None,
                    fixed_state: str = "superseded",
                    first_loads: FirstLoads | None = None) -> tuple[MergeCounts, int]:
    """One entity's share of a batch: quarantine what failed, merge what passed. Returns
    the merge's counts and the quarantine entries opened. `first_loads`: the run's (its
    first loads' keys spare them look-ups)."""
    written = set_aside = None
    if first_loads is not None:
        written = first_loads.keys_written(conn, part.entity.table)
        set_aside = first_loads.set_aside(conn, part.entity.name)
    counts = merge(conn, part.entity, part.rows, source_system=source, stream=stream,
                   run_id=run_id, hashes=part.hashes, written=written, keys_hashed=part.keys)
    # The quarantine's masking and sealing were done ahead (`loadable`) if from this payload.
    opened = store.record(conn, run_id, source, stream, part.entity, part.validated, payload,
                          fixed_state=fixed_state, made=part.outcome, set_aside=set_aside,
                          loaded_keys=part.keys)
    return counts, opened


def ahead(items: Iterable[T], prepare_item: Callable[[T], U], *,
          fence: Callable[[T, T], bool] | None = None,
          beside_last: Callable[[], object] | None = None) -> Iterator[tuple[T, U]]:
    """Each item with what `prepare_item` makes of it, the next item's taken and prepared
    (in a thread) while the caller works on this one: two items in hand at most.

    What the thread runs must not need the caller's transaction; the pipeline's
    conform-to-prepare stages don't, and pyarrow, numpy and the driver's socket waits
    release the GIL, so on two cores the store of batch k and the checks of batch k+1
    overlap. An error preparing an item is raised when the caller reaches that item.
    Where `fence(previous, item)` holds, the item is prepared only once the caller is
    done with the previous one (its preparation reads what that one's store writes).
    `beside_last`, where the caller was given an item before the last, runs in the
    thread while the caller works on the last one (nothing is left to prepare); its
    error is raised once the caller is done with that item.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: tuple[T, Future[U]] | None = None
        given = False
        for item in items:
            if pending is not None and fence is not None and fence(pending[0], item):
                yield pending[0], pending[1].result()
                pending, given = None, True
            future = pool.submit(prepare_item, item)
            if pending is not None:
                yield pending[0], pending[1].result()
                given = True
            pending = (item, future)
        if pending is not None:
            last = pool.submit(beside_last) if beside_last is not None and given else None
            yield pending[0], pending[1].result()
            if last is not None:
                last.result()


def first_batch_rows(rows: int, defer_from: int) -> int:
    """The records of a stream's first batch (and of a new snapshot's) where the others
    have `rows`: a quarter, as nothing is stored while it is checked (a batch's checks run
    beside the store of the one before, and it has none), so the stores begin after a
    quarter of a batch's checks, not a whole one's; but no fewer than a first load needs
    to show that it defers its indexes (`defer_from`, `IndexDeferral`)."""
    return max(rows // 4, min(rows, defer_from))


def _batches(extracts: Iterator[Extract], rows: int, first: int) -> Iterator[Extract]:
    """Pages gathered into batches of about `rows` records, each with its cursor; the
    first, and a new snapshot's first, of about `first` (`first_batch_rows`).

    A batch never spans two snapshots, and the extract completing a snapshot ends
    its batch. The last batch may be empty: it still commits the cursor.
    """
    pending: list[Extract] = []
    size = 0
    limit = first

    def flush() -> Extract:
        last = pending[-1]
        return Extract(pa.concat_tables([e.records for e in pending]), last.cursor,
                       sum(e.reread for e in pending), last.snapshot_id, last.snapshot_complete,
                       conflicting_keys={k: v for e in pending for k, v in e.conflicting_keys.items()},
                       rejects=[r for e in pending for r in e.rejects],
                       rejected_files=[f for e in pending for f in e.rejected_files],
                       warnings=[w for e in pending for w in e.warnings])

    previous: Extract | None = None
    for ex in extracts:
        if previous is not None and ex.snapshot_id != previous.snapshot_id:
            if pending:
                yield flush()
                pending, size = [], 0
            limit = first
        pending.append(ex)
        size += ex.records.num_rows
        if size >= limit or ex.snapshot_complete:
            yield flush()
            pending, size = [], 0
            limit = first if ex.snapshot_complete else rows
        previous = ex
    if pending:
        yield flush()
