"""`make scaleout` (`python -m sandbox scaleout`): the ingest DAGs on Airflow's
CeleryExecutor with two workers, checked against a run with one.

On this machine's Redis (127.0.0.1:6379, the broker) and PostgreSQL (127.0.0.1:5432,
throw-away databases `hub_scaleout_<pid>_*`: Airflow's metadata and Celery's results in
one, a warehouse per phase) it starts the simulators (`sandbox.serve.simulators`), then
Airflow's api-server, scheduler and dag-processor, loads the grids into a warehouse
with `hub run` (see `load_grids_first`: where a record's point lies is judged against
the grids loaded at the time) and copies it for the second phase, and runs two phases:

1. two Celery workers (distinct hostnames): every ingest DAG unpaused and triggered
   twice at once, into the warehouse `…_wh_2workers`;
2. one worker: the same triggers into `…_wh_1worker`.

Then it shows (a) that tasks ran on both workers (`task_instance.hostname` in Airflow's
metadata database), (b) that no two runs of a source overlapped (`ops.run`: the source's
lock, each stream task being one run), (c) that both warehouses hold the same core rows
(counts and a digest leaving out row ids, run ids and load times). Every process it
starts is stopped and every database it made dropped, however it ends.

The sources file's schedules are set to manual here, so every run is one of ours.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from psycopg import sql
from rich.console import Console

from base.settings import PROJECT_ROOT, SourceConfig, settings
from hub.console import print_table
from hub.dag_factory import INGEST_DAG_PREFIX, ingest_dag_id, pool_definitions, stream_graph
from hub.lineage import stream_tables
from sandbox.airflow_runner import AIRFLOW_BIN, LocalAirflow
from sandbox.serve import EXTENDED, ServePaths, airflow_env, simulators
from sandbox.worker_host import WORKER_NAME_ENV

REDIS = ("127.0.0.1", 6379)
REDIS_DB = 11  # a database of Redis's own for these runs' queue
POSTGRES = ("127.0.0.1", 5432)
DB_PREFIX = "hub_scaleout_"
TRIGGERS_PER_DAG = 2
WORKERS = ("worker1", "worker2")
WORKER_CONCURRENCY = 3
# Imported once by each worker before it forks its pool (Celery's `imports`), so that a
# task's process, forked from the pool, starts with them loaded: the pipeline (Great
# Expectations, pandas, pyarrow) costs ~6 CPU-seconds to import, the DAG file ~3.
WORKER_PRELOAD = ("hub.pipeline", "hub.dag_factory")
# A small city keeps the grid platform's houses workbook (xlsx) quick to read.
DEFAULT_SCALE = 0.002
DEFAULT_DAYS = 2
STARTUP_TIMEOUT = 240.0
RUNS_TIMEOUT = 900.0
# Left out of the warehouse digest: identities, run ids and times of loading, which
# differ between two loads of the same records. `valid_to` enters as "is current".
LOAD_COLUMNS = frozenset({"row_id", "run_id", "valid_from", "valid_to", "updated_at",
                          "first_linked_at", "first_clustered_at", "linked_at"})
PROVIDERS = ("apache-airflow-providers-celery", "redis")


class ScaleoutSkipped(RuntimeError):
    """Something this run needs is not on the machine: the message says what."""


class ScaleoutError(RuntimeError):
    """Airflow or a run failed; the message holds the evidence."""


@dataclass(frozen=True)
class TaskRun:
    dag_id: str
    run_id: str
    task_id: str
    hostname: str
    state: str
    duration_s: float


@dataclass(frozen=True)
class SourceRun:
    """One row of the warehouse's ops.run."""

    source: str
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    streams: tuple[str, ...]
    trigger: str = "airflow"


# table → (rows, current rows, digest of the rows without LOAD_COLUMNS)
Digest = dict[str, tuple[int, int, str]]


@dataclass
class Phase:
    name: str
    workers: tuple[str, ...]
    warehouse: str
    wall_s: float = 0.0
    tasks: list[TaskRun] = field(default_factory=list)
    source_runs: list[SourceRun] = field(default_factory=list)
    digest: Digest = field(default_factory=dict)

    def workers_used(self) -> Counter[str]:
        return Counter(t.hostname for t in self.tasks)


