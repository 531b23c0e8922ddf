"""数字城管: rows the platform should not have never fail a read, and never vanish.

Against a real SQLite file and, where it runs, MariaDB on 127.0.0.1:3306 (a database
of the test's own), in tables shaped like the platform's but without its constraints
(no primary key, nullable update time), as older deployments have them: a NULL or blank
key, text or zero dates in date columns, a NULL or unusable update time, text that is
not UTF-8 (SQLite), among good rows. Two runs of the connector's `extract` (no
warehouse): the second resumes from the first's cursor.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml

from base import clock
from base.settings import load_sources
from connectors.base import LOCAL_TIME_FORMAT, Extract
from connectors.citymgmt import CityMgmt
from hub.lineage import conformer_class
from sandbox.citymgmt import CASE_FIELDS, COMPONENT_FIELDS, TIME_COLUMNS, UNIT_GRID_FIELDS

SHANGHAI = ZoneInfo("Asia/Shanghai")
RUN1 = datetime(2026, 11, 20, 8, 0, tzinfo=SHANGHAI)
RUN2 = datetime(2026, 11, 20, 9, 0, tzinfo=SHANGHAI)
DAY = "2026-11-19"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"
# What every row carries and no reason or warning may repeat.
NAME, PHONE, ID_NUMBER, ADDRESS = "张三", "13800138000", "210102199001011234", "振兴街88号"
PERSONAL = (NAME, PHONE, ID_NUMBER, ADDRESS, "李四")
BAD_UTF8 = b"\xd5\xc5\xc8\xfd"  # 张三 in GBK: not UTF-8


def _mariadb_reachable() -> bool:
    try:
        engine = sa.create_engine(MARIADB, poolclass=sa.pool.NullPool,
                                  connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


mariadb = pytest.mark.skipif(not _mariadb_reachable(),
                             reason="no MariaDB/MySQL server on 127.0.0.1:3306 (root, no password)")
BACKENDS = ["sqlite", pytest.param("mariadb", marks=mariadb)]


# ------------------------------------------------------------------ the platform


def _tables(metadata: sa.MetaData, update_time: str) -> dict[str, sa.Table]:
    """The platform's tables as older deployments have them: no primary key, every column
    nullable, `report_time` (and, in the `varchar` variant, `update_time`) typed as text."""

    def col(name: str) -> sa.Column[Any]:
        if name == "report_time" or (name == "update_time" and update_time == "varchar"):
            return sa.Column(name, sa.String(32))
        if name in TIME_COLUMNS:
            return sa.Column(name, sa.DateTime)
        if name in ("x", "y", "area_m2"):
            return sa.Column(name, sa.Double)
        if name in ("description", "boundary_wkt"):
            return sa.Column(name, sa.Text)
        return sa.Column(name, sa.String(64))

    out = {}
    for name, fields in (("t_case", CASE_FIELDS), ("t_component", COMPONENT_FIELDS),
                         ("t_unit_grid", UNIT_GRID_FIELDS)):
        table = sa.Table(name, metadata, *(col(f) for f in fields))
        sa.Index(f"ix_{name}_update", table.c.update_time, table.c[fields[0]])
        out[name] = table
    return out


_databases = itertools.count()


@dataclass
class Platform:
    backend: str
    update_time: str  # datetime | varchar
    url: str
    engine: sa.Engine

    @property
    def stores_text_times(self) -> bool:
        """Whether the update time column takes any text (SQLite always; a VARCHAR)."""
        return self.backend == "sqlite" or self.update_time == "varchar"

    def plant(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Insert rows exactly as given (text into date columns included), no conversion."""
        fields = {"t_case": CASE_FIELDS, "t_component": COMPONENT_FIELDS,
                  "t_unit_grid": UNIT_GRID_FIELDS}[table]
        target = sa.table(table, *(sa.column(f) for f in fields))
        with self.engine.begin() as conn:
            if self.backend == "mariadb":
                # Zero dates and zero months are what such servers hold (no NO_ZERO_DATE).
                conn.exec_driver_sql("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
            conn.execute(sa.insert(target), [{f: r.get(f) for f in fields} for r in rows])

    def set_bytes(self, table: str, column: str, key_column: str, key: str, raw: bytes) -> None:
        """SQLite: put bytes that are not UTF-8 into a text column (as non-UTF-8 tools do)."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET {column} = CAST(:raw AS TEXT)"  # noqa: S608
                                 f" WHERE {key_column} = :key"), {"raw": raw, "key": key})


@pytest.fixture
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    backend, update_time = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'cm.sqlite'}"
        engine = sa.create_engine(url)
        name = None
    else:
        name = f"hub_test_cm_bad_{os.getpid()}_{next(_databases)}"
        admin = sa.create_engine(MARIADB, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        url = f"{MARIADB}/{name}?charset=utf8mb4"
        engine = sa.create_engine(url)
    metadata = sa.MetaData()
    _tables(metadata, update_time)
    metadata.create_all(engine)
    try:
        yield Platform(backend, update_time, url, engine)
    finally:
        engine.dispose()
        if name is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            admin.dispose()


VARIANTS = [pytest.param(("sqlite", "datetime"), id="sqlite-datetime"),
            pytest.param(("sqlite", "varchar"), id="sqlite-varchar"),
            pytest.param(("mariadb", "datetime"), id="mariadb-datetime", marks=mariadb),
            pytest.param(("mariadb", "varchar"), id="mariadb-varchar", marks=mariadb)]


def connector(tmp_path: Path, platform: Platform, chunk_rows: int) -> CityMgmt:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
        "sources": {"cm": {"connector": "citymgmt", "settings": {
            "url": platform.url, "chunk_rows": chunk_rows,
            "start_from": "2026-11-01 00:00:00"}}},
    }, allow_unicode=True), encoding="utf-8")
    config = load_sources(path)
    return CityMgmt(config.source("cm"), config.city)


def case(case_no: str | None, updated: Any, **values: Any) -> dict[str, Any]:
    """A case with a person's name, phone, ID number and address in it."""
    return {
        "case_no": case_no, "source": "公众举报", "class_type": "事件", "big_class": "01",
        "small_class": "01", "description": f"{NAME}反映楼下占道经营，电话{PHONE}",
        "address": f"兴隆台区{ADDRESS}", "grid_code": "211103001001001",
        "x": 41554321.5, "y": 4560123.25, "component_code": None, "status": "上报",
        "report_time": f"{DAY} 09:00:00", "register_time": None, "dispatch_time": None,
        "deadline": None, "dispose_time": None, "check_time": None, "close_time": None,
        "dept_code": "211103000", "dept_name": "兴隆台区城市管理综合行政执法局",
        "reporter_id": ID_NUMBER, "update_time": updated, **values,
    }


def read(connector: CityMgmt, stream: str, state: dict[str, Any] | None, at: datetime
         ) -> list[Extract]:
    with clock.pinned(at):
        return list(connector.extract(CityMgmt.stream(stream), state))


def keys(extracts: list[Extract], key: str = "case_no") -> Counter[str]:
    return Counter(k for e in extracts for k in e.records[key].to_pylist())


def messages(extracts: list[Extract]) -> list[str]:
    return [m for e in extracts for m in (*e.warnings, *(f"{r.reason} | {r.where}"
                                                        for r in e.rejects))]


def assert_nothing_personal(extracts: list[Extract]) -> None:
    for message in messages(extracts):
        for secret in PERSONAL:
            assert secret not in message, message


# ------------------------------------------------------------------ the cases


@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
@pytest.mark.parametrize("platform", VARIANTS, indirect=True)
def test_bad_rows_neither_fail_the_read_nor_vanish(tmp_path, platform, chunk_rows):
    at = f"{DAY} 1"
    good = [
        # A crowd at one time, with two keyless rows among it.
        case("C01", f"{at}0:00:00"), case("C02", f"{at}0:00:00"), case("C03", f"{at}0:00:00"),
        case("C04", f"{at}1:00:00"),
        # Dates that are no dates: text in a VARCHAR date column, MariaDB's zero date and
        # zero month in DATETIME columns. Read as they are; the conform step judges them.
        case("C05", f"{at}2:00:00", report_time="yesterday"),
        case("C06", f"{at}3:00:00", register_time="0000-00-00 00:00:00"),
        case("C07", f"{at}3:00:00", dispatch_time="2026-00-00 00:00:00"),
        case("C08", f"{at}4:00:00"),
    ]
    keyless = [
        case(None, f"{at}0:00:00"), case("  ", f"{at}0:00:00"),
        # More keyless rows at one time than a chunk holds.
        *(case(None, f"{at}1:00:00") for _ in range(4)),
        # Within the overlap the next run reads again.
        case(None, "2026-11-20 07:55:00"),
    ]
    unusable = [case("U01", None), case("U02", "0000-00-00 00:00:00"),
                case("U03", "2026-00-00 00:00:00"), case(None, None)]
    odd: list[dict[str, Any]] = []
    if platform.stores_text_times:
        unusable.append(case("U04", "yesterday"))
        # Begins with a date, so it has a place in the window: read, and the conform
        # step quarantines its unparseable update time.
        odd.append(case("R01", f"{DAY} lunch"))
    if platform.backend == "sqlite":
        # Text in a SQLite DATETIME column (SQLAlchemy itself fails reading it), a time
        # without SQLAlchemy's microseconds, a number as an update time.
        good += [case("C09", f"{at}5:00:00", dispatch_time="yesterday"),
                 case("C10", f"{at}5:00:00.000000")]
        unusable.append(case("U05", 1_700_000_000))
        keyless.append(case(None, f"{at}5:00:00.000000"))
    platform.plant("t_case", good + keyless + unusable + odd)
    not_utf8: list[str] = []
    if platform.backend == "sqlite":
        platform.plant("t_case", [case("N01", f"{at}6:00:00"), case("N02", f"{at}6:00:00")])
        platform.set_bytes("t_case", "description", "case_no", "N01", BAD_UTF8)
        platform.set_bytes("t_case", "case_no", "case_no", "N02", b"N02" + BAD_UTF8)
        not_utf8 = ["N01", "N02"]

    cm = connector(tmp_path, platform, chunk_rows)
    first = read(cm, "cases", None, RUN1)

    # Every readable row exactly once; no row without a key or a usable time among them.
    assert keys(first) == Counter({r["case_no"]: 1 for r in good + odd})
    # Every cursor is a time the next run can start from, and the last is the window's end.
    cursors = [e.cursor["updated_to"] for e in first]
    assert all(datetime.strptime(c, LOCAL_TIME_FORMAT) for c in cursors)
    assert cursors == sorted(cursors) and cursors[-1] == "2026-11-20 07:59:59"
    # Dates as read: to the second, bad ones verbatim.
    records = pa.concat_tables([e.records for e in first]).to_pylist()
    by_key = {r["case_no"]: r for r in records}
    assert by_key["C01"]["update_time"] == f"{at}0:00:00"
    assert by_key["C05"]["report_time"] == "yesterday"
    assert by_key["C06"]["register_time"] == "0000-00-00 00:00:00"
    assert by_key["C07"]["dispatch_time"] == "2026-00-00 00:00:00"
    if platform.backend == "sqlite":
        assert by_key["C09"]["dispatch_time"] == "yesterday"
        # A DATETIME's microseconds (SQLAlchemy writes them into SQLite) are the column
        # type's, not the platform's: dropped. A VARCHAR's text is the platform's: kept.
        assert by_key["C10"]["update_time"] == f"{at}5:00:00" + (
            ".000000" if platform.update_time == "varchar" else "")
    # …for the conform step, which marks what it cannot parse: the pipeline quarantines
    # those records (value_parseable).
    table = pa.concat_tables([e.records for e in first]).combine_chunks()
    row = {k: i for i, k in enumerate(table["case_no"].to_pylist())}
    conformed = conformer_class("citymgmt", "cases")(cm.settings, cm.city).conform(table)

    def unparseable(column: str) -> set[str]:
        return {k for k, i in row.items() if conformed.unparseable[column][i]}

    assert unparseable("report_time") == {"C05"}
    assert unparseable("register_time") == {"C06"}
    assert unparseable("dispatch_time") == {"C07"} | ({"C09"} if "C09" in row else set())
    assert unparseable("update_time") == {r["case_no"] for r in odd} | (
        {"C10"} if "C10" in row and platform.update_time == "varchar" else set())

    # Keyless rows: rejected once each, with the table, the key column and the time.
    rejects = [r for e in first for r in e.rejects]
    keyless_rejects = [r for r in rejects if r.rule == "source_key_present"]
    assert len(keyless_rejects) == len(keyless)
    assert len({r.where for r in keyless_rejects}) == len(keyless)
    for r in keyless_rejects:
        assert r.reason.startswith("t_case: a row with no case_no"), r.reason
        assert "update_time 2026-11-" in r.reason and r.where.startswith("t_case: row ")
        assert r.source_id is None and r.payload["description"] == case(None, 0)["description"]
    assert sum("(blank)" in r.reason for r in keyless_rejects) == 1
    # Text that is not UTF-8 (SQLite): rejected, named by its key; the read goes on.
    unreadable = [r for r in rejects if r.rule == "value_readable"]
    assert len(unreadable) == len(not_utf8)
    for k in not_utf8:
        [r] = [r for r in unreadable if r.where.startswith(f"t_case: case_no {k}")]
        assert r.reason.startswith(f"t_case case_no {k}") and "not readable as text" in r.reason
        assert r.source_id is not None and r.source_id.startswith(k)
    assert len(rejects) == len(keyless_rejects) + len(unreadable)

    # Rows without a usable update time: warned about, by key, on the run's first extract.
    assert first[0].warnings and not any(e.warnings for e in first[1:])
    warning = next(w for w in first[0].warnings if "usable update_time" in w)
    keyed_unusable = sorted(r["case_no"] for r in unusable if r["case_no"])
    assert warning.startswith(f"t_case: {len(unusable)} row(s) without a usable update_time")
    shown = keyed_unusable[:5]
    assert f"case_no {', '.join(shown)}" in warning
    assert "cannot be read incrementally" in warning
    assert any(w.startswith(f"t_case: {len(keyless) + 1} row(s) with no case_no")
               for w in first[0].warnings)
    assert_nothing_personal(first)

    # Second run, from the first one's cursor: what changed since, and nothing else.
    platform.plant("t_case", [case("C20", "2026-11-20 08:30:00"),
                              case(None, "2026-11-20 08:30:00"),
                              # Committed late, with a time before the first run's cursor.
                              case(None, "2026-11-20 07:50:30", status="立案")])
    with platform.engine.begin() as conn:
        conn.execute(sa.text("UPDATE t_case SET status = '立案', update_time = :t"
                             " WHERE case_no = 'C01'"), {"t": "2026-11-20 08:40:00"})
    second = read(cm, "cases", first[-1].cursor, RUN2)
    assert keys(second) == Counter({"C20": 1, "C01": 1})
    assert second[-1].cursor["updated_to"] == "2026-11-20 08:59:59"
    again = [r for e in second for r in e.rejects]
    # The new keyless rows, the late one included, and the one in the overlap again, with
    # the same payload (the quarantine keeps one open entry per rule and payload); none of
    # the first run's others.
    assert {r.rule for r in again} == {"source_key_present"}
    assert sorted(r.payload["update_time"] for r in again) == [
        "2026-11-20 07:50:30", "2026-11-20 07:55:00", "2026-11-20 08:30:00"]
    [met_again] = [r for r in again if r.payload["update_time"] == "2026-11-20 07:55:00"]
    assert met_again.payload in [r.payload for r in keyless_rejects]
    # The standing condition is said again, as long as it lasts.
    assert any(w.startswith(f"t_case: {len(unusable)} row(s) without a usable update_time")
               for w in second[0].warnings)
    assert_nothing_personal(second)


@pytest.mark.parametrize("chunk_rows", [1, 3])
@pytest.mark.parametrize("platform", VARIANTS, indirect=True)
def test_keyless_rows_of_every_table_are_rejected_once_wherever_a_run_stops(
        tmp_path, platform, chunk_rows):
    """Components and unit grids in small chunks; a run that ends after any extract (a
    crash: the pipeline committed up to it) is resumed from that extract's cursor. Every
    keyed row is read and every keyless row rejected over the two runs; one met twice
    (the overlap, or a stop between extracts) comes with the same payload, which the
    quarantine keeps as one open entry."""
    component = dict.fromkeys(COMPONENT_FIELDS) | {"obj_name": NAME, "dept_name1": ADDRESS}
    platform.plant("t_component", [
        component | {"obj_id": "2111030101000001", "update_time": f"{DAY} 10:00:00"},
        component | {"obj_id": None, "update_time": f"{DAY} 10:00:00"},
        component | {"obj_id": "", "update_time": f"{DAY} 11:00:00"},
        component | {"obj_id": None, "update_time": f"{DAY} 11:00:00"},
        component | {"obj_id": "2111030101000002", "update_time": f"{DAY} 11:00:00"},
        component | {"obj_id": "2111030101000004", "update_time": f"{DAY} 12:00:00"},
        component | {"obj_id": "2111030101000003", "update_time": None},
    ])
    grid = dict.fromkeys(UNIT_GRID_FIELDS) | {"community_name": ADDRESS}
    platform.plant("t_unit_grid", [
        grid | {"grid_code": "211103001001001", "update_time": f"{DAY} 10:00:00"},
        grid | {"grid_code": None, "update_time": f"{DAY} 10:00:00"},
        grid | {"grid_code": "211103001001002", "update_time": "0000-00-00 00:00:00"},
    ])
    cm = connector(tmp_path, platform, chunk_rows)
    for stream, table, key, loaded, rejected, warned in (
            ("components", "t_component", "obj_id",
             {"2111030101000001", "2111030101000002", "2111030101000004"}, 3,
             "2111030101000003"),
            ("unit_grids", "t_unit_grid", "grid_code", {"211103001001001"}, 1,
             "211103001001002")):
        full = read(cm, stream, None, RUN1)
        assert len([r for e in full for r in e.rejects]) == rejected
        assert any(w.startswith(f"{table}: 1 row(s) without a usable update_time ({key} "
                                f"{warned})") for w in full[0].warnings), full[0].warnings
        for stop in range(len(full)):
            committed = full[:stop + 1]
            both = committed + read(cm, stream, committed[-1].cursor, RUN1)
            assert set(keys(both, key)) == loaded, (stream, stop)
            rejects = [r for e in both for r in e.rejects]
            assert all(r.rule == "source_key_present" and r.reason.startswith(
                f"{table}: a row with no {key}") for r in rejects)
            entries = {tuple(sorted(r.payload.items(), key=str)) for r in rejects}
            assert len(entries) == rejected, (stream, stop, [r.where for r in rejects])
            assert_nothing_personal(both)
