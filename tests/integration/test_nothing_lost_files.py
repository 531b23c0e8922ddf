"""File drops that go wrong, end to end into the warehouse: a bad file is rejected as a
file and the source goes on; a bad row is quarantined with its line; two residents under
one ID number are both held; a too-small snapshot loads nothing until accepted."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from base.pii import unseal_payload
from base.settings import settings
from connectors.gridmgmt import resident_keys
from hub.cli import app
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.gridmgmt import RESIDENT_HEADERS, GridData, file_name, render
from sandbox.gridmgmt_server import GridPlatform
from tests.support.sources import write_sources_file

SIM_END = datetime(2026, 11, 20)
TOKEN = "grid-test-token"
NEVER = r"(?P<date>\d{8})^"  # a file pattern no name matches
CITIZEN_ID = re.compile(r"\d{17}[\dXx]")
MOBILE = re.compile(r"1[3-9]\d{9}")


@dataclass
class Grid:
    platform: GridPlatform
    source: str
    config: Path

    @property
    def landing(self) -> Path:
        return self.platform.folder

    @property
    def days(self) -> list[date]:
        return [d for d in self.platform.data.dates
                if d not in self.platform.data.truth.missing_dates]

    def residents(self, day: date) -> list[list[str]]:
        text = render(self.platform.data, "residents", day).decode("gb18030")
        return list(csv.reader(io.StringIO(text)))[1:]

    def write_residents(self, day: date, rows: list[list[str]], *, raw: bytes | None = None) -> str:
        name = file_name("residents", day)
        if raw is None:
            buf = io.StringIO(newline="")
            csv.writer(buf, lineterminator="\r\n").writerows([list(RESIDENT_HEADERS), *rows])
            raw = buf.getvalue().encode("gbk")
        self.platform.landing.write(name, raw)
        return name

    def run(self):
        return run_source(self.source, self.config)


@pytest.fixture
def grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse: str) -> Iterator[Grid]:
    """A grid platform (events API live) whose landing folder the test fills by hand;
    a source reading its residents files and events (the grids it names come first)."""
    data = GridData(City("2111", scale=0.001), days=4, end=SIM_END)
    monkeypatch.setenv("HUB_BATCH_ROWS", "300")
    settings.cache_clear()
    with GridPlatform(data, tmp_path / "landing", api_token=TOKEN) as platform:
        name = f"grid_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(f"HUB_{name.upper()}_API_TOKEN", TOKEN)
        config = write_sources_file(tmp_path / f"{name}.yaml", {name: {
            "connector": "gridmgmt", "settings": {
                "folder": str(platform.folder), "base_url": platform.url, "page_size": 50,
                "chunk_rows": 200, "timeout_seconds": 2, "backoff_seconds": 0.01,
                "file_patterns": {"houses": NEVER, "orgs": NEVER}}}})
        grid = Grid(platform, name, config)
        platform.landing.drop(grid.days[0], kinds=["grids"])
        yield grid
    settings.cache_clear()


def current_people(db: psycopg.Connection, source: str) -> int:
    return db.execute("SELECT count(*) FROM core.person WHERE source_system = %s"
                      " AND role = 'resident' AND valid_to IS NULL", (source,)).fetchone()[0]


def held(db: psycopg.Connection, source: str) -> int:
    """Residents' records held in quarantine now (the simulator plants some bad ones)."""
    return db.execute("SELECT count(*) FROM quality.quarantine WHERE source_system = %s"
                      " AND stream = 'residents' AND state = 'open'", (source,)).fetchone()[0]


def current_keys(rows: list[list[str]]) -> set[str]:
    """The resident keys (keyed hashes of the ID numbers) of file rows."""
    table = pa.table({h: pa.array([r[i] for r in rows], pa.string())
                      for i, h in enumerate(RESIDENT_HEADERS)})
    return set(resident_keys(table).to_pylist())


def current_keys_in_db(db: psycopg.Connection, source: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT source_id FROM core.person WHERE source_system = %s"
                                     " AND role = 'resident' AND valid_to IS NULL", (source,))}


def held_keys(db: psycopg.Connection, source: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT source_id FROM quality.quarantine WHERE"
                                     " source_system = %s AND stream = 'residents'"
                                     " AND state = 'open'", (source,))}


def run_row(db: psycopg.Connection, run_id: int) -> tuple[int, int, int, str, str | None, list]:
    return db.execute("SELECT extracted, loaded, quarantined, outcome, error, warnings"
                      " FROM ops.run WHERE run_id = %s", (run_id,)).fetchone()


def assert_nothing_personal(*texts: object) -> None:
    for text in texts:
        assert not CITIZEN_ID.search(str(text)) and not MOBILE.search(str(text)), text


