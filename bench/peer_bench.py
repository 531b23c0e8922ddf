"""Benchmark: the hub against a raw PostgreSQL COPY and dlt, on the same rows.

    make bench                          # N=1,000,000 work orders, then residents
    make bench N=300000 KIND=workorders
    python -m bench.peer_bench --rows 300000 --contenders copy,hub --kind residents

For each kind, N rows are loaded twice by every contender:
- the first load: N records;
- the second load: N records of which 85 % unchanged, 10 % changed and 5 % new (and 5 %
  of the first load absent: a full snapshot closes them, an incremental window does
  not carry them).
Kinds: `workorders` (conformed 12345 work orders, about 5 % dirty, into core.event: an
incremental stream) and `residents` (a grid platform's full daily snapshot into
core.person: the snapshot's keys noted and the records it lacks closed).

Contenders, each in a process of its own (peak memory is its own; one that overruns
the time limit is killed and reported "did not finish"):
- `copy`: the baseline, pyarrow CSV + COPY of the rows as the core table holds them
  (personal data hashed and masked) into a table equivalent to the core table (same
  columns, keys, indexes and storage parameters: CREATE TABLE … (LIKE core.x INCLUDING
  ALL) and the core table's reloptions), one
  transaction per batch; the second load is written beside the first;
- `hub`: the hub's validate-and-merge path, batch by batch as the pipeline runs it:
  rules, quarantine and findings, personal-data hashing and masking, the merge into the
  core table keeping history, the snapshot's keys and close-out, ops.run;
- `dlt-upsert`: dlt `merge` with strategy `upsert` (primary key source_id) and the CSV
  (COPY) loader, fed the same rows as `copy`: no validation, no history;
- `dlt-scd2`: dlt `merge` with strategy `scd2` (history; row hash `_dlt_id` added to the
  Arrow rows; work orders with merge key source_id, so absent records stay current).
Before each load the server is checkpointed, so no load pays for another's writes.

Times are the contender's own: reading the prepared Parquet chunks is not counted for
the COPY and the hub (dlt reads them inside its pipeline). Rows/s is the load's records
over its time; "hub / X" is the hub's rows/s over X's (above 1: the hub is faster).

Runs in its own database (`hub_bench`) on the configured warehouse server and drops it
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import data

BENCH_DB = "hub_bench"
CONTENDERS = ("copy", "hub", "dlt-upsert", "dlt-scd2")
LABELS = {"copy": "raw COPY", "hub": "hub", "dlt-upsert": "dlt upsert", "dlt-scd2": "dlt scd2"}
LOADS = ("first", "second")


# ----------------------------------------------------------------- the database


def create_database(admin: str, name: str) -> str:
    """A fresh database `name` beside the configured warehouse; its owner's conninfo."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dlt_credentials(conninfo: str) -> str:
    """The database as a URL dlt (psycopg2) takes; a socket directory goes in the query."""
    from urllib.parse import quote

    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = str(info.get("host") or "localhost")
    query = ""
    if host.startswith("/"):
        query, host = f"?host={quote(host)}", "localhost"
    user = quote(str(info.get("user") or "postgres"))
    # dlt insists on a password; a server that trusts the login ignores it.
    password = quote(str(info.get("password") or "unused"))
    port = info.get("port") or 5432
    return f"postgresql://{user}:{password}@{host}:{port}/{info['dbname']}{query}"


def checkpoint(admin: str) -> None:
    """Write out what earlier loads left dirty, so the next one starts clean."""
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass  # not a superuser: the loads share the server's write-back as they come


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------- contenders (in a child)


def _chunks(folder: Path, kind: str, load: str) -> list[data.Chunk]:
    out = folder / kind / load
    names = sorted(p.name for p in out.glob("conformed-*.parquet"))
    return [data.Chunk(out / n, out / n.replace("conformed", "loaded"), 0) for n in names]


def _report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _pace(batch: int, batches: int) -> None:
    """Paired runs (BENCH_PACED): wait for the parent's word before each batch."""
    if os.environ.get("BENCH_PACED") and batch < batches:
        sys.stdin.readline()


def _paced(batch: int, batches: int, last: bool | None = None) -> None:
    """Paired runs: tell the parent a turn has ended (`last`: the load's last)."""
    if os.environ.get("BENCH_PACED"):
        _report(batch=batch, last=batch == batches - 1 if last is None else last)


