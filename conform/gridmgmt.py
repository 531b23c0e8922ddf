"""Grid management (网格化服务管理) → the unified model.

- residents (one row per resident in the day's snapshot) → core.person, role
  resident. The key is a keyed hash of the ID number's identity form, never the
  number itself, so the same resident keeps one key whichever way a file spells
  the number (`…104X`, `… 104x`, legacy 15 digits, a mistyped check character).
- houses → core.house; orgs → core.organization; grids (GeoJSON) → core.grid
  with the boundary as WGS84 WKT and its geodesic area.
- events (one row per grid event) → core.event, and the people involved
  (`partyIdNos`) → core.person, role party.

The platform's grid codes follow the 15-digit scheme (6 county + 3 street + 3
community + 3 serial): county and street codes are read off them. Event types,
statuses and organization types map through schemas/mappings/gridmgmt/.
"""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from base import identity
from base.pii import keyed_hash
from conform import values as v
from conform.base import Conformed, Conformer, ConformSettings, build
from conform.coords import (
    WGS84,
    CoordinateSettings,
    geodesic_areas,
    lonlat,
    shapes_to_wgs84,
    to_wkt,
)
from conform.derived import people
from conform.mappings import category_mapping, code_map, status_mapping
from schemas.model import EVENT, GRID, HOUSE, ORGANIZATION, PERSON

PLATFORM = "gridmgmt"
RESIDENT_KEY = "residentKey"  # added by the connector: the record's key, its source_id
EVENT_CHANNEL = "网格员"
ORG_TYPES = frozenset({"enterprise", "individual_business", "social", "department"})
_GRID_CODE = r"^\d{15}$"


# ------------------------------------------------------------------------ keys


def party_key(id_number: str) -> str:
    return "party:" + keyed_hash(identity.citizen_id_identity(id_number))


# ---------------------------------------------------------------- shared columns


def _divisions_of(grid_codes: v.Column) -> tuple[pa.Array, pa.Array]:
    """County and street codes read off 15-digit grid codes (null for other codes)."""
    ok = pc.fill_null(pc.match_substring_regex(grid_codes, _GRID_CODE), False)
    none = pa.scalar(None, pa.string())
    return (pc.if_else(ok, pc.utf8_slice_codeunits(grid_codes, 0, 6), none),
            pc.if_else(ok, pc.utf8_slice_codeunits(grid_codes, 0, 9), none))


def _location(raw: pa.Table, grid_field: str) -> dict[str, v.Column | pa.Scalar | None]:
    grid = v.trimmed(raw[grid_field])
    division, street = _divisions_of(grid)
    return {"grid_code": grid, "division_code": division, "street_code": street}


@cache
def org_type_mapping() -> dict[str, str]:
    return code_map(PLATFORM, "org_types.csv", "source_org_type", "org_type", ORG_TYPES)


class GridCrsSettings(ConformSettings):
    """What the grids' conform step reads of its source's settings."""

    grid_crs: str = WGS84  # of the grid polygons in the GeoJSON


# ------------------------------------------------------------------ file streams


class ResidentsConformer(Conformer):
    """One core.person row per resident in a snapshot."""

    platform, streams = PLATFORM, ("residents",)
    primary = PERSON

    def conform(self, raw: pa.Table) -> Conformed:
        unparseable: dict[str, np.ndarray] = {}
        cols: dict[str, v.Column | pa.Scalar | None] = _location(raw, "所属网格")
        cols["birth_date"], unparseable["出生日期"] = v.dates(raw["出生日期"])
        cols.update({
            "source_id": raw[RESIDENT_KEY],
            "name": v.trimmed(raw["姓名"]),
            "gender": v.trimmed(raw["性别"]),
            "id_number": identity.citizen_ids(v.blank_to_null(raw["公民身份号码"])),
            "ethnicity": v.trimmed(raw["民族"]),
            "phone": identity.phones(raw["联系电话"]),
            "household_address": v.blank_to_null(raw["户籍地址"]),
            "current_address": v.blank_to_null(raw["现住址"]),
            "population_type": v.trimmed(raw["人口类型"]),
            "special_groups": v.tag_lists(raw["特殊人群"]),
            "role": pa.scalar("resident"),
        })
        return Conformed(build(PERSON, cols, raw.num_rows), unparseable)


