"""The checks of the scale-out run (`make scaleout`, sandbox/scaleout.py: every ingest
DAG triggered twice at once with two Celery workers, then with one, on the machine's
Redis and PostgreSQL), on made-up rows, so that each can be seen to fail: tasks must run
on both workers, two runs of a source must never overlap (the per-source lock), and the
warehouse must end as the one-worker run's.

The run itself takes several minutes (Airflow's components, two phases of 38 tasks), so
it is not part of `make test`: CI runs `make scaleout` after the suite, and it exits 1
when any of these checks fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.scaleout import (
    TRIGGERS_PER_DAG,
    WORKERS,
    Phase,
    ScaleoutResult,
    SourceRun,
    TaskRun,
    differences,
    overlapping,
)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def run(source: str, run_id: int, start_s: float, end_s: float | None) -> SourceRun:
    return SourceRun(source, run_id, T0 + timedelta(seconds=start_s),
                     None if end_s is None else T0 + timedelta(seconds=end_s), "succeeded",
                     ("events",))


# --------------------------------------------------------- the checks, on made-up rows


def test_runs_of_one_source_one_after_the_other_do_not_overlap() -> None:
    assert overlapping([run("grid", 1, 0, 5), run("grid", 2, 5, 9), run("city", 3, 1, 8)]) == []


@pytest.mark.parametrize("first, second", [
    (run("grid", 1, 0, 5), run("grid", 2, 4, 9)),  # starts before the first finished
    (run("grid", 1, 0, 10), run("grid", 2, 6, 7)),  # runs inside the first
])
def test_overlapping_runs_of_one_source_are_found(first: SourceRun, second: SourceRun) -> None:
    found = overlapping([second, first])
    assert len(found) == 1 and found[0].startswith("grid: run 1 ")


def test_a_run_left_open_overlaps_the_next() -> None:
    assert overlapping([run("grid", 1, 0, None), run("grid", 2, 9, 10)])


def test_warehouses_that_differ_are_told_apart() -> None:
    a = {"core.event": (10, 9, "abc"), "core.person": (3, 3, "def")}
    assert differences(a, dict(a)) == []
    assert differences(a, {**a, "core.event": (10, 9, "abd")}) == [
        "core.event: (10, 9, 'abc') with two workers, (10, 9, 'abd') with one"]
    assert differences(a, {"core.event": a["core.event"]})[0].startswith("core.person:")


def test_a_result_with_tasks_on_one_worker_only_is_a_problem() -> None:
    digest = {"core.event": (1, 1, "x")}
    runs = [run("grid", i, 2 * i, 2 * i + 1) for i in range(TRIGGERS_PER_DAG)]
    tasks = [TaskRun("hub_ingest_grid", "r", "events", WORKERS[0], "success", 1.0)]
    result = ScaleoutResult([Phase("two workers", WORKERS, "a", 1.0, tasks, runs, digest),
                             Phase("one worker", WORKERS[:1], "b", 1.0, tasks, runs, digest)],
                            {"grid": 1})
    assert result.problems() == [f"no task ran on {WORKERS[1]}"]
