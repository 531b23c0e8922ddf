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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import Field, SecretStr, field_validator
from sqlalchemy.pool import NullPool

from connectors.base import (
    LOCAL_TIME_FORMAT,
    Connector,
    Extract,
    ReadContext,
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

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, v: str) -> str:
        if sa.make_url(v).password:
            raise ValueError("the url must not carry a password: set it as the secret `password`")
        return v


@dataclass
class KeysetRead:
    """One table read by update time in true keyset chunks, bounded by a fixed window.

    Each chunk is `update_time >= start` (first) or `(update_time, key) > (t, k)` of the
    last row read, `AND update_time <= end ORDER BY update_time, key LIMIT n`: a chunk
    never depends on how many rows came before it, so rows that change meanwhile can
    neither be skipped nor read twice by shifting. Each chunk is its own short
    transaction: no snapshot is held open on the platform between chunks.
    """

    table: sa.Table
    updated: str
    key: str
    columns: tuple[str, ...]
    window: UpdatedWindow
    chunk_rows: int

    def chunks(self, conn: sa.Connection) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Yield (rows, cursor time reached) per chunk; the last chunk reaches the window end."""
        t_col, k_col = self.table.c[self.updated], self.table.c[self.key]
        select = sa.select(*(self.table.c[c] for c in self.columns))
        end_text = self.window.end.strftime(LOCAL_TIME_FORMAT)
        after: tuple[Any, Any] | None = None
        while True:
            query = select.where(t_col <= self.window.end)
            if after is None:
                query = query.where(t_col >= self.window.start)
            else:
                query = query.where(sa.or_(t_col > after[0],
                                           sa.and_(t_col == after[0], k_col > after[1])))
            query = query.order_by(t_col, k_col).limit(self.chunk_rows)
            rows = [dict(r._mapping) for r in conn.execute(query)]
            conn.rollback()  # end the read transaction: hold no snapshot between chunks
            full = len(rows) >= self.chunk_rows
            if full:
                last = (rows[-1][self.updated], rows[-1][self.key])
                if last == after:
                    raise SourceError(f"{self.table.name}: keyset read made no progress at {last}")
                after = last
            reached = (as_text(after[0]) or end_text) if full and after else end_text
            yield [{k: as_text(v) for k, v in r.items()} for r in rows], reached
            if not full:
                return


class CityMgmt(Connector):
    name = "citymgmt"
    settings_model = CityMgmtSettings
    settings: CityMgmtSettings
    streams = (
        # Reference data first: the unit grids and components the cases point at.
        Stream(name="unit_grids", key_field="grid_code", fields=(
            "grid_code", "street_code", "community_name", "area_m2", "boundary_wkt",
            "update_time")),
        Stream(name="components", key_field="obj_id", fields=(
            "obj_id", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2",
            "dept_code3", "dept_name3", "grid_code", "obj_state", "or_date", "ch_date", "x", "y",
            "update_time")),
        Stream(name="cases", key_field="case_no", fields=(
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
        return sa.create_engine(url, poolclass=NullPool)

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
        chunks = 0
        try:
            with engine.connect() as conn:
                read = KeysetRead(self._table(conn, stream), updated="update_time",
                                  key=stream.key_field, columns=stream.fields, window=window,
                                  chunk_rows=self.settings.chunk_rows)
                for rows, reached in read.chunks(conn):
                    chunks += 1
                    yield Extract(records_table(stream, rows), {"updated_to": reached})
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{stream.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            self.http_stats = {"queries": self.http_stats.get("queries", 0) + chunks}
            engine.dispose()
