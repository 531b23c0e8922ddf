"""The unified 人地事物组织 model, declared once.

Everything else is derived from these declarations: the warehouse DDL
(`schemas.ddl`), the Arrow schemas the pipeline carries (`schemas.arrow`), the
validation rules (`quality.rules`) and the data dictionary in the README.

Every core table also carries the lineage and history columns in
`LINEAGE_COLUMNS`; they are not repeated in each entity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from base.pii import Pii


class Kind(StrEnum):
    """Logical column types; `schemas.ddl` and `schemas.arrow` map them."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamptz"
    JSON = "json"


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    doc: str
    required: bool = False
    pii: Pii | None = None
    # Names of the row rules (quality.rules) that check this field.
    rules: tuple[str, ...] = ()
    # False for a column no conformer fills, set after loading by the resolve step
    # (link/): it stays out of the record hash, so adding one does not make every stored
    # record look changed (warehouse.loader.merge).
    hashed: bool = True
    # True for a key the resolve step (link/) sets after loading: a new version of the
    # record keeps its previous version's value until the next link run decides again,
    # so a changed record never drops out of its person, organization or incident.
    resolved: bool = False

    def columns(self) -> list[tuple[str, Kind]]:
        """Physical columns: a PII field becomes `<name>_hash` and `<name>_masked`."""
        if self.pii is None:
            return [(self.name, self.kind)]
        return [(f"{self.name}_hash", Kind.TEXT), (f"{self.name}_masked", Kind.TEXT)]


@dataclass(frozen=True)
class Entity:
    name: str
    table: str
    grain: str
    doc: str
    fields: tuple[Field, ...]
    # Whole-row rules (lifecycle order and the like), by name in quality.rules.
    row_rules: tuple[str, ...] = ()
    extra_columns: tuple[tuple[str, Kind], ...] = field(default=())

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.table} has no field {name!r}")

    def data_columns(self) -> list[tuple[str, Kind]]:
        cols = [c for f in self.fields for c in f.columns()]
        return cols + list(self.extra_columns)

    def unhashed_columns(self) -> list[str]:
        """Columns the record hash leaves out (fields declared `hashed=False`)."""
        return [c for f in self.fields if not f.hashed for c, _ in f.columns()]

    def resolved_columns(self) -> list[str]:
        """Keys the resolve step sets (fields declared `resolved=True`)."""
        return [c for f in self.fields if f.resolved for c, _ in f.columns()]


# Lineage and history on every core row. `valid_to IS NULL` marks the current
# version; a record that changes gets a new version, the old one is closed.
LINEAGE_COLUMNS: tuple[tuple[str, Kind, str], ...] = (
    ("source_system", Kind.TEXT, "platform instance the record came from, e.g. hotline12345"),
    ("source_id", Kind.TEXT, "the platform's own key for the record"),
    ("source_stream", Kind.TEXT, "which of the platform's record kinds it came from, e.g. residents"),
    ("record_hash", Kind.TEXT, "hash of the conformed values; a new version only when it changes"),
    ("run_id", Kind.INT, "ops.run that loaded this version"),
    ("valid_from", Kind.TIMESTAMP, "when this version was loaded"),
    ("valid_to", Kind.TIMESTAMP, "when this version was superseded or closed; NULL = current"),
)

F = Field
T, FL, B, D, TS = Kind.TEXT, Kind.FLOAT, Kind.BOOL, Kind.DATE, Kind.TIMESTAMP

_DIVISION_DOC = ("GB/T 2260 6-digit county code, current: a retired code the platform sent is "
                 "folded to its successor (the code as sent is in source_division_code)")
_SOURCE_DIVISION = F(
    "source_division_code", T,
    "the county code as the platform sent it (or as read off its grid code), before a retired "
    "code was folded to its successor in division_code")

_LOCATION = (
    F("division_code", T, _DIVISION_DOC, rules=("division_code_known",)),
    _SOURCE_DIVISION,
    F("street_code", T, "9-digit street (乡级) code", rules=("street_code_known",)),
    F("grid_code", T, "网格 code", rules=("grid_code_known",)),
    F("longitude", FL, "WGS84/CGCS2000 longitude", rules=("coordinates_in_city",)),
    F("latitude", FL, "WGS84/CGCS2000 latitude"),
)