def run_copy(kind: str, folder: Path, admin: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg import sql

    from warehouse.db import Role, connect
    from warehouse.loader import copy_arrow

    entity = data.entity_of(kind)
    target = sql.Identifier("raw", f"bench_{entity.name}")
    with connect(Role.OWNER) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
            target, sql.Identifier(*entity.table.split("."))))
        # The core table's storage parameters too (LIKE leaves them out): core.person's
        # fillfactor, say, which leaves room on its pages for linking's updates.
        row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
                           (entity.table,)).fetchone()
        for option in (row[0] if row and row[0] else []):
            name, value = option.split("=", 1)
            conn.execute(sql.SQL("ALTER TABLE {} SET ({} = {})").format(
                target, sql.Identifier(name), sql.Literal(value)))
    for load in LOADS:
        checkpoint(admin)
        _report(start=load)
        seconds, rows = 0.0, 0
        each: list[float] = []  # each batch's seconds
        chunks = _chunks(folder, kind, load)
        for i, chunk in enumerate(chunks):
            _pace(i, len(chunks))
            table = pq.read_table(chunk.loaded)
            n = table.num_rows
            # The second load beside the first: another source_system, so no key clashes.
            table = table.append_column("source_system", pa.array([f"raw-{load}"] * n)) \
                .append_column("valid_from", pa.array([datetime.now(UTC)] * n,
                                                      pa.timestamp("us", tz="UTC")))
            started = time.perf_counter()
            with connect(Role.LOADER) as conn:
                copy_arrow(conn, table, target)
            each.append(time.perf_counter() - started)
            seconds += each[-1]
            rows += n
            _paced(i, len(chunks))
        _report(load=load, rows=rows, seconds=seconds, peak_rss_mb=peak_rss_mb(),
                batches_s=each)


def _time_phases() -> dict[str, float]:
    """Where the hub's time goes (BENCH_PHASES): its steps wrapped with timers, the
    seconds each took summed up (the key look-up overlaps the row hashes)."""
    import hub.pipeline
    import quality.store
    import warehouse.loader

    spent: dict[str, float] = {}

    def timed(module: Any, name: str, label: str) -> None:
        fn = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

        setattr(module, name, wrapper)

    timed(hub.pipeline, "protect", "protect (hash, mask)")
    timed(hub.pipeline, "merge", "merge")
    timed(warehouse.loader, "record_hashes", "merge: row hashes")
    timed(warehouse.loader, "_current", "merge: key look-up")
    timed(warehouse.loader, "_copy_csv", "COPY (every table's)")
    timed(quality.store, "record", "quarantine and findings")
    timed(quality.store, "seal_rows", "quarantine: sealing")
    return spent


def run_hub(kind: str, folder: Path, admin: str) -> None:
    phases = bool(os.environ.get("BENCH_PHASES"))
    spent = _time_phases() if phases else {}
    for load in LOADS:
        checkpoint(admin)
        _report(start=load)
        spent.clear()
        _report(**_hub_load(kind, load, _chunks(folder, kind, load)), phases=dict(spent))


