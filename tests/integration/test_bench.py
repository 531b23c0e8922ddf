"""The peer benchmark's own code paths, on a few thousand rows: the raw COPY and the hub
run batch by batch in their own processes, the table prints, the database goes.
(dlt, the peer, is not run here: `make bench` installs and runs it.)"""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from bench import peer_bench

pytestmark = pytest.mark.slow


def test_the_bench_loads_both_ways_and_prints_the_ratio(warehouse, tmp_path, capsys):
    name = f"hub_bench_test_{os.getpid()}"
    out = tmp_path / "bench.json"
    code = peer_bench.main(["--rows", "2000", "--chunk", "1000", "--kind", "residents",
                            "--contenders", "copy,hub", "--database", name, "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "hub / raw COPY" in printed
    results = {r["contender"]: r for r in json.loads(out.read_text())}
    hub = results["hub"]["loads"]
    # The second load: 10 % changed, 5 % new, 5 % of the first absent (a snapshot closes them).
    assert hub["first"]["counts"]["inserted"] == 2000
    assert (hub["second"]["counts"]["updated"], hub["second"]["counts"]["inserted"],
            hub["second"]["counts"]["closed"]) == (200, 100, 100)
    assert results["copy"]["loads"]["second"]["rows"] == 2000
    # The caller's warehouse is the configured one again; the bench's database is gone.
    assert os.environ["HUB_WAREHOUSE_URL"] == warehouse
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() == (0,)
