"""Coordinates into WGS84: GCJ-02 points, and projected (Gauss-Krüger) points and shapes.

GCJ-02 (the "Mars" coordinates Chinese map services and apps use) is WGS84 shifted by
a published, smooth, non-linear offset of a few hundred metres, computed on the
Krasovsky 1940 ellipsoid. The offset is only applied inside China's bounding box;
points outside it are returned unchanged, as the map services do. The inverse has no
closed form: it is solved by fixed-point iteration, which converges to well under a
millimetre in a few steps because the offset changes slowly with position.

The GCJ-02 functions are vectorised: any array-like (or scalar) longitudes and
latitudes in degrees, broadcast together, float64 arrays out. NaN passes through.

Projected coordinates (a platform's survey CRS, in metres) go through pyproj, one
transformer per CRS; shapes through shapely. Degrees are kept to 7 decimals.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod, Transformer

from conform import values as v
from conform.base import ConformSettings

FloatArray = NDArray[np.float64]
WGS84 = "EPSG:4326"
# Degrees kept: 1e-7° is about a centimetre, finer than any platform's survey.
DEGREE_DECIMALS = 7


class CoordinateSettings(ConformSettings):
    """What a conform step reads of a platform that sends longitude/latitude."""

    coordinate_system: Literal["wgs84", "gcj02"] = "wgs84"

# Krasovsky 1940 ellipsoid, which the GCJ-02 offset is defined on.
_SEMI_MAJOR_M = 6378245.0
_ECC_SQUARED = 0.00669342162296594323

# Bounding box outside which no offset is applied (min_lon, min_lat, max_lon, max_lat).
CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)

_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_STEPS = 30


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=np.float64),
                                       np.asarray(lat, dtype=np.float64))
    return lon_a.copy(), lat_a.copy()


def outside_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where no GCJ-02 offset applies (NaN counts as inside, and stays NaN)."""
    lon_a, lat_a = _as_arrays(lon, lat)
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    return (lon_a < min_lon) | (lon_a > max_lon) | (lat_a < min_lat) | (lat_a > max_lat)


def _offset_deg(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 offset (d_lon, d_lat) in degrees at WGS84 position (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    # Two polynomial surfaces in "metres-ish" units, plus sine ripples.
    ripple_x = (20.0 * np.sin(6.0 * pi * x) + 20.0 * np.sin(2.0 * pi * x)) * 2.0 / 3.0
    north = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y
             + 0.2 * np.sqrt(np.abs(x))
             + ripple_x
             + (20.0 * np.sin(pi * y) + 40.0 * np.sin(pi * y / 3.0)) * 2.0 / 3.0
             + (160.0 * np.sin(pi * y / 12.0) + 320.0 * np.sin(pi * y / 30.0)) * 2.0 / 3.0)
    east = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y
            + 0.1 * np.sqrt(np.abs(x))
            + ripple_x
            + (20.0 * np.sin(pi * x) + 40.0 * np.sin(pi * x / 3.0)) * 2.0 / 3.0
            + (150.0 * np.sin(pi * x / 12.0) + 300.0 * np.sin(pi * x / 30.0)) * 2.0 / 3.0)
    # Turn those into degrees with the ellipsoid's radii of curvature at this latitude.
    phi = np.radians(lat)
    w_squared = 1.0 - _ECC_SQUARED * np.sin(phi) ** 2
    w = np.sqrt(w_squared)
    meridian_radius = _SEMI_MAJOR_M * (1.0 - _ECC_SQUARED) / (w_squared * w)
    parallel_radius = _SEMI_MAJOR_M / w * np.cos(phi)
    d_lat = np.degrees(north / meridian_radius)
    d_lon = np.degrees(east / parallel_radius)
    return d_lon, d_lat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 → GCJ-02, degrees. Points outside China are returned unchanged."""
    lon_a, lat_a = _as_arrays(lon, lat)
    d_lon, d_lat = _offset_deg(lon_a, lat_a)
    keep = outside_china(lon_a, lat_a)
    return (np.where(keep, lon_a, lon_a + d_lon), np.where(keep, lat_a, lat_a + d_lat))


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → WGS84, degrees, by fixed-point iteration (error far below 1e-6°).

    Solves forward(w) = g for w: start from w = g - offset(g), then repeat
    w ← g - offset(w) until the step is below 1e-10°.
    """
    g_lon, g_lat = _as_arrays(lon, lat)
    keep = outside_china(g_lon, g_lat)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_INVERSE_MAX_STEPS):
        d_lon, d_lat = _offset_deg(w_lon, w_lat)
        next_lon, next_lat = g_lon - d_lon, g_lat - d_lat
        step = np.maximum(np.abs(next_lon - w_lon), np.abs(next_lat - w_lat))
        w_lon, w_lat = next_lon, next_lat
        finite = step[np.isfinite(step) & ~keep]
        if finite.size == 0 or float(finite.max()) < _INVERSE_TOLERANCE_DEG:
            break
    return (np.where(keep, g_lon, w_lon), np.where(keep, g_lat, w_lat))


