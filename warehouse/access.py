"""Department access: logins, their jurisdiction, and the audit of clear reads.

A department login is a PostgreSQL login that is a member of `hub_reader` (and of
`hub_pii_reader` when it may read clear values through the audited functions). What
it sees is its grants in `ops.access_grant`, enforced by the core tables' row-level
security (migration 0008). Granting and revoking run as the owner; every grant and
revocation is a row kept with who made it and when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from warehouse.db import conninfo

# A login name people can type in psql and BI tools: lower-case ASCII, no quoting needed.
_LOGIN = re.compile(r"[a-z][a-z0-9_]{2,62}")
_RESERVED = re.compile(r"(hub_|pg_|postgres$)")


class AccessError(ValueError):
    """A grant or revocation that cannot be made as asked (the message says why)."""


@dataclass(frozen=True)
class Jurisdiction:
    """The rows a login may see: places, and optionally event categories and handling
    organizations (None = no limit)."""

    whole_city: bool = False
    districts: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()
    categories: tuple[str, ...] | None = None
    handling_orgs: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = ["whole city"] if self.whole_city else []
        parts += [f"{k} {', '.join(v)}" for k, v in (
            ("districts", self.districts), ("streets", self.streets), ("grids", self.grids)) if v]
        if self.categories is not None:
            parts.append(f"categories {', '.join(self.categories)}")
        if self.handling_orgs is not None:
            parts.append(f"handling organizations {', '.join(self.handling_orgs)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class GrantRow:
    grant_id: int
    login: str
    department: str
    jurisdiction: Jurisdiction
    clear_pii: bool
    reason: str | None
    granted_by: str
    granted_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None


def grant(conn: psycopg.Connection, login: str, department: str, where: Jurisdiction, *,
          clear_pii: bool, granted_by: str, reason: str | None = None,
          password: str | None = None) -> int:
    """Let `login` read its jurisdiction (creating the login if it does not exist);
    returns the grant's id. Runs as the owner, in the caller's transaction."""
    _check_login(conn, login)
    _check_places(conn, where)
    _check_same_limits(conn, login, where)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
    role = sql.Identifier(login)
    if exists is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    else:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
    if password:
        # Utility statements take no bind parameters: the literal is quoted by psycopg.
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT hub_reader TO {}").format(role))
    if clear_pii:
        conn.execute(sql.SQL("GRANT hub_pii_reader TO {}").format(role))
    row = conn.execute(
        "INSERT INTO ops.access_grant (login, department, whole_city, districts, streets, grids,"
        " categories, handling_orgs, clear_pii, reason, granted_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING grant_id",
        (login, department, where.whole_city, list(where.districts), list(where.streets),
         list(where.grids), _list(where.categories), _list(where.handling_orgs), clear_pii,
         reason, granted_by)).fetchone()
    assert row is not None
    return int(row[0])


def revoke(conn: psycopg.Connection, login: str, *, revoked_by: str,
           department: str | None = None) -> int:
    """End `login`'s active grants (of one department, or all); returns how many. A login
    left without grants keeps its name but can no longer log in or read anything."""
    ended = conn.execute(
        "UPDATE ops.access_grant SET revoked_at = now(), revoked_by = %s"
        " WHERE login = %s AND revoked_at IS NULL AND (%s::text IS NULL OR department = %s)",
        (revoked_by, login, department, department)).rowcount
    if ended == 0:
        raise AccessError(f"{login} has no active grant"
                          + (f" for {department}" if department else "") + "; see `hub access list`")
    left = conn.execute(
        "SELECT count(*), bool_or(clear_pii) FROM ops.access_grant"
        " WHERE login = %s AND revoked_at IS NULL", (login,)).fetchone()
    role = sql.Identifier(login)
    if left is None or left[0] == 0:
        conn.execute(sql.SQL("REVOKE hub_reader, hub_pii_reader FROM {}").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
    elif not left[1]:
        conn.execute(sql.SQL("REVOKE hub_pii_reader FROM {}").format(role))
    return ended


def login_conninfo(login: str) -> str:
    """How a department login reaches the warehouse: its address, the login's name, and
    no password (the login brings its own, or the server authenticates it otherwise)."""
    params = {k: v for k, v in conninfo_to_dict(conninfo()).items()
              if k in ("host", "port", "dbname", "hostaddr", "sslmode")}
    return make_conninfo("", **params, user=login)


def grants(conn: psycopg.Connection, *, include_revoked: bool = False) -> list[GrantRow]:
    rows = conn.execute(
        "SELECT grant_id, login, department, whole_city, districts, streets, grids, categories,"
        " handling_orgs, clear_pii, reason, granted_by, granted_at, revoked_by, revoked_at"
        " FROM ops.access_grant WHERE %s OR revoked_at IS NULL ORDER BY login, grant_id",
        (include_revoked,)).fetchall()
    return [GrantRow(r[0], r[1], r[2], Jurisdiction(r[3], tuple(r[4]), tuple(r[5]), tuple(r[6]),
                                                    _tuple(r[7]), _tuple(r[8])),
                     r[9], r[10], r[11], r[12], r[13], r[14]) for r in rows]


def clear_reads(conn: psycopg.Connection, *, login: str | None = None,
                since: datetime | None = None, limit: int = 100) -> list[tuple]:
    """The audit of clear reads, newest first."""
    return conn.execute(
        "SELECT read_id, read_at, login, on_behalf_of, what, reference, reason FROM ops.pii_read"
        " WHERE (%(login)s::text IS NULL OR login = %(login)s)"
        " AND (%(since)s::timestamptz IS NULL OR read_at >= %(since)s)"
        " ORDER BY read_at DESC, read_id DESC LIMIT %(limit)s",
        {"login": login, "since": since, "limit": limit}).fetchall()


def _check_login(conn: psycopg.Connection, login: str) -> None:
    if not _LOGIN.fullmatch(login) or _RESERVED.match(login):
        raise AccessError(
            f"login {login!r}: use 3–63 lower-case letters, digits or _, starting with a letter,"
            " not hub_…, pg_… or postgres (e.g. xlt_cgj for 兴隆台区城管局)")
    row = conn.execute("SELECT rolsuper OR rolbypassrls OR rolcreaterole FROM pg_roles"
                       " WHERE rolname = %s", (login,)).fetchone()
    if row and row[0]:
        raise AccessError(f"{login} is a privileged role (superuser, BYPASSRLS or CREATEROLE);"
                          " a department login must be an ordinary one")


def _check_places(conn: psycopg.Connection, where: Jurisdiction) -> None:
    if not (where.whole_city or where.districts or where.streets or where.grids):
        raise AccessError("say what the login may see: --city, --district, --street or --grid")
    for codes, level, label in ((where.districts, "county", "district (6-digit county code)"),
                                (where.streets, "street", "street (9-digit code)")):
        if not codes:
            continue
        known = {r[0] for r in conn.execute(
            "SELECT code FROM core.division WHERE code = ANY(%s) AND level = %s"
            " AND valid_to IS NULL AND retired_on IS NULL", (list(codes), level))}
        unknown = sorted(set(codes) - known)
        if unknown:
            raise AccessError(f"unknown or retired {label}: {', '.join(unknown)}"
                              " (see mart.division)")
    if where.categories:
        known = {r[0] for r in conn.execute(
            "SELECT code FROM core.event_category WHERE code = ANY(%s)", (list(where.categories),))}
        unknown = sorted(set(where.categories) - known)
        if unknown:
            raise AccessError(f"unknown event category: {', '.join(unknown)}"
                              " (see mart.event_category)")


def _check_same_limits(conn: psycopg.Connection, login: str, where: Jurisdiction) -> None:
    """A login's grants add up their places; their category and organization limits
    must agree (the row policy reads one set per login), so a login that needs other
    limits elsewhere is a second login."""
    for row in conn.execute(
            "SELECT department, categories, handling_orgs FROM ops.access_grant"
            " WHERE login = %s AND revoked_at IS NULL", (login,)):
        if (_set(row[1]), _set(row[2])) != (_set(where.categories), _set(where.handling_orgs)):
            raise AccessError(
                f"{login} already has a grant ({row[0]}) with other category or organization"
                " limits; a login's limits must agree: revoke it first or use another login")


def _list(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _set(values: list[str] | tuple[str, ...] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
