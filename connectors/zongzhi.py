"""The county's comprehensive-governance platform (综治, 矛盾纠纷排查调处): disputes reported,
mediated and closed, and the people's mediation committees that handle them.

Protocol (shared/design/sources.md §5), declared; connectors.base does the reading:
- every request carries the key in `X-Api-Key` (a wrong key gets HTTP 403);
- answers are `{"success", "errorCode", "errorMessage", "result"}`; `RATE_LIMITED` in a
  200 answer means wait and ask again, HTTP 503 carries Retry-After;
- `GET /openapi/v2/disputes?updatedSince=<ISO 8601>&limit=n[&nextToken=t]`, ordered by
  updateTime then caseId, through a server-side cursor that expires after 10 minutes
  (`CURSOR_EXPIRED`: restart from the update time reached);
- `GET /openapi/v2/mediation-orgs`: the whole list each time (a snapshot);
- times are ISO 8601 with an offset: instants, no local-time assumption.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.base import (
    ApiKeyHeader,
    CursorTokenPages,
    DeclaredHttpConnector,
    DeclaredHttpSettings,
    FullList,
    HttpStream,
    SuccessEnvelope,
    TimeFormat,
)

DISPUTES = HttpStream(
    name="disputes",
    fields=("caseId", "source", "transferNo", "disputeType", "summary", "parties",
            "divisionCode", "streetCode", "gridCode", "longitude", "latitude", "mediationOrg",
            "mediator", "status", "registerTime", "acceptTime", "mediateTime", "closeTime",
            "deadline", "satisfaction", "updateTime"),
    key_field="caseId",
    updated_field="updateTime",
    after=("mediation_orgs",),  # the committees the disputes name
    path="/openapi/v2/disputes",
    paginator=CursorTokenPages(since="updatedSince", token="nextToken", limit="limit",
                               items="items", next_token="nextToken"),
)
MEDIATION_ORGS = HttpStream(
    name="mediation_orgs",
    fields=("code", "name", "level", "divisionCode", "updateTime"),
    key_field="code",
    snapshot=True,
    path="/openapi/v2/mediation-orgs",
    paginator=FullList(items="items"),
)


class ZongzhiSettings(DeclaredHttpSettings):
    api_key: SecretStr = Field(description="the open API key, sent as X-Api-Key")
    page_size: int = Field(200, ge=1, le=500, description="disputes per request (`limit`, at most 500)")
    start_from: str = Field("2026-01-01T00:00:00+08:00",
                            description="ISO 8601 update time the first run reads from")


class Zongzhi(DeclaredHttpConnector):
    name = "zongzhi"
    settings_model = ZongzhiSettings
    settings: ZongzhiSettings
    auth = ApiKeyHeader(secret_field="api_key", header="X-Api-Key")
    envelope = SuccessEnvelope(payload="result", retryable=("RATE_LIMITED",),
                               cursor_expired=("CURSOR_EXPIRED",))
    time_format = TimeFormat.ISO8601
    # The committees first: the disputes name them.
    streams = (MEDIATION_ORGS, DISPUTES)
