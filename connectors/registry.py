"""Which connector class serves which `connector:` name of the sources file."""

from __future__ import annotations

from connectors.base import Connector
from connectors.hotline12345 import Hotline12345

CONNECTORS: dict[str, type[Connector]] = {c.name: c for c in (Hotline12345,)}


def connector_class(name: str) -> type[Connector]:
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {', '.join(sorted(CONNECTORS))}") from None


def tables_written(name: str) -> tuple[str, ...]:
    return connector_class(name).tables_written
