"""Grid assignment against the seeded city's grids (sandbox.city): points drawn inside a
grid come back with that grid's code."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conform.grid_assign import GridIndex
from sandbox.city import City


@pytest.fixture(scope="module")
def city() -> City:
    return City("2111", scale=0.05)  # 230 grids


@pytest.fixture(scope="module")
def index(city: City) -> GridIndex:
    return GridIndex.from_wkt([g.code for g in city.grids], [g.wkt() for g in city.grids])


def test_points_inside_a_grid_get_its_code(city, index):
    rng = random.Random(7)
    grids = [rng.choice(city.grids) for _ in range(2000)]
    points = [city.point_in(g, rng) for g in grids]
    lon, lat = np.array(points).T
    assert list(index.assign(lon, lat)) == [g.code for g in grids]


def test_points_outside_every_grid_or_missing_get_none(city, index):
    min_lon, min_lat, max_lon, max_lat = city.extent
    lon = np.array([0.0, min_lon - 0.5, max_lon + 0.1, np.nan, 121.9, (min_lon + max_lon) / 2])
    lat = np.array([0.0, min_lat, max_lat, 41.0, np.nan, max_lat + 1])
    assert list(index.assign(lon, lat)) == [None] * 6


def test_a_point_on_a_shared_edge_gets_the_first_grid_deterministically(city, index):
    a = city.grids[0]
    b = next(g for g in city.grids if g.bbox[0] == a.bbox[2] and g.bbox[1] == a.bbox[1])
    on_edge = (a.bbox[2], (a.bbox[1] + a.bbox[3]) / 2)
    assert index.assign([on_edge[0]], [on_edge[1]])[0] == a.code
    reverse = GridIndex.from_wkt([b.code, a.code], [b.wkt(), a.wkt()])
    assert reverse.assign([on_edge[0]], [on_edge[1]])[0] == b.code


def test_unusable_boundaries_are_left_out_and_empty_input_is_fine(city):
    g = city.grids[0]
    index = GridIndex.from_wkt(["bad", "none", "point", g.code],
                               ["POLYGON((", None, "POINT(1 1)", g.wkt()])
    assert len(index) == 1
    assert index.assign(np.array([]), np.array([])).shape == (0,)
    assert list(index.assign([g.centre[0]], [g.centre[1]])) == [g.code]


def test_grid_events_without_a_grid_code_are_placed_by_their_coordinates(city):
    """The grid platform's events that lack a code, placed with the City's grids."""
    from datetime import datetime

    from sandbox.gridmgmt import GridData

    data = GridData(City("2111", scale=0.001), days=2, end=datetime(2026, 11, 20))
    lacking = {e: t for e, t in data.truth.events.items() if "no_grid_code" in t.defects}
    assert lacking
    grids = data.city.grids
    index = GridIndex.from_wkt([g.code for g in grids], [g.wkt() for g in grids])
    lon = [data.events[e]["longitude"] for e in lacking]
    lat = [data.events[e]["latitude"] for e in lacking]
    assert list(index.assign(lon, lat)) == [t.grid_code for t in lacking.values()]
