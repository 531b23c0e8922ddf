"""Ground truth and evaluation end to end: a tiny city's grid management, 12345 and 综治
platforms loaded by the real pipeline, their truth written by the simulators, the
warehouse's keys scored against it."""

from __future__ import annotations

import csv
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from base.settings import secret_env_var, settings
from hub.pipeline import run_source
from link.evaluate import KEYS, evaluate, format_evaluation, read_truth
from sandbox.city import City
from sandbox.gridmgmt import GridData
from sandbox.gridmgmt_server import GridPlatform
from sandbox.hotline12345 import HotlineData
from sandbox.hotline_server import HotlineServer
from sandbox.truth import write_truth
from sandbox.zongzhi import ZongzhiData
from sandbox.zongzhi_server import ZongzhiServer
from tests.support.hotline import HOTLINE_KEY, HOTLINE_SECRET, SIM_END
from tests.support.sources import write_sources_file

END = datetime.fromisoformat(SIM_END)
GRID_TOKEN, ZONGZHI_KEY = "truth-grid-token", "truth-zongzhi-key"


def _set_keys(db: psycopg.Connection, truth: dict[str, dict[tuple[str, str], str]],
              perfect: bool) -> None:
    """Every key NULL, or (perfect) every key the record's truth id."""
    for entity, (model, key) in KEYS.items():
        table = sql.Identifier(*model.table.split("."))
        systems = sorted({s for s, _ in truth[entity]})
        db.execute(sql.SQL("UPDATE {} SET {} = NULL WHERE source_system = ANY(%s)").format(
            table, sql.Identifier(key)), (systems,))
        if perfect:
            with db.cursor() as cur:
                cur.executemany(sql.SQL(
                    "UPDATE {} SET {} = %s WHERE source_system = %s AND source_id = %s"
                    " AND valid_to IS NULL").format(table, sql.Identifier(key)),
                    [(t, s, i) for (s, i), t in truth[entity].items()])


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse: str, sim_clock):
    """A tiny city's three platforms, loaded; the truth written to truth.csv."""
    city = City("2111", scale=0.001)
    hotline_data = HotlineData(city, days=2, end=END)
    suffix = uuid.uuid4().hex[:6]
    names = {"grid": f"tg_grid_{suffix}", "hotline": f"tg_12345_{suffix}",
             "zongzhi": f"tg_zz_{suffix}"}
    grid = GridPlatform(GridData(city, days=2, end=END), tmp_path / "landing",
                        api_token=GRID_TOKEN).start()
    hotline = HotlineServer(hotline_data, HOTLINE_KEY, HOTLINE_SECRET).start()
    zongzhi = ZongzhiServer(ZongzhiData(city, days=2, end=END,
                                        hotline=HotlineData(city, days=2, end=END)),
                            ZONGZHI_KEY).start()
    try:
        grid.landing.drop_all()
        monkeypatch.setenv(secret_env_var(names["grid"], "api_token"), GRID_TOKEN)
        monkeypatch.setenv(secret_env_var(names["hotline"], "app_key"), HOTLINE_KEY)
        monkeypatch.setenv(secret_env_var(names["hotline"], "app_secret"), HOTLINE_SECRET)
        monkeypatch.setenv(secret_env_var(names["zongzhi"], "api_key"), ZONGZHI_KEY)
        settings.cache_clear()
        path = write_sources_file(tmp_path / "sources.yaml", {
            names["grid"]: {"connector": "gridmgmt", "settings": {
                "folder": str(grid.folder), "base_url": grid.url, "timeout_seconds": 5}},
            names["hotline"]: {"connector": "hotline12345", "settings": {
                "base_url": hotline.url, "start_from": "2026-11-01 00:00:00"}},
            names["zongzhi"]: {"connector": "zongzhi", "settings": {
                "base_url": zongzhi.url, "start_from": "2026-11-01T00:00:00+08:00"}},
        })
        for name in names.values():
            run_source(name, path)
        truth_csv = tmp_path / "truth.csv"
        write_truth({names["grid"]: grid, names["hotline"]: hotline,
                     names["zongzhi"]: zongzhi}, truth_csv)
        yield names, truth_csv
    finally:
        settings.cache_clear()
        zongzhi.stop()
        hotline.stop()
        grid.stop()


def test_the_truth_keys_every_loaded_record_and_scores_the_keys(loaded, db):
    names, truth_csv = loaded
    truth = read_truth(truth_csv)
    with open(truth_csv, encoding="utf-8", newline="") as f:
        systems = {(r["entity"], r["source_system"]) for r in csv.DictReader(f)}
    assert {("person", n) for n in names.values()} <= systems  # residents, callers, parties
    assert {("event", n) for n in names.values()} <= systems

    _set_keys(db, truth, perfect=False)
    nothing = evaluate(db, truth_csv)
    for ev in nothing:
        # The truth keys every record the hub holds: the keys derived from personal data
        # (resident:, caller:, party:) are the hub's own.
        assert ev.records > 0 and ev.not_in_truth == 0, ev
    people, events = nothing.person, nothing.event
    # People on two platforms (a resident who calls 12345, a party to a dispute) and
    # incidents reported through two channels: true pairs, none found with NULL keys.
    assert people.pairs.true_pairs > 0 and events.pairs.true_pairs > 0
    assert people.pairs.predicted_pairs == 0 and people.pairwise.precision == 1.0
    assert people.pairwise.recall == 0.0 and people.pairwise.f1 == 0.0
    assert events.pairwise.recall == 0.0 and events.bcubed.precision == 1.0
    assert events.bcubed.recall < 1.0
    assert people.predicted_clusters == people.records  # every record alone
    assert "person" in format_evaluation(nothing)

    _set_keys(db, truth, perfect=True)
    perfect = evaluate(db, truth_csv)
    for ev in perfect:
        assert ev.pairwise.precision == ev.pairwise.recall == 1.0, ev
        assert ev.bcubed.precision == ev.bcubed.recall == 1.0, ev
        assert ev.true_clusters == ev.predicted_clusters
