"""What the demo and the connector conformance test need of any running simulator, and
the foreground loop of a simulator run from the command line."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.citymgmt import CityMgmt
from connectors.gridmgmt import GridMgmt
from connectors.hotline12345 import Hotline12345
from connectors.video import Video
from connectors.zongzhi import Zongzhi
from sandbox.city import City


@dataclass
class DemoPlatform:
    """A simulated platform, running, and how the hub reaches it."""

    settings: dict[str, Any]  # merged into the source's `settings:` in the sources file
    env: dict[str, str]  # secrets, as HUB_<SOURCE>_<FIELD> environment variables
    advance: Callable[[], int]  # the platform moves on; returns how many records changed
    stop: Callable[[], None]
    # The simulator object itself, for tests that check against its ground truth.
    simulator: Any = None


# The simulator of each connector: the module of sandbox/ whose
#   start_for_demo(city, days, workdir, source) -> DemoPlatform
# starts it, imported when one is started (a simulator imports `DemoPlatform` from here).
STARTERS: dict[str, str] = {
    Hotline12345.name: "sandbox.hotline_server",
    CityMgmt.name: "sandbox.citymgmt",
    Video.name: "sandbox.video_platform",
    GridMgmt.name: "sandbox.gridmgmt_server",
    Zongzhi.name: "sandbox.zongzhi_server",
}


def start(connector: str, city: City, days: int, workdir: Path, source: str) -> DemoPlatform:
    platform: DemoPlatform = importlib.import_module(STARTERS[connector]).start_for_demo(
        city, days, workdir, source)
    return platform


def run_until_interrupted(stop: Callable[[], None] | None = None, *, every: float = 0.0,
                          tick: Callable[[], None] | None = None) -> None:
    """Keep a simulator run from the command line alive until Ctrl-C, calling `tick` (the
    platform moving on) every `every` seconds when both are given; `stop` it at the end."""
    try:
        while True:
            time.sleep(every or 3600)
            if every and tick is not None:
                tick()
    except KeyboardInterrupt:
        pass
    finally:
        if stop is not None:
            stop()
