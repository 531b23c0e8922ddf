"""A re-sent snapshot's unchanged records are set aside before conform (hub.unchanged),
and the base ends exactly as if every record had been taken through every stage: over
generated sequences of daily residents files where records change, vanish, come back
as they were, go bad and are put right."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from base import clock
from base.settings import settings
from hub import pipeline
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.gridmgmt import RESIDENT_HEADERS, GridData, file_name, render
from tests.support.sources import write_sources_file

SIM_END = datetime(2026, 11, 20)
NEVER = r"(?P<date>\d{8})^"  # a file pattern no name matches
ADDRESS, PHONE, UPDATED = (RESIDENT_HEADERS.index(f) for f in ("现住址", "联系电话", "更新时间"))
POOL = 120  # residents in play: two batches of about 100
# What a day does to a resident: as first sent, moved house, a new phone, gone from the
# file, sent with a last update in 2099 (a future time: quarantined), or sent with a
# second, different record under the same ID number (both held: two records, one key).
VARIANTS = ("first", "moved", "phone", "gone", "bad", "twice")
NAME = RESIDENT_HEADERS.index("姓名")


@pytest.fixture(scope="module")
def residents() -> list[list[str]]:
    data = GridData(City("2111", scale=0.001), days=2, end=SIM_END)
    text = render(data, "residents", data.dates[0]).decode("gb18030")
    return list(csv.reader(io.StringIO(text)))[1:POOL + 1]


def variant(row: list[str], kind: str) -> list[list[str]]:
    row = list(row)
    if kind == "gone":
        return []
    if kind == "twice":
        return [row, [row[NAME] + "冒", *row[NAME + 1:]]]
    if kind == "moved":
        row[ADDRESS] += "附1号"
    elif kind == "phone":
        row[PHONE] = "13900000000" if row[PHONE] != "13900000000" else "13900000001"
    elif kind == "bad":
        row[UPDATED] = "2099-01-01 00:00:00"
    return [row]


class Source:
    """A grid platform's residents drop read by one source (houses, orgs and grids
    never match; the events API is not read)."""

    def __init__(self, tmp: Path, set_aside: bool):
        self.name = f"grid_{uuid.uuid4().hex[:8]}"
        self.folder = tmp / self.name
        self.folder.mkdir()
        self.set_aside = set_aside
        self.bases = itertools.count(1)
        self.config = write_sources_file(tmp / f"{self.name}.yaml", {self.name: {
            "connector": "gridmgmt", "settings": {
                "folder": str(self.folder), "base_url": "http://127.0.0.1:9",
                "chunk_rows": 7, "min_snapshot_ratio": 0,
                "file_patterns": {"houses": NEVER, "orgs": NEVER, "grids": NEVER}}}})

    def load(self, day: date, rows: list[list[str]], monkeypatch: pytest.MonkeyPatch
             ) -> pipeline.RunSummary:
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\r\n").writerows([list(RESIDENT_HEADERS), *rows])
        part = self.folder / "upload.part"
        part.write_bytes(buf.getvalue().encode("gbk"))
        part.rename(self.folder / file_name("residents", day))
        with monkeypatch.context() as mp:
            if not self.set_aside:  # a new basis every time: nothing is ever known
                mp.setattr(pipeline, "basis", lambda conn, conformer: next(self.bases))
            return run_source(self.name, self.config, streams=["residents"])


def state(db: psycopg.Connection, source: str) -> tuple[list[tuple], list[tuple]]:
    """The source's people, every version, and its open quarantine entries: as a reader
    sees them, without the run ids and load times."""
    people = db.execute(
        "SELECT source_id, record_hash, name, current_address, phone_hash, id_number_hash,"
        " birth_date, gender, grid_code, valid_to IS NULL,"
        " rank() OVER (PARTITION BY source_id ORDER BY valid_from)"
        " FROM core.person WHERE source_system = %s ORDER BY 1, 11", (source,)).fetchall()
    held = db.execute(
        "SELECT source_id, rule, state FROM quality.quarantine WHERE source_system = %s"
        " ORDER BY 1, 2, 3", (source,)).fetchall()
    return people, held


@pytest.fixture
def pinned() -> object:
    with clock.pinned((SIM_END + timedelta(days=30)).replace(tzinfo=UTC)) as at:
        yield at


@hsettings(max_examples=4,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.lists(st.sampled_from(VARIANTS), min_size=POOL, max_size=POOL),
                     min_size=3, max_size=3))
def test_the_base_ends_as_if_every_record_went_through_every_stage(
        days, residents, db, tmp_path_factory, monkeypatch, pinned):
    monkeypatch.setenv("HUB_BATCH_ROWS", "100")
    settings.cache_clear()
    tmp = tmp_path_factory.mktemp("drops")
    fast, full = Source(tmp, set_aside=True), Source(tmp, set_aside=False)
    first, before = [list(r) for r in residents], None
    for n, kinds in enumerate([["first"] * POOL, *days]):
        rows = [r for row, k in zip(first, kinds, strict=True) for r in variant(row, k)]
        day = SIM_END.date() + timedelta(days=n)
        a, b = fast.load(day, rows, monkeypatch), full.load(day, rows, monkeypatch)
        # A file of the same bytes as the day before is skipped as a file.
        read = 0 if rows == before else len(rows)
        for summary in (a, b):
            assert summary.extracted == summary.loaded + summary.quarantined == read
        before = rows
        assert (a.inserted, a.updated, a.closed) == (b.inserted, b.updated, b.closed)
        assert state(db, fast.name) == state(db, full.name), f"day {n}"
    settings.cache_clear()


@pytest.fixture
def source(tmp_path, monkeypatch) -> Iterator[Source]:
    """A source whose runs set unchanged records aside, in batches of 100."""
    monkeypatch.setenv("HUB_BATCH_ROWS", "100")
    settings.cache_clear()
    yield Source(tmp_path, set_aside=True)
    settings.cache_clear()


def set_aside(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """(records set aside as loaded unchanged, as held in quarantine) in the run's log."""
    found = [SET_ASIDE.search(r.getMessage()) for r in caplog.records]
    return (sum(int(m["unchanged"]) for m in found if m),
            sum(int(m["held"]) for m in found if m))


