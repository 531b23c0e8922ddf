"""The division code tables in `schemas/reference/`, read as rows of `core.division`.

The tables are the National Bureau of Statistics codes (see reference/SOURCE.md);
the version is the data's cut-off date. Retired codes are kept beside them so a
retired code in source data is reported as retired, not as unknown.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "reference"
DIVISION_TABLE_VERSION = "2022-10-31"


@dataclass(frozen=True)
class DivisionRow:
    code: str
    name: str
    level: str  # province / city / county / street
    parent_code: str | None
    table_version: str
    retired_on: str | None = None
    replaced_by: str | None = None


def _read(name: str) -> list[dict[str, str]]:
    with open(REFERENCE / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def division_rows() -> Iterator[DivisionRow]:
    v = DIVISION_TABLE_VERSION
    for r in _read("provinces.csv"):
        yield DivisionRow(r["code"], r["name"], "province", None, v)
    for r in _read("cities.csv"):
        yield DivisionRow(r["code"], r["name"], "city", r["provinceCode"], v)
    for r in _read("areas.csv"):
        yield DivisionRow(r["code"], r["name"], "county", r["cityCode"], v)
    for r in _read("streets.csv"):
        yield DivisionRow(r["code"], r["name"], "street", r["areaCode"], v)
    for r in _read("divisions_retired.csv"):
        yield DivisionRow(r["code"], r["name"], "county", r["code"][:4], v,
                          retired_on=r["retired_on"], replaced_by=r["replaced_by"])


@lru_cache(maxsize=1)
def street_codes() -> frozenset[str]:
    return frozenset(r["code"] for r in _read("streets.csv"))


@lru_cache(maxsize=1)
def retired_divisions() -> dict[str, str]:
    """Retired code -> the code that replaced it."""
    return {r["code"]: r["replaced_by"] for r in _read("divisions_retired.csv")}


@lru_cache(maxsize=1)
def successor_divisions() -> dict[str, str]:
    """Retired code -> the current code it lives on as, following chains of renumbering
    (a code retired into one that was retired in its turn)."""
    retired = retired_divisions()
    out: dict[str, str] = {}
    for code in retired:
        seen, current = {code}, retired[code]
        while current in retired and current not in seen:
            seen.add(current)
            current = retired[current]
        out[code] = current
    return out
