"""The 12345 government-service hotline: work orders over its HTTP JSON API.

Protocol (shared/design/sources.md §1): a token from `POST /api/v1/auth/token`;
`GET /api/v1/workorders` by update-time window, paged, ordered by update time then
order number; errors as HTTP 401/429/5xx or as codes inside a 200 body.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from connectors.base import (
    Connector,
    Extract,
    HttpApi,
    HttpSettings,
    Page,
    ReadContext,
    RetryableResponse,
    SourceError,
    Stream,
    UpdatedSinceSettings,
    UpdatedWindow,
    code_envelope,
    records_table,
)

# Body codes of the platform: 0 ok; 40101 token expired or revoked; 5xxxx transient.
OK = 0
TOKEN_EXPIRED = 40101


class Hotline12345Settings(HttpSettings, UpdatedSinceSettings):
    app_key: SecretStr
    app_secret: SecretStr
    page_size: int = Field(500, ge=1, le=1000, description="records per page (the API allows 1000)")
    coordinate_system: Literal["wgs84", "gcj02"] = Field(
        "wgs84", description="system of longitude/latitude as the platform sends them"
    )


_check_body = code_envelope(
    ok=OK, auth_expired=TOKEN_EXPIRED,
    retryable=lambda code: isinstance(code, int) and code >= 50000,
)


class Hotline12345(Connector):
    name = "hotline12345"
    settings_model = Hotline12345Settings
    settings: Hotline12345Settings
    streams = (Stream(
        name="workorders",
        fields=(
            "orderNo", "acceptTime", "channel", "callerName", "callerPhone", "callerIdNo",
            "appealType", "categoryCode", "categoryName", "title", "content", "address",
            "districtCode", "streetCode", "longitude", "latitude", "handleDept", "dispatchTime",
            "deadline", "finishTime", "status", "satisfaction", "isUrgent", "updateTime",
            # Optional: absent on older platforms (sources.md §1).
            "firstContactTime", "isSolved",
        ),
        key_field="orderNo",
        updated_field="updateTime",
    ),)

    def _token(self, client: httpx.Client) -> tuple[str, float]:
        response = client.post("/api/v1/auth/token", json={
            "appKey": self.settings.app_key.get_secret_value(),
            "appSecret": self.settings.app_secret.get_secret_value(),
        })
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableResponse(f"token: HTTP {response.status_code}")
        body = response.json()
        if body.get("code") != OK:
            raise SourceError(f"token refused by the platform: {body.get('code')} {body.get('msg')}")
        data = body["data"]
        return data["accessToken"], float(data.get("expiresIn", 7200))

    def api(self) -> HttpApi:
        return HttpApi(self.settings, check_body=_check_body, get_token=self._token,
                       stats=self.stats)

    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        window = UpdatedWindow.for_run(state, self.settings, self.now_local())
        with self.api() as api:
            yield from self._pages(stream, window, api)

    def _pages(self, stream: Stream, window: UpdatedWindow, api: HttpApi) -> Iterator[Extract]:
        def fetch(updated_from: str, updated_to: str, page_no: int) -> Page:
            data = api.get("/api/v1/workorders", {
                "updatedFrom": updated_from, "updatedTo": updated_to,
                "pageNo": page_no, "pageSize": self.settings.page_size,
            })
            records = (data or {}).get("records")
            if not isinstance(records, list):
                raise SourceError(f"work order page without records: {str(data)[:200]}")
            # The count of all orders matching: how the read tells that a crowd of
            # orders sharing one update time held still while it was paged through.
            total = data.get("total")
            if isinstance(total, bool) or not isinstance(total, int | str):
                raise SourceError(f"work order page without a total: {str(data)[:200]}")
            try:
                return Page(records, int(total))
            except ValueError:
                raise SourceError(f"work order page with a total of {total!r}") from None

        for records, reached, reread in window.pages(
            fetch, page_size=self.settings.page_size, key="orderNo", updated="updateTime"
        ):
            yield Extract(records_table(stream, records), {"updated_to": reached}, reread)