def test_a_bad_file_is_rejected_as_a_file_and_the_source_goes_on(db, grid):
    day1, day2, day3 = grid.days[:3]
    good = grid.residents(day1)
    grid.write_residents(day1, good)
    # Day 2: invalid GBK bytes in the middle of a resident's name.
    broken = bytearray(render(grid.platform.data, "residents", day2))
    broken[len(broken) // 2: len(broken) // 2 + 2] = b"\xff\xff"
    bad_name = grid.write_residents(day2, [], raw=bytes(broken))
    (grid.landing / "readme_from_platform.txt").write_text("hello", encoding="utf-8")

    summary = grid.run()
    assert summary.outcome == "succeeded"
    assert current_people(db, grid.source) + held(db, grid.source) == len(good)
    events = db.execute("SELECT count(*) FROM core.event WHERE source_system = %s",
                        (grid.source,)).fetchone()[0]
    assert events > 0  # the other streams went on
    rejected = db.execute("SELECT stream, kind, reason FROM ops.rejected_file WHERE"
                          " source_system = %s AND file_name = %s",
                          (grid.source, bad_name)).fetchall()
    assert [(s, k) for s, k, _ in rejected] == [("residents", "unreadable")]
    assert bad_name in rejected[0][2]
    extracted, loaded, quarantined, outcome, error, warnings = run_row(db, summary.run_id)
    assert extracted == loaded + quarantined
    assert any("readme_from_platform.txt" in w for w in warnings)
    assert_nothing_personal(rejected[0][2], *warnings)

    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert bad_name in status.output and "readme_from_platform.txt" in status.output

    # A rerun changes nothing; the next good file loads.
    again = grid.run()
    assert again.inserted == again.updated == again.closed == 0
    grid.write_residents(day3, grid.residents(day3))
    grid.run()
    assert current_people(db, grid.source) == len(current_keys(grid.residents(day3)) - held_keys(
        db, grid.source))


def test_a_malformed_row_is_quarantined_with_its_line_and_the_rest_loads(db, grid):
    rows = grid.residents(grid.days[0])
    rows[5] = rows[5][:4]  # a line cut short
    rows[9] = rows[9] + ["多出来的字段"]
    name = grid.write_residents(grid.days[0], rows)
    summary = grid.run()
    assert current_people(db, grid.source) + held(db, grid.source) == len(rows)
    unreadable = db.execute("SELECT rule, reason, failed_rules FROM quality.quarantine"
                            " WHERE source_system = %s AND payload_kind = 'unreadable'",
                            (grid.source,)).fetchall()
    assert sorted(r[0] for r in unreadable) == ["row_readable", "row_readable"]
    where = sorted(r[2][0]["where"] for r in unreadable)
    # The header is line 1: rows[5] is on line 7, rows[9] on line 11.
    assert where == [f"{name} line 11", f"{name} line 7"]
    extracted, loaded, quarantined, *_ = run_row(db, summary.run_id)
    assert extracted == loaded + quarantined and quarantined >= 2
    assert_nothing_personal(*(r[1] for r in unreadable))


def test_two_residents_under_one_id_number_are_both_held(db, grid):
    rows = grid.residents(grid.days[0])
    id_col = RESIDENT_HEADERS.index("公民身份号码")
    impostor = list(rows[3])
    impostor[0] = "王冒名"
    impostor[id_col] = rows[250][id_col] if len(rows) > 250 else rows[-1][id_col]
    twin_id = impostor[id_col]
    # Far apart in the file (different batches of 300 / chunks of 200), plus an exact
    # repeat of another row, which is a re-read and no defect.
    rows.append(impostor)
    rows.append(list(rows[10]))
    grid.write_residents(grid.days[0], rows)
    summary = grid.run()
    # Quarantine keeps the clear record sealed (payload holds it masked).
    twins = db.execute("SELECT payload_sealed FROM quality.quarantine WHERE"
                       " source_system = %s AND rule = 'source_key_unique' AND state = 'open'",
                       (grid.source,)).fetchall()
    assert sorted(unseal_payload(t[0])["公民身份号码"] for t in twins) == [twin_id, twin_id]
    # Everything is loaded or held but the exact repeat, which was read twice.
    assert current_people(db, grid.source) + held(db, grid.source) == len(rows) - 1
    assert twin_id not in {unseal_payload(r[0]).get("公民身份号码") for r in db.execute(
        "SELECT payload_sealed FROM quality.quarantine WHERE source_system = %s"
        " AND rule <> 'source_key_unique'", (grid.source,))}
    extracted, loaded, quarantined, *_ = run_row(db, summary.run_id)
    assert extracted == loaded + quarantined


def test_a_too_small_snapshot_loads_nothing_until_an_operator_accepts_it(db, grid, monkeypatch):
    day1, day2 = grid.days[:2]
    full = grid.residents(day1)
    grid.write_residents(day1, full)
    grid.run()
    before = current_people(db, grid.source)
    assert before + held(db, grid.source) == len(full)

    monkeypatch.setenv("HUB_BATCH_ROWS", "100")
    settings.cache_clear()
    small = full[: len(full) // 10]
    name = grid.write_residents(day2, small)
    for _ in range(10):
        summary = grid.run()
        assert summary.closed == 0
        assert current_people(db, grid.source) == before
    kind, reason = db.execute("SELECT kind, reason FROM ops.rejected_file WHERE"
                              " source_system = %s AND file_name = %s",
                              (grid.source, name)).fetchone()
    assert kind == "too_small" and "hub snapshot accept" in reason
    assert db.execute("SELECT count(*) FROM ops.snapshot_seen WHERE source_system = %s"
                      " AND snapshot_id LIKE %s", (grid.source, name + "%")).fetchone()[0] == 0

    accepted = CliRunner().invoke(app, ["snapshot", "accept", grid.source, "residents", name,
                                        "--reason", "街道合并，已与平台核实"])
    assert accepted.exit_code == 0, accepted.output
    who = db.execute("SELECT accepted_by, reason FROM ops.snapshot_acceptance WHERE"
                     " source_system = %s", (grid.source,)).fetchone()
    assert who[0] and who[1] == "街道合并，已与平台核实"
    summary = grid.run()
    # Every resident the small file holds (and passed) is current; the rest are closed.
    now_current = current_keys_in_db(db, grid.source)
    assert now_current == current_keys(small) - held_keys(db, grid.source)
    assert summary.closed == before - len(now_current)