DIVISION = Entity(
    name="division",
    table="core.division",
    grain="one row per division code and table version",
    doc="省/市/区县/街道 from the National Bureau of Statistics code tables",
    fields=(
        F("code", T, "2, 4, 6 or 9-digit division code", required=True),
        F("name", T, "official name", required=True),
        F("level", T, "province / city / county / street", required=True),
        F("parent_code", T, "code of the enclosing division"),
        F("table_version", T, "cut-off date of the code table", required=True),
        F("retired_on", D, "date the code was retired, if it was"),
        F("replaced_by", T, "code that replaced a retired one"),
    ),
)

GRID = Entity(
    name="grid",
    table="core.grid",
    grain="one row per grid per source platform",
    doc="网格 (综合/专属) from grid management and 单元网格 from 数字城管",
    fields=(
        F("grid_code", T, "grid code (unit grids: 15 digits, 14 in older systems)", required=True,
          rules=("unit_grid_code_format",)),
        F("grid_name", T, "grid name"),
        F("grid_type", T, "综合 / 专属 / 单元", required=True),
        F("division_code", T, _DIVISION_DOC, rules=("division_code_known",)),
        _SOURCE_DIVISION,
        F("street_code", T, "street code", rules=("street_code_known",)),
        F("community_name", T, "所属社区"),
        F("boundary_wkt", T, "boundary polygon, WGS84 WKT", required=True,
          rules=("boundary_valid", "boundary_in_city", "boundary_area_plausible")),
        F("area_m2", FL, "area in square metres"),
        F("worker_name", T, "网格员"),
        F("worker_phone", T, "网格员电话", pii=Pii.PHONE, rules=("phone_format",)),
    ),
)

HOUSE = Entity(
    name="house",
    table="core.house",
    grain="one row per house (实有房屋) per source platform",
    doc="实有房屋 and addresses",
    fields=(
        F("house_code", T, "房屋编码", required=True),
        F("address", T, "full address"),
        F("building", T, "楼栋"),
        F("unit", T, "单元"),
        F("room", T, "房号"),
        F("usage", T, "用途"),
        F("owner_id_number", T, "产权人身份号码", pii=Pii.ID_NUMBER, rules=("citizen_id_valid",)),
        *_LOCATION[:4],
    ),
)

PERSON = Entity(
    name="person",
    table="core.person",
    grain="one row per person record per source platform (not per human: see person_key)",
    doc="人: residents, callers, parties to events, as each platform knows them",
    fields=(
        F("name", T, "姓名 as given by the source"),
        F("gender", T, "男 / 女"),
        F("id_number", T, "公民身份号码, normalised to 18 characters", pii=Pii.ID_NUMBER,
          rules=("citizen_id_valid",)),
        F("birth_date", D, "出生日期"),
        F("ethnicity", T, "民族"),
        F("phone", T, "联系电话, normalised", pii=Pii.PHONE, rules=("phone_format",)),
        F("household_address", T, "户籍地址"),
        F("current_address", T, "现住址"),
        F("population_type", T, "户籍 / 流动 / 境外"),
        F("special_groups", T, "特殊人群 tags, comma-separated"),
        F("role", T, "resident / caller / party: how the source knows the person", required=True),
        *_LOCATION[:4],
        F("person_key", T, "key of the golden person this record resolves to", resolved=True),
    ),
)

ORGANIZATION = Entity(
    name="organization",
    table="core.organization",
    grain="one row per organization per source platform",
    doc="组织: enterprises, social organizations and government departments (承办单位)",
    fields=(
        F("org_name", T, "名称", required=True),
        F("uscc", T, "GB 32100 统一社会信用代码", rules=("uscc_valid",)),
        F("org_type", T, "enterprise / social / department / …"),
        F("legal_rep", T, "法定代表人"),
        F("phone", T, "联系电话", pii=Pii.PHONE, rules=("phone_format",)),
        F("address", T, "地址"),
        *_LOCATION[:4],
        F("org_key", T, "key of the golden organization", resolved=True),
    ),
)

