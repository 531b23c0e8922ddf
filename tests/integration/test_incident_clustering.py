"""Incident clustering in a warehouse of the test's own: incremental runs and full
rebuilds agree on every key, and a simulated city — all five platforms loaded by the real
pipeline — is clustered as its simulators' truth says.

The simulated city is small by default; the same test measures a larger one, on other
seeds, and prints the scores (`-s`):

    HUB_EVAL_SCALE=0.05 HUB_EVAL_DAYS=3 HUB_EVAL_SEEDS=20261124,777 \\
        .venv/bin/pytest tests/integration/test_incident_clustering.py -k simulated -s
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from base.settings import load_sources, settings
from hub.pipeline import run_source
from link.evaluate import evaluate, format_evaluation
from link.incidents import cluster_incidents
from link.orgs import link_organizations
from sandbox.city import City
from sandbox.demo import write_simulated_sources
from sandbox.platform import DemoPlatform, start
from sandbox.truth import write_truth
from tests.integration.test_org_incident_linking import (
    POTHOLE,
    VENDOR_1,
    VENDOR_2,
    add_event,
    at,
    cluster_keys,
)
from tests.support.own_warehouse import migrated
from warehouse.db import Role, connect
from warehouse.migrate import record_city_settings

REPO = Path(__file__).resolve().parents[2]
VENDOR_3 = "兴隆大街幸福小区北门那里又有人摆摊卖水果，人行道被占了"
# The simulated city: its size, days and seeds (HUB_EVAL_* to measure a larger one).
SCALE = float(os.environ.get("HUB_EVAL_SCALE", "0.01"))
DAYS = int(os.environ.get("HUB_EVAL_DAYS", "2"))
SEEDS = [int(s) for s in os.environ.get("HUB_EVAL_SEEDS", "20261124,777").split(",")]
# The grid platform's residents and houses say nothing of incidents and take the longest.
GRID_STREAMS = ("grids", "orgs", "events")


@pytest.fixture
def own_warehouse(new_database: Callable[[str], str],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    """The hub pointed at a migrated warehouse of the test's own (clustering reads every
    current event: no other test's reports beside these); its owner's connection."""
    with migrated(new_database("incidents"), monkeypatch) as conn:
        yield conn


def test_keys_agree_across_incremental_runs_and_full_rebuilds(own_warehouse):
    db = own_warehouse
    hot, grid, cam, cm = "hotline12345", "gridmgmt", "video", "citymgmt"
    order = "2111310503000017"
    # The first day: a vendor reported twice, a pothole once.
    add_event(db, hot, "H1", at(5, 3, 9), category="SR01", text=VENDOR_1)
    add_event(db, grid, "G1", at(5, 3, 9, 20), category="JM03", text=VENDOR_2, east_m=60,
              channel="网格员")
    add_event(db, hot, order, at(5, 3, 11), category="SZ01", text=POTHOLE, east_m=3000)
    with connect(Role.LOADER) as loader:
        first_run = cluster_incidents(loader)
    assert first_run.mode == "full"  # no run before
    first = cluster_keys(db, hot, grid)
    assert first[f"{hot}/H1"] is not None and first[f"{hot}/H1"] == first[f"{grid}/G1"]
    # Loaded hours before the next run, as a day's loads are.
    db.execute("UPDATE core.event SET valid_from = valid_from - interval '3 hours'")

    # A week later: the vendor is back (a camera alarms twice, a caller says so in other
    # words: a new incident), and the pothole order, transferred to 数字城管, is a case.
    add_event(db, cam, "V1", at(5, 10, 17), category="SR01", channel="视频", title="占道经营",
              text="AI告警 置信度 0.93；设备 21110300001320000001", north_m=20)
    add_event(db, cam, "V2", at(5, 10, 17, 15), category="SR01", channel="视频",
              title="占道经营", text="AI告警 置信度 0.88；设备 21110300001320000001", north_m=25)
    add_event(db, hot, "H2", at(5, 10, 18), category="SR01", text=VENDOR_3, north_m=40)
    add_event(db, cm, "C1", at(5, 10, 9), category="SZ01", east_m=3000,
              text=f"【12345转办】工单号：{order}。{POTHOLE}", channel="12345转办")
    # A web message about the vendor: no coordinates, no grid; nothing places it yet.
    message = "2111310510000021"
    add_event(db, hot, message, at(5, 10, 18, 30), category="SR01", text=VENDOR_3,
              channel="网站", located=False, grid=None)
    with connect(Role.LOADER) as loader:
        incremental = cluster_incidents(loader)
    # Only the new reports are decided; of the first day only the order a case names is
    # read (and stands).
    assert (incremental.mode, incremental.decided, incremental.events) == ("incremental", 5, 6)
    assert cluster_keys(db, hot)[f"{hot}/{message}"] is None
    db.execute("UPDATE core.event SET valid_from = valid_from - interval '3 hours'")
    # Transferred to 数字城管 and located there, beside the vendor: the case joins the
    # vendor's incident and brings the message with it.
    add_event(db, cm, "C2", at(5, 10, 19), category="SR01", north_m=30, channel="12345转办",
              text=f"【12345转办】工单号：{message}。{VENDOR_3}")
    with connect(Role.LOADER) as loader:
        assert cluster_incidents(loader).mode == "incremental"
    keys = cluster_keys(db, hot, grid, cam, cm)
    vendor = (f"{hot}/H1", f"{grid}/G1")
    assert [keys[k] for k in vendor] == [first[k] for k in vendor]  # what stood, stands
    assert keys[f"{cam}/V1"] is not None
    assert keys[f"{cam}/V1"] == keys[f"{cam}/V2"] == keys[f"{hot}/H2"] != first[f"{hot}/H1"]
    assert keys[f"{cm}/C2"] == keys[f"{hot}/{message}"] == keys[f"{cam}/V1"]
    assert keys[f"{cm}/C1"] == keys[f"{hot}/{order}"] is not None

    with connect(Role.LOADER) as loader:
        again = cluster_incidents(loader, full=True)
    assert again.mode == "full" and again.events_updated == 0
    assert cluster_keys(db, hot, grid, cam, cm) == keys

    # From nothing: the same keys (a cluster's key comes from its lead report).
    db.execute("UPDATE core.event SET cluster_key = NULL")
    db.execute("DELETE FROM core.incident_cluster")
    with connect(Role.LOADER) as loader:
        cluster_incidents(loader, full=True)
    assert cluster_keys(db, hot, grid, cam, cm) == keys
    row = db.execute("SELECT lead_source_id, members, evidence -> 'members'"
                     " FROM core.incident_cluster WHERE cluster_key = %s",
                     (keys[f"{cam}/V1"],)).fetchone()
    assert row is not None and row[:2] == ("V1", 5)
    assert {m["source_id"]: m["rule"] for m in row[2]} == {
        "V1": "lead", "V2": "near", "H2": "near", "C2": "near", message: "transfer"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_simulated_city_is_clustered_as_its_truth_says(seed, own_warehouse, tmp_path,
                                                        monkeypatch, sim_clock):
    """Every platform of a simulated city (incidents reported through two or three
    channels, transfers, a camera alarming again) loaded by the pipeline, linked, and
    scored against the simulators' truth: the issue's targets, F1 ≥ 0.95."""
    config_path = REPO / "sources.yaml"
    config = load_sources(config_path)
    with connect(Role.OWNER) as conn:
        record_city_settings(conn, config.city)
    city = City(config.city.code, seed=seed, scale=SCALE)
    platforms: dict[str, DemoPlatform] = {}
    try:
        for src in config.sources.values():
            if src.enabled:
                platforms[src.name] = start(src.connector, city, DAYS, tmp_path / src.name,
                                            src.name)
        for platform in platforms.values():
            for name, value in platform.env.items():
                monkeypatch.setenv(name, value)
        sources = write_simulated_sources(
            config_path, {n: p.settings for n, p in platforms.items()},
            tmp_path / "sources.yaml", "# the simulated city\n")
        settings.cache_clear()
        for name in platforms:
            run_source(name, sources, streams=GRID_STREAMS if name == "gridmgmt" else None)
        truth = tmp_path / "truth.csv"
        write_truth(platforms, truth)
    finally:
        for platform in platforms.values():
            platform.stop()
    with connect(Role.LOADER) as loader:
        link_organizations(loader)
        loader.commit()
        cluster_incidents(loader)
    scores = evaluate(own_warehouse, truth)
    print(f"\nseed {seed}, scale {SCALE}, {DAYS} days\n{format_evaluation(scores)}")
    events, orgs = scores.event, scores.organization
    assert events.pairs.true_pairs > 0 and events.not_in_truth == 0
    assert events.pairwise.f1 >= 0.95 and events.bcubed.f1 >= 0.95, format_evaluation(scores)
    assert orgs.pairwise.f1 >= 0.95, format_evaluation(scores)
