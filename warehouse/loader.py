"""Loading: COPY into a staging table, then one set-based merge into a core table.

History is kept the slowly-changing way: a source record whose values changed gets
a new version and the old one is closed (`valid_to`); an unchanged record is left
alone, so loading the same batch twice changes nothing. With `snapshot=True` a
current record missing from the batch is closed too: a full snapshot says it is
gone. Nothing is ever deleted.

All statements run on the caller's connection and transaction, so the pipeline
commits the merge, the quarantine, the run counters and the cursor together.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from schemas.ddl import PG_TYPES
from schemas.model import Entity

# COPY is streamed in pieces of this many rows: bounded memory however big the batch.
COPY_CHUNK_ROWS = 20_000


@dataclass
class MergeCounts:
    inserted: int = 0  # new source records
    updated: int = 0  # records whose values changed: new version, old one closed
    unchanged: int = 0  # same values as the current version (or older than it)
    closed: int = 0  # snapshot loads: current records absent from the snapshot

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.closed += other.closed
        return self


def copy_arrow(conn: psycopg.Connection, table: pa.Table, target: sql.Composable) -> None:
    """COPY an Arrow table into `target` (its columns named as the table's) as CSV.

    pyarrow writes the CSV in C++; NULL is an unquoted empty field and an empty
    string a quoted one, which is exactly how PostgreSQL's CSV format reads them.
    """
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    options = pacsv.WriteOptions(include_header=False, batch_size=COPY_CHUNK_ROWS)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, table.num_rows, COPY_CHUNK_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(table.slice(start, COPY_CHUNK_ROWS), buf, options)
            copy.write(buf.getbuffer())


def _staging(conn: psycopg.Connection, entity: Entity, table: pa.Table) -> sql.Identifier:
    name = sql.Identifier(f"stage_{entity.name}")
    columns = _staging_columns(entity)
    # Temporary and dropped at commit: no WAL, private to this transaction.
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(name, columns))
    copy_arrow(conn, table, name)
    return name


def _staging_columns(entity: Entity) -> sql.Composable:
    cols = [("source_id", "text")] + [(n, PG_TYPES[k]) for n, k in entity.data_columns()]
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in cols
    )


def merge(
    conn: psycopg.Connection,
    entity: Entity,
    table: pa.Table,
    *,
    source_system: str,
    run_id: int,
    snapshot: bool = False,
) -> MergeCounts:
    """Merge one batch of `entity` rows (load schema, one row per source_id)."""
    stage = _staging(conn, entity, table)
    target = sql.Identifier(*entity.table.split("."))
    data_cols = [n for n, _ in entity.data_columns()]
    s_cols = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in data_cols)
    t_cols = sql.SQL(", ").join(sql.Identifier(c) for c in data_cols)
    row_hash = sql.SQL("md5(ROW({})::text)").format(s_cols)
    # A record older than the current version (a replayed or late copy) never
    # overwrites newer data.
    not_older = (
        sql.SQL("AND (s.source_updated_at IS NULL OR t.source_updated_at IS NULL"
                " OR s.source_updated_at >= t.source_updated_at)")
        if "source_updated_at" in data_cols else sql.SQL("")
    )
    params = {"system": source_system, "run": run_id}

    closed_changed = conn.execute(
        sql.SQL(
            "UPDATE {target} t SET valid_to = now() FROM {stage} s"
            " WHERE t.source_system = %(system)s AND t.source_id = s.source_id"
            " AND t.valid_to IS NULL AND t.record_hash <> {row_hash} {not_older}"
        ).format(target=target, stage=stage, row_hash=row_hash, not_older=not_older),
        params,
    ).rowcount
    inserted_total = conn.execute(
        sql.SQL(
            "INSERT INTO {target} (source_system, source_id, record_hash, run_id, valid_from,"
            " {t_cols}) SELECT %(system)s, s.source_id, {row_hash}, %(run)s, now(), {s_cols}"
            " FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {target} t"
            " WHERE t.source_system = %(system)s AND t.source_id = s.source_id"
            " AND t.valid_to IS NULL)"
        ).format(target=target, t_cols=t_cols, row_hash=row_hash, s_cols=s_cols, stage=stage),
        params,
    ).rowcount
    counts = MergeCounts(
        inserted=inserted_total - closed_changed,
        updated=closed_changed,
        unchanged=table.num_rows - inserted_total,
    )
    if snapshot:
        counts.closed = conn.execute(
            sql.SQL(
                "UPDATE {target} t SET valid_to = now() WHERE t.source_system = %(system)s"
                " AND t.valid_to IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.source_id = t.source_id)"
            ).format(target=target, stage=stage),
            params,
        ).rowcount
    conn.execute(sql.SQL("DROP TABLE {}").format(stage))
    return counts
