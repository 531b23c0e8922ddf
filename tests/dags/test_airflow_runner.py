"""`sandbox.airflow_runner`: real `airflow dags test` runs on a throw-away Airflow home.

Each run pays Airflow's start-up (about 12 s here), hence the module-scoped
installation and the `slow` mark.
"""

from __future__ import annotations

import time

import pytest

from sandbox.airflow_runner import LocalAirflow

pytestmark = pytest.mark.slow

DAGS = '''
"""Tiny DAGs for the tests of sandbox.airflow_runner."""

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

START = pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai")


@dag(schedule=None, start_date=START, catchup=False)
def two_steps():
    @task
    def extract() -> dict:
        return {"rows": 21, "probe": os.environ.get("HUB_RUNNER_PROBE")}

    @task
    def double(batch: dict) -> int:
        return batch["rows"] * 2

    double(extract())


two_steps()


@dag(schedule=None, start_date=START, catchup=False,
     default_args={"retries": 3, "retry_delay": timedelta(minutes=10)})
def breaks():
    @task
    def fetch() -> int:
        return 7

    @task
    def load(n: int) -> None:
        raise RuntimeError(f"platform answered 503 for page {n}")

    @task
    def report() -> None:
        pass

    load(fetch()) >> report()


breaks()


@dag(schedule=None, start_date=START, catchup=False)
def hangs():
    @task
    def wait_forever() -> None:
        import time
        time.sleep(3600)

    wait_forever()


hangs()
'''


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> LocalAirflow:
    root = tmp_path_factory.mktemp("airflow-runner")
    dags = root / "dags"
    dags.mkdir()
    (dags / "tiny.py").write_text(DAGS, encoding="utf-8")
    return LocalAirflow(home=root / "home", dags_folder=dags)


def test_metadata_db_is_migrated_once(airflow: LocalAirflow) -> None:
    assert airflow.ensure_db() is True
    assert airflow.db_path.exists()
    started = time.monotonic()
    assert airflow.ensure_db() is False
    assert time.monotonic() - started < 0.5


def test_a_good_dag_runs_and_returns_its_values(airflow: LocalAirflow) -> None:
    echoed: list[str] = []
    result = airflow.dags_test(
        "two_steps", extra_env={"HUB_RUNNER_PROBE": "passed through"}, echo=echoed.append
    )

    assert result.ok, result.log_tail
    assert result.returncode == 0
    assert result.run_state == "success"
    assert result.task_states == {"extract": "success", "double": "success"}
    assert result.return_values == {"extract": {"rows": 21, "probe": "passed through"}, "double": 42}
    assert result.errors == []
    assert result.log_path is not None and result.log_path.is_file()
    assert result.log_path.is_relative_to(airflow.home)
    assert echoed == result.log_path.read_text(encoding="utf-8").splitlines()
    assert any("DagRun Finished" in line for line in echoed)


def test_a_failing_task_fails_the_result_at_once_with_its_error(airflow: LocalAirflow) -> None:
    result = airflow.dags_test("breaks", timeout=300)

    assert not result.ok
    assert result.returncode not in (0, None)
    assert result.run_state == "failed"
    assert result.task_states == {"fetch": "success", "load": "failed", "report": "upstream_failed"}
    # The DAG asks for 3 retries 10 minutes apart; local runs don't wait for them.
    assert result.duration_s < 120
    assert "platform answered 503 for page 7" in result.log_tail
    assert result.errors and result.errors[-1].splitlines()[-1] == (
        "RuntimeError: platform answered 503 for page 7"
    )
    assert "Traceback" in result.errors[-1]


def test_a_run_past_its_timeout_is_killed(airflow: LocalAirflow) -> None:
    result = airflow.dags_test("hangs", timeout=20)

    assert not result.ok
    assert result.timed_out
    assert result.returncode is None
    assert result.duration_s < 60
    assert "killed after 20 s" in result.errors[-1]


def test_an_unknown_dag_fails_with_airflows_message(airflow: LocalAirflow) -> None:
    result = airflow.dags_test("no_such_dag", timeout=120)

    assert not result.ok and result.returncode not in (0, None)
    assert result.task_states == {} and result.run_state is None
    assert "Dag 'no_such_dag' could not be found" in result.errors[-1]
