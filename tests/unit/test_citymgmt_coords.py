"""数字城管 coordinates: CGCS2000 3-degree Gauss-Krüger metres → WGS84 degrees.

The projection is checked against values computed here without pyproj: on the
central meridian the easting is 500 000 m and the northing the meridian arc length
(integrated numerically); off it, the classical Gauss-Krüger series.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from pyproj import CRS, Transformer

from conform.citymgmt import DEFAULT_CRS
from conform.coords import projected_to_lonlat
from sandbox.city import CITY_EXTENTS

# CGCS2000 ellipsoid.
A = 6378137.0
F = 1 / 298.257222101
E2 = F * (2 - F)
EP2 = E2 / (1 - E2)


def meridian_arc(lat_deg: float) -> float:
    """Length of the meridian from the equator, by Simpson's rule on the meridian radius."""
    phi = np.linspace(0.0, math.radians(lat_deg), 20_001)
    m = A * (1 - E2) / (1 - E2 * np.sin(phi) ** 2) ** 1.5
    h = phi[1] - phi[0]
    return float(h / 3 * (m[0] + m[-1] + 4 * m[1:-1:2].sum() + 2 * m[2:-1:2].sum()))


def gauss_kruger(lon: float, lat: float, central_meridian: float) -> tuple[float, float]:
    """The classical series (terms to l^6), far below a millimetre within ±1.5°."""
    b = math.radians(lat)
    l_ = math.radians(lon - central_meridian)
    n = A / math.sqrt(1 - E2 * math.sin(b) ** 2)
    t, c = math.tan(b), math.cos(b)
    eta2 = EP2 * c * c
    north = (meridian_arc(lat) + n / 2 * t * c**2 * l_**2
             + n / 24 * t * (5 - t**2 + 9 * eta2 + 4 * eta2**2) * c**4 * l_**4
             + n / 720 * t * (61 - 58 * t**2 + t**4) * c**6 * l_**6)
    east = (n * c * l_ + n / 6 * (1 - t**2 + eta2) * c**3 * l_**3
            + n / 120 * (5 - 18 * t**2 + t**4 + 14 * eta2 - 58 * eta2 * t**2) * c**5 * l_**5)
    return 500_000.0 + east, north


def test_the_default_crs_is_the_zone_panjin_lies_in():
    crs = CRS.from_user_input(DEFAULT_CRS)
    assert "CM 123E" in crs.name and "CGCS2000" in crs.name
    min_lon, _, max_lon, _ = CITY_EXTENTS["2111"]
    west, _, east, _ = crs.area_of_use.bounds
    # The zone is 121.5–124.5°E; 盘锦 (121.42–122.52°E) lies in it but for a sliver.
    assert west <= (min_lon + max_lon) / 2 <= east and abs(west - min_lon) < 0.1


@pytest.mark.parametrize("lat", [40.7, 41.1, 41.45])
def test_the_central_meridian_maps_to_easting_500000_and_the_meridian_arc(lat):
    x, y = Transformer.from_crs("EPSG:4490", DEFAULT_CRS, always_xy=True).transform(123.0, lat)
    assert x == pytest.approx(500_000.0, abs=1e-6)
    assert y == pytest.approx(meridian_arc(lat), abs=1e-3)


@pytest.mark.parametrize("lon, lat", [(121.42, 40.65), (121.97, 41.12), (122.52, 41.45)])
def test_points_of_the_city_match_the_gauss_kruger_series_and_come_back(lon, lat):
    x, y = gauss_kruger(lon, lat, 123.0)
    assert Transformer.from_crs("EPSG:4490", DEFAULT_CRS, always_xy=True).transform(lon, lat) \
        == pytest.approx((x, y), abs=1e-3)
    back_lon, back_lat, failed = projected_to_lonlat(pa.array([x]), pa.array([y]), DEFAULT_CRS)
    assert back_lon[0].as_py() == pytest.approx(lon, abs=1e-7)
    assert back_lat[0].as_py() == pytest.approx(lat, abs=1e-7)
    assert not failed.any()


def test_eastings_with_the_zone_prefix_need_the_zone_crs():
    x, y = gauss_kruger(122.0, 41.0, 123.0)
    lon, lat, _ = projected_to_lonlat(pa.array([41_000_000 + x]), pa.array([y]), "EPSG:4529")
    assert (lon[0].as_py(), lat[0].as_py()) == pytest.approx((122.0, 41.0), abs=1e-7)


def test_missing_zero_and_impossible_pairs():
    lon, lat, failed = projected_to_lonlat(
        pa.array([None, 0.0, 600_000.0, 1e300]), pa.array([None, 0.0, None, 1e300]), DEFAULT_CRS)
    assert lon.to_pylist()[:3] == [None, 0.0, None] and lat.to_pylist()[:3] == [None, 0.0, None]
    assert failed.tolist() == [False, False, False, True]
