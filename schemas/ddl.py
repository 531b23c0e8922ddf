"""Warehouse DDL derived from `schemas.model`; nothing here lists columns by hand."""

from __future__ import annotations

from schemas.model import ENTITIES, LINEAGE_COLUMNS, Entity, Kind

PG_TYPES: dict[Kind, str] = {
    Kind.TEXT: "text",
    Kind.INT: "bigint",
    Kind.FLOAT: "double precision",
    Kind.BOOL: "boolean",
    Kind.DATE: "date",
    Kind.TIMESTAMP: "timestamptz",
    Kind.JSON: "jsonb",
}


def all_columns(entity: Entity) -> list[tuple[str, Kind]]:
    """Physical columns of a core table, in table order (lineage first)."""
    return [(n, k) for n, k, _ in LINEAGE_COLUMNS] + entity.data_columns()


def create_table(entity: Entity) -> list[str]:
    """Idempotent statements that bring a core table up to the model.

    Columns the model gained since the table was created are added, so the model
    stays the only place a column is declared.
    """
    name = entity.table
    short = name.split(".")[1]
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {name} (row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)"
    ]
    for col, kind in all_columns(entity):
        stmts.append(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {col} {PG_TYPES[kind]}")
    stmts += [
        f"ALTER TABLE {name} ALTER COLUMN source_system SET NOT NULL",
        f"ALTER TABLE {name} ALTER COLUMN source_id SET NOT NULL",
        f"ALTER TABLE {name} ALTER COLUMN valid_from SET NOT NULL",
        # At most one current version per source record: the merge relies on it and
        # a bug that would duplicate fails loudly instead.
        f"CREATE UNIQUE INDEX IF NOT EXISTS {short}_current_key ON {name} "
        f"(source_system, source_id) WHERE valid_to IS NULL",
        f"CREATE INDEX IF NOT EXISTS {short}_history ON {name} (source_system, source_id, valid_from)",
        f"COMMENT ON TABLE {name} IS '{_quote(entity.doc + '. Grain: ' + entity.grain)}'",
    ]
    docs = {n: d for n, _, d in LINEAGE_COLUMNS}
    for f in entity.fields:
        for col, _ in f.columns():
            docs[col] = f.doc + (" (keyed hash)" if col.endswith("_hash") else "")
            if col.endswith("_masked"):
                docs[col] = f.doc + " (masked)"
    for col, doc in docs.items():
        stmts.append(f"COMMENT ON COLUMN {name}.{col} IS '{_quote(doc)}'")
    return stmts


def _quote(text: str) -> str:
    return text.replace("'", "''")


def core_ddl() -> list[str]:
    return [s for e in ENTITIES for s in create_table(e)]
