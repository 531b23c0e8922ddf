"""数字城管 end to end: the simulator's real database (SQLite file; MariaDB where it
runs) read over SQLAlchemy into the real test PostgreSQL."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from psycopg import sql

from base.settings import load_sources, secret_env_var
from connectors.citymgmt import CityMgmt
from hub.pipeline import RunSummary, run_source
from sandbox.city import City
from sandbox.citymgmt import OPEN, CityMgmtData, CityMgmtDatabase, mariadb_reachable
from tests.support.warehouse_checks import assert_one_current_row_each, findings, quarantined

SIM_END = datetime(2026, 11, 20)
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306"
# (core table, entity, stream, simulator rows)
TABLES = (("core.event", "event", "cases"), ("core.thing", "thing", "components"),
          ("core.grid", "grid", "unit_grids"))

Started = tuple[str, Path, CityMgmtDatabase]


@pytest.fixture(scope="module")
def base_data() -> CityMgmtData:
    """~15 cases a day over three days (plus 12345 transfers), 300 components, 138 grids."""
    return CityMgmtData(City("2111", scale=0.03), days=3, end=SIM_END)


def write_sources(path: Path, name: str, url: str, **settings: object) -> Path:
    config = {
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
        "sources": {name: {"connector": "citymgmt", "settings": {
            "url": url, "chunk_rows": 40, "start_from": "2000-01-01 00:00:00", **settings}}},
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@contextmanager
def _platforms(folder: Path, monkeypatch: pytest.MonkeyPatch, data: CityMgmtData
               ) -> Iterator[Callable[..., Started]]:
    from base.settings import settings

    started: list[CityMgmtDatabase] = []
    monkeypatch.setenv("HUB_BATCH_ROWS", "400")
    settings.cache_clear()

    def start(backend: str = "sqlite", **source_settings: object) -> Started:
        name = f"citymgmt_{uuid.uuid4().hex[:8]}"
        url = (f"sqlite:///{folder / name}.sqlite" if backend == "sqlite" else MARIADB_ADMIN)
        db = CityMgmtDatabase(copy.deepcopy(data), url).start()
        started.append(db)
        if db.reader_password:
            monkeypatch.setenv(secret_env_var(name, "password"), db.reader_password)
        return name, write_sources(folder / f"{name}.yaml", name, db.reader_url,
                                   **source_settings), db

    try:
        yield start
    finally:
        settings.cache_clear()
        for db in started:
            db.stop()


@pytest.fixture
def citymgmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_data: CityMgmtData,
             warehouse: str) -> Iterator[Callable[..., Started]]:
    """Start a 数字城管 database and configure a source for it: returns a factory."""
    with _platforms(tmp_path, monkeypatch, base_data) as start:
        yield start


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, base_data: CityMgmtData, warehouse: str
           ) -> Iterator[tuple[str, Path, CityMgmtDatabase, RunSummary]]:
    """One platform loaded once, for the tests that only look (they must not change it)."""
    with pytest.MonkeyPatch.context() as monkeypatch, \
            _platforms(tmp_path_factory.mktemp("citymgmt"), monkeypatch, base_data) as start:
        source, config, sim = start()
        yield source, config, sim, run_source(source, config)


def settle() -> None:
    """Let the second of the last change pass: the connector leaves the current second
    (still being written on the platform) to the next run."""
    time.sleep(1.1)


def current(db: psycopg.Connection, source: str, table: str, column: str = "record_hash"
            ) -> dict[str, Any]:
    rows = db.execute(sql.SQL("SELECT source_id, {} FROM {} WHERE source_system = %s"
                              " AND valid_to IS NULL").format(
        sql.Identifier(column), sql.Identifier(*table.split("."))), (source,)).fetchall()
    return dict(rows)


def platform_rows(sim: CityMgmtDatabase, stream: str) -> dict[str, dict[str, Any]]:
    return {"cases": sim.data.cases, "components": sim.data.components,
            "unit_grids": sim.data.unit_grids}[stream]


def assert_loaded_exactly(db: psycopg.Connection, source: str, sim: CityMgmtDatabase) -> None:
    for table, entity, stream in TABLES:
        loaded, held = current(db, source, table), quarantined(db, source, entity)
        assert set(loaded) | set(held) == set(platform_rows(sim, stream)), table
        assert not set(loaded) & set(held), table


def test_first_run_loads_every_row_and_counts_reconcile(db, loaded):
    source, config, sim, summary = loaded
    total = sum(len(platform_rows(sim, s)) for _, _, s in TABLES)
    assert summary.outcome == "succeeded"
    assert summary.extracted == total
    assert summary.extracted == summary.loaded + summary.quarantined
    assert_loaded_exactly(db, source, sim)
    # Every department the cases and components name, once, under the platform's code.
    departments = current(db, source, "core.organization", "org_name")
    named = {r[f"dept_code{i}"]: r[f"dept_name{i}"] for r in sim.data.components.values()
             for i in (1, 2, 3)}
    named |= {r["dept_code"]: r["dept_name"] for r in sim.data.cases.values() if r["dept_code"]}
    assert departments == named
    run = db.execute("SELECT outcome, extracted, loaded, quarantined FROM ops.run"
                     " WHERE run_id = %s", (summary.run_id,)).fetchone()
    assert run == ("succeeded", summary.extracted, summary.loaded, summary.quarantined)


def test_running_again_adds_no_duplicate(db, loaded):
    source, config, _, _ = loaded
    again = run_source(source, config)
    assert (again.inserted, again.updated) == (0, 0)
    assert_one_current_row_each(
        db, source, ("core.event", "core.thing", "core.grid", "core.organization"))


def test_updated_cases_and_components_arrive_with_history(db, citymgmt):
    source, config, sim = citymgmt()
    run_source(source, config)
    before = current(db, source, "core.event", "status")
    cases = [no for no in sim.advance(12) if no in before]
    components = sim.advance_components(5)
    new = sim.add_cases(3)
    assert cases and components
    settle()
    second = run_source(source, config)
    after = current(db, source, "core.event", "status")
    for no in cases:
        assert after[no] != before[no], no
        versions = db.execute("SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL)"
                              " FROM core.event WHERE source_system = %s AND source_id = %s",
                              (source, no)).fetchone()
        assert versions == (2, 1)
    assert set(new) <= set(after)
    states = current(db, source, "core.thing", "state")
    for obj_id in components:
        if obj_id in states:
            assert states[obj_id] == sim.data.components[obj_id]["obj_state"]
    assert second.inserted >= len(new)
    assert_loaded_exactly(db, source, sim)


def test_statuses_and_lifecycle_times_map_onto_the_hub(db, loaded):
    source, _, sim, _ = loaded
    hub = {"上报": "reported", "立案": "accepted", "派遣": "dispatched", "处置": "in_progress",
           "核查": "resolved", "结案": "closed", "作废": "cancelled"}
    rows = db.execute("SELECT source_id, status, to_char(closed_at AT TIME ZONE 'Asia/Shanghai',"
                      " 'YYYY-MM-DD HH24:MI:SS'), to_char(accepted_at AT TIME ZONE"
                      " 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS') FROM core.event"
                      " WHERE source_system = %s AND valid_to IS NULL", (source,)).fetchall()
    assert rows
    for no, status, closed_at, accepted_at in rows:
        case = sim.data.cases[no]
        assert status == hub.get(case["status"], "unmapped"), no
        assert accepted_at == case["register_time"]
        if status == "closed":
            assert closed_at == (case["close_time"] or case["check_time"])
        else:
            assert closed_at is None


def test_planted_defects_are_quarantined_or_flagged(db, citymgmt):
    source, config, sim = citymgmt()
    run_source(source, config)
    data = sim.data

    def planted(truth: dict[str, Any], defect: str) -> list[str]:
        found = [k for k, t in truth.items() if defect in t.defects]
        assert found, f"the simulator planted no {defect}"
        return found

    held, flagged = quarantined(db, source, "event"), findings(db, source, "event")
    for no in planted(data.case_truth, "close_before_register"):
        assert held.get(no) == "lifecycle_order", no
    for defect, rule in [("unknown_class", "category_mapped"), ("unknown_status", "status_mapped"),
                         ("coords_zero", "coordinates_in_city"),
                         ("coords_garbage", "coordinates_in_city"),
                         ("coords_swapped", "coordinates_in_city"),
                         ("retired_division", "division_code_known")]:
        for no in planted(data.case_truth, defect):
            assert no in held or rule in flagged.get(no, set()), (defect, no)
    # Nothing clean is held back.
    clean = {no for no, t in data.case_truth.items() if not t.defects}
    assert not clean & set(held)

    things, thing_findings = quarantined(db, source, "thing"), findings(db, source, "thing")
    for obj_id in planted(data.component_truth, "malformed_obj_id"):
        assert "thing_code_format" in thing_findings.get(obj_id, set()), obj_id
    for obj_id in planted(data.component_truth, "retired_division"):
        assert "division_code_known" in thing_findings.get(obj_id, set()), obj_id
    assert not things
    grid_findings = findings(db, source, "grid")
    for code in planted(data.grid_truth, "retired_division"):
        assert "division_code_known" in grid_findings.get(code, set()), code

    # Grid codes are judged against the loaded grids: the first run read the cases
    # with the rule context of its start (no grids yet). Cases that move on are read
    # again, now against the unit grids the first run loaded.
    unknown = planted(data.case_truth, "unknown_grid")
    sim.touch(unknown)
    settle()
    run_source(source, config)
    flagged = findings(db, source, "event")
    for no in unknown:
        assert "grid_code_known" in flagged.get(no, set()), no
    reasons = db.execute("SELECT reason FROM quality.quarantine WHERE source_system = %s",
                         (source,)).fetchall()
    assert all(r[0] for r in reasons)


def test_free_text_is_stored_verbatim_and_transfers_name_their_order(db, loaded):
    source, _, sim, _ = loaded
    stored = current(db, source, "core.event", "description")
    hostile = [no for no, t in sim.data.case_truth.items() if "hostile_text" in t.defects]
    assert hostile
    for no in hostile:
        assert stored[no] == sim.data.cases[no]["description"]
    names = current(db, source, "core.thing", "name")
    for obj_id, t in sim.data.component_truth.items():
        if "hostile_text" in t.defects:
            assert names[obj_id] == sim.data.components[obj_id]["obj_name"]
    transfers = {no: t.hotline_order_no for no, t in sim.data.case_truth.items()
                 if t.hotline_order_no}
    assert transfers
    channels = current(db, source, "core.event", "channel")
    for no, order_no in transfers.items():
        if no in stored:
            assert order_no in stored[no] and channels[no] == "12345转办"


def test_coordinates_land_where_the_city_put_them(db, loaded):
    source, _, sim, _ = loaded
    points = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT source_id, longitude, latitude FROM core.event WHERE source_system = %s"
        " AND valid_to IS NULL", (source,))}
    checked = 0
    for no, t in sim.data.case_truth.items():
        if no in points and not t.defects & {"coords_zero", "coords_garbage", "coords_swapped"}:
            lon, lat = points[no]
            # 1e-6° is about 10 cm; the platform stores millimetres.
            assert abs(lon - t.point_wgs84[0]) < 1e-6 and abs(lat - t.point_wgs84[1]) < 1e-6
            checked += 1
    assert checked > 20
    # Unit grid boundaries come back to the City's grid corners, in WGS84.
    from shapely import from_wkt

    grids = current(db, source, "core.grid", "boundary_wkt")
    city = sim.data.city.grid_by_code
    for code, truth in sim.data.grid_truth.items():
        x0, y0, x1, y1 = from_wkt(grids[code]).bounds
        assert max(abs(a - b) for a, b in zip((x0, y0, x1, y1), city[truth.city_grid_code].bbox,
                                              strict=True)) < 1e-3
    areas = current(db, source, "core.grid", "area_m2")
    assert all(areas[c] == pytest.approx(t.area_m2) for c, t in sim.data.grid_truth.items())


mariadb = pytest.mark.skipif(not mariadb_reachable(),
                             reason="no MariaDB/MySQL server on 127.0.0.1:3306")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mariadb", marks=mariadb)])
def test_rows_updated_between_chunks_are_neither_lost_nor_read_twice(citymgmt, backend):
    source, config, sim = citymgmt(backend, chunk_rows=10)
    cfg = load_sources(config)
    connector = CityMgmt(cfg.source(source), cfg.city)
    stream = CityMgmt.stream("cases")
    extracts = connector.extract(stream, None)
    first = next(extracts)
    read_first = set(first.records["case_no"].to_pylist())
    # Some already read, some not yet: both move on (update_time = now).
    still_open = sorted(no for no, r in sim.data.cases.items() if r["status"] in OPEN)
    changed = sim.advance(0, case_nos=[no for no in still_open if no in read_first][:2]
                          + [no for no in still_open if no not in read_first][::3])
    assert set(changed) & read_first and set(changed) - read_first
    rest = list(extracts)
    keys = [k for e in [first, *rest] for k in e.records["case_no"].to_pylist()]
    assert len(keys) == len(set(keys)), "a row was read twice in one run"
    assert set(sim.data.cases) - set(changed) <= set(keys)
    # The rows that moved past the window come with the next run.
    settle()
    state = rest[-1].cursor
    later = [k for e in connector.extract(stream, state) for k in e.records["case_no"].to_pylist()]
    assert set(changed) <= set(later)
    assert set(keys) | set(later) == set(sim.data.cases)


def test_reads_in_true_keyset_chunks(citymgmt, monkeypatch):
    source, config, sim = citymgmt(chunk_rows=25)
    statements: list[tuple[str, Any]] = []
    make_engine = CityMgmt.engine

    def watched(self: CityMgmt) -> sa.Engine:
        engine = make_engine(self)
        sa.event.listen(engine, "before_cursor_execute",
                        lambda conn, cursor, statement, params, *a: statements.append(
                            (statement, params)))
        return engine

    monkeypatch.setattr(CityMgmt, "engine", watched)
    cfg = load_sources(config)
    connector = CityMgmt(cfg.source(source), cfg.city)
    extracts = list(connector.extract(CityMgmt.stream("components"), None))
    selects = [(s, p) for s, p in statements if "FROM t_component" in s and "ORDER BY" in s]
    assert len(selects) == len(extracts) >= len(sim.data.components) // 25
    # Every chunk starts after the last row of the one before, never at an offset
    # (SQLite's dialect always renders an OFFSET: it must stay 0).
    assert all("LIMIT" in s and ("OFFSET" not in s or p[-1] == 0) for s, p in selects)
    assert all("t_component.update_time > " in s for s, _ in selects[1:])
    assert all(e.records.num_rows <= 25 for e in extracts)
    keys = [k for e in extracts for k in e.records["obj_id"].to_pylist()]
    assert sorted(keys) == sorted(sim.data.components)


def test_a_password_in_the_url_is_refused(citymgmt, tmp_path):
    source, _, sim = citymgmt()
    url = sa.make_url(sim.reader_url).set(drivername="mysql+pymysql", username="u",
                                          password="p", host="h", database="d")
    config = write_sources(tmp_path / "leak.yaml", source, url.render_as_string(hide_password=False))
    with pytest.raises(ValueError, match="carries a password") as refused:
        run_source(source, config)
    assert "u:p@" not in str(refused.value)


@mariadb
def test_mariadb_first_and_second_run_with_a_password(db, citymgmt):
    source, config, sim = citymgmt("mariadb")
    assert sim.reader_password and sim.reader_password not in config.read_text()
    first = run_source(source, config)
    assert first.extracted == first.loaded + first.quarantined
    assert_loaded_exactly(db, source, sim)
    stored = current(db, source, "core.event", "description")
    for no, t in sim.data.case_truth.items():
        if "hostile_text" in t.defects and no in stored:
            assert stored[no] == sim.data.cases[no]["description"]
    changed = sim.advance(8)
    settle()
    second = run_source(source, config)
    assert second.updated == len(changed)
    after = current(db, source, "core.event", "source_status")
    assert all(after[no] == sim.data.cases[no]["status"] for no in changed)


@mariadb
def test_mariadb_wrong_password_fails_the_run_clearly(db, citymgmt, monkeypatch):
    source, config, _ = citymgmt("mariadb")
    monkeypatch.setenv(secret_env_var(source, "password"), "wrong")
    with pytest.raises(Exception, match="Access denied"):
        run_source(source, config)
    outcome = db.execute("SELECT outcome FROM ops.run WHERE source_system = %s",
                         (source,)).fetchone()
    assert outcome == ("failed",)