@dataclass
class ScaleoutResult:
    phases: list[Phase]
    streams: dict[str, int]  # source → its streams (= stream tasks per DAG run)

    @property
    def scaled(self) -> Phase:
        return self.phases[0]

    @property
    def single(self) -> Phase:
        return self.phases[-1]

    def problems(self) -> list[str]:
        """Everything that contradicts the scale-out's promises; empty when it held."""
        found = []
        unused = set(self.scaled.workers) - set(self.scaled.workers_used())
        if unused:
            found.append(f"no task ran on {', '.join(sorted(unused))}")
        for phase in self.phases:
            found += [f"{phase.name}: {o}" for o in overlapping(phase.source_runs)]
            found += [f"{phase.name}: {m}" for m in missing_runs(phase.source_runs,
                                                                   self.streams)]
        found += differences(self.scaled.digest, self.single.digest)
        return found


# ------------------------------------------------------------------ the checks


def overlapping(runs: Sequence[SourceRun]) -> list[str]:
    """Pairs of runs of one source whose times overlap (a run still open overlaps all
    that start after it)."""
    found = []
    by_source: dict[str, list[SourceRun]] = {}
    for run in runs:
        by_source.setdefault(run.source, []).append(run)
    for source, own in sorted(by_source.items()):
        own.sort(key=lambda r: r.started_at)
        for before, after in zip(own, own[1:], strict=False):
            if before.finished_at is None or before.finished_at > after.started_at:
                found.append(f"{source}: run {before.run_id} ({before.started_at:%H:%M:%S.%f}"
                             f"–{before.finished_at or 'open'}) overlaps run {after.run_id}"
                             f" (from {after.started_at:%H:%M:%S.%f})")
    return found


def missing_runs(runs: Sequence[SourceRun], streams: Mapping[str, int]) -> list[str]:
    """What differs from one succeeded run per stream task: TRIGGERS_PER_DAG per stream
    (runs of another trigger, the grids loaded first, aside)."""
    found = [f"{r.source}: run {r.run_id} {r.outcome}" for r in runs if r.outcome != "succeeded"]
    counted = Counter(r.source for r in runs
                      if r.outcome == "succeeded" and r.trigger == "airflow")
    for source, n in sorted(streams.items()):
        if counted[source] != TRIGGERS_PER_DAG * n:
            found.append(f"{source}: {counted[source]} succeeded runs, expected"
                         f" {TRIGGERS_PER_DAG} × {n} streams")
    return found


def differences(a: Digest, b: Digest) -> list[str]:
    """The core tables whose rows differ between two warehouses."""
    return [f"{table}: {a.get(table)} with two workers, {b.get(table)} with one"
            for table in sorted(a.keys() | b.keys()) if a.get(table) != b.get(table)]


# ------------------------------------------------------------ the machine's services


def _resp(args: Sequence[str]) -> bytes:
    return f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)


def redis_command(*args: str) -> bytes:
    """One command in REDIS_DB of the machine's Redis, its one-line reply. Spoken over a
    socket: whether Redis is there is known before the client library is."""
    commands = [("SELECT", str(REDIS_DB)), args]
    with socket.create_connection(REDIS, timeout=3) as s:
        s.sendall(b"".join(_resp(c) for c in commands))
        reply = b""
        while reply.count(b"\r\n") < len(commands):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n")[len(commands) - 1]


def prerequisites() -> str:
    """The superuser URL of the machine's PostgreSQL; ScaleoutSkipped says what is missing."""
    for package in PROVIDERS:
        try:
            version(package)
        except PackageNotFoundError:
            raise ScaleoutSkipped(f"{package} is not installed: pip install -e '.[scaleout]'"
                                  " (`make scaleout` does)") from None
    try:
        pong = redis_command("PING")
    except OSError as exc:
        raise ScaleoutSkipped(f"no Redis at {REDIS[0]}:{REDIS[1]} ({exc})") from None
    if pong != b"+PONG":
        raise ScaleoutSkipped(f"Redis at {REDIS[0]}:{REDIS[1]} answered {pong!r} to PING")
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@{POSTGRES[0]}:{POSTGRES[1]}/postgres"
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                                   ).fetchone()
        except psycopg.Error:
            continue
        if row and row[0]:
            return url
    raise ScaleoutSkipped(f"no PostgreSQL at {POSTGRES[0]}:{POSTGRES[1]} that user postgres"
                          " or root reaches as superuser without a password")