def _hub_load(kind: str, load: str, chunks: list[data.Chunk]) -> dict[str, Any]:
    """One load by the hub's path, batch by batch as the pipeline runs a stream: its
    report (rows, the hub's own seconds, counts, memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from base.settings import CityConfig, settings
    from hub.pipeline import Loadable, ahead, first_batch_rows, loadable, store_validated
    from quality.context import rule_context
    from quality.validate import validate
    from warehouse import ops
    from warehouse.db import Role, connect
    from warehouse.deferred_indexes import IndexDeferral
    from warehouse.first_loads import FirstLoads
    from warehouse.loader import close_missing, record_seen
    from warehouse.statistics import analyze_beside_last_batch, analyze_stale

    entity = data.entity_of(kind)
    snapshot = kind == "residents"
    source = f"bench_{kind}"
    city = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
    timings = {"validate_s": 0.0, "load_s": 0.0, "index_s": 0.0}
    each: dict[str, list[float]] = {"validate_s": [], "load_s": []}  # per batch
    marks: dict[str, float] = {}
    counts = dict.fromkeys(("extracted", "loaded", "quarantined", "reread", "inserted",
                            "updated", "unchanged", "closed"), 0)
    rss: list[float] = []
    # Not the hub's time: reading the prepared chunks, waiting for the parent's word.
    idle = 0.0
    prepared = threading.Semaphore(0)

    # The batches as the pipeline makes them of pages: the first one smaller.
    first = first_batch_rows(settings().batch_rows, settings().defer_indexes_from)
    parts: list[tuple[data.Chunk, int, int | None]] = [(c, 0, None) for c in chunks]
    if chunks and pq.read_metadata(chunks[0].conformed).num_rows > first:
        parts[:1] = [(chunks[0], 0, first), (chunks[0], first, None)]

    def conformed_chunks() -> Iterator[pa.Table]:
        # Paired (BENCH_PACED), a turn is the store of batch k with the checks of batch
        # k+1 beside it (as the pipeline runs them): the turn ends once both are done,
        # so none of the hub's work runs in the other contender's turn.
        nonlocal idle
        for i, (chunk, start, length) in enumerate(parts):
            if i:
                prepared.acquire()
                _paced(i - 1, len(parts), last=False)
            clock = time.perf_counter()
            _pace(i, len(parts))
            table = pq.read_table(chunk.conformed).slice(start, length)
            idle += time.perf_counter() - clock
            yield table

    def prepare(conformed: pa.Table) -> Loadable:
        clock = time.perf_counter()
        try:
            return loadable(entity, validate(entity, conformed, ctx))
        finally:
            each["validate_s"].append(time.perf_counter() - clock)
            timings["validate_s"] += each["validate_s"][-1]
            prepared.release()

    started = time.perf_counter()
    with connect(Role.LOADER) as conn:
        ctx = rule_context(conn, city)
        run_id = ops.start_run(conn, source, "bench", "bench", [kind])
    first_loads = FirstLoads(source)
    deferral = IndexDeferral([entity.table], source=source, run_id=run_id,
                             from_rows=settings().defer_indexes_from)
    analyzed_beside: list[str] = []

    def statistics_so_far() -> None:  # as the pipeline does beside a load's last batch
        if not deferral.deferred:
            with connect(Role.LOADER) as conn:
                analyzed_beside.extend(analyze_beside_last_batch(conn, [entity.table]))

    for i, (conformed, part) in enumerate(ahead(conformed_chunks(), prepare,
                                                beside_last=statistics_so_far)):
        n = conformed.num_rows
        clock = time.perf_counter()
        if not i:
            marks["first_store_at_s"] = clock - started - idle
        with connect(Role.LOADER) as conn:
            # As the pipeline does: a first load into the empty table builds its
            # secondary indexes at the end (the raw COPY's table keeps them all).
            deferral.consider(conn, part.rows.num_rows)
            merged, _ = store_validated(conn, part, source=source, stream=kind, run_id=run_id,
                                        payload=None, first_loads=first_loads)
            closed = 0
            if snapshot:
                record_seen(conn, source, kind, load, conformed["source_id"])
                if i == len(parts) - 1:
                    closed = close_missing(conn, entity, source, kind, load)
            loaded = int((~part.validated.quarantine).sum())
            batch = {"extracted": n, "loaded": loaded, "quarantined": n - loaded,
                     "reread": 0, "inserted": merged.inserted, "updated": merged.updated,
                     "unchanged": merged.unchanged, "closed": closed}
            ops.add_batch(conn, run_id, batch, timings)
        each["load_s"].append(time.perf_counter() - clock)
        timings["load_s"] += each["load_s"][-1]
        for k, v in batch.items():
            counts[k] += v
        rss.append(rss_now_mb())
    marks["last_store_end_s"] = time.perf_counter() - started - idle
    with connect(Role.LOADER) as conn:
        if deferral.deferred:
            clock = time.perf_counter()
            deferral.build(conn)
            timings["index_s"] = time.perf_counter() - clock
        if not analyzed_beside:  # as the pipeline does after a stream's load
            analyze_stale(conn, [entity.table])
        ops.finish_run(run_id, "succeeded")
    own = time.perf_counter() - started - idle
    _paced(len(parts) - 1, len(parts))
    return {"load": load, "rows": counts["extracted"], "seconds": own,
            "peak_rss_mb": peak_rss_mb(), "counts": counts,
            "validate_s": timings["validate_s"], "load_s": timings["load_s"],
            "index_s": timings["index_s"], "batches": each, **marks,
            "rss_settled_mb": rss[min(2, len(rss) - 1)] if rss else 0.0,
            "rss_last_mb": rss[-1] if rss else 0.0}


def run_dlt(kind: str, folder: Path, admin: str, strategy: str, credentials: str) -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    if strategy == "scd2":
        # scd2 identifies a version by its row hash: dlt adds it to Arrow rows only so.
        os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "true"
    import dlt
    import pyarrow.parquet as pq

    entity = data.entity_of(kind)
    disposition: Any = {"disposition": "merge", "strategy": strategy}
    # upsert: by primary key. scd2: by row hash; work orders arrive incrementally, so
    # only the records loaded may be retired (merge key), a snapshot retires the absent.
    primary_key: Any = "source_id" if strategy == "upsert" else None
    merge_key: Any = "source_id" if strategy == "scd2" and kind == "workorders" else None

    for load in LOADS:
        chunks = _chunks(folder, kind, load)

        def tables(chunks: list[data.Chunk]) -> Iterator[Any]:
            for chunk in chunks:
                yield pq.read_table(chunk.loaded)

        rows = dlt.resource(tables(chunks), name=entity.name, write_disposition=disposition,
                            primary_key=primary_key, merge_key=merge_key)

        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{strategy}_{kind}".replace("-", "_"),
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name=f"dlt_{strategy}_{kind}", pipelines_dir=str(folder / "dlt"))
        checkpoint(admin)
        _report(start=load)
        started = time.perf_counter()
        info = pipeline.run(rows, loader_file_format="csv")
        seconds = time.perf_counter() - started
        info.raise_on_failed_jobs()
        n = sum(pq.ParquetFile(c.loaded).metadata.num_rows for c in chunks)
        _report(load=load, rows=n, seconds=seconds, peak_rss_mb=peak_rss_mb())


def child(contender: str, kind: str, folder: Path) -> int:
    admin = os.environ["BENCH_ADMIN_URL"]
    if profile := os.environ.get("BENCH_PROFILE"):
        # Where a contender's time goes: cProfile's statistics, written at its end.
        import atexit
        import cProfile

        profiler = cProfile.Profile()

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{contender}.{kind}")

        atexit.register(dump)
        profiler.enable()
    if contender == "copy":
        run_copy(kind, folder, admin)
    elif contender == "hub":
        run_hub(kind, folder, admin)
    else:
        run_dlt(kind, folder, admin, contender.removeprefix("dlt-"),
                dlt_credentials(os.environ["HUB_WAREHOUSE_URL"]))
    return 0


# ------------------------------------------------------------ the orchestrator


@dataclass
class Result:
    contender: str
    kind: str
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    def seconds(self, load: str) -> float | None:
        got = self.loads.get(load)
        return None if got is None or "seconds" not in got else float(got["seconds"])

    def rate(self, load: str) -> float | None:
        s = self.seconds(load)
        return None if s is None or s <= 0 else self.loads[load]["rows"] / s


SETUP_LIMIT = 300.0  # seconds a child may take to import and set up before its first load


class Child:
    """A contender running in a process (group) of its own, reporting in JSON lines."""

    def __init__(self, contender: str, kind: str, folder: Path, env: dict[str, str],
                 paced: bool = False) -> None:
        self.contender = contender
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.peer_bench", "--child", contender, "--kind", kind,
             "--folder", str(folder)],
            stdin=subprocess.PIPE if paced else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.log, env={**env, "BENCH_PACED": "1"} if paced else env,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
        self.pending = b""

    def report(self, timeout: float) -> dict[str, Any] | None:
        """The child's next report; None when `timeout` passed, {} when it has ended."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                try:
                    got = json.loads(line)
                except ValueError:
                    continue  # a library printing to stdout
                if isinstance(got, dict):
                    return got
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return {}
            self.pending += chunk

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def end(self, result: Result) -> Result:
        """Stop the child (its whole process group) and note why it failed, if it did."""
        done = all(load in result.loads for load in LOADS)
        stopped = any("did_not_finish" in v for v in result.loads.values())
        if done and not stopped:
            try:  # both loads reported: let it exit in its own time
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        if code and not (done or stopped) and result.error is None:
            self.log.seek(0)
            said = [ln for ln in self.log.read().splitlines() if ln.strip()]
            result.error = said[-1] if said else f"exited with {code}"
        self.log.close()
        return result


