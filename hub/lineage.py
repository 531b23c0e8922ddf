"""Every platform's connector and conform steps, registered, and which core tables each
connector's streams end up in: where both registries are known.

Importing this module imports every platform (connectors.registry lists them), so the
lookups here know them all. For lineage and the Airflow Assets an ingest DAG publishes;
no I/O, cheap to import at DAG parse time.
"""

from __future__ import annotations

import importlib

from conform.base import conformer_class
from connectors.registry import PLATFORMS, connector_class

__all__ = ["conformer_class", "connector_class", "stream_tables", "tables_written"]

# A platform's conform steps register themselves when conform/<platform>.py is imported
# (under the connector's name and each stream's).
for _platform in PLATFORMS:
    importlib.import_module(f"conform.{_platform}")


def tables_written(connector: str) -> tuple[str, ...]:
    """Core tables a connector's streams end up in, primary entities first, in stream order."""
    tables: list[str] = []
    for stream in connector_class(connector).streams:
        for table in stream_tables(connector, stream.name):
            if table not in tables:
                tables.append(table)
    return tuple(tables)


def stream_tables(connector: str, stream: str) -> tuple[str, ...]:
    """Core tables one stream of a connector ends up in: its primary entity's, then its
    derived entities'."""
    conformer = conformer_class(connector, stream)
    tables: list[str] = []
    for entity in (conformer.primary, *conformer.derived):
        if entity.table not in tables:
            tables.append(entity.table)
    return tuple(tables)