def database_url(admin_url: str, name: str, driver: str = "") -> str:
    scheme, rest = admin_url.split("://", 1)
    return f"{scheme}{'+' + driver if driver else ''}://{rest.rsplit('/', 1)[0]}/{name}"


@contextmanager
def throwaway_databases(admin_url: str, names: Sequence[str], *, keep: bool = False
                        ) -> Iterator[None]:
    """The databases `names`, made afresh; dropped on leaving unless `keep`."""
    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))

    drop()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        if not keep:
            drop()


# ------------------------------------------------------------------- processes


class Processes:
    """The processes started here, each leading its own process group (a Celery
    worker's pool and its tasks, the api-server's workers), all stopped on `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "wb") as out:
            self.running[name] = subprocess.Popen(
                list(argv), env=dict(env), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, name: str, grace: float = 30.0) -> None:
        proc = self.running.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # what outlived the group's leader
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)

    def check(self) -> None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                raise ScaleoutError(f"{name} exited ({proc.returncode}); its log "
                                    f"{self.log(name)} ends:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        text = self.log(name).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def wait_for(what: str, ready: Callable[[], bool], processes: Processes,
             timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        processes.check()
        if time.monotonic() > deadline:
            raise ScaleoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """Airflow on the CeleryExecutor: what its components share, and how to reach it."""

    tag: str  # names this run's databases and Celery queue
    admin_url: str
    paths: ServePaths
    port: int
    simulated_env: dict[str, str]
    processes: Processes
    pii_key: str = field(default_factory=lambda: secrets.token_hex(32))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def metadata_db(self) -> str:
        return f"{self.tag}_airflow"

    @property
    def queue(self) -> str:
        return self.tag

    def env(self) -> dict[str, str]:
        """Every component's environment (CeleryExecutor, Redis, the metadata database)."""
        shared = {k: v for k, v in airflow_env(self.paths.airflow_home, self.port).items()
                  if k not in EXTENDED}
        metadata = database_url(self.admin_url, self.metadata_db, "psycopg")
        return LocalAirflow(self.paths.airflow_home).env({
            **shared,
            "PATH": f"{AIRFLOW_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            # Airflow would derive asyncpg's URL; psycopg 3 serves async too.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database_url(
                self.admin_url, self.metadata_db, "psycopg_async"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            # The REST API without a login: this throw-away Airflow listens on 127.0.0.1.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            **self.simulated_env,
        })

    def hub_env(self, warehouse: str) -> dict[str, str]:
        """Where the hub's jobs load: `warehouse`, with the run's key."""
        env = {k: v for k, v in self.env().items() if not k.startswith("HUB_WAREHOUSE_URL")}
        env.update({
            "HUB_WAREHOUSE_URL": database_url(self.admin_url, warehouse),
            "HUB_HOME": str(self.paths.home),
            "HUB_PII_KEY": self.pii_key,  # one key: both warehouses hash alike
        })
        return env

    def worker_env(self, name: str, warehouse: str) -> dict[str, str]:
        env = self.hub_env(warehouse)
        env.update({
            WORKER_NAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "sandbox.worker_host.worker_hostname",
            "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"imports": WORKER_PRELOAD}),
        })
        return env

    def metadata(self) -> psycopg.Connection:
        return psycopg.connect(database_url(self.admin_url, self.metadata_db), autocommit=True)

    def migrate(self) -> None:
        done = subprocess.run([str(AIRFLOW_BIN), "db", "migrate"], env=self.env(),
                              cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=STARTUP_TIMEOUT)
        if done.returncode != 0:
            raise ScaleoutError("airflow db migrate failed:\n"
                                + "\n".join((done.stdout + done.stderr).splitlines()[-40:]))

    def start_airflow(self) -> None:
        env = self.env()
        for component in ("api-server", "scheduler", "dag-processor"):
            self.processes.start(component, [str(AIRFLOW_BIN), component], env)

    def start_worker(self, name: str, warehouse: str) -> None:
        self.processes.start(name, [
            str(AIRFLOW_BIN), "celery", "worker", "--celery-hostname", f"{name}@%h",
            "--concurrency", str(WORKER_CONCURRENCY), "--queues", self.queue,
            # Two workers on one machine would both serve logs on 8793; the api-server
            # reads the task logs from the shared folder instead.
            "--skip-serve-logs"], self.worker_env(name, warehouse))

    def worker_ready(self, name: str) -> bool:
        log = self.processes.log(name)
        return log.exists() and re.search(rf"{name}@\S+ ready\.", log.read_text(
            encoding="utf-8", errors="replace")) is not None


