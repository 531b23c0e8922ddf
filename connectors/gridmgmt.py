"""Grid management (网格化服务管理): daily snapshot files and an events API.

Protocol (shared/design/sources.md §3):
- daily full snapshots in a landing folder: `residents_YYYYMMDD.csv` (GBK),
  `houses_YYYYMMDD.xlsx`, `orgs_YYYYMMDD.xlsx`, `grids_YYYYMMDD.geojson` (read by
  connectors.files: each new complete file once, oldest first, as one snapshot);
- `GET /grid/api/v2/events?cursor=<opaque>&limit=200` →
  `{"success": true, "events": [...], "nextCursor": "..." | null}`: the cursor
  state is the last cursor the platform handed out; a null `nextCursor` means the
  read has caught up, and the next run asks again from the last cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr

from base import identity
from base.pii import hash_array
from connectors.base import (
    Extract,
    HttpApi,
    HttpSettings,
    ReadContext,
    RetryableResponse,
    SourceError,
    Stream,
    records_table,
)
from connectors.files import GEOMETRY_FIELD, FileDropConnector, FileDropSettings, FileStream

RESIDENT_KEY = "residentKey"


def resident_keys(records: pa.Table) -> pa.Array:
    """The key of each resident record: `resident:` + keyed hash of the ID's identity.

    The ID number itself is personal data and no key (a file spells one number in
    many ways: `…104X`, `… 104x`, legacy 15 digits, a mistyped check character); its
    identity form is (base.identity). A record without an ID number is keyed by name,
    birth date and address, the best the platform offers. The connector adds it to
    each record (`residentKey`) because a snapshot's pre-pass needs a key to find the
    keys held twice and to count the records; the conform step takes it as the
    record's source_id.
    """
    ids = identity.citizen_ids(identity.blank_to_null(records["公民身份号码"]))
    by_id = pc.binary_join_element_wise(
        "resident:", hash_array(ids, identity.citizen_id_identity), "")
    without = pc.is_null(by_id)
    if not pc.any(without).as_py():
        return by_id
    # Hashed only for the records that need it (few have no ID number).
    fallback = pc.binary_join_element_wise(
        *(pc.fill_null(records[f].filter(without), "") for f in ("姓名", "出生日期", "现住址")),
        "|")
    by_details = pc.binary_join_element_wise("resident:noid:", hash_array(fallback), "")
    return pc.replace_with_mask(by_id, without, by_details)


RESIDENTS = FileStream(
    name="residents",
    fields=("姓名", "性别", "公民身份号码", "出生日期", "民族", "联系电话", "户籍地址", "现住址",
            "人口类型", "特殊人群", "所属网格", "更新时间", RESIDENT_KEY),
    # The ID number is personal data and no key: a keyed hash of it is (resident_keys).
    key_field=RESIDENT_KEY,
    snapshot=True,
    format="csv",
    derived_fields=(RESIDENT_KEY,),
    after=("grids",),  # assigned to and checked against the current grids
)
HOUSES = FileStream(
    name="houses",
    fields=("房屋编码", "地址", "楼栋", "单元", "房号", "用途", "产权人身份号码", "所属网格"),
    key_field="房屋编码", snapshot=True, format="xlsx", after=("grids",),
)
ORGS = FileStream(
    name="orgs",
    fields=("统一社会信用代码", "名称", "类型", "法定代表人", "联系电话", "地址", "所属网格"),
    key_field="统一社会信用代码", snapshot=True, format="xlsx", after=("grids",),
)
GRIDS = FileStream(
    name="grids",
    fields=("网格编码", "网格名称", "网格类型", "所属社区", "网格员", "网格员电话", GEOMETRY_FIELD),
    key_field="网格编码", snapshot=True, format="geojson",
)
EVENTS = Stream(
    name="events",
    fields=("eventId", "gridCode", "reporterId", "reportTime", "eventType", "description",
            "longitude", "latitude", "partyIdNos", "status", "updateTime"),
    key_field="eventId",
    updated_field="updateTime",
    after=("grids",),  # events without a grid code get the grid their point lies in
)


class GridMgmtSettings(HttpSettings, FileDropSettings):
    api_token: SecretStr = Field(
        SecretStr(""), description="bearer token of the events API, if the platform wants one")
    events_path: str = Field("/grid/api/v2/events", description="path of the events API")
    page_size: int = Field(200, ge=1, le=1000, description="events per request (`limit`)")
    coordinate_system: Literal["wgs84", "gcj02"] = Field(
        "wgs84", description="system of the events' longitude/latitude")
    grid_crs: str = Field("EPSG:4326", description="CRS of the grid polygons in the GeoJSON")
    retryable_error_codes: list[str] = Field(
        ["SYSTEM_BUSY"], description="`errorCode`s of a failed 200 answer that are worth a retry")


class GridMgmt(FileDropConnector):
    name = "gridmgmt"
    settings_model = GridMgmtSettings
    settings: GridMgmtSettings
    # Grids first: the other records name them.
    streams = (GRIDS, HOUSES, ORGS, RESIDENTS, EVENTS)
    default_patterns = {
        "residents": r"residents_(?P<date>\d{8})\.csv",
        "houses": r"houses_(?P<date>\d{8})\.xlsx",
        "orgs": r"orgs_(?P<date>\d{8})\.xlsx",
        "grids": r"grids_(?P<date>\d{8})\.geojson",
    }

    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        if isinstance(stream, FileStream):
            return self.extract_files(stream, state, context or ReadContext())
        return self._events(stream, state)

    def add_fields(self, stream: FileStream, records: pa.Table) -> pa.Table:
        if stream.name != RESIDENTS.name:
            return records
        return records.append_column(RESIDENT_KEY, resident_keys(records))

    # ---- events ----------------------------------------------------------------

    def _check_body(self, body: Any) -> Any:
        if not isinstance(body, dict) or "success" not in body:
            raise RetryableResponse(f"body without success flag: {str(body)[:200]}")
        if body["success"] is True:
            if not isinstance(body.get("events"), list):
                raise SourceError(f"events answer without a list of events: {str(body)[:200]}")
            return body
        code = body.get("errorCode")
        if code in self.settings.retryable_error_codes:
            raise RetryableResponse(f"errorCode {code}: {body.get('message')}")
        raise SourceError(f"platform error {code}: {body.get('message')}")

    def _token(self, client: httpx.Client) -> tuple[str, float]:
        return self.settings.api_token.get_secret_value(), 365 * 86400.0

    def _events(self, stream: Stream, state: Mapping[str, Any] | None) -> Iterator[Extract]:
        has_token = bool(self.settings.api_token.get_secret_value())
        cursor: str | None = (state or {}).get("cursor")
        with HttpApi(self.settings, check_body=self._check_body, stats=self.stats,
                     get_token=self._token if has_token else None) as api:
            while True:
                params: dict[str, Any] = {"limit": self.settings.page_size}
                if cursor:
                    params["cursor"] = cursor
                body = api.get(self.settings.events_path, params)
                next_cursor = body.get("nextCursor") or None
                yield Extract(records_table(stream, body["events"]),
                              {"cursor": next_cursor or cursor})
                if next_cursor is None:
                    return  # caught up: the next run asks again from the last cursor
                if next_cursor == cursor:
                    raise SourceError(f"the platform handed back the same cursor {cursor!r}")
                cursor = next_cursor
