"""Airflow without a server: a local metadata database and `airflow dags test`.

`hub demo` and the tests run the real DAGs this way: Airflow runs as a
subprocess of the current venv with AIRFLOW_HOME under the hub's state folder
(`<HUB_HOME>/airflow`), a SQLite metadata database there and the project's
dags/ folder. Everything is set through environment variables; the airflow.cfg
that Airflow writes on first start is left as generated. Nothing here imports
Airflow, so the caller's process stays free of its start-up cost and global
configuration.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from base.settings import PROJECT_ROOT, settings

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
PROJECT_DAGS_FOLDER = PROJECT_ROOT / "dags"
LOG_TAIL_LINES = 80

# Noise every `airflow` command prints here; matched as message prefixes.
_QUIET_WARNINGS = (
    "ignore:Could not import graphviz",
    "ignore:Using `httpx` with `starlette.testclient` is deprecated",
)
# `airflow dags test` honours retries: a failing task would sit out every retry
# delay (minutes, growing) before the run ends. Local runs fail fast instead,
# through an Airflow cluster policy that Airflow imports from <home>/config.
NO_RETRIES_ENV = "HUB_AIRFLOW_NO_RETRIES"
_LOCAL_SETTINGS = f'''"""Written by sandbox.airflow_runner for this local Airflow; rewritten before each run.

