"""The city's time zone comes from the sources file: the marts, the weekly report, the CLI.

Hand-made events of this module's own source in 2023 (no simulator writes that year),
in one district. One of them is accepted on Monday 2023-03-13 01:30 Beijing time:
Sunday 17:30 UTC and Sunday 23:30 in Urumqi (UTC+6). Its week is 2023-W11 in
Asia/Shanghai and 2023-W10 in the other two, its day 03-13 or 03-12. Every test puts
the warehouse back in the project's time zone (Asia/Shanghai) when it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from base.settings import DEFAULT_SOURCES_FILE, load_city, settings
from hub.cli import app, console
from quality.report import build
from quality.report_data import (
    Week,
    collect,
    marts_in,
    recorded_city_timezone,
)
from warehouse.db import Role, connect
from warehouse.migrate import record_city_timezone

SOURCE = f"test_tz_{uuid.uuid4().hex[:8]}"
DISTRICT = "211122"  # 盘山县
# id, accepted (and reported) at
EVENTS = [("WED", "2023-03-08 10:00:00+08"), ("MON", "2023-03-13 01:30:00+08")]
PROJECT_ZONE = load_city(DEFAULT_SOURCES_FILE).timezone
runner = CliRunner()


@pytest.fixture(scope="module")
def events(warehouse: str) -> str:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for no, at in EVENTS:
            conn.execute(
                "INSERT INTO core.event (source_system, source_id, source_stream, valid_from,"
                " channel, category_code, source_category, status, source_status, division_code,"
                " reported_at, accepted_at, source_updated_at)"
                " VALUES (%s, %s, 'orders', now(), '电话', 'SZ01', 'x', 'accepted', '已受理', %s,"
                " %s, %s, now())", (SOURCE, no, DISTRICT, at, at))
    return SOURCE


@pytest.fixture
def project_zone_after(warehouse: str) -> Iterator[None]:
    """The warehouse back in the project sources file's time zone after the test."""
    yield
    with connect(Role.OWNER) as conn:
        record_city_timezone(conn, PROJECT_ZONE)


def sources_file(folder: Path, timezone: str) -> Path:
    path = folder / f"sources-{timezone.replace('/', '-')}.yaml"
    path.write_text(yaml.safe_dump({
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45], "timezone": timezone},
        "sources": {}}), encoding="utf-8")
    return path


def mart_weeks(db: psycopg.Connection) -> dict[str, tuple[str, date]]:
    """source_id → (report_week, week_start) of this module's events."""
    return {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT source_id, report_week, week_start FROM mart.event_current"
        " WHERE source_system = %s", (SOURCE,))}


def district_accepted(db: psycopg.Connection) -> dict[str, int]:
    """report_week → accepted, of the district in 2023-W10 and W11 (all platforms)."""
    return dict(db.execute(
        "SELECT report_week, accepted FROM mart.governance_weekly_district"
        " WHERE division_code = %s AND report_week IN ('2023-W10', '2023-W11')", (DISTRICT,)))


def test_the_project_runs_in_beijing_time(db, events):
    assert PROJECT_ZONE == "Asia/Shanghai"
    assert recorded_city_timezone(db) == "Asia/Shanghai"
    assert mart_weeks(db) == {"WED": ("2023-W10", date(2023, 3, 6)),
                              "MON": ("2023-W11", date(2023, 3, 13))}
    assert district_accepted(db) == {"2023-W10": 1, "2023-W11": 1}


@pytest.mark.parametrize("zone", ["Asia/Urumqi", "UTC"])
def test_hub_migrate_records_the_city_zone_and_the_marts_count_in_it(
        db, events, tmp_path, project_zone_after, zone):
    result = runner.invoke(app, ["migrate", "--config", str(sources_file(tmp_path, zone))])
    assert result.exit_code == 0, result.output
    assert f"count weeks and days in {zone}" in result.output
    assert recorded_city_timezone(db) == zone
    assert db.execute("SELECT mart.city_timezone()").fetchone()[0] == zone
    assert mart_weeks(db) == {"WED": ("2023-W10", date(2023, 3, 6)),
                              "MON": ("2023-W10", date(2023, 3, 6))}
    assert district_accepted(db) == {"2023-W10": 2}
    fine = db.execute("SELECT accepted, closure_rate FROM mart.governance_weekly"
                      " WHERE source_system = %s AND report_week = '2023-W10'", (SOURCE,)).fetchone()
    assert fine == (2, 0)

    # Back to the project's sources file: back to Beijing time.
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert recorded_city_timezone(db) == "Asia/Shanghai"
    assert mart_weeks(db)["MON"] == ("2023-W11", date(2023, 3, 13))
    assert district_accepted(db) == {"2023-W10": 1, "2023-W11": 1}
    # Recorded already: nothing is written again.
    again = runner.invoke(app, ["migrate"])
    assert again.exit_code == 0 and "count weeks" not in again.output, again.output


