"""The platforms the hub speaks: the one list of them, and their connectors by name.

A platform is a module of the same name in connectors/ and in conform/. Importing the
first registers its connector under its `name` (`connectors.base.Connector`), the
`connector:` of the sources file; importing the second registers a conform step per
stream (`conform.base.Conformer`), which hub.lineage does from this list (conform
never imports a connector). Adding a platform is writing those two modules and adding
its name here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from connectors.base import REGISTERED, Connector

PLATFORMS: tuple[str, ...] = ("hotline12345", "citymgmt", "video", "gridmgmt", "zongzhi")

for _platform in PLATFORMS:
    importlib.import_module(f"connectors.{_platform}")


def _platform_connector(platform: str) -> type[Connector]:
    if platform not in REGISTERED:
        raise TypeError(f"connectors/{platform}.py declares no connector named {platform!r}")
    return REGISTERED[platform]


# The connector of each platform (a connector a test declares is registered, not listed).
CONNECTORS: Mapping[str, type[Connector]] = {p: _platform_connector(p) for p in PLATFORMS}


def connector_class(name: str) -> type[Connector]:
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {', '.join(sorted(CONNECTORS))}") from None