With {NO_RETRIES_ENV}=1 (set by `dags_test`) tasks get no retries, so a failed
task ends its one-off `airflow dags test` run at once.
"""

import os


def task_policy(task):
    if os.environ.get("{NO_RETRIES_ENV}") == "1":
        task.retries = 0
'''

_RUN_FINISHED = re.compile(r"DagRun Finished: dag_id=(?P<dag_id>[^,\s]+), .*?run_id=(?P<run_id>[^,\s]+),")
_TASK_FAILED = "Task failed with exception"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


class AirflowRunnerError(RuntimeError):
    """Airflow itself could not be prepared (as opposed to a DAG run that failed)."""


@dataclass
class DagTestResult:
    """What one `airflow dags test` did. `ok` is the verdict; the rest says why."""

    dag_id: str
    ok: bool
    returncode: int | None
    duration_s: float
    timed_out: bool = False
    run_id: str | None = None
    run_state: str | None = None
    task_states: dict[str, str] = field(default_factory=dict)
    return_values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    log_tail: str = ""
    log_path: Path | None = None

    def summary(self) -> str:
        states = ", ".join(f"{t}={s}" for t, s in self.task_states.items()) or "no task ran"
        verdict = "ok" if self.ok else ("timed out" if self.timed_out else "FAILED")
        return f"{self.dag_id}: {verdict} in {self.duration_s:.1f} s ({states})"


@dataclass
class DagInfo:
    """A parsed DAG as the DAG processor sees it (plain data, no Airflow objects)."""

    dag_id: str
    fileloc: str
    schedule: str | None
    timetable: str
    cron: str | None
    timezone: str
    catchup: bool
    max_active_runs: int
    tags: list[str]
    doc_md: str | None
    tasks: dict[str, dict[str, Any]]
    # The Assets an Asset-scheduled DAG waits on (by name); empty for a time schedule.
    schedule_assets: list[str] = field(default_factory=list)


@dataclass
class DagBagReport:
    dags: dict[str, DagInfo]
    import_errors: dict[str, str]
    parse_s: float


@dataclass(frozen=True)
class LocalAirflow:
    """One local Airflow installation: its home folder and the DAGs it serves."""

    home: Path
    dags_folder: Path = PROJECT_DAGS_FOLDER

    def __post_init__(self) -> None:
        # Absolute, because the subprocesses run in the project folder.
        object.__setattr__(self, "home", Path(self.home).resolve())
        object.__setattr__(self, "dags_folder", Path(self.dags_folder).resolve())

    @classmethod
    def default(cls) -> LocalAirflow:
        return cls(settings().home / "airflow")

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def env(self, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of an `airflow` subprocess: ours, HUB_* and friends inherited."""
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # `dags test` runs tasks in its own process; the executor only has to be valid.
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "PYTHONWARNINGS": ",".join(_QUIET_WARNINGS),
            # The DAG files import the hub from the project, installed or not.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        })
        env.update(extra_env or {})
        return env

    def ensure_db(self) -> bool:
        """Create or upgrade the metadata database; False when it was already current.

        A marker file records the Airflow version that migrated this database, so
        the check costs a file read instead of Airflow's start-up.
        """
        self._write_local_settings()
        marker = self.home / ".db-migrated"
        stamp = f"apache-airflow-core {version('apache-airflow-core')}\n{self.db_path}\n"

        def current() -> bool:
            return self.db_path.exists() and marker.exists() and marker.read_text() == stamp

        if current():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".db-migrate.lock"):
            if current():  # another process did it while we waited
                return False
            proc = subprocess.run(
                [str(AIRFLOW_BIN), "db", "migrate"], env=self.env(), cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
            )
            if proc.returncode != 0:
                raise AirflowRunnerError(
                    f"airflow db migrate failed ({proc.returncode}) in {self.home}:\n"
                    + _tail(proc.stdout, LOG_TAIL_LINES)
                )
            marker.write_text(stamp)
        return True

    def dags_test(
        self,
        dag_id: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 600,
        *,
        conf: Mapping[str, Any] | None = None,
        echo: Callable[[str], None] | None = None,
        retries: bool = False,
    ) -> DagTestResult:
        """Run one DAG run of `dag_id` to the end with `airflow dags test`.

        Its output goes to `<home>/logs/dags_test/`, and to `echo` line by line
        when given. A failed task, a failed run, a non-zero exit or the timeout
        make `ok` False; `errors` holds the failed tasks' tracebacks. Tasks are
        not retried unless `retries` is True (then a failure waits out the DAG's
        retry delays, as under the scheduler).
        """
        self.ensure_db()
        log_dir = self.home / "logs" / "dags_test"
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        log_path = log_dir / f"{dag_id}-{stamp}.log"
        cmd = [str(AIRFLOW_BIN), "dags", "test", dag_id]
        if conf is not None:
            cmd += ["--conf", json.dumps(dict(conf))]

        last_run_pk = self._last_run_pk()
        started = time.monotonic()
        timed_out = False
        with open(log_path, "w", encoding="utf-8") as log, \
                open(log_path, encoding="utf-8", errors="replace") as follow:
            # Output goes to a file, not a pipe: a process the task starts (the
            # embedded PostgreSQL) may inherit the descriptor and outlive the run.
            env = self.env(extra_env)
            if not retries:
                env[NO_RETRIES_ENV] = "1"
            proc = subprocess.Popen(
                cmd, env=env, cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
            while True:
                try:
                    returncode: int | None = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if echo:
                        _echo_new_lines(follow, echo)
                    if time.monotonic() - started > timeout:
                        timed_out = True
                        proc.kill()
                        proc.wait()
                        returncode = None
                        break
            if echo:
                _echo_new_lines(follow, echo, flush=True)
        duration = time.monotonic() - started

        output = log_path.read_text(encoding="utf-8", errors="replace")
        run_id = _finished_run_id(output, dag_id)
        run_id, run_state, task_states, return_values = self._read_run(dag_id, run_id, last_run_pk)
        errors = list(_task_tracebacks(output))
        if timed_out:
            errors.append(f"airflow dags test {dag_id} was killed after {timeout:.0f} s")
        failed = [t for t, s in task_states.items() if s not in ("success", "skipped")]
        ok = (returncode == 0 and not timed_out and run_state == "success" and not failed)
        if not ok and not errors:  # the command itself failed: DAG not found, import error...
            errors.append(_last_traceback(output) or _tail(output, 20))
        return DagTestResult(
            dag_id=dag_id, ok=ok, returncode=returncode, duration_s=round(duration, 2),
            timed_out=timed_out, run_id=run_id, run_state=run_state, task_states=task_states,
            return_values=return_values, errors=errors,
            log_tail=_tail(output, LOG_TAIL_LINES), log_path=log_path,
        )

    def list_dags(self, extra_env: Mapping[str, str] | None = None, timeout: float = 300) -> DagBagReport:
        """Parse the DAG folder with Airflow's DagBag, in a subprocess, as the DAG processor would.

        Needs no metadata database and runs no task.
        """
        proc = subprocess.run(
            [sys.executable, "-c", _DAGBAG_SCRIPT, str(self.dags_folder)],
            env=self.env(extra_env), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )
        payload = next(
            (line[len(_REPORT_MARK):] for line in reversed(proc.stdout.splitlines())
             if line.startswith(_REPORT_MARK)),
            None,
        )
        if proc.returncode != 0 or payload is None:
            raise AirflowRunnerError(
                f"parsing {self.dags_folder} failed ({proc.returncode}):\n" + _tail(proc.stdout, LOG_TAIL_LINES)
            )
        data = json.loads(payload)
        return DagBagReport(
            dags={d["dag_id"]: DagInfo(**d) for d in data["dags"]},
            import_errors=data["import_errors"],
            parse_s=data["parse_s"],
        )

    def _write_local_settings(self) -> None:
        path = self.home / "config" / "airflow_local_settings.py"
        if not path.exists() or path.read_text() != _LOCAL_SETTINGS:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_LOCAL_SETTINGS)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)

    def _last_run_pk(self) -> int:
        if not self.db_path.exists():
            return 0
        with closing(self._connect()) as db:
            return int(db.execute("SELECT coalesce(max(id), 0) FROM dag_run").fetchone()[0])

    def _read_run(
        self, dag_id: str, run_id: str | None, after_pk: int
    ) -> tuple[str | None, str | None, dict[str, str], dict[str, Any]]:
        """The run's state, its task states and its tasks' return values, from the metadata db."""
        with closing(self._connect()) as db:
            if run_id is None:  # the log did not say: the newest run this call created
                row = db.execute(
                    "SELECT run_id FROM dag_run WHERE dag_id = ? AND id > ? ORDER BY id DESC LIMIT 1",
                    (dag_id, after_pk),
                ).fetchone()
                if row is None:
                    return None, None, {}, {}
                run_id = str(row[0])
            state_row = db.execute(
                "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
            ).fetchone()
            task_states = {
                _task_key(task_id, map_index): str(state)
                for task_id, map_index, state in db.execute(
                    "SELECT task_id, map_index, state FROM task_instance"
                    " WHERE dag_id = ? AND run_id = ? ORDER BY start_date, task_id, map_index",
                    (dag_id, run_id),
                )
            }
            return_values = {
                _task_key(task_id, map_index): _json_value(value)
                for task_id, map_index, value in db.execute(
                    "SELECT task_id, map_index, value FROM xcom"
                    " WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
                    (dag_id, run_id),
                )
            }
        return run_id, (str(state_row[0]) if state_row else None), task_states, return_values


