"""Grid management end to end: file drops in a real folder and the events API over real
HTTP, into the real test PostgreSQL, checked against the simulator's ground truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conform.gridmgmt import party_key
from hub.pipeline import RunSummary, run_source
from sandbox.city import City
from sandbox.gridmgmt import SPECIAL_GROUPS, GridData, ResidentTruth, file_name
from sandbox.gridmgmt_server import Faults, GridPlatform
from tests.support.sources import write_sources_file
from tests.support.warehouse_checks import assert_one_current_row_each, findings, quarantined

SIM_END = datetime(2026, 11, 20)
SCALE = 0.001  # 1,400 people, 50 grids, 20 events a day
TOKEN = "grid-test-token"
CORE = ("core.grid", "core.house", "core.organization", "core.person", "core.event")
NEVER = r"(?P<date>\d{8})^"  # a file pattern no name matches


def write_sources(path: Path, name: str, settings: dict[str, Any]) -> Path:
    return write_sources_file(path, {name: {"connector": "gridmgmt", "settings": settings}})


@dataclass
class Sources:
    """Sources configured against one running platform."""

    platform: GridPlatform
    folder: Path  # where the sources files go
    mp: pytest.MonkeyPatch

    def add(self, *, token: str = TOKEN, **overrides: Any) -> tuple[str, Path]:
        name = f"grid_{uuid.uuid4().hex[:8]}"
        self.mp.setenv(f"HUB_{name.upper()}_API_TOKEN", token)
        config = write_sources(self.folder / f"{name}.yaml", name, {
            "folder": str(self.platform.folder), "base_url": self.platform.url,
            "page_size": 25, "chunk_rows": 700, "timeout_seconds": 2,
            "backoff_seconds": 0.01, "max_backoff_seconds": 0.1, **overrides})
        return name, config

    def events_only(self, **overrides: Any) -> tuple[str, Path]:
        """A source that reads the events API and finds no files."""
        empty = self.folder / f"empty_{uuid.uuid4().hex[:6]}"
        empty.mkdir()
        return self.add(folder=str(empty), **overrides)


@contextmanager
def running_platform(folder: Path, days: int = 4, drop_all: bool = True) -> Iterator[Sources]:
    from base.settings import settings

    data = GridData(City("2111", scale=SCALE), days=days, end=SIM_END)
    with pytest.MonkeyPatch.context() as mp, \
            GridPlatform(data, folder / "landing", api_token=TOKEN) as platform:
        mp.setenv("HUB_BATCH_ROWS", "1000")
        settings.cache_clear()
        if drop_all:
            platform.landing.drop_all()
        yield Sources(platform, folder, mp)
    settings.cache_clear()


@dataclass
class Loaded:
    sources: Sources
    source: str
    config: Path
    first: RunSummary

    @property
    def platform(self) -> GridPlatform:
        return self.sources.platform

    @property
    def data(self) -> GridData:
        return self.sources.platform.data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, warehouse: str) -> Iterator[Loaded]:
    """Every day's files dropped and one run over them all. A first source loads only the
    grids (and events): the grid rule judges codes against grids already loaded."""
    from zoneinfo import ZoneInfo

    from base import clock

    # The hub's clock at the end of the simulated history: the planted "future" report
    # times stay in the future whatever the date the tests run on (a derived time is
    # never a reason to quarantine, so not_in_future alone holds these events).
    at = SIM_END.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    with running_platform(tmp_path_factory.mktemp("grid")) as sources, clock.pinned(at):
        warm, warm_config = sources.add(file_patterns={
            "residents": NEVER, "houses": NEVER, "orgs": NEVER})
        run_source(warm, warm_config)
        source, config = sources.add()
        yield Loaded(sources, source, config, run_source(source, config))


def current(db: psycopg.Connection, source: str, table: str,
            where: str = "TRUE") -> set[str]:
    rows = db.execute(sql.SQL("SELECT source_id FROM {} WHERE source_system = %s"
                              " AND valid_to IS NULL AND {}").format(
        sql.Identifier(*table.split(".")), sql.SQL(where)), (source,)).fetchall()
    return {r[0] for r in rows}


def residents_on(data: GridData, day: date) -> set[str]:
    """The resident keys that should be current after `day`'s file: everyone living
    there but the few whose impossible birth date sends them to quarantine."""
    return {resident_key(data.city, i) for i in data.truth.present[day]
            if "bad_birth_date" not in data.truth.residents.get(i, ResidentTruth(i)).defects}


def resident_key(city: City, index: int) -> str:
    from base.pii import keyed_hash

    return "resident:" + keyed_hash(city.person(index).id_number)


def file_record(db: psycopg.Connection, source: str, stream: str) -> dict[str, Any]:
    row = db.execute("SELECT state FROM ops.cursor WHERE source_system = %s AND stream = %s",
                     (source, stream)).fetchone()
    return row[0] if row else {}


def outcomes(db: psycopg.Connection, source: str, stream: str) -> dict[str, str]:
    return {n: f["outcome"] for n, f in file_record(db, source, stream)["files"].items()}



def current_hashes(db: psycopg.Connection, source: str, table: str) -> dict[str, str]:
    return dict(db.execute(sql.SQL("SELECT source_id, record_hash FROM {} WHERE source_system"
                                   " = %s AND valid_to IS NULL").format(
        sql.Identifier(*table.split("."))), (source,)).fetchall())


# ------------------------------------------------ one run over every day's files


def test_first_run_loads_every_file_and_event_and_counts_reconcile(db, loaded):
    data, source, summary = loaded.data, loaded.source, loaded.first
    first, second, last = data.delivered[0], data.delivered[1], data.delivered[-1]
    assert summary.outcome == "succeeded"
    assert summary.extracted == summary.loaded + summary.quarantined
    # Residents and houses: every delivered day's file, read whole; the orgs file of the
    # second day is the first day's again, and the grids file never changes.
    expected = (sum(len(data.residents_on(d)) + len(data.houses_on(d)) for d in data.delivered)
                + len(data.orgs_on(first)) + len(data.orgs_on(last))
                + len(data.city.grids) + len(data.events))
    assert summary.extracted == expected
    run = db.execute("SELECT extracted, loaded, quarantined FROM ops.run WHERE run_id = %s",
                     (summary.run_id,)).fetchone()
    assert run == (summary.extracted, summary.loaded, summary.quarantined)

    # Oldest first, each file once, and its fate recorded in the stream's cursor.
    assert outcomes(db, source, "residents") == {
        file_name("residents", d): "loaded" for d in data.delivered}
    assert outcomes(db, source, "orgs") == {file_name("orgs", first): "loaded",
                                            file_name("orgs", second): "identical",
                                            file_name("orgs", last): "loaded"}
    assert sorted(outcomes(db, source, "grids").values()) == ["identical", "identical", "loaded"]
    missing = next(iter(data.truth.missing_dates))
    assert (loaded.platform.folder / f"{file_name('residents', missing)}.part").exists()
    assert all(missing.strftime("%Y%m%d") not in name
               for stream in ("residents", "houses", "orgs", "grids")
               for name in outcomes(db, source, stream))

    # What is current is the last snapshot: exactly the people living there that day.
    residents = current(db, source, "core.person", "role = 'resident'")
    assert residents == residents_on(data, last)
    assert not any(k.removeprefix("resident:").isdigit() for k in residents)  # no clear IDs
    assert current(db, source, "core.grid") == {g.code for g in data.city.grids}
    assert current(db, source, "core.house") == {r["房屋编码"] for r in data.houses_on(last)}
    assert current(db, source, "core.organization") == {
        r["统一社会信用代码"] for r in data.orgs_on(last)}
    future = {e for e, t in data.truth.events.items() if "future_time" in t.defects}
    assert future and current(db, source, "core.event") == set(data.events) - future
    assert db.execute("SELECT count(*) FROM ops.snapshot_seen WHERE source_system = %s",
                      (source,)).fetchone() == (0,)
    grid = db.execute("SELECT boundary_wkt, area_m2, grid_type, street_code FROM core.grid"
                      " WHERE source_system = %s AND source_id = %s AND valid_to IS NULL",
                      (source, data.city.grids[0].code)).fetchone()
    assert grid[0].startswith("POLYGON") and grid[1] > 1e5
    assert (grid[2], grid[3]) == (data.city.grids[0].grid_type, data.city.grids[0].street_code)


def test_one_resident_one_id_whichever_way_a_file_spells_it(db, loaded):
    from base.pii import keyed_hash

    data = loaded.data
    person = data.city.person(data.truth.id_forms)
    spelt = [next(r["公民身份号码"] for r in data.residents_on(day)
                  if r["出生日期"] == person.birth_date.isoformat() and r["姓名"] == person.name)
             for day in data.delivered]
    assert spelt[0] == person.id_number and spelt[0].endswith("X")
    assert spelt[1].endswith("x") and " " in spelt[1]
    assert len(spelt[2]) == 15
    rows = db.execute("SELECT id_number_hash, id_number_masked, valid_to FROM core.person"
                      " WHERE source_system = %s AND source_id = %s",
                      (loaded.source, resident_key(data.city, person.index))).fetchall()
    # One record, never re-versioned by a spelling: the same normalised number each time.
    assert len(rows) == 1 and rows[0][2] is None
    assert rows[0][0] == keyed_hash(person.id_number)
    assert rows[0][1] == person.id_number[:6] + "********" + person.id_number[-4:]


def test_planted_defects_are_quarantined_or_flagged(db, loaded):
    data, city, source = loaded.data, loaded.data.city, loaded.source
    last = data.delivered[-1]
    people = findings(db, source, "person")
    loaded_now = residents_on(data, last)
    bad = [i for i, t in data.truth.residents.items() if "id_bad_check_digit" in t.defects
           and resident_key(city, i) in loaded_now]
    assert bad
    for i in bad:
        assert "citizen_id_valid" in people.get(resident_key(city, i), set()), i
    variants = [i for i, t in data.truth.residents.items()
                if t.defects & {"id_spaces", "id_lower_x", "id_legacy15", "id_forms"}]
    assert variants
    for i in variants:  # spellings of a good number normalise to it: no finding
        assert "citizen_id_valid" not in people.get(resident_key(city, i), set()), i
    tags = dict(db.execute("SELECT source_id, special_groups FROM core.person WHERE"
                           " source_system = %s AND special_groups IS NOT NULL", (source,)))
    assert tags and all(set(t.split(",")) <= set(SPECIAL_GROUPS) for t in tags.values())

    orgs = findings(db, source, "organization")
    in_last = {r["统一社会信用代码"] for r in data.orgs_on(last)}
    for code in in_last:
        invalid = bool(data.truth.orgs[code] & {"uscc_bad_check", "uscc_malformed"})
        assert ("uscc_valid" in orgs.get(code, set())) == invalid, code

    # Blocking defects: quarantined with their rule, and in the snapshot all the same
    # (their records are not closed, see residents_on).
    held_people = quarantined(db, source, "person")
    unborn = [i for i, t in data.truth.residents.items() if "bad_birth_date" in t.defects]
    assert unborn
    for i in unborn:
        assert held_people[resident_key(city, i)] == "value_parseable", i
    held = quarantined(db, source, "event")
    future = [e for e, t in data.truth.events.items() if "future_time" in t.defects]
    assert future and set(held) == set(future)
    assert set(held.values()) <= {"not_in_future", "lifecycle_order"}

    events = findings(db, source, "event")
    stored = {r[0]: r[1:] for r in db.execute(
        "SELECT source_id, grid_code, longitude, latitude, description FROM core.event"
        " WHERE source_system = %s AND valid_to IS NULL", (source,))}
    expect = {"unknown_type": "category_mapped", "unknown_status": "status_mapped",
              "unknown_grid": "grid_code_known"}
    for event_id, truth in data.truth.events.items():
        if event_id in held:
            continue
        for defect, rule in expect.items():
            if defect in truth.defects:
                assert rule in events.get(event_id, set()), (event_id, defect)
        if "no_grid_code" in truth.defects:  # its grid found from its point (loaded first)
            assert stored[event_id][:3] == (truth.grid_code, *truth.point)
        assert stored[event_id][3] == data.events[event_id]["description"]  # verbatim
    assert any("hostile_text" in t.defects for t in data.truth.events.values())

    # Every party an event names is one person record, keyed by a hash, role party.
    parties = {party_key(city.person(i).id_number)
               for e, t in data.truth.events.items() if e not in held for i in t.party_indices}
    assert parties and current(db, source, "core.person", "role = 'party'") == parties
    assert any("party_bad_check_digit" in t.defects for t in data.truth.events.values())
    assert db.execute("SELECT count(*) FROM quality.quarantine WHERE source_system = %s"
                      " AND coalesce(reason, '') = ''", (source,)).fetchone() == (0,)


def test_api_faults_load_exactly_what_a_clean_run_loads(db, loaded):
    loaded.platform.set_faults(Faults(error_rate=0.3, seed=3))
    try:
        faulty, config = loaded.sources.events_only(page_size=10, max_attempts=20)
        summary = run_source(faulty, config)
    finally:
        loaded.platform.set_faults(Faults())
    assert sum(v for k, v in loaded.platform.stats().items() if k.startswith("faults.")) > 0
    assert sum(v for k, v in summary.http.items() if k != "token_refresh") > 0
    assert current_hashes(db, faulty, "core.event") == current_hashes(db, loaded.source,
                                                                      "core.event")
    assert current(db, faulty, "core.person") == current(db, loaded.source, "core.person",
                                                         "role = 'party'")


def test_wrong_token_fails_the_run_clearly(db, loaded):
    source, config = loaded.sources.events_only(token="wrong", max_attempts=2)
    with pytest.raises(Exception, match="unauthorised"):
        run_source(source, config)
    outcome = db.execute("SELECT outcome FROM ops.run WHERE source_system = %s",
                         (source,)).fetchone()
    assert outcome == ("failed",)


def test_a_token_in_the_sources_file_is_refused(loaded):
    source, config = loaded.sources.add(api_token="oops")
    with pytest.raises(ValueError, match="must not be in the sources file"):
        run_source(source, config)


# The two tests below change the platform: they run last.


def test_a_rerun_adds_nothing_and_no_file_is_read_twice(db, loaded):
    data, source, platform = loaded.data, loaded.source, loaded.platform
    before = {t: current_hashes(db, source, t) for t in CORE}
    cursor = file_record(db, source, "events")["cursor"]
    assert isinstance(cursor, str) and cursor  # the platform's own opaque cursor
    # The platform sends the last residents file again, byte for byte, and an old day's
    # houses file turns up late.
    platform.landing.redeliver(file_name("residents", data.delivered[-1]))
    platform.landing.write("houses_20261101.xlsx",
                           (platform.folder / file_name("houses", data.delivered[0])).read_bytes())
    again = run_source(source, loaded.config)
    assert (again.inserted, again.updated, again.closed) == (0, 0, 0)
    # Only the events API's last page is asked for again: its cursor is the last one.
    assert again.extracted <= 25
    assert outcomes(db, source, "houses")["houses_20261101.xlsx"] == "stale"
    assert {t: current_hashes(db, source, t) for t in CORE} == before
    assert_one_current_row_each(db, source, CORE)
    # Nothing new: Great Expectations has nothing to validate.
    assert db.execute("SELECT count(*) FROM quality.gx_validation WHERE run_id = %s",
                      (again.run_id,)).fetchone() == (0,)


def test_updated_events_arrive_with_history(db, loaded):
    data, source = loaded.data, loaded.source
    known = set(data.events)
    touched = loaded.platform.advance_events(8)
    moved = [e for e in touched if e in known]
    new = [e for e in touched if e not in known]
    assert moved and new
    second = run_source(source, loaded.config)
    assert second.updated == len(moved)
    assert second.inserted == len(new)
    for event_id in moved:
        versions = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL), max(source_status)"
            " FILTER (WHERE valid_to IS NULL) FROM core.event WHERE source_system = %s"
            " AND source_id = %s", (source, event_id)).fetchone()
        assert versions == (2, 1, data.events[event_id]["status"]), event_id


# ------------------------------------------------------------ one day at a time


def test_moving_out_closes_the_record_and_moving_back_opens_a_new_version(db, tmp_path):
    with running_platform(tmp_path, drop_all=False) as sources:
        platform = sources.platform
        # Residents only: the other kinds of file are the same mechanism, tested above.
        source, config = sources.add(file_patterns={"houses": NEVER, "orgs": NEVER,
                                                    "grids": NEVER})
        data, city = platform.data, platform.data.city
        delivered: list[date] = []
        for day in data.dates:
            platform.landing.drop(day, kinds=["residents"])
            summary = run_source(source, config)
            if day in data.truth.missing_dates:
                assert summary.closed == 0  # no file that day: nobody is assumed gone
                continue
            delivered.append(day)
            assert current(db, source, "core.person", "role = 'resident'") == residents_on(
                data, day), day
            if len(delivered) > 1:
                gone = data.truth.present[delivered[-2]] - data.truth.present[day]
                assert summary.closed >= len(gone) > 0
        back = resident_key(city, data.truth.out_and_back)
        versions = db.execute(
            "SELECT valid_from, valid_to FROM core.person WHERE source_system = %s"
            " AND source_id = %s ORDER BY valid_from", (source, back)).fetchall()
    assert data.truth.out_and_back not in data.truth.present[delivered[1]]
    assert len(versions) == 2
    assert versions[0][1] is not None and versions[1][1] is None
    assert versions[0][1] <= versions[1][0]
