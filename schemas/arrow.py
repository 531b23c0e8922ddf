"""Arrow schemas of the conformed rows, derived from `schemas.model`.

Two stages: a conform step produces `conformed_schema` (personal data still in
clear, so validation can check it); `base.pii` turns it into `load_schema`, where
each personal-data field is a keyed hash plus a masked value.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.model import Entity, Kind

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.DATE: pa.date32(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.JSON: pa.string(),
}

KEY = pa.field("source_id", pa.string(), nullable=False)


def conformed_schema(entity: Entity) -> pa.Schema:
    fields = [KEY] + [pa.field(f.name, ARROW_TYPES[f.kind]) for f in entity.fields]
    fields += [pa.field(n, ARROW_TYPES[k]) for n, k in entity.extra_columns]
    return pa.schema(fields)


def load_schema(entity: Entity) -> pa.Schema:
    return pa.schema([KEY] + [pa.field(n, ARROW_TYPES[k]) for n, k in entity.data_columns()])

