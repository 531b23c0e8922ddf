"""Digital city management (数字城管): cases, components and unit grids from its database.

Protocol (shared/design/sources.md §2): the platform's relational database (Oracle or
MySQL in production, MariaDB or SQLite here), read over a SQLAlchemy URL; tables
`t_case`, `t_component`, `t_unit_grid`, each read incrementally by `update_time`.

Secrets: `url` is configuration and carries no password (one in it is refused); the
password is the secret `password` (`HUB_<SOURCE>_PASSWORD`, or the password of the
Airflow connection `hub_<source>`), put into the URL only when connecting.

Each table is read in keyset chunks ordered by (update_time, key) inside a window
whose end is fixed when the run starts (see `KeysetRead`), so rows updated during
the read never shift a chunk: they move past the window end and wait for the next
run, whose window starts the overlap before this one's end.

A bad row never fails the run (details at `KeysetRead`):
- values are read as the database stores them, unconverted (a DATETIME of SQLite may
  hold any text, one of MariaDB the zero date 0000-00-00): a date the conform step
  cannot parse quarantines that record there;
- a row without a key (NULL or blank) is read apart from the keyset and rejected
  (`source_key_present`) by the run that reads its update time; a row with text
  that is not UTF-8 (SQLite) is rejected as `value_readable`;
- rows without a usable update time (NULL, the zero date, not a time) are in no
  window: every run counts them and warns, naming their keys.
"""

from __future__ import annotations

import logging
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import Field, SecretStr
from sqlalchemy.pool import NullPool

from connectors.base import (
    LOCAL_TIME_FORMAT,
    Connector,
    Extract,
    ReadContext,
    RowReject,
    SourceError,
    SourceSettings,
    Stream,
    UpdatedSinceSettings,
    UpdatedWindow,
    as_text,
    records_table,
)

log = logging.getLogger(__name__)


class CityMgmtSettings(SourceSettings, UpdatedSinceSettings):
    url: str = Field(description="SQLAlchemy URL without the password, e.g. "
                     "mysql+pymysql://reader@db.example:3306/dcm?charset=utf8mb4")
    password: SecretStr = Field(SecretStr(""), description="database password (secret)")
    db_schema: str | None = Field(None, description="schema / owner of the tables, if not the default")
    tables: dict[str, str] = Field(
        {"cases": "t_case", "components": "t_component", "unit_grids": "t_unit_grid"},
        description="table name per stream")
    chunk_rows: int = Field(1000, ge=1, le=100_000, description="rows per keyset query")
    crs: str = Field("EPSG:4550", description="CRS of x/y and boundary_wkt: CGCS2000 3-degree "
                     "Gauss-Krüger CM 123E (EPSG:4529 if eastings carry the zone prefix 41)")


MYSQL = ("mysql", "mariadb")
TEMPORAL = (sa.Date, sa.DateTime, sa.Time)
# The earliest date MySQL/MariaDB store; their zero date 0000-00-00 compares below it.
TIME_FLOOR = "1000-01-01"
# A time stored as text must begin with a date (yyyy-MM-dd, month and day not zero) to
# have a place in a window; what follows is the conform step's to judge.
TIME_SHAPE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
TIME_SHAPE_REGEX = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
# Keys named in a warning, as examples (keys only: never a row's content).
EXAMPLE_KEYS = 5
_FRACTION = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.\d*$")
_LOCAL_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})")


def _temporal(column: sa.ColumnElement[Any]) -> bool:
    return isinstance(column.type, TEMPORAL)


def _text(value: Any) -> str | None:
    """A value as text; a type `as_text` does not know is spelt by Python, never a failure."""
    try:
        return as_text(value)
    except (TypeError, ValueError):
        return str(value)