class Api:
    """Airflow's REST API (/api/v2)."""

    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=30)

    def close(self) -> None:
        self.http.close()

    def up(self) -> bool:
        try:
            return self.http.get("/version").status_code == 200
        except httpx.TransportError:
            return False

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        if response.is_error:
            raise ScaleoutError(f"{method} /api/v2{path}: {response.status_code} {response.text}")
        return response.json()

    def dag_ids(self) -> set[str]:
        found = self.call("GET", f"/dags?dag_id_pattern={INGEST_DAG_PREFIX}&limit=100")
        return {d["dag_id"] for d in found["dags"]}


# ------------------------------------------------------------------ a phase


def manual_only(sources_file: Path) -> None:
    """No schedule for any source: every DAG run is one this run triggered."""
    raw = yaml.safe_load(sources_file.read_text(encoding="utf-8"))
    for source in raw["sources"].values():
        source["schedule"] = None
    sources_file.write_text("# written by `make scaleout`: the simulators, manual runs only\n"
                            + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                            encoding="utf-8")


def grid_streams(sources: Sequence[SourceConfig]) -> list[tuple[str, str]]:
    """(source, stream) of every stream that loads grids (core.grid)."""
    return [(s.name, stream) for s in sources for stream in stream_graph(s.connector)
            if "core.grid" in stream_tables(s.connector, stream)]


def load_grids_first(cluster: Cluster, warehouse: str, sources: Sequence[SourceConfig],
                     console: Console) -> None:
    """Migrate `warehouse` and load the grids into it with `hub run`, before any DAG runs.

    A record gets the grid its point lies in among the grids loaded when it is loaded
    (hub.pipeline.assign_grids), whichever platform they came from: sources loading side
    by side assign by whatever grids were committed at that moment, so two loads of the
    same records end alike only if the grids are there first, as a deployment loads
    them once at setup.
    """
    env = cluster.hub_env(warehouse)
    steps = [["migrate"], *(["run", source, "--stream", stream]
                            for source, stream in grid_streams(sources))]
    for step in steps:
        with console.status(f"hub {' '.join(step)}"):
            done = subprocess.run([sys.executable, "-m", "hub", *step], env=env,
                                  cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=STARTUP_TIMEOUT)
        if done.returncode != 0:
            raise ScaleoutError(f"hub {' '.join(step)} failed:\n"
                                + "\n".join((done.stdout + done.stderr).splitlines()[-40:]))
    console.print(f"grids loaded first into {warehouse}: "
                  + ", ".join(f"{s}/{st}" for s, st in grid_streams(sources)))


def copy_database(admin_url: str, source: str, target: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(target)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(target), sql.Identifier(source)))


