"""Grid boundaries: a self-intersecting, swapped, empty, missing or implausible boundary
never replaces a good one without a finding.

boundary_valid (blocking), boundary_in_city (blocking) and boundary_area_plausible
(warning), declared in rules.yaml and the model like every other rule, counted the
same by quality.rules and the GX suite, and applied to what the grid conformers make
of GeoJSON and WKT.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import shapely

from base.settings import CityConfig
from conform.gridmgmt import GridsConformer
from quality import checks
from quality.gx_suite import run_suite
from quality.rules import GRID_AREA_M2, evaluate
from quality.validate import validate
from schemas.model import GRID
from tests.support.profile_rules import PANJIN_EXTENT, conformed_table, panjin_context

CTX = panjin_context()
CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))

GOOD = "POLYGON ((122 41, 122.01 41, 122.01 41.01, 122 41.01, 122 41))"  # ~0.93 km²
BOW_TIE = "POLYGON ((122 41, 122.01 41.01, 122.01 41, 122 41.01, 122 41))"
SWAPPED = "POLYGON ((41 122, 41.01 122, 41.01 122.01, 41 122.01, 41 122))"
BEIJING = "POLYGON ((116.3 39.9, 116.31 39.9, 116.31 39.91, 116.3 39.91, 116.3 39.9))"
TINY = "POLYGON ((122 41, 122.0001 41, 122.0001 41.0001, 122 41.0001, 122 41))"  # ~93 m²
HUGE = "POLYGON ((122 41, 122.1 41, 122.1 41.1, 122 41.1, 122 41))"  # ~93 km²
EDGE = "POLYGON ((121.419 40.65, 121.43 40.65, 121.43 40.66, 121.419 40.66, 121.419 40.65))"
MULTI = ("MULTIPOLYGON (((122 41, 122.01 41, 122.01 41.01, 122 41, 122 41)),"
         " ((122.02 41, 122.03 41, 122.03 41.01, 122.02 41, 122.02 41)))")

# (boundary, rule that fails or None, reason text)
CASES = [
    (GOOD, None, None),
    (MULTI, None, None),
    (EDGE, None, None),  # a hundred metres past the extent's edge: within the tolerance
    (BOW_TIE, "boundary_valid", "网格边界几何无效（Self-intersection"),
    ("POLYGON EMPTY", "boundary_valid", "网格边界为空 / boundary is empty: POLYGON EMPTY"),
    ("POINT (122 41)", "boundary_valid", "boundary is not a polygon: POINT (122 41)"),
    ("POLYGON ((122 41, 122.01 41, 122.01 41.01))", "boundary_valid",
     "boundary is not readable WKT"),
    ("not a shape", "boundary_valid", "boundary is not readable WKT: not a shape"),
    (SWAPPED, "boundary_in_city",
     "网格边界经纬度颠倒 / boundary with longitude and latitude swapped: (41, 122, 41.01, 122.01)"),
    (BEIJING, "boundary_in_city", "boundary outside the city extent: (116.3, 39.9, 116.31, 39.91)"),
    (TINY, "boundary_area_plausible", "网格面积过小 / grid area implausibly small: 9"),
    (HUGE, "boundary_area_plausible", "grid area implausibly large: 93"),
    (None, "required_present:boundary_wkt", "required field boundary_wkt is missing"),
]


def grids(boundaries: list[str | None]) -> pa.Table:
    return conformed_table(GRID, [
        {"source_id": f"g{i}", "grid_code": f"兴隆台-{i:02d}", "grid_type": "综合",
         "boundary_wkt": b} for i, b in enumerate(boundaries)])


def test_each_boundary_defect_is_found_with_its_reason():
    table = grids([c[0] for c in CASES])
    ev = evaluate(GRID, table, CTX)
    found: dict[int, list[dict]] = {}
    for f in ev.findings.to_pylist():
        found.setdefault(f["row_index"], []).append(f)
    for i, (boundary, rule, reason) in enumerate(CASES):
        if rule is None:
            assert i not in found, (boundary, found.get(i))
            continue
        assert [f["rule"] for f in found[i]] == [rule], (boundary, found[i])
        assert reason in found[i][0]["reason"], (boundary, found[i][0]["reason"])
    blocking = {"boundary_valid", "boundary_in_city", "required_present:boundary_wkt"}
    assert ev.blocking_failed.tolist() == [c[1] in blocking for c in CASES]
    area = ev.result("boundary_area_plausible")
    # Measured: the valid polygons with real coordinates (not the swapped one: 122° is no latitude).
    assert area.failed == 2 and area.evaluated == 6


def test_long_boundaries_are_shortened_in_reasons():
    ring = ", ".join(f"{122 + i / 1e4} {41 + (i % 2) / 1e4}" for i in range(200))
    table = grids([f"POLYGON (({ring}))"])  # not closed: unreadable
    reason = evaluate(GRID, table, CTX).findings.to_pylist()[0]["reason"]
    assert reason.endswith("…") and len(reason) < 250


def test_gx_counts_the_same_failures():
    table = grids([c[0] for c in CASES] * 3)
    evaluation = evaluate(GRID, table, CTX)
    report = run_suite(GRID, table, CTX, evaluation)
    assert report.mismatches == {}
    counts = report.unexpected_counts()
    assert counts == {r.rule: r.failed for r in evaluation.results}
    assert counts["boundary_valid"] == 15 and counts["boundary_in_city"] == 6
    assert not report.blocking_success
    by_rule = {o.rule: o for o in report.outcomes}
    assert by_rule["boundary_area_plausible"].severity == "warning"
    assert by_rule["boundary_in_city"].severity == "blocking"


def test_the_approximate_area_agrees_with_the_geodesic_one():
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    rng = np.random.default_rng(5)
    shapes = []
    for _ in range(200):
        lon = rng.uniform(PANJIN_EXTENT[0], PANJIN_EXTENT[2] - 0.1)
        lat = rng.uniform(PANJIN_EXTENT[1], PANJIN_EXTENT[3] - 0.1)
        w, h = rng.uniform(0.0005, 0.08, 2)
        shapes.append(shapely.box(lon, lat, lon + w, lat + h))
    ours = checks.approximate_areas(np.array(shapes, dtype=object))
    theirs = np.array([abs(geod.geometry_area_perimeter(s)[0]) for s in shapes])
    assert np.allclose(ours, theirs, rtol=0.005)
    low, high = GRID_AREA_M2
    assert (low, high) == (1_000.0, 50_000_000.0)


def test_missing_or_unparsed_boundaries_leave_the_other_checks_silent():
    codes = checks.boundary_in_extent(pa.array([None, "", "garbage", GOOD]), PANJIN_EXTENT)
    assert codes.tolist() == [checks.NOT_EVALUATED] * 3 + [checks.PASSED]
    codes = checks.boundary_area(pa.array([None, BOW_TIE, SWAPPED, GOOD]), *GRID_AREA_M2)
    assert codes.tolist() == [checks.NOT_EVALUATED] * 3 + [checks.PASSED]


# ---------------------------------------------------------------- from the platform's file


def feature_rows(geometries: list[object]) -> pa.Table:
    n = len(geometries)
    return pa.table({
        "网格编码": pa.array([f"2111030010010{i:02d}" for i in range(n)]),
        "网格名称": pa.array([f"网格{i}" for i in range(n)]),
        "网格类型": pa.array(["综合"] * n),
        "所属社区": pa.array(["x"] * n),
        "网格员": pa.array(["王伟"] * n),
        "网格员电话": pa.array(["13800138000"] * n),
        "geometry": pa.array([None if g is None else json.dumps(g) for g in geometries],
                             pa.string()),
    })


def _polygon(*ring: tuple[float, float]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


@pytest.mark.parametrize(("geometry", "rule"), [
    (_polygon((122, 41), (122.01, 41), (122.01, 41.01), (122, 41.01), (122, 41)), None),
    (_polygon((122, 41), (122.01, 41.01), (122.01, 41), (122, 41.01), (122, 41)),
     "boundary_valid"),
    (_polygon((41, 122), (41, 122.01), (41.01, 122.01), (41.01, 122), (41, 122)),
     "boundary_in_city"),
    ({"type": "Polygon", "coordinates": []}, "boundary_valid"),
    (None, "required_present:boundary_wkt"),
    (_polygon((122, 41), (122.2, 41), (122.2, 41.2), (122, 41.2), (122, 41)),
     "boundary_area_plausible"),
], ids=["good", "self-intersecting", "swapped", "empty", "missing", "implausible"])
def test_a_bad_grid_file_boundary_does_not_replace_a_good_one(geometry, rule):
    raw = feature_rows([geometry])
    conformed = GridsConformer(SimpleNamespace(), CITY).conform(raw)
    assert not any(m.any() for m in conformed.unparseable.values())
    checked = validate(GRID, conformed.table, CTX, conformed.unparseable, raw)
    rules = [f["rule"] for f in checked.findings.to_pylist()]
    assert rules == ([] if rule is None else [rule])
    # Blocking: the grid is quarantined and the loaded one stays. The area is a warning.
    assert checked.quarantine.tolist() == [rule not in (None, "boundary_area_plausible")]