def _undecodable(text: str) -> bool:
    """Text that held bytes which are not UTF-8 (read with them escaped, see `engine`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _repaired(text: str | None) -> str | None:
    """Text with its undecodable bytes as U+FFFD: for payloads and messages."""
    if text is None or not _undecodable(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def local_time_text(value: Any) -> str | None:
    """A time as read, as `yyyy-MM-dd HH:mm:ss`; None when it is not one."""
    if isinstance(value, datetime):
        return value.strftime(LOCAL_TIME_FORMAT)
    match = _LOCAL_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    text = f"{match.group(1)} {match.group(2)}"
    try:
        datetime.strptime(text, LOCAL_TIME_FORMAT)
    except ValueError:
        return None
    return text


def shown(value: str | None, limit: int = 40) -> str:
    """A key for an operator's message: printable, bounded."""
    text = "".join(c if c.isprintable() else "?" for c in (_repaired(value) or ""))
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Chunk:
    """One step of a read: keyed rows (values as text), rows without a key (rejects), and
    the cursor time this step reaches."""

    rows: list[dict[str, str | None]]
    keyless: list[dict[str, str | None]]
    reached: str


@dataclass
class KeysetRead:
    """One table read by update time in true keyset chunks, bounded by a fixed window.

    Each chunk is `update_time >= start` (first) or `(update_time, key) > (t, k)` of the
    last row read, `AND update_time <= end ORDER BY update_time, key LIMIT n`: a chunk
    never depends on how many rows came before it, so rows that change meanwhile can
    neither be skipped nor read twice by shifting. Each chunk is its own short
    transaction: no snapshot is held open on the platform between chunks.

    Rows the platform should not have, met without failing the read:
    - Values are read as the database spells them, unconverted (`_selected`): a bad
      date travels as text to the conform step, which quarantines what it cannot parse.
    - A row without a key (NULL or blank) can be no keyset position (`(t, k) > (t, NULL)`
      is never true: the read would skip or stall) and no record. The chunks read only
      keyed rows; after each chunk the keyless rows of the update times it covered,
      (previous position, this position], are read apart (`_keyless_pages`) and
      rejected, so a cursor never passes a keyless row not yet rejected. Like any row,
      a keyless one is met again when the next window's overlap (or a resumed run)
      covers it: the quarantine keeps one open entry per rule and payload
      (`quality.store.record_rejects`), so meeting it again adds none, and one committed
      late into the overlap is still caught.
    - A row without a usable update time (NULL, MariaDB's zero date, text that is not a
      time) is in no window: no incremental read can reach it. `warnings` reports them.
    """

    table: sa.Table
    updated: str
    key: str
    columns: tuple[str, ...]
    window: UpdatedWindow
    chunk_rows: int
    dialect: str = "default"
    # Where the queries are counted (the connector's `stats`).
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def _t(self) -> sa.Column[Any]:
        return self.table.c[self.updated]

    @property
    def _k(self) -> sa.Column[Any]:
        return self.table.c[self.key]

    def _selected(self, name: str) -> sa.ColumnElement[Any]:
        """A column as read: its value as stored, no conversion that could fail on it."""
        column = self.table.c[name]
        if self.dialect == "sqlite":
            # Any column of SQLite holds any value: a DATETIME may hold 'yesterday', which
            # SQLAlchemy's own conversion of the column type fails on. Take what is stored.
            return sa.type_coerce(column, sa.String()).label(name)
        if self.dialect in MYSQL and _temporal(column):
            # The server spells its times itself, the zero date 0000-00-00 included (which
            # drivers turn into None or fail on), and TIME values (durations to a driver).
            return sa.cast(column, sa.CHAR()).label(name)
        return column

    @property
    def _positions_as_text(self) -> bool:
        """Update times come back as text (`_selected`), and go back into queries as text."""
        return self.dialect == "sqlite" or self.dialect in MYSQL or not _temporal(self._t)

    def _bound(self, when: datetime) -> sa.ColumnElement[Any]:
        """A time of the window, as the update time column compares with it."""
        if _temporal(self._t):
            return sa.literal(when, self._t.type)
        return sa.literal(when.strftime(LOCAL_TIME_FORMAT), sa.String())

    def _compare(self, column: sa.Column[Any], op: Callable[[Any, Any], Any], value: Any
                 ) -> sa.ColumnElement[bool]:
        """`column <op> value` for a value read from a row (a keyset position)."""
        if isinstance(value, str) and _undecodable(value):
            # SQLite text with bytes that are not UTF-8 cannot be bound as text: compare the
            # bytes (SQLite's BINARY collation orders text by its bytes, too).
            raw = value.encode("utf-8", "surrogateescape")
            return op(sa.cast(column, sa.LargeBinary()), sa.literal(raw, sa.LargeBinary()))
        if column is self._t and self._positions_as_text:
            return op(column, sa.literal(value, sa.String()))
        return op(column, value)

    def _usable(self) -> sa.ColumnElement[bool]:
        """Rows whose update time can place them in a window; the others are in none."""
        t = self._t
        floor = t >= sa.literal(TIME_FLOOR, sa.String())
        if self.dialect == "sqlite":
            # GLOB, not a regular expression: SQLAlchemy's REGEXP for SQLite fails on a
            # number; date() is NULL for a month or day out of range (00, 13 …).
            shape = t.op("GLOB", is_comparison=True)(sa.literal(TIME_SHAPE_GLOB, sa.String()))
            day = sa.func.date(sa.func.substr(t, 1, 10)).is_not(None)
            return sa.and_(shape, day, floor)
        if not _temporal(t):
            return sa.and_(t.regexp_match(TIME_SHAPE_REGEX), floor)
        if self.dialect in MYSQL:
            # The zero date (and NULL) fall below the floor; a zero month or day (2026-00-00,
            # stored by servers without NO_ZERO_IN_DATE) sorts before the year's first day.
            return sa.and_(floor, sa.func.month(t) > 0, sa.func.dayofmonth(t) > 0)
        return t.is_not(None)

    def _keyed(self) -> sa.ColumnElement[bool]:
        """Rows with a key: not NULL, not blank."""
        k = self._k
        if not isinstance(k.type, sa.String):
            return k.is_not(None)
        trimmed = sa.func.trim(k)
        if self.dialect == "oracle":
            return trimmed.is_not(None)  # Oracle's '' is NULL
        return sa.and_(k.is_not(None), trimmed != sa.literal("", sa.String()))

    def _fetch(self, conn: sa.Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        conn.rollback()  # end the read transaction: hold no snapshot between queries
        self.stats["queries"] += 1
        return rows

    def _count(self, conn: sa.Connection, *where: sa.ColumnElement[bool]) -> int:
        rows = self._fetch(conn, sa.select(sa.func.count().label("n")).select_from(self.table)
                           .where(*where))
        return int(rows[0]["n"])

    def _as_text(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name, value in row.items():
            text = _text(value)
            if text is not None and _temporal(self.table.c[name]):
                # Local times to the second, as before (SQLite keeps SQLAlchemy's microseconds).
                text = _FRACTION.sub(r"\1", text)
            out[name] = text
        return out

    def warnings(self, conn: sa.Connection) -> list[str]:
        """What the platform holds that no run can load: said on every run while it lasts.

        Rows without a usable update time are warned about rather than quarantined: no
        window ever reads them, so no run could tell which of them an earlier run already
        quarantined without keeping their keys, and quarantining them on every run would
        make new entries of the same rows each time. A count with example keys (keys only,
        never a row's content) is the standing state, back to nothing once the platform
        sets the time; the row then loads like any other. Keyless rows are quarantined
        (see the class); their count is said here too, as the standing state.
        """
        t, k, name = self._t, self._k, self.table.name
        out = []
        unusable = sa.or_(t.is_(None), sa.not_(self._usable()))
        n = self._count(conn, unusable)
        if n:
            keys = [shown(_text(r[self.key])) for r in self._fetch(
                conn, sa.select(self._selected(self.key)).where(unusable, self._keyed())
                .order_by(k).limit(EXAMPLE_KEYS + 1))]
            examples = ""
            if keys:
                more = ", …" if len(keys) > EXAMPLE_KEYS or n > len(keys) else ""
                examples = f" ({self.key} {', '.join(keys[:EXAMPLE_KEYS])}{more})"
            out.append(f"{name}: {n} row(s) without a usable {self.updated}{examples}: NULL "
                       f"or not a date and time; they cannot be read incrementally and stay "
                       f"unloaded until the platform sets it")
        n = self._count(conn, sa.not_(self._keyed()))
        if n:
            out.append(f"{name}: {n} row(s) with no {self.key} (NULL or blank); they cannot "
                       f"be loaded, and are quarantined (source_key_present) as the read "
                       f"reaches their {self.updated}")
        return out

    def chunks(self, conn: sa.Connection) -> Iterator[Chunk]:
        """Yield the read chunk by chunk; the last chunk reaches the window end."""
        t, k = self._t, self._k
        select = sa.select(*(self._selected(c) for c in self.columns))
        end = self._bound(self.window.end)
        end_text = self.window.end.strftime(LOCAL_TIME_FORMAT)
        keyed = select.where(self._usable(), self._keyed(), t <= end)
        lower = t >= self._bound(self.window.start)  # of the keyless rows still to read
        reached = self.window.start.strftime(LOCAL_TIME_FORMAT)
        keyless = self._count(conn, sa.not_(self._keyed()), self._usable(), lower, t <= end) > 0
        after: tuple[Any, Any] | None = None
        while True:
            # (The redundant `t >= last t` lets a server use the index as a range.)
            query = keyed.where(t >= self._bound(self.window.start)) if after is None else \
                keyed.where(self._compare(t, operator.ge, after[0]),
                            sa.or_(self._compare(t, operator.gt, after[0]),
                                   sa.and_(self._compare(t, operator.eq, after[0]),
                                           self._compare(k, operator.gt, after[1]))))
            rows = self._fetch(conn, query.order_by(t, k).limit(self.chunk_rows))
            full = len(rows) >= self.chunk_rows
            before = reached
            if full:
                last = (rows[-1][self.updated], rows[-1][self.key])
                if last == after:
                    raise SourceError(f"{self.table.name}: keyset read made no progress at {last}")
                after = last
                # Keyless rows of this chunk's span of update times: up to its last row.
                upper = self._compare(t, operator.le, last[0])
                following = self._compare(t, operator.gt, last[0])
                # Never back, never to a time that is none (a bad one sorting in the window).
                reached = max(reached, local_time_text(last[0]) or reached)
            else:
                upper, following, reached = t <= end, lower, end_text
            rejected: list[dict[str, Any]] = []
            if keyless:
                for page in self._keyless_pages(conn, select, lower, upper):
                    if rejected:  # more than a page: the earlier ones go on their own
                        yield Chunk([], [self._as_text(r) for r in rejected], before)
                    rejected = page
            lower = following
            yield Chunk([self._as_text(r) for r in rows], [self._as_text(r) for r in rejected],
                        reached)
            if not full:
                return

    def _keyless_pages(self, conn: sa.Connection, select: sa.Select[Any],
                       lower: sa.ColumnElement[bool], upper: sa.ColumnElement[bool]
                       ) -> Iterator[list[dict[str, Any]]]:
        """Keyless rows with an update time in (lower, upper], page by page: by position in
        time, stepping by offset only through rows that share one update time."""
        t, k = self._t, self._k
        query = select.where(sa.not_(self._keyed()), self._usable(), lower, upper)
        at: Any = None
        skip = 0
        while True:
            page = query if at is None else query.where(self._compare(t, operator.ge, at))
            page = page.order_by(t, k).limit(self.chunk_rows)
            rows = self._fetch(conn, page.offset(skip) if skip else page)
            if rows:
                yield rows
            if len(rows) < self.chunk_rows:
                return
            last = rows[-1][self.updated]
            same = sum(1 for r in rows if r[self.updated] == last)
            skip, at = (skip + same if at is not None and last == at else same), last


class CityMgmt(Connector):
    name = "citymgmt"
    settings_model = CityMgmtSettings
    settings: CityMgmtSettings
    streams = (
        # Reference data first: the unit grids and components the cases point at.
        Stream(name="unit_grids", key_field="grid_code", updated_field="update_time", fields=(
            "grid_code", "street_code", "community_name", "area_m2", "boundary_wkt",
            "update_time")),
        Stream(name="components", key_field="obj_id", updated_field="update_time",
               after=("unit_grids",), fields=(
            "obj_id", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2",
            "dept_code3", "dept_name3", "grid_code", "obj_state", "or_date", "ch_date", "x", "y",
            "update_time")),
        Stream(name="cases", key_field="case_no", updated_field="update_time",
               after=("unit_grids", "components"), fields=(
            "case_no", "source", "class_type", "big_class", "small_class", "description",
            "address", "grid_code", "x", "y", "component_code", "status", "report_time",
            "register_time", "dispatch_time", "deadline", "dispose_time", "check_time",
            "close_time", "dept_code", "dept_name", "reporter_id", "update_time")),
    )

    def engine(self) -> sa.Engine:
        url = sa.make_url(self.settings.url)
        password = self.settings.password.get_secret_value()
        if password:
            url = url.set(password=password)
        # No pool: one connection per extract, closed when the read ends.
        engine = sa.create_engine(url, poolclass=NullPool)
        if url.get_backend_name() == "sqlite":
            sa.event.listen(engine, "connect", _lenient_sqlite_text)
        return engine

    def _table(self, conn: sa.Connection, stream: Stream) -> sa.Table:
        name = self.settings.tables.get(stream.name)
        if not name:
            raise SourceError(f"no table configured for stream {stream.name!r} (settings.tables)")
        try:
            table = sa.Table(name, sa.MetaData(schema=self.settings.db_schema), autoload_with=conn)
        except sa.exc.NoSuchTableError:
            raise SourceError(f"table {name!r} not found at {sa.make_url(self.settings.url)!r}"
                              ) from None
        missing = [f for f in stream.fields if f not in table.c]
        if missing:
            raise SourceError(f"table {name!r} lacks the column(s) {', '.join(missing)}")
        return table

    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        # The current second is still being written on the platform: it belongs to the
        # next run (otherwise a row saved in it could be read at its old and new place).
        now = self.now_local() - timedelta(seconds=1)
        window = UpdatedWindow.for_run(state, self.settings, now)
        engine = self.engine()
        try:
            with engine.connect() as conn:
                table = self._table(conn, stream)
                read = KeysetRead(
                    table, updated="update_time", key=stream.key_field, columns=stream.fields,
                    window=window, chunk_rows=self.settings.chunk_rows, dialect=conn.dialect.name,
                    stats=self.stats)
                warnings = read.warnings(conn)
                keyless_at: dict[str, int] = {}
                for chunk in read.chunks(conn):
                    records, rejects = _judge(stream, table.name, chunk, keyless_at)
                    yield Extract(records_table(stream, records), {"updated_to": chunk.reached},
                                  rejects=rejects, warnings=warnings)
                    warnings = []
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{stream.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            engine.dispose()


def _lenient_sqlite_text(dbapi_connection: Any, _record: Any) -> None:
    """SQLite stores whatever bytes a writer gave it, and text that is not UTF-8 fails the
    whole query. Read with such bytes escaped, the row is rejected instead (`_judge`)."""
    dbapi_connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")


def _judge(stream: Stream, table: str, chunk: Chunk, keyless_at: dict[str, int]
           ) -> tuple[list[dict[str, str | None]], list[RowReject]]:
    """Split a chunk into records and rejects. Reasons name the table and the row (its
    key, or for a keyless row its update time) and never a value of the row's content."""
    key, updated = stream.key_field, "update_time"
    records: list[dict[str, str | None]] = []
    rejects: list[RowReject] = []

    def payload(row: Mapping[str, str | None]) -> dict[str, str | None]:
        return {name: _repaired(value) for name, value in row.items()}

    def keyless(row: Mapping[str, str | None]) -> RowReject:
        value = row.get(key)
        text = row.get(updated) or ""
        when = local_time_text(text) or f"{text[:10]} (time unreadable)"
        keyless_at[when] = keyless_at.get(when, 0) + 1
        what = "NULL" if value is None else "blank"
        return RowReject(
            rule="source_key_present",
            reason=f"{table}: a row with no {key} ({what}), {updated} {when}: a record "
                   f"without its key cannot be loaded, updated or told apart",
            where=f"{table}: row {keyless_at[when]} with no {key} at {updated} {when}",
            payload=payload(row))

    for row in chunk.rows:
        value = row.get(key)
        unreadable = [name for name, v in row.items() if v is not None and _undecodable(v)]
        if value is None or not (_repaired(value) or "").strip():
            rejects.append(keyless(row))
        elif unreadable:
            rejects.append(RowReject(
                rule="value_readable",
                reason=f"{table} {key} {shown(value)}: {', '.join(unreadable)} not readable "
                       f"as text (bytes that are not UTF-8)",
                where=f"{table}: {key} {shown(value)}",
                payload=payload(row), source_id=_repaired(value)))
        else:
            records.append(row)
    rejects.extend(keyless(row) for row in chunk.keyless)
    return records, rejects