SET_ASIDE = re.compile(r"(?P<unchanged>\d+) of \d+ records unchanged since loaded, "
                       r"(?P<held>\d+) held in quarantine")


def test_a_snapshot_sent_again_skips_its_records_and_a_record_back_is_loaded_again(
        residents, db, source, monkeypatch, pinned, caplog):
    rows = [list(r) for r in residents]
    day = SIM_END.date()
    source.load(day, rows, monkeypatch)

    # The next day's file, one resident moved: the rest are set aside before conform.
    moved = [*variant(rows[0], "moved"), *rows[1:]]
    with caplog.at_level(logging.INFO, logger="hub.pipeline"):
        again = source.load(day + timedelta(days=1), moved, monkeypatch)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, POOL - 1)
    assert set_aside(caplog)[0] == POOL - 1

    # Gone for a day (closed), then back exactly as before: current again.
    source.load(day + timedelta(days=2), moved[1:], monkeypatch)
    back = source.load(day + timedelta(days=3), moved, monkeypatch)
    assert back.inserted == 1
    current = db.execute("SELECT count(*) FROM core.person WHERE source_system = %s"
                         " AND valid_to IS NULL", (source.name,)).fetchone()[0]
    assert current == POOL


def test_a_key_held_twice_with_the_same_records_stays_held_without_the_stages(
        residents, db, source, monkeypatch, pinned, caplog):
    # Two records under one ID number are quarantined together. Sent again as they
    # were, they are set aside held in their open entries (counted quarantined, not
    # conformed, checked or masked again); one of them changed, both go through again.
    rows = [list(r) for r in residents]
    doubled = [*variant(rows[0], "twice"), *rows[1:]]
    day = SIM_END.date()
    first = source.load(day, doubled, monkeypatch)
    assert first.quarantined == 2
    entries = db.execute("SELECT quarantine_id, state FROM quality.quarantine"
                         " WHERE source_system = %s ORDER BY 1", (source.name,)).fetchall()
    assert [s for _, s in entries] == ["open", "open"]

    moved = [*doubled[:2], *variant(doubled[2], "moved"), *doubled[3:]]
    with caplog.at_level(logging.INFO, logger="hub.pipeline"):
        again = source.load(day + timedelta(days=1), moved, monkeypatch)
    assert (again.extracted, again.loaded, again.quarantined) == (POOL + 1, POOL - 1, 2)
    assert (again.updated, again.unchanged) == (1, POOL - 2)
    assert set_aside(caplog)[1] == 2
    assert db.execute("SELECT quarantine_id, state FROM quality.quarantine"
                      " WHERE source_system = %s ORDER BY 1",
                      (source.name,)).fetchall() == entries

    # The second record under the number changes: both are judged again, and stay held.
    changed = [moved[0], [*moved[1][:ADDRESS], "别处", *moved[1][ADDRESS + 1:]], *moved[2:]]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hub.pipeline"):
        third = source.load(day + timedelta(days=2), changed, monkeypatch)
    assert third.quarantined == 2
    assert set_aside(caplog)[1] == 0
