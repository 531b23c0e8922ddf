"""Code mappings: data files under schemas/mappings/<platform>/, not if-chains.

`categories.csv` maps a platform's category codes to the hub taxonomy and
`statuses.csv` its statuses to the hub's; both are checked against the hub's
own tables here, so a typo in a mapping file fails loudly at load time. Every
mapping file of a platform (its organization types, device types…) is read by the
one reader, `code_map`.
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


def code_map(platform: str, file: str, source_col: str, target_col: str,
             allowed: frozenset[str] | None = None) -> dict[str, str]:
    """One code mapping file, schemas/mappings/<platform>/<file>: its `source_col` values to
    its `target_col` values. A target not `allowed` (when given) or a source value mapped
    two ways is refused with the file and line. Read afresh each call: the callers cache."""
    path = MAPPINGS / platform / file
    mapping: dict[str, str] = {}
    for line, r in enumerate(_rows(path), start=2):
        source, target = r[source_col], r[target_col]
        if allowed is not None and target not in allowed:
            raise ValueError(f"{path}:{line}: {target!r} is no {target_col} the hub knows")
        if mapping.get(source, target) != target:
            raise ValueError(f"{path}:{line}: {source!r} is mapped twice")
        mapping[source] = target
    return mapping


@cache
def category_mapping(platform: str, source_col: str = "source_category_code") -> dict[str, str]:
    return code_map(platform, "categories.csv", source_col, "category_code", hub_categories())


@cache
def status_mapping(platform: str) -> dict[str, str]:
    return code_map(platform, "statuses.csv", "source_status", "status", hub_statuses())


def code_table(platform: str, file: str) -> dict[str, str]:
    """A code table of the platform by file name, as its reader above reads (and caches) it."""
    readers = {"categories.csv": category_mapping, "statuses.csv": status_mapping}
    if file not in readers:
        raise ValueError(f"{MAPPINGS / platform / file}: no code table of the hub's "
                         f"(one of {', '.join(readers)})")
    return readers[file](platform)