THING = Entity(
    name="thing",
    table="core.thing",
    grain="one row per thing per source platform",
    doc="物: city components (部件) and video devices",
    fields=(
        F("thing_type", T, "component / camera / nvr", required=True),
        F("thing_code", T, "部件 code (GB/T 30428.2) or GB/T 28181 device id", required=True,
          rules=("thing_code_format",)),
        F("name", T, "name"),
        F("category", T, "部件 class or device type"),
        F("state", T, "完好/破损/丢失/占用 or online/offline"),
        F("owner_org", T, "权属单位 / owner"),
        F("manage_org", T, "主管单位"),
        F("maintain_org", T, "养护单位"),
        F("address", T, "address"),
        *_LOCATION,
        F("source_updated_at", TS, "last update on the platform"),
    ),
    row_rules=("grid_assigned",),
)

EVENT = Entity(
    name="event",
    table="core.event",
    grain="one row per incident report per source platform (reports of one incident share cluster_key)",
    doc="事: 12345 orders, 数字城管 cases, grid events and video alarms in one lifecycle",
    fields=(
        F("channel", T, "电话/网站/微信/APP/监督员/网格员/视频 …", required=True),
        F("appeal_type", T, "咨询/求助/投诉/举报/建议/表扬 (12345)"),
        F("category_code", T, "hub taxonomy code, or 'unmapped'", required=True,
          rules=("category_mapped",)),
        F("source_category", T, "the platform's own category code and name", required=True),
        F("status", T, "hub status: reported/accepted/dispatched/in_progress/resolved/closed/"
          "returned/cancelled, or 'unmapped'", required=True, rules=("status_mapped",)),
        F("source_status", T, "the platform's own status", required=True),
        F("title", T, "title"),
        F("description", T, "content, stored verbatim"),
        F("address", T, "address as reported"),
        *_LOCATION,
        F("is_urgent", B, "urgent flag"),
        F("reported_at", TS, "first report (12345: the acceptance time, the hotline has no "
          "separate report time)", rules=("not_in_future",)),
        F("accepted_at", TS, "受理/立案, per platform: 12345 acceptTime; 数字城管 register_time "
          "(立案); grid events the report time once the platform's status is past 上报 (the "
          "platform sends no acceptance time, and a grid worker's report is taken in as it "
          "arrives); video alarms none (an alarm is a report)", rules=("not_in_future",)),
        F("dispatched_at", TS, "派单/派遣", rules=("not_in_future",)),
        F("resolved_at", TS, "办结/处置完成", rules=("not_in_future",)),
        F("closed_at", TS, "结案/回访完成", rules=("not_in_future",)),
        F("derived_times", T, "lifecycle times the hub derived rather than the platform sent "
          "as that step's time, comma-separated (e.g. reported_at,closed_at for a 12345 order "
          "closed at its last update); NULL = every time as sent. Derived times never "
          "quarantine a record for their order (rule derived_time_order warns)"),
        F("deadline_at", TS, "办理时限"),
        F("handling_org", T, "承办单位 name"),
        F("transfer_ref", T, "the originating platform's key of a transferred event (e.g. the "
          "12345 order number of a dispute transferred to 综治): links one incident across "
          "platforms"),
        F("satisfaction", T, "满意/基本满意/不满意/未评价"),
        F("first_contact_at", TS, "首次联系: when the handling unit first contacted the reporter "
          "(12345 firstContactTime; optional, older platforms lack it)", rules=("not_in_future",)),
        F("is_solved", B, "回访结果: the reporter judged the matter solved (12345 isSolved); "
          "NULL until the return call, or where the platform does not send it"),
        F("reporter_name_masked", T, "reporter's name, masked"),
        F("reporter_phone", T, "reporter's phone", pii=Pii.PHONE, rules=("phone_format",)),
        F("reporter_id_number", T, "reporter's ID number", pii=Pii.ID_NUMBER,
          rules=("citizen_id_valid",)),
        F("source_updated_at", TS, "last update on the platform", required=True),
        F("cluster_key", T, "key shared by reports of the same incident", resolved=True),
        F("reporter_person_key", T, "person_key of the golden person who reported it (linked by "
          "the reporter's ID-number hash, else by phone hash and masked name where that names "
          "one person); NULL: not linked", hashed=False, resolved=True),
    ),
    row_rules=("lifecycle_order", "derived_time_order", "deadline_after_accept",
               "satisfaction_only_if_evaluated", "grid_assigned"),
)

ENTITIES: tuple[Entity, ...] = (DIVISION, GRID, HOUSE, PERSON, ORGANIZATION, THING, EVENT)
BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES}


def entity(name: str) -> Entity:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no entity {name!r}; known: {', '.join(BY_NAME)}") from None
