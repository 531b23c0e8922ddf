"""A run killed (SIGKILL) at any point, then rerun, leaves no loss and no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hub.pipeline import run_source

# Where a load can die: before anything is written, inside the transaction after
# the merge, just before commit, between two committed batches, and after the
# last batch but before the run is marked finished.
KILL_POINTS = ["after_extract", "after_merge", "before_commit", "after_commit:2",
               "before_finish"]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_run_then_rerun_loses_nothing_and_duplicates_nothing(db, hotline, point):
    source, config, server = hotline(page_size=50)  # several batches to die between
    env = {**os.environ, "HUB_FAILPOINT": point, "HUB_BATCH_ROWS": "100"}
    killed = subprocess.run([sys.executable, "-m", "hub", "run", source, "--config",
                             str(config)], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    rerun = run_source(source, config)
    assert rerun.outcome == "succeeded"

    orders = set(server.data.orders)
    loaded = [r[0] for r in db.execute("SELECT source_id FROM core.event WHERE source_system = %s"
                                       " AND valid_to IS NULL", (source,))]
    held = [r[0] for r in db.execute("SELECT source_id FROM quality.quarantine WHERE"
                                     " source_system = %s AND entity = 'event' AND state = 'open'",
                                     (source,))]
    assert len(loaded) == len(set(loaded)), "duplicate current rows"
    assert len(held) == len(set(held)), "a record quarantined twice"
    assert set(loaded) | set(held) == orders, "records lost"
    assert not set(loaded) & set(held)
    # Each version of an order was loaded once: nothing beyond one row per order.
    versions = db.execute("SELECT count(*) FROM core.event WHERE source_system = %s",
                          (source,)).fetchone()[0]
    assert versions == len(loaded)
    runs = db.execute("SELECT outcome, extracted = loaded + quarantined FROM ops.run"
                      " WHERE source_system = %s ORDER BY run_id", (source,)).fetchall()
    assert runs[-1] == ("succeeded", True)
    assert runs[0][0] == "abandoned" and all(ok for _, ok in runs)