def test_an_unknown_zone_is_refused_before_the_warehouse_is_touched(db, tmp_path):
    bad = sources_file(tmp_path, "Asia/Nowhere")
    result = runner.invoke(app, ["migrate", "--config", str(bad)])
    assert result.exit_code == 1 and "unknown time zone" in result.output, result.output
    assert recorded_city_timezone(db) == "Asia/Shanghai"
    with pytest.raises(psycopg.Error, match="not recognized"):
        db.execute("UPDATE ops.city_setting SET timezone = 'Asia/Nowhere'")


def test_a_session_may_read_the_marts_in_another_zone(warehouse, events):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        with marts_in(conn, "UTC"):
            assert mart_weeks(conn)["MON"] == ("2023-W10", date(2023, 3, 6))
        assert mart_weeks(conn)["MON"] == ("2023-W11", date(2023, 3, 13))
        conn.execute("SET hub.city_timezone = 'Asia/Urumqi'")
        assert district_accepted(conn) == {"2023-W10": 2}
        conn.execute("RESET hub.city_timezone")
        assert district_accepted(conn) == {"2023-W10": 1, "2023-W11": 1}


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The hub's sources file is one of a city in Urumqi."""
    monkeypatch.setenv("HUB_SOURCES_FILE", str(sources_file(tmp_path, "Asia/Urumqi")))
    settings.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    settings.cache_clear()


def test_the_report_takes_its_zone_from_the_sources_file(events, configured):
    now = datetime(2023, 3, 20, 0, 0, tzinfo=UTC)
    week = Week.parse("2023-W10")
    assert week.timezone == "Asia/Urumqi"
    # The warehouse still records Beijing time: the report reads the marts in its own zone.
    with connect(Role.OWNER) as conn:
        assert recorded_city_timezone(conn) == "Asia/Shanghai"
        data = collect(conn, week, now)
    assert data.daily_volume[SOURCE] == {date(2023, 3, 8): 1, date(2023, 3, 12): 1}
    [district] = [r for r in data.districts if r["division_code"] == DISTRICT]
    assert district["accepted"] == 2

    built = build("2023-W10", out_dir=configured / "urumqi", now=now)
    html = built.html_path.read_text(encoding="utf-8")
    assert "乌鲁木齐时间" in html and "北京时间" not in html
    assert "生成于 2023-03-20 06:00" in html  # 00:00 UTC is 06:00 in Urumqi
    with connect(Role.OWNER) as conn:
        summary = conn.execute("SELECT summary FROM quality.report WHERE report_id = %s",
                               (built.report_id,)).fetchone()[0]
    assert summary["timezone"] == "Asia/Urumqi"


def test_the_report_goes_back_to_beijing_time(events, tmp_path):
    now = datetime(2023, 3, 20, 0, 0, tzinfo=UTC)
    week = Week.parse("2023-W10")
    assert week.timezone == "Asia/Shanghai"
    with connect(Role.OWNER) as conn:
        data = collect(conn, week, now)
    assert data.daily_volume[SOURCE] == {date(2023, 3, 8): 1}
    [district] = [r for r in data.districts if r["division_code"] == DISTRICT]
    assert district["accepted"] == 1
    html = build("2023-W10", out_dir=tmp_path, now=now).html_path.read_text(encoding="utf-8")
    assert "北京时间" in html and "生成于 2023-03-20 08:00" in html
    # A week in another zone, asked for explicitly.
    utc = build("2023-W10", out_dir=tmp_path / "utc", now=now, timezone="UTC")
    assert "生成于 2023-03-20 00:00" in utc.html_path.read_text(encoding="utf-8")


def test_the_cli_shows_times_in_the_city_zone(db, tmp_path, monkeypatch):
    monkeypatch.setattr(console, "width", 400)  # no cell folded over two lines
    run_id = db.execute(
        "INSERT INTO ops.run (source_system, connector, started_at, finished_at, outcome)"
        " VALUES (%s, 'hotline12345', '2023-03-13 01:30+08', '2023-03-13 01:31+08', 'succeeded')"
        " RETURNING run_id", (SOURCE,)).fetchone()[0]
    try:
        beijing = runner.invoke(app, ["status"])
        assert beijing.exit_code == 0, beijing.output
        assert "times in Asia/Shanghai" in beijing.output
        assert "03-13 01:30" in beijing.output
        urumqi = runner.invoke(app, ["status", "--config",
                                     str(sources_file(tmp_path, "Asia/Urumqi"))])
        assert urumqi.exit_code == 0, urumqi.output
        assert "times in Asia/Urumqi" in urumqi.output
        assert "03-12 23:30" in urumqi.output
    finally:
        db.execute("DELETE FROM ops.run WHERE run_id = %s", (run_id,))
