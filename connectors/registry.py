"""Which connector class serves which `connector:` name of the sources file."""

from __future__ import annotations

from connectors.base import Connector
from connectors.citymgmt import CityMgmt
from connectors.gridmgmt import GridMgmt
from connectors.hotline12345 import Hotline12345
from connectors.video import Video
from connectors.zongzhi import Zongzhi

CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (Hotline12345, Video, CityMgmt, GridMgmt, Zongzhi)}


def connector_class(name: str) -> type[Connector]:
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {', '.join(sorted(CONNECTORS))}") from None

