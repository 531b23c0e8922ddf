"""Point-in-polygon grid assignment: which grid a longitude/latitude lies in.

Events from the field often carry coordinates but no grid code (a camera alarm,
a grid event keyed without one). `GridIndex` holds the grid polygons in a
shapely 2 STRtree and answers for a whole column of points at once: the tree
query is vectorised, never a Python loop over polygons or points.

A point on the shared edge of two grids belongs to both; it gets the first of
them in the order the grids were given, so the answer is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class GridIndex:
    """Grid polygons (WGS84) and their codes, indexed for point queries."""

    codes: NDArray[np.object_]
    tree: shapely.STRtree

    @classmethod
    def from_wkt(cls, codes: Sequence[str], wkts: Sequence[str | None]) -> GridIndex:
        """An index of the grids whose WKT boundary parses; the others are left out."""
        if len(codes) != len(wkts):
            raise ValueError(f"{len(codes)} codes but {len(wkts)} boundaries")
        shapes = shapely.from_wkt(np.asarray(wkts, dtype=object), on_invalid="ignore")
        usable = ~shapely.is_missing(shapes) & ~shapely.is_empty(shapes)
        usable &= np.isin(shapely.get_type_id(shapes), (3, 6))  # Polygon, MultiPolygon
        return cls(codes=np.asarray(codes, dtype=object)[usable],
                   tree=shapely.STRtree(shapes[usable]))

    def __len__(self) -> int:
        return len(self.codes)

    def assign(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.object_]:
        """The grid code each point lies in (boundary included), or None outside every grid."""
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"{x.shape} longitudes but {y.shape} latitudes")
        out = np.full(x.shape, None, dtype=object)
        if not len(self) or not x.size:
            return out
        finite = np.isfinite(x) & np.isfinite(y)
        points = shapely.points(x[finite], y[finite])
        point_i, grid_i = self.tree.query(points, predicate="covered_by")
        # Pairs come sorted by point; of a point's grids keep the lowest (first given).
        order = np.lexsort((grid_i, point_i))
        point_i, grid_i = point_i[order], grid_i[order]
        first = np.ones(len(point_i), dtype=bool)
        first[1:] = point_i[1:] != point_i[:-1]
        assigned = np.full(points.shape, None, dtype=object)
        assigned[point_i[first]] = self.codes[grid_i[first]]
        out[finite] = assigned
        return out
