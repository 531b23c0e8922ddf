"""Code mappings: data files under schemas/mappings/<platform>/, not if-chains.

`categories.csv` maps a platform's category codes to the hub taxonomy and
`statuses.csv` its statuses to the hub's; both are checked against the hub's
own tables here, so a typo in a mapping file fails loudly at load time.
"""

from __future__ import annotations

import csv
from functools import cache, lru_cache
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
MAPPINGS = SCHEMAS / "mappings"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=1)
def hub_categories() -> frozenset[str]:
    return frozenset(r["code"] for r in _rows(SCHEMAS / "taxonomy.csv"))


@lru_cache(maxsize=1)
def hub_statuses() -> frozenset[str]:
    return frozenset(r["status"] for r in _rows(SCHEMAS / "statuses.csv"))


def _mapping(platform: str, file: str, source_col: str, target_col: str,
             allowed: frozenset[str]) -> dict[str, str]:
    path = MAPPINGS / platform / file
    mapping: dict[str, str] = {}
    for line, r in enumerate(_rows(path), start=2):
        target = r[target_col]
        if target not in allowed:
            raise ValueError(f"{path}:{line}: {target!r} is not a hub code")
        if r[source_col] in mapping and mapping[r[source_col]] != target:
            raise ValueError(f"{path}:{line}: {r[source_col]!r} is mapped twice")
        mapping[r[source_col]] = target
    return mapping


@cache
def category_mapping(platform: str, source_col: str = "source_category_code") -> dict[str, str]:
    return _mapping(platform, "categories.csv", source_col, "category_code", hub_categories())


@cache
def status_mapping(platform: str) -> dict[str, str]:
    return _mapping(platform, "statuses.csv", "source_status", "status", hub_statuses())
