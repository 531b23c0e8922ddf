"""Conformed rows as they are stored: every personal-data field as a keyed hash and a
masked value, never in clear (the model says which fields; base.pii says how)."""

from __future__ import annotations

import pyarrow as pa

from base.pii import IDENTITY, MASKS, hash_array
from schemas.arrow import load_schema
from schemas.model import Entity


def protect(entity: Entity, conformed: pa.Table) -> pa.Table:
    """The conformed table as it is loaded: every personal-data field hashed and masked."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {"source_id": conformed["source_id"]}
    for f in entity.fields:
        col = conformed[f.name]
        if f.pii is None:
            columns[f.name] = col
        else:
            columns[f"{f.name}_hash"] = hash_array(col, IDENTITY[f.pii])
            columns[f"{f.name}_masked"] = MASKS[f.pii](col)
    for name, _ in entity.extra_columns:
        columns[name] = conformed[name]
    schema = load_schema(entity)
    return pa.table([columns[n] for n in schema.names], schema=schema)