def gcj02_columns_to_wgs84(lon: pa.Array | pa.ChunkedArray, lat: pa.Array | pa.ChunkedArray
                           ) -> tuple[pa.Array, pa.Array]:
    """`gcj02_to_wgs84` for Arrow columns; nulls stay null."""
    x = pc.fill_null(lon, np.nan).to_numpy(zero_copy_only=False)
    y = pc.fill_null(lat, np.nan).to_numpy(zero_copy_only=False)
    wx, wy = gcj02_to_wgs84(x, y)
    return pa.array(wx, from_pandas=True), pa.array(wy, from_pandas=True)


def lonlat(raw: pa.Table, unparseable: dict[str, np.ndarray], system: str = "wgs84"
           ) -> tuple[v.Column, v.Column]:
    """A record's `longitude` and `latitude` fields as WGS84 degrees, from the `system` the
    platform sends them in; values that are no number are marked in `unparseable`."""
    lon, unparseable["longitude"] = v.floats(raw["longitude"])
    lat, unparseable["latitude"] = v.floats(raw["latitude"])
    if system == "gcj02":
        return gcj02_columns_to_wgs84(lon, lat)
    return lon, lat


# ---------------------------------------------------------------- projected CRS


@lru_cache(maxsize=8)
def _to_wgs84(crs: str) -> Transformer:
    return Transformer.from_crs(crs, WGS84, always_xy=True)


def projected_to_lonlat(x: v.Column, y: v.Column, crs: str
                        ) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Projected metres → WGS84 degrees, vectorised; and a mask of pairs that could not be
    converted. Missing stays missing; (0, 0) stays (0, 0)."""
    xs = np.asarray(pc.fill_null(x, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    ys = np.asarray(pc.fill_null(y, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    given = ~np.isnan(xs) & ~np.isnan(ys)
    zero = given & (xs == 0) & (ys == 0)
    lon, lat = _to_wgs84(crs).transform(xs, ys, errcheck=False)
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    failed = given & ~zero & ~(np.isfinite(lon) & np.isfinite(lat))
    lon = np.where(zero, 0.0, np.round(lon, DEGREE_DECIMALS))
    lat = np.where(zero, 0.0, np.round(lat, DEGREE_DECIMALS))
    # A lone x or y cannot be converted: both are left missing.
    missing = ~given | failed
    return (pa.array(np.where(missing, 0.0, lon), mask=missing),
            pa.array(np.where(missing, 0.0, lat), mask=missing), failed)


def shapes_to_wgs84(shapes: np.ndarray, crs: str) -> np.ndarray:
    """Shapes (an array of shapely geometries, None for none) from `crs` to WGS84."""
    if crs == WGS84:
        return shapes
    transformer = _to_wgs84(crs)
    return shapely.transform(
        shapes, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def to_wkt(shapes: np.ndarray) -> pa.Array:
    """WGS84 shapes as WKT text, to the degrees kept (null for none)."""
    return pa.array(shapely.to_wkt(shapes, rounding_precision=DEGREE_DECIMALS, trim=True),
                    pa.string())


_WGS84_ELLIPSOID = Geod(ellps="WGS84")


def geodesic_areas(shapes: np.ndarray) -> np.ndarray:
    """Areas in m² of WGS84 shapes on the ellipsoid (NaN for none)."""
    return np.array([abs(_WGS84_ELLIPSOID.geometry_area_perimeter(s)[0]) if s is not None
                     else np.nan for s in shapes], dtype=np.float64)