def run_phase(cluster: Cluster, api: Api, phase: Phase, dag_ids: Sequence[str],
              console: Console) -> None:
    """Start the phase's workers, trigger every DAG TRIGGERS_PER_DAG times at once, wait for
    the runs to end, stop the workers, and record what ran where and what was loaded."""
    processes = cluster.processes
    for name in phase.workers:
        cluster.start_worker(name, phase.warehouse)
    for name in phase.workers:
        wait_for(f"Celery worker {name}", partial(cluster.worker_ready, name), processes,
                 STARTUP_TIMEOUT)
    console.print(f"{phase.name}: workers {', '.join(phase.workers)} ready; triggering"
                  f" {len(dag_ids)} DAGs × {TRIGGERS_PER_DAG}")
    runs: list[tuple[str, str]] = []
    started = time.monotonic()
    for _ in range(TRIGGERS_PER_DAG):
        for dag_id in dag_ids:
            run = api.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
            runs.append((dag_id, run["dag_run_id"]))
    run_ids = [r for _, r in runs]

    def ended() -> bool:
        with cluster.metadata() as db:
            broken = db.execute(
                "SELECT dag_id, run_id, task_id, state FROM task_instance WHERE run_id = ANY(%s)"
                " AND state IN ('failed', 'up_for_retry', 'upstream_failed')",
                (run_ids,)).fetchall()
            if broken:
                raise ScaleoutError(
                    f"{phase.name}: tasks failed: {broken}; their logs are under "
                    f"{cluster.paths.airflow_home / 'logs'}")
            states = db.execute("SELECT state FROM dag_run WHERE run_id = ANY(%s)",
                                (run_ids,)).fetchall()
        return len(states) == len(runs) and all(s in ("success", "failed") for s, in states)

    wait_for(f"{len(runs)} DAG runs ({phase.name})", ended, processes, RUNS_TIMEOUT)
    phase.wall_s = time.monotonic() - started
    for name in phase.workers:
        processes.stop(name)
    with cluster.metadata() as db:
        failed = db.execute("SELECT dag_id, run_id FROM dag_run WHERE run_id = ANY(%s)"
                            " AND state <> 'success'", (run_ids,)).fetchall()
        if failed:
            raise ScaleoutError(f"{phase.name}: DAG runs failed: {failed}")
        phase.tasks = [TaskRun(*row) for row in db.execute(
            "SELECT dag_id, run_id, task_id, coalesce(hostname, ''), state,"
            " coalesce(duration, 0) FROM task_instance WHERE run_id = ANY(%s)"
            " ORDER BY start_date", (run_ids,))]
    with psycopg.connect(database_url(cluster.admin_url, phase.warehouse)) as wh:
        phase.source_runs = [SourceRun(s, r, a, b, o, tuple(st or ()), tr)
                             for s, r, a, b, o, st, tr in wh.execute(
            "SELECT source_system, run_id, started_at, finished_at, outcome, streams, trigger"
            " FROM ops.run ORDER BY source_system, started_at")]
        phase.digest = digest(wh)
    console.print(f"{phase.name}: {len(runs)} DAG runs, {len(phase.tasks)} tasks in"
                  f" {phase.wall_s:.0f} s, into the warehouse {phase.warehouse}")


def digest(conn: psycopg.Connection) -> Digest:
    """Each core table's rows, current rows and a digest of their content, leaving out
    LOAD_COLUMNS (valid_to enters as whether the row is current)."""
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'core' AND t.table_type = 'BASE TABLE'"
            " ORDER BY c.table_name, c.ordinal_position"):
        columns.setdefault(table, []).append(column)
    found: Digest = {}
    for table, names in columns.items():
        kept = [sql.Identifier(n) for n in names if n not in LOAD_COLUMNS]
        current = (sql.SQL("count(*) FILTER (WHERE valid_to IS NULL)") if "valid_to" in names
                   else sql.SQL("count(*)"))
        flag = sql.SQL(", valid_to IS NULL") if "valid_to" in names else sql.SQL("")
        row = conn.execute(sql.SQL(
            "SELECT count(*), {current}, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), ''))"
            " FROM (SELECT ROW({kept}{flag})::text AS r, * FROM core.{table}) AS t").format(
                current=current, kept=sql.SQL(", ").join(kept), flag=flag,
                table=sql.Identifier(table))).fetchone()
        assert row is not None
        found[f"core.{table}"] = (int(row[0]), int(row[1]), str(row[2]))
    return found


# ------------------------------------------------------------------- the run