class HousesConformer(Conformer):
    """One core.house row per house (实有房屋) in a snapshot."""

    platform, streams = PLATFORM, ("houses",)
    primary = HOUSE

    def conform(self, raw: pa.Table) -> Conformed:
        cols = _location(raw, "所属网格")
        cols.update({
            "source_id": raw["房屋编码"],
            "house_code": v.trimmed(raw["房屋编码"]),
            "address": v.blank_to_null(raw["地址"]),
            "building": v.trimmed(raw["楼栋"]),
            "unit": v.trimmed(raw["单元"]),
            "room": v.trimmed(raw["房号"]),
            "usage": v.trimmed(raw["用途"]),
            "owner_id_number": identity.citizen_ids(v.blank_to_null(raw["产权人身份号码"])),
        })
        return Conformed(build(HOUSE, cols, raw.num_rows))


class OrgsConformer(Conformer):
    """One core.organization row per organization in a snapshot, keyed by its credit code."""

    platform, streams = PLATFORM, ("orgs",)
    primary = ORGANIZATION

    def conform(self, raw: pa.Table) -> Conformed:
        cols = _location(raw, "所属网格")
        cols.update({
            "source_id": raw["统一社会信用代码"],
            "org_name": v.trimmed(raw["名称"]),
            "uscc": v.uscc_codes(raw["统一社会信用代码"]),
            "org_type": v.map_codes(raw["类型"], org_type_mapping()),
            "legal_rep": v.trimmed(raw["法定代表人"]),
            "phone": identity.phones(raw["联系电话"]),
            "address": v.blank_to_null(raw["地址"]),
        })
        return Conformed(build(ORGANIZATION, cols, raw.num_rows))


class GridsConformer(Conformer):
    """One core.grid row per grid polygon in a snapshot."""

    platform, streams = PLATFORM, ("grids",)
    primary = GRID
    settings_model = GridCrsSettings
    settings: GridCrsSettings

    def conform(self, raw: pa.Table) -> Conformed:
        geometry = raw["geometry"].to_pylist()
        shapes = shapely.from_geojson(
            np.array([g if g else "null" for g in geometry], dtype=object), on_invalid="ignore")
        polygonal = np.isin(shapely.get_type_id(shapes), (3, 6))  # Polygon, MultiPolygon
        shapes = shapes_to_wgs84(np.asarray(np.where(polygonal, shapes, None), dtype=object),
                                 self.settings.grid_crs)
        present = np.array([bool(g and g.strip() not in ("", "null")) for g in geometry],
                           dtype=bool)
        cols = _location(raw, "网格编码")
        cols.update({
            "source_id": raw["网格编码"],
            "grid_name": v.trimmed(raw["网格名称"]),
            "grid_type": v.trimmed(raw["网格类型"]),
            "community_name": v.trimmed(raw["所属社区"]),
            "boundary_wkt": to_wkt(shapes),
            "area_m2": pa.array(geodesic_areas(shapes), pa.float64(), from_pandas=True),
            "worker_name": v.trimmed(raw["网格员"]),
            "worker_phone": identity.phones(raw["网格员电话"]),
        })
        return Conformed(build(GRID, cols, raw.num_rows),
                         {"geometry": present & ~polygonal})


# ------------------------------------------------------------------------ events


# Hub statuses that say an event was taken in (受理) or got further.
ACCEPTED_OR_LATER = ("accepted", "dispatched", "in_progress", "resolved", "closed")