def default_airflow() -> LocalAirflow:
    return LocalAirflow.default()


def ensure_db() -> bool:
    return default_airflow().ensure_db()


def dags_test(
    dag_id: str, extra_env: dict[str, str] | None = None, timeout: float = 600
) -> DagTestResult:
    """`airflow dags test <dag_id>` against the hub's own local Airflow (`<HUB_HOME>/airflow`)."""
    return default_airflow().dags_test(dag_id, extra_env, timeout)


def list_dags(extra_env: dict[str, str] | None = None) -> DagBagReport:
    """The project's DAGs as Airflow parses them."""
    return default_airflow().list_dags(extra_env)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _echo_new_lines(follow: Any, echo: Callable[[str], None], flush: bool = False) -> None:
    while True:
        pos = follow.tell()
        line = follow.readline()
        if not line:
            return
        if not line.endswith("\n") and not flush:  # a line still being written
            follow.seek(pos)
            return
        echo(line.rstrip("\n"))


def _finished_run_id(output: str, dag_id: str) -> str | None:
    for m in _RUN_FINISHED.finditer(output):
        if m["dag_id"] == dag_id:
            return m["run_id"]
    return None


def _task_tracebacks(output: str) -> Iterator[str]:
    """Each 'Task failed with exception' block: the traceback down to its last exception line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if _TASK_FAILED not in line:
            continue
        end = i
        for j in range(i + 1, len(lines)):
            end = j
            text = lines[j]
            if not text or text[0].isspace() or text.startswith(("Traceback", *_CHAINED)):
                continue
            # An exception line: the block ends here unless a chained exception follows.
            following = next((t for t in lines[j + 1:] if t.strip()), "")
            if not following.startswith(_CHAINED):
                break
        yield "\n".join(lines[i:end + 1])


def _last_traceback(output: str) -> str | None:
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    return "\n".join(lines[starts[-1]:][-LOG_TAIL_LINES:]) if starts else None


def _task_key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


_REPORT_MARK = "HUB-DAGBAG-REPORT "

# Runs in the subprocess of `list_dags`; prints one JSON line after Airflow's logs.
_DAGBAG_SCRIPT = r"""
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t0 = time.monotonic()
bag = DagBag(dag_folder=sys.argv[1])
parse_s = time.monotonic() - t0

def seconds(v):
    return None if v is None else (v.total_seconds() if hasattr(v, "total_seconds") else float(v))

# The names of the Assets a schedule is made of (AssetAny/AssetAll nest).
def assets_of(condition):
    objects = getattr(condition, "objects", None)
    if objects is not None:
        return [n for o in objects for n in assets_of(o)]
    name = getattr(condition, "name", None)
    return [name] if name else []

def describe(dag):
    schedule = getattr(dag, "schedule", None)
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "schedule": schedule if isinstance(schedule, str) or schedule is None else repr(schedule),
        "timetable": type(dag.timetable).__name__,
        "cron": getattr(dag.timetable, "expression", None),
        "timezone": str(getattr(dag.timetable, "timezone", None) or dag.timezone),
        "catchup": bool(dag.catchup),
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md,
        "schedule_assets": assets_of(schedule) if not isinstance(schedule, str) else [],
        "tasks": {
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "is_setup": bool(getattr(t, "is_setup", False)),
                "pool": t.pool,
                "pool_slots": t.pool_slots,
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "retries": t.retries,
                "retry_delay_s": seconds(t.retry_delay),
                "retry_exponential_backoff": float(t.retry_exponential_backoff),
                "max_retry_delay_s": seconds(t.max_retry_delay),
                "outlets": [
                    {"name": getattr(o, "name", None), "uri": getattr(o, "uri", None),
                     "type": type(o).__name__}
                    for o in t.outlets
                ],
            }
            for t in dag.tasks
        },
    }

report = {
    "dags": [describe(d) for _, d in sorted(bag.dags.items())],
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "parse_s": round(parse_s, 3),
}
print("HUB-DAGBAG-REPORT " + json.dumps(report, default=str), flush=True)
"""
