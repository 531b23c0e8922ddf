"""The 数字城管 simulator: deterministic, realistic, dirty on purpose, and runnable."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from base.settings import PROJECT_ROOT
from conform.mappings import category_mapping, status_mapping
from sandbox.city import City
from sandbox.citymgmt import (
    CASE_FAMILIES,
    COMPONENT_FAMILIES,
    STATUSES,
    UNKNOWN_STATUSES,
    CityMgmtData,
    CityMgmtDatabase,
    load_classes,
    start_for_demo,
)
from sandbox.hotline12345 import HotlineData

END = datetime(2026, 11, 20)


@pytest.fixture(scope="module")
def data() -> CityMgmtData:
    return CityMgmtData(City("2111", scale=0.04), days=3, end=END)


def test_the_data_is_a_pure_function_of_its_inputs(data):
    again = CityMgmtData(City("2111", scale=0.04), days=3, end=END)
    assert (again.cases, again.components, again.unit_grids) == \
        (data.cases, data.components, data.unit_grids)
    other = CityMgmtData(City("2111", scale=0.04), days=3, end=datetime(2026, 11, 21))
    assert other.cases != data.cases


def test_scale_sets_the_volume():
    small = CityMgmtData(City("2111", scale=0.02), days=1, end=END)
    large = CityMgmtData(City("2111", scale=0.08), days=1, end=END)
    assert 3 * len(small.cases) < len(large.cases)
    assert len(large.components) == 4 * len(small.components)
    assert len(large.unit_grids) == len(large.city.grids)


def test_every_defect_kind_is_planted_and_recorded(data):
    planted = {k for t in data.case_truth.values() for k in t.defects}
    assert {k for family in CASE_FAMILIES for k in family} <= planted
    planted = {k for t in data.component_truth.values() for k in t.defects}
    assert {k for family in COMPONENT_FAMILIES for k in family} | {"retired_division"} <= planted
    for no, t in data.case_truth.items():
        case = data.cases[no]
        if "close_before_register" in t.defects:
            assert case["close_time"] < case["register_time"]
        if "coords_zero" in t.defects:
            assert (case["x"], case["y"]) == (0.0, 0.0)
        if "unknown_grid" in t.defects:
            assert case["grid_code"] not in data.unit_grids


def test_platform_quirks_follow_the_districts(data):
    for code, truth in data.grid_truth.items():
        expected = 14 if truth.city_grid_code.startswith("211122") else 15
        assert len(code) == expected and code.isdigit()
        assert code.startswith("211121") == ("retired_division" in truth.defects)
    long_ids = [i for i in data.components if len(i) == 17 and i.isdigit()]
    assert long_ids and all(i.startswith("211103") for i in long_ids)
    # Cases point at grids and components the platform has.
    for no, case in data.cases.items():
        if "unknown_grid" not in data.case_truth[no].defects:
            assert case["grid_code"] in data.unit_grids
        if case["component_code"]:
            assert case["component_code"] in data.components


def test_transfers_from_12345_name_real_orders(data):
    hotline = HotlineData(data.city, days=3, end=END)
    transfers = {no: t for no, t in data.case_truth.items() if t.hotline_order_no}
    assert len(transfers) >= 5
    for no, t in transfers.items():
        order = hotline.orders[t.hotline_order_no]
        assert t.hotline_order_no in data.cases[no]["description"]
        assert data.cases[no]["source"] == "12345转办"
        assert data.cases[no]["report_time"] > order["acceptTime"]
        assert t.grid_code == hotline.truth[t.hotline_order_no].grid_code


def test_the_database_moves_on(tmp_path, data):
    import copy

    with CityMgmtDatabase(copy.deepcopy(data), f"sqlite:///{tmp_path / 'cm.sqlite'}") as db:
        with db.engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM t_case")).scalar() == len(data.cases)
        changed = db.advance(5)
        assert changed
        with db.engine.connect() as c:
            rows = dict(c.execute(sa.text("SELECT case_no, status FROM t_case")).fetchall())
        assert all(rows[no] == db.data.cases[no]["status"] for no in changed)
        assert len(db.add_cases(2)) == 2


def test_start_for_demo_gives_settings_env_advance_and_stop(tmp_path):
    demo = start_for_demo(City("2111", scale=0.01), 2, tmp_path)
    try:
        assert demo.settings["url"].startswith("sqlite:///")
        assert demo.env == {}
        assert demo.advance() > 0
    finally:
        demo.stop()
    assert not (tmp_path / "citymgmt.sqlite").exists()


def test_standalone_prints_its_url_and_stops(tmp_path):
    target = tmp_path / "standalone.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.citymgmt", "--url", f"sqlite:///{target}",
         "--scale", "0.01", "--days", "1"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url == f"sqlite:///{target}"
        engine = sa.create_engine(url)
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM t_unit_grid")).scalar() > 0
        engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert Path(target).exists() is False


def test_the_mapping_files_cover_the_catalogue_and_nothing_else():
    classes = {c.key: c for c in load_classes()}
    mapped = category_mapping("citymgmt")
    assert set(mapped) == {k for k, c in classes.items() if c.in_hub_mapping}
    assert set(status_mapping("citymgmt")) == set(STATUSES)
    assert not set(status_mapping("citymgmt")) & set(UNKNOWN_STATUSES)