def run_contender(contender: str, kind: str, folder: Path, env: dict[str, str],
                  time_limit: float) -> Result:
    """Run one contender's two loads in a child process, each within `time_limit`.

    The child says when a load starts (after its imports and the checkpoint) and what it
    took when it ends; a load still running at the limit is reported "did not finish"
    and the child's whole process group is killed.
    """
    result = Result(contender, kind)
    child = Child(contender, kind, folder, env)
    running: str | None = None
    while True:
        got = child.report(SETUP_LIMIT if running is None else time_limit)
        if got is None:  # the limit passed
            if running is not None:
                result.loads[running] = {"did_not_finish": time_limit}
            else:
                result.error = f"no load started within {SETUP_LIMIT:.0f} s"
            break
        if not got:
            break  # the child has ended
        if "start" in got:
            running = got["start"]
        elif "load" in got:
            result.loads[got["load"]] = got
            running = None
    return child.end(result)


def run_paired(contenders: list[str], kind: str, folder: Path, env: dict[str, str],
               time_limit: float) -> list[Result]:
    """Run contenders batch by batch in turn (the raw COPY's batch, then the hub's, …),
    each in its own process: on a machine whose load comes and goes, both meet the same
    conditions, so their ratio holds where the absolute rates wander."""
    results = [Result(c, kind) for c in contenders]
    children = [Child(c, kind, folder, env, paced=True) for c in contenders]
    try:
        for load in LOADS:
            for child, result in zip(children, results, strict=True):
                got = child.report(SETUP_LIMIT)
                if not got or got.get("start") != load:
                    result.error = result.error or f"{load} load did not start"
                    return results
            busy = list(zip(children, results, strict=True))
            while busy:
                for child, result in list(busy):
                    child.go()
                    got = child.report(time_limit)
                    if got and got.get("last"):
                        got = child.report(time_limit)  # the load's own report follows
                    if got is None:
                        result.loads[load] = {"did_not_finish": time_limit}
                        return results
                    if not got:
                        result.error = result.error or "ended early"
                        return results
                    if "load" in got:
                        result.loads[load] = got
                        busy.remove((child, result))
    finally:
        for child, result in zip(children, results, strict=True):
            child.end(result)
    return results


