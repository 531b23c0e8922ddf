"""WGS84 ↔ GCJ-02: offset size, round trip, edges (outside China, NaN, shapes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conform.coords import gcj02_to_wgs84, wgs84_to_gcj02


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    r = 6_371_000.0
    dx = math.radians(lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2)) * r
    dy = math.radians(lat1 - lat0) * r
    return math.hypot(dx, dy)


def test_offset_in_panjin_is_hundreds_of_metres() -> None:
    lon, lat = 122.07, 41.12  # 兴隆台区
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    shift = _metres(lon, lat, float(g_lon), float(g_lat))
    assert 200 < shift < 900
    # GCJ-02 shifts north-east in this part of China.
    assert float(g_lon) > lon and float(g_lat) > lat


def test_known_offset_in_beijing() -> None:
    # Tiananmen: the published offset is about +0.0062° east and +0.0014° north.
    g_lon, g_lat = wgs84_to_gcj02(116.397, 39.909)
    assert 0.0055 < float(g_lon) - 116.397 < 0.0070
    assert 0.0008 < float(g_lat) - 39.909 < 0.0020


def test_round_trip_across_china() -> None:
    rng = np.random.default_rng(1)
    lon = rng.uniform(73.0, 135.0, 50_000)
    lat = rng.uniform(18.0, 53.5, 50_000)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-6
    assert np.abs(back_lat - lat).max() < 1e-6
    # And the other way: a GCJ-02 point found on a map converts back onto itself.
    fwd_lon, fwd_lat = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert np.abs(fwd_lon - lon).max() < 1e-6
    assert np.abs(fwd_lat - lat).max() < 1e-6


def test_round_trip_error_below_1e5_in_panjin() -> None:
    lon = np.linspace(121.42, 122.52, 300)
    lat = np.linspace(40.65, 41.45, 300)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-5
    assert np.abs(back_lat - lat).max() < 1e-5


@pytest.mark.parametrize("lon, lat", [(0.0, 0.0), (-0.1276, 51.5072), (139.69, 35.69),
                                      (151.2, -33.9), (41.12, 122.07)])
def test_outside_china_unchanged(lon: float, lat: float) -> None:
    for convert in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lon, out_lat = convert(lon, lat)
        assert (float(out_lon), float(out_lat)) == (lon, lat)


def test_nan_passes_through_and_shapes_are_kept() -> None:
    lon = np.array([[122.0, np.nan], [0.0, 121.9]])
    lat = np.array([[41.0, 41.0], [0.0, np.nan]])
    for convert in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lon, out_lat = convert(lon, lat)
        assert out_lon.shape == out_lat.shape == (2, 2)
        assert np.isnan(out_lon[0, 1]) and np.isnan(out_lat[1, 1])
        assert out_lon[1, 0] == 0.0 and out_lat[1, 0] == 0.0
        assert np.isfinite(out_lon[0, 0]) and out_lon[0, 0] != 122.0


def test_inputs_are_not_modified_and_lists_work() -> None:
    lon = np.array([122.0, 121.5])
    lat = np.array([41.0, 40.9])
    wgs84_to_gcj02(lon, lat)
    gcj02_to_wgs84(lon, lat)
    assert lon.tolist() == [122.0, 121.5] and lat.tolist() == [41.0, 40.9]
    out_lon, _ = wgs84_to_gcj02([122.0, 121.5], [41.0, 40.9])
    assert out_lon.dtype == np.float64 and out_lon.shape == (2,)