def run_scaleout(*, scale: float = DEFAULT_SCALE, days: int = DEFAULT_DAYS,
                 keep: bool = False, console: Console) -> ScaleoutResult:
    """Both phases, start to finish (see the module's doc); raises ScaleoutSkipped when
    Redis, PostgreSQL or the Celery provider is missing, ScaleoutError when a run fails.
    `keep` leaves the databases behind to look into (named in the output)."""
    admin_url = prerequisites()
    tag = f"{DB_PREFIX}{os.getpid()}"
    paths = ServePaths(settings().home / "scaleout")
    shutil.rmtree(paths.airflow_home, ignore_errors=True)
    phases = [Phase("two workers", WORKERS, f"{tag}_wh_2workers"),
              Phase("one worker", WORKERS[:1], f"{tag}_wh_1worker")]
    with ExitStack() as stack:
        simulated = stack.enter_context(simulators(
            paths, scale=scale, days=days, console=console,
            header="# written by `make scaleout`\n"))
        manual_only(simulated.sources_file)
        processes = Processes(paths.airflow_home / "processes")
        cluster = Cluster(tag, admin_url, paths, free_port(), simulated.env, processes)
        stack.enter_context(throwaway_databases(
            admin_url, [cluster.metadata_db, *(p.warehouse for p in phases)], keep=keep))
        stack.callback(redis_command, "DEL", cluster.queue, f"_kombu.binding.{cluster.queue}",
                       "unacked", "unacked_index")
        # Registered after the databases: the processes stop before they are dropped.
        stack.callback(processes.stop_all)
        api = Api(cluster.port)
        stack.callback(api.close)

        with console.status("airflow db migrate (PostgreSQL)"):
            cluster.migrate()
        cluster.start_airflow()
        # While Airflow starts: both phases start from the same warehouse, migrated, the
        # grids loaded.
        load_grids_first(cluster, phases[0].warehouse, simulated.sources, console)
        for phase in phases[1:]:
            copy_database(admin_url, phases[0].warehouse, phase.warehouse)
        dag_ids = [ingest_dag_id(s.name) for s in simulated.sources]
        with console.status("api-server, scheduler and dag-processor starting"):
            wait_for("the api-server", api.up, processes, STARTUP_TIMEOUT)
            wait_for(f"the DAGs {', '.join(dag_ids)}", lambda: set(dag_ids) <= api.dag_ids(),
                     processes, STARTUP_TIMEOUT)
        for name, pool in pool_definitions(simulated.sources).items():
            api.call("POST", "/pools", {"name": name, **pool})
        for dag_id in dag_ids:
            api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        console.print(f"Airflow (CeleryExecutor, Redis db {REDIS_DB}, metadata {tag}_airflow)"
                      f" on http://127.0.0.1:{cluster.port}; {len(dag_ids)} ingest DAGs")
        for phase in phases:
            run_phase(cluster, api, phase, dag_ids, console)
    return ScaleoutResult(phases, {s.name: len(stream_graph(s.connector))
                                   for s in simulated.sources})


def summarise(result: ScaleoutResult, console: Console) -> None:
    print_table(["phase", "workers", "DAG runs", "tasks", "wall s", "median task s",
                 "median hub run s"],
                [(p.name, len(p.workers), TRIGGERS_PER_DAG * len(result.streams), len(p.tasks),
                  round(p.wall_s, 1), round(statistics.median(t.duration_s for t in p.tasks), 1),
                  round(statistics.median((r.finished_at - r.started_at).total_seconds()
                                          for r in p.source_runs if r.finished_at), 2))
                 for p in result.phases],
                title="the ingest DAGs, every one triggered twice at once")
    for phase in result.phases:
        console.print(f"tasks per worker, {phase.name}: " + ", ".join(
            f"{host or '(none)'} {n}" for host, n in sorted(phase.workers_used().items())))
    print_table(["source", "runs", "first start", "last finish", "overlaps"],
                [(source, len(own), min(r.started_at for r in own).strftime("%H:%M:%S"),
                  max(r.finished_at or r.started_at for r in own).strftime("%H:%M:%S"),
                  len(overlapping(own)))
                 for source in sorted(result.streams)
                 for own in [[r for r in result.scaled.source_runs if r.source == source]]],
                title="ops.run per source with two workers: one run at a time (the lock)")
    print_table(["table", "rows (2 workers)", "rows (1 worker)", "current", "same content"],
                [(table, a[0], result.single.digest.get(table, (0, 0, ""))[0], a[1],
                  "yes" if result.single.digest.get(table) == a else "NO")
                 for table, a in sorted(result.scaled.digest.items()) if a[0] or
                 result.single.digest.get(table, (0,))[0]],
                title="core tables, digest without row ids, run ids and load times")
    problems = result.problems()
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if not problems:
        console.print("[green]scale-out holds: tasks on both workers, no two runs of a source"
                      " overlapped, the warehouse equals the one-worker run's[/green]")