def fmt_rate(r: Result, load: str) -> tuple[str, str]:
    got = r.loads.get(load)
    if got is None:
        return ("failed" if r.error else "-", "")
    if "did_not_finish" in got:
        return ("did not finish", f"> {got['did_not_finish']:,.0f}")
    return (f"{got['rows'] / got['seconds']:,.0f}", f"{got['seconds']:.1f}")


def ratio(hub: Result, other: Result, load: str) -> str:
    h, o = hub.loads.get(load), other.loads.get(load)
    if h is None or o is None or "seconds" not in h:
        return "-"
    if "did_not_finish" in o:
        return f"> {o['did_not_finish'] / h['seconds']:.1f}"
    return f"{o['seconds'] / h['seconds']:.2f}"


def print_table(kind: str, rows: int, chunk: int, results: list[Result]) -> None:
    entity = data.entity_of(kind)
    print(f"\n== {kind} into {entity.table}: {rows:,} records a load, batches of {chunk:,}")
    print(f"{'':18}{'first load':>26}{'second load (10% changed, 5% new)':>40}{'peak RSS':>12}")
    print(f"{'':18}{'rows/s':>16}{'s':>10}{'rows/s':>30}{'s':>10}")
    for r in results:
        (f_rate, f_s), (s_rate, s_s) = fmt_rate(r, "first"), fmt_rate(r, "second")
        peak = max((v.get("peak_rss_mb", 0.0) for v in r.loads.values()), default=0.0)
        print(f"{LABELS[r.contender]:18}{f_rate:>16}{f_s:>10}{s_rate:>30}{s_s:>10}"
              f"{f'{peak:,.0f} MB' if peak else '':>12}")
        if r.error:
            print(f"{'':18}{r.contender} failed: {r.error}")
    hub = next((r for r in results if r.contender == "hub"), None)
    if hub is not None:
        for r in results:
            if r is hub:
                continue
            print(f"{'hub / ' + LABELS[r.contender]:18}{ratio(hub, r, 'first'):>16}{'':10}"
                  f"{ratio(hub, r, 'second'):>30}")
        for load in LOADS:
            got = hub.loads.get(load, {})
            if "counts" in got:
                c = got["counts"]
                print(f"hub, {load} load: {c['loaded']:,} loaded, {c['quarantined']:,}"
                      f" quarantined; {c['inserted']:,} new, {c['updated']:,} changed,"
                      f" {c['unchanged']:,} unchanged, {c['closed']:,} closed;"
                      f" validation {got['validate_s']:.1f} s of {got['seconds']:.1f} s;"
                      + (f" the deferred indexes built in {got['index_s']:.1f} s;"
                         if got.get("index_s") else "")
                      + f" RSS {got['rss_settled_mb']:,.0f} MB after batch 3,"
                      f" {got['rss_last_mb']:,.0f} MB after the last")
                if got.get("phases"):
                    print("  where its time went: " + ", ".join(
                        f"{k} {v:.1f} s" for k, v in got["phases"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="records a load (N)")
    parser.add_argument("--chunk", type=int, default=None, help="rows per batch (HUB_BATCH_ROWS)")
    parser.add_argument("--kind", choices=[*data.KINDS, "all"], default="all")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated, of {', '.join(CONTENDERS)}")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds a contender's load may take before it is stopped")
    parser.add_argument("--database", default=BENCH_DB)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--phases", action="store_true",
                        help="time the hub's steps too (where its time goes)")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.kind, args.folder)

    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    if any(c.startswith("dlt") for c in contenders):
        try:
            import dlt  # noqa: F401
        except ImportError:
            print("dlt is not installed (pip install -e '.[bench]'): its contenders are"
                  " skipped", file=sys.stderr)
            contenders = [c for c in contenders if not c.startswith("dlt")]

    os.environ.setdefault("HUB_PII_KEY", "bench-only-key")
    from base.settings import settings
    from warehouse import db

    admin = db.conninfo()
    chunk = args.chunk or settings().batch_rows
    was = os.environ.get("HUB_WAREHOUSE_URL")
    try:
        return _run(args, contenders, admin, chunk)
    finally:  # the caller's warehouse again (a test calls this in its own process)
        if was is None:
            os.environ.pop("HUB_WAREHOUSE_URL", None)
        else:
            os.environ["HUB_WAREHOUSE_URL"] = was
        settings.cache_clear()
        db.conninfo.cache_clear()


