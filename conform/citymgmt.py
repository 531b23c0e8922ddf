"""数字城管 → the unified model.

- `cases` → core.event, one row per case. Lifecycle: 上报 report_time is
  `reported_at`, 立案 register_time `accepted_at`, 派遣 dispatch_time `dispatched_at`,
  处置 dispose_time (disposal finished) `resolved_at`, 结案 close_time `closed_at` (a
  closed case without a close time was closed at its check: check_time). Statuses
  and the GB/T 30428 classes (`<class_type>/<big_class>/<small_class>`) map through
  schemas/mappings/citymgmt/. The handling departments → core.organization.
- `components` → core.thing (thing_type component), with their 主管/权属/养护
  departments → core.organization.
- `unit_grids` → core.grid (grid_type 单元), boundary in WGS84.

Coordinates arrive projected (settings `crs`, Gauss-Krüger) and are converted to
WGS84 longitude/latitude. x = y = 0 is how the platform stores "not located": it is
kept as (0, 0) so the coordinate rule reports it as such.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from conform import values as v
from conform.base import Conformed, Conformer, ConformSettings, build
from conform.coords import projected_to_lonlat, shapes_to_wgs84, to_wkt
from conform.derived import departments
from conform.mappings import category_mapping, status_mapping
from schemas.model import EVENT, GRID, ORGANIZATION, THING

PLATFORM = "citymgmt"
DEFAULT_CRS = "EPSG:4550"
CASE_TIMES = {
    "reported_at": "report_time",
    "accepted_at": "register_time",
    "dispatched_at": "dispatch_time",
    "resolved_at": "dispose_time",
    "deadline_at": "deadline",
    "source_updated_at": "update_time",
}


class ProjectedSettings(ConformSettings):
    """What the city-management conform steps read of their source's settings."""

    crs: str = DEFAULT_CRS  # of x/y and of the unit grids' boundaries


def _coordinates(raw: pa.Table, crs: str, unparseable: dict[str, np.ndarray]
                 ) -> tuple[pa.Array, pa.Array]:
    x, unparseable["x"] = v.floats(raw["x"])
    y, unparseable["y"] = v.floats(raw["y"])
    lon, lat, failed = projected_to_lonlat(x, y, crs)
    unparseable["x"] = unparseable["x"] | failed
    return lon, lat


def _prefix(values: v.Column, n: int) -> pa.Array:
    """The first n characters when they are all digits (a division/street code), else null."""
    head = pc.utf8_slice_codeunits(v.trimmed(values), 0, n)
    ok = pc.match_substring_regex(head, rf"^\d{{{n}}}$")
    return pc.if_else(pc.fill_null(ok, False), head, pa.scalar(None, pa.string()))


def _departments(raw: pa.Table, pairs: tuple[tuple[str, str], ...]) -> pa.Table:
    """One organization per department code the records name (the platform's own code)."""
    codes = pa.chunked_array([raw[c] for c, _ in pairs], pa.string())
    names = pa.chunked_array([raw[n] for _, n in pairs], pa.string())
    return departments(names, codes)


class CityMgmtConformer(Conformer):
    """What the city-management conform steps share: coordinates projected in `crs`."""

    platform = PLATFORM
    settings_model = ProjectedSettings
    settings: ProjectedSettings