class EventsConformer(Conformer):
    """Grid events → core.event; the parties they name → core.person (role party).

    The platform gives the report and last-update times only (sources.md §3). So:
    - `accepted_at` (受理) is the report time once the status is past 上报 (受理,
      处置中, 已办结, 已归档): the platform says the event was accepted but not when; a
      grid worker's report enters the platform as it is made, and the report time is
      the one sent time that does not move as the event goes on (the update time of
      the step that accepted it is overwritten by the next step). Without it no grid
      event would count in 办结率 (closed / accepted).
    - `resolved_at` / `closed_at` is the update time when that update made the event
      resolved (已办结) / closed (已归档).
    All three are the hub's, listed in `derived_times`: their order is a warning, never
    a reason to quarantine (rule derived_time_order).
    """

    platform, streams = PLATFORM, ("events",)
    primary = EVENT
    derived = (PERSON,)
    settings_model = CoordinateSettings
    settings: CoordinateSettings

    def conform(self, raw: pa.Table) -> Conformed:
        tz = self.city.timezone
        unparseable: dict[str, np.ndarray] = {}
        cols = _location(raw, "gridCode")
        cols["reported_at"], unparseable["reportTime"] = v.local_times(raw["reportTime"], tz)
        updated, unparseable["updateTime"] = v.local_times(raw["updateTime"], tz)
        cols["source_updated_at"] = updated
        cols["longitude"], cols["latitude"] = lonlat(raw, unparseable,
                                                     self.settings.coordinate_system)

        status = v.map_codes(raw["status"], status_mapping(PLATFORM))
        no_time = pa.scalar(None, v.UTC_TIMESTAMP)
        cols["status"] = status
        cols["source_status"] = v.trimmed(raw["status"])
        accepted = pc.is_in(status, value_set=pa.array(ACCEPTED_OR_LATER, pa.string()))
        cols["accepted_at"] = pc.if_else(accepted, cols["reported_at"], no_time)
        cols["resolved_at"] = pc.if_else(pc.equal(status, "resolved"), updated, no_time)
        cols["closed_at"] = pc.if_else(pc.equal(status, "closed"), updated, no_time)
        cols["derived_times"] = v.listing(
            {name: pc.is_valid(cols[name]) for name in ("accepted_at", "resolved_at", "closed_at")},
            raw.num_rows)
        cols["category_code"] = v.map_codes(
            raw["eventType"], category_mapping(PLATFORM, "source_event_type"))
        cols["source_category"] = v.trimmed(raw["eventType"])
        cols["source_id"] = raw["eventId"]
        cols["channel"] = pa.scalar(EVENT_CHANNEL)
        # Free text is stored exactly as sent.
        cols["description"] = raw["description"]
        return Conformed(build(EVENT, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {"person": self._parties(raw, primary)}

    def _parties(self, raw: pa.Table, events: pa.Table) -> pa.Table:
        """One person record per ID number named as a party, keyed by its hash."""
        rows: list[int] = []
        ids: list[str] = []
        for i, value in enumerate(raw["partyIdNos"].to_pylist()):
            for id_no in party_id_numbers(value):
                rows.append(i)
                ids.append(id_no)
        if not ids:
            return build(PERSON, {}, 0)
        at = pa.array(rows, pa.int64())
        normal = identity.citizen_ids(pa.array(ids, pa.string()))
        # Named in several events of a batch: the latest event's place stands.
        return people(pa.table({
            "source_id": identity.per_distinct(normal, party_key),
            "id_number": normal,
            **{c: events[c].take(at) for c in ("grid_code", "division_code",
                                                "source_division_code", "street_code")},
            "updated": events["source_updated_at"].take(at),
        }), "party")


_LIST_SEPARATORS = re.compile(r"[,;，；、|]")


def party_id_numbers(value: str | None) -> list[str]:
    """`partyIdNos` as sent: a JSON list, or one string of numbers with separators."""
    if value is None or not value.strip():
        return []
    text = value.strip()
    items: list[object]
    if text.startswith("["):
        try:
            items = list(json.loads(text))
        except ValueError:
            items = _LIST_SEPARATORS.split(text.strip("[]"))
    else:
        items = list(_LIST_SEPARATORS.split(text))
    # Spaces inside one number are a way of writing it, not a separator.
    return [s for s in (str(x).strip().strip('"') for x in items if x is not None) if s]
