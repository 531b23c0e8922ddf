"""Which connector class serves which `connector:` name of the sources file."""

from __future__ import annotations

from connectors.base import Connector
from connectors.citymgmt import CityMgmt
from connectors.gridmgmt import GridMgmt
from connectors.hotline12345 import Hotline12345
from connectors.video import Video

CONNECTORS: dict[str, type[Connector]] = {c.name: c for c in (Hotline12345, Video, CityMgmt, GridMgmt)}


def connector_class(name: str) -> type[Connector]:
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {', '.join(sorted(CONNECTORS))}") from None


def tables_written(name: str) -> tuple[str, ...]:
    """Core tables a connector's streams end up in (for lineage and Airflow assets)."""
    from conform.registry import conformer_class

    tables: list[str] = []
    for stream in connector_class(name).streams:
        conformer = conformer_class(name, stream.name)
        for entity in (conformer.primary, *conformer.derived):
            if entity.table not in tables:
                tables.append(entity.table)
    return tuple(tables)
