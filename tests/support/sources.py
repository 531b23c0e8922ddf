"""Sources files the tests write: the simulated city (盘锦) and the sources under test."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PANJIN = {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]}


def write_sources_file(path: Path, sources: Mapping[str, Mapping[str, Any]],
                       **city: Any) -> Path:
    """A sources file for 盘锦 (city fields overridable, e.g. timezone) with `sources`:
    name → {"connector": …, "settings": {…}}."""
    path.write_text(yaml.safe_dump({"city": {**PANJIN, **city}, "sources": dict(sources)},
                                   allow_unicode=True), encoding="utf-8")
    return path