class CityMgmtCaseConformer(CityMgmtConformer):
    streams = ("cases",)
    primary = EVENT
    derived = (ORGANIZATION,)

    def conform(self, raw: pa.Table) -> Conformed:
        tz = self.city.timezone
        unparseable: dict[str, np.ndarray] = {}
        cols: dict[str, v.Column | pa.Scalar | None] = {}
        for target, source in CASE_TIMES.items():
            cols[target], unparseable[source] = v.local_times(raw[source], tz)
        close, unparseable["close_time"] = v.local_times(raw["close_time"], tz)
        check, unparseable["check_time"] = v.local_times(raw["check_time"], tz)

        status = v.map_codes(raw["status"], status_mapping(PLATFORM))
        cols["status"] = status
        cols["source_status"] = raw["status"]
        is_closed = pc.equal(status, "closed")
        cols["closed_at"] = pc.if_else(is_closed, pc.coalesce(close, check), close)
        # A closed case without a close time is taken as closed at its check: the hub's
        # time, not the platform's (its order is a warning, see derived_time_order).
        cols["derived_times"] = v.listing(
            {"closed_at": pc.and_(is_closed, pc.and_(pc.is_null(close), pc.is_valid(check)))},
            raw.num_rows)

        category = pc.binary_join_element_wise(
            *(v.trimmed(raw[c]) for c in ("class_type", "big_class", "small_class")), "/")
        cols["category_code"] = v.map_codes(category, category_mapping(PLATFORM))
        cols["source_category"] = category

        cols["longitude"], cols["latitude"] = _coordinates(raw, self.settings.crs, unparseable)
        cols["source_id"] = raw["case_no"]
        cols["channel"] = v.trimmed(raw["source"])
        # Free text is stored exactly as sent.
        cols["description"] = raw["description"]
        cols["address"] = raw["address"]
        cols["grid_code"] = v.trimmed(raw["grid_code"])
        cols["division_code"] = _prefix(raw["grid_code"], 6)
        cols["street_code"] = _prefix(raw["grid_code"], 9)
        cols["handling_org"] = v.trimmed(raw["dept_name"])
        return Conformed(build(EVENT, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {"organization": _departments(raw, (("dept_code", "dept_name"),))}


COMPONENT_DEPARTMENTS = (("dept_code1", "dept_name1"), ("dept_code2", "dept_name2"),
                         ("dept_code3", "dept_name3"))


class CityMgmtComponentConformer(CityMgmtConformer):
    streams = ("components",)
    primary = THING
    derived = (ORGANIZATION,)

    def conform(self, raw: pa.Table) -> Conformed:
        unparseable: dict[str, np.ndarray] = {}
        cols: dict[str, v.Column | pa.Scalar | None] = {}
        obj_id = v.trimmed(raw["obj_id"])
        cols["source_id"] = raw["obj_id"]
        cols["thing_type"] = pa.scalar("component")
        cols["thing_code"] = obj_id
        cols["name"] = raw["obj_name"]
        # 部件 class from the code: 2-digit big class, 2-digit small class (3 under GB/T 47678).
        length = pc.utf8_length(obj_id)
        big = pc.utf8_slice_codeunits(obj_id, 6, 8)
        small = pc.if_else(pc.equal(length, 17), pc.utf8_slice_codeunits(obj_id, 8, 11),
                           pc.utf8_slice_codeunits(obj_id, 8, 10))
        well_formed = pc.fill_null(pc.match_substring_regex(obj_id, r"^\d{16,17}$"), False)
        cols["category"] = pc.if_else(
            well_formed, pc.binary_join_element_wise("部件", big, small, "/"),
            pa.scalar(None, pa.string()))
        cols["state"] = v.trimmed(raw["obj_state"])
        cols["manage_org"] = v.trimmed(raw["dept_name1"])
        cols["owner_org"] = v.trimmed(raw["dept_name2"])
        cols["maintain_org"] = v.trimmed(raw["dept_name3"])
        cols["grid_code"] = v.trimmed(raw["grid_code"])
        # The code's district is where the platform files the component.
        cols["division_code"] = _prefix(raw["obj_id"], 6)
        cols["street_code"] = _prefix(raw["grid_code"], 9)
        cols["longitude"], cols["latitude"] = _coordinates(raw, self.settings.crs, unparseable)
        cols["source_updated_at"], unparseable["update_time"] = v.local_times(
            raw["update_time"], self.city.timezone)
        for date_field in ("or_date", "ch_date"):
            _, unparseable[date_field] = v.local_times(raw[date_field], self.city.timezone)
        return Conformed(build(THING, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {"organization": _departments(raw, COMPONENT_DEPARTMENTS)}


class CityMgmtUnitGridConformer(CityMgmtConformer):
    streams = ("unit_grids",)
    primary = GRID

    def conform(self, raw: pa.Table) -> Conformed:
        unparseable: dict[str, np.ndarray] = {}
        wkt = v.blank_to_null(raw["boundary_wkt"])
        wkt_list = wkt.to_pylist()
        geoms = shapely.from_wkt(np.array(wkt_list, dtype=object), on_invalid="ignore")
        unparseable["boundary_wkt"] = np.array(
            [w is not None and (g is None or g.is_empty) for w, g in zip(wkt_list, geoms, strict=True)],
            dtype=bool)
        area, unparseable["area_m2"] = v.floats(raw["area_m2"])
        # Platforms that leave the area empty: the planar area of the projected polygon.
        computed = pa.array(shapely.area(geoms), pa.float64(), from_pandas=True)
        cols: dict[str, v.Column | pa.Scalar | None] = {
            "source_id": raw["grid_code"],
            "grid_code": v.trimmed(raw["grid_code"]),
            "grid_type": pa.scalar("单元"),
            "division_code": _prefix(raw["grid_code"], 6),
            "street_code": v.trimmed(raw["street_code"]),
            "community_name": v.trimmed(raw["community_name"]),
            "boundary_wkt": to_wkt(shapes_to_wgs84(geoms, self.settings.crs)),
            "area_m2": pc.coalesce(area, computed),
        }
        return Conformed(build(GRID, cols, raw.num_rows), unparseable)
