"""Which core tables each connector's streams end up in: where the connector registry
(protocols) and the conform registry (platform → model) are both known.

For lineage and the Airflow Assets an ingest DAG publishes; no I/O, cheap to import
at DAG parse time.
"""

from __future__ import annotations

from conform.registry import conformer_class
from connectors.registry import connector_class


def tables_written(connector: str) -> tuple[str, ...]:
    """Core tables a connector's streams end up in, primary entities first, in stream order."""
    tables: list[str] = []
    for stream in connector_class(connector).streams:
        conformer = conformer_class(connector, stream.name)
        for entity in (conformer.primary, *conformer.derived):
            if entity.table not in tables:
                tables.append(entity.table)
    return tuple(tables)