def _run(args: argparse.Namespace, contenders: list[str], admin: str, chunk: int) -> int:
    from base.settings import settings
    from warehouse import db

    target = create_database(admin, args.database)
    env = {**os.environ, "HUB_WAREHOUSE_URL": target, "BENCH_ADMIN_URL": admin}
    if args.phases:
        env["BENCH_PHASES"] = "1"
    os.environ["HUB_WAREHOUSE_URL"] = target
    settings.cache_clear()
    db.conninfo.cache_clear()
    from warehouse.migrate import migrate

    migrate()
    kinds = list(data.KINDS) if args.kind == "all" else [args.kind]
    folder = Path(tempfile.mkdtemp(prefix="bench-", dir=settings().home))
    print(f"Peer benchmark {datetime.now(UTC):%Y-%m-%d}: {args.rows:,} records a load,"
          f" contenders {', '.join(contenders)}, time limit {args.time_limit:,.0f} s a load")
    every: list[Result] = []
    try:
        for kind in kinds:
            clock = time.perf_counter()
            data.prepare(kind, args.rows, chunk, folder)
            print(f"{kind}: rows prepared in {time.perf_counter() - clock:.0f} s",
                  file=sys.stderr)
            paired: list[str] = [c for c in ("copy", "hub") if c in contenders]
            results = []
            if paired:
                print(f"{kind}: {' and '.join(LABELS[c] for c in paired)}, batch by batch …",
                      file=sys.stderr, flush=True)
                results += run_paired(paired, kind, folder, env, args.time_limit)
            for contender in contenders:
                if contender in paired:
                    continue
                print(f"{kind}: {LABELS[contender]} …", file=sys.stderr, flush=True)
                results.append(run_contender(contender, kind, folder, env, args.time_limit))
            print_table(kind, args.rows, chunk, results)
            every.extend(results)
            shutil.rmtree(folder / kind, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        drop_database(admin, args.database)
    if args.json:
        args.json.write_text(json.dumps(
            [{"contender": r.contender, "kind": r.kind, "rows": args.rows, "loads": r.loads,
              "error": r.error} for r in every], indent=2))
    return 0 if all(r.error is None for r in every) else 1


if __name__ == "__main__":
    sys.exit(main())
