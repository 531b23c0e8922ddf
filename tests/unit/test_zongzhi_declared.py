"""The declared HTTP streams of connectors.base, which the 综治 connector is made of.

The same declarations carry the other protocol variants: the 12345 hotline (bearer
token exchanged for credentials, `{code, msg, data}`, page numbers over an update-time
window, local times) is declared here in a dozen lines and read from its simulator,
faults and all, exactly as the hand-written connector reads it.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import Field, SecretStr

from base.settings import CityConfig, SourceConfig
from connectors.base import (
    BearerToken,
    CodeEnvelope,
    DeclaredHttpConnector,
    DeclaredHttpSettings,
    FullList,
    HttpStream,
    SourceError,
    Stream,
    TimeFormat,
    UpdatedWindowPages,
)
from connectors.hotline12345 import Hotline12345
from connectors.zongzhi import DISPUTES, Zongzhi
from sandbox.city import City
from sandbox.hotline_server import Faults as HotlineFaults
from sandbox.hotline_server import HotlineServer
from sandbox.zongzhi import ZongzhiData
from sandbox.zongzhi_server import Faults, ZongzhiServer

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))


class HotlineSettings(DeclaredHttpSettings):
    app_key: SecretStr
    app_secret: SecretStr
    page_size: int = Field(500, ge=1, le=1000)


class DeclaredHotline(DeclaredHttpConnector):
    name = "declared_hotline"
    settings_model = HotlineSettings
    auth = BearerToken(path="/api/v1/auth/token", body={"appKey": "app_key", "appSecret": "app_secret"})
    envelope = CodeEnvelope(ok=0, auth_expired=40101,
                            retryable=lambda code: isinstance(code, int) and code >= 50000)
    streams = (HttpStream(name="workorders", fields=Hotline12345.streams[0].fields,
                          key_field="orderNo", updated_field="updateTime",
                          path="/api/v1/workorders", paginator=UpdatedWindowPages()),)


def versions(connector, stream: Stream) -> list[tuple[str, str]]:
    connector.sleep = lambda seconds: None
    out = []
    for extract in connector.extract(stream, None):
        out += zip(extract.records["orderNo"].to_pylist(),
                   extract.records["updateTime"].to_pylist(), strict=True)
    return out


def test_the_12345_protocol_declared_reads_what_the_hand_written_connector_reads(
        monkeypatch, hotline_data_factory, sim_clock):
    faults = HotlineFaults(error_rate=0.15, seed=3, kinds=["429", "500", "503", "busy", "drop"],
                           token_ttl_seconds=1.5, revoke_every=4)
    data = hotline_data_factory()
    with HotlineServer(data, "k", "s", faults=faults) as server:
        settings = {"base_url": server.url, "page_size": 50, "start_from": "2026-11-01 00:00:00",
                    "backoff_seconds": 0, "max_attempts": 12, "timeout_seconds": 2}
        for name in ("declared", "written"):
            monkeypatch.setenv(f"HUB_{name.upper()}_APP_KEY", "k")
            monkeypatch.setenv(f"HUB_{name.upper()}_APP_SECRET", "s")
        declared = DeclaredHotline(SourceConfig(name="declared", connector="x", settings=settings),
                                   CITY)
        written = Hotline12345(SourceConfig(name="written", connector="x", settings=settings), CITY)
        got = versions(declared, declared.streams[0])
        assert sorted(got) == sorted((no, r["updateTime"]) for no, r in data.orders.items())
        assert sorted(got) == sorted(versions(written, written.streams[0]))
        assert server.stats()["tokens_issued"] > 1 and declared.stats["token_refresh"] > 1


def test_a_misdeclared_stream_fails_when_the_connector_is_declared():
    with pytest.raises(TypeError, match="snapshot"):
        class Listing(DeclaredHttpConnector):
            name = "listing"
            envelope = CodeEnvelope()
            streams = (HttpStream(name="all", fields=("id",), key_field="id", path="/all",
                                  paginator=FullList()),)
    with pytest.raises(TypeError, match="local times"):
        class Window(DeclaredHttpConnector):
            name = "window"
            envelope = CodeEnvelope()
            time_format = TimeFormat.ISO8601
            streams = (HttpStream(name="w", fields=("id", "t"), key_field="id", updated_field="t",
                                  path="/w", paginator=UpdatedWindowPages()),)
    with pytest.raises(TypeError, match="HttpStream"):
        class Plain(DeclaredHttpConnector):
            name = "plain"
            envelope = CodeEnvelope()
            streams = (Stream(name="p", fields=("id",), key_field="id"),)


def test_times_with_offsets_are_instants():
    iso, local = TimeFormat.ISO8601, TimeFormat.LOCAL
    at = iso.parse("2026-11-20T09:30:00+08:00", "Asia/Shanghai")
    assert at == iso.parse("2026-11-20T01:30:00Z", "UTC") == iso.parse(" 2026-11-20T02:30:00+01:00", "X")
    assert iso.parse("2026-11-20T09:30:00", "Asia/Shanghai") is None  # no offset: no instant
    assert iso.parse(None, "UTC") is None and iso.parse("soon", "UTC") is None
    assert at is not None and iso.render(at, "Asia/Shanghai") == "2026-11-20T09:30:00+08:00"
    assert local.parse("2026-11-20 09:30:00", "Asia/Shanghai") == at
    assert local.render(at, "Asia/Shanghai") == "2026-11-20 09:30:00"


def test_a_cursor_that_always_expires_before_the_read_gets_further_fails_clearly(monkeypatch):
    data = ZongzhiData(City("2111", scale=0.06), days=3, end=datetime(2026, 11, 20))
    data.advance(len(data.disputes), datetime(2026, 11, 20))  # a crowd at one second
    with ZongzhiServer(data, "k", faults=Faults(expire_every=1)) as server:
        monkeypatch.setenv("HUB_ZZ_API_KEY", "k")
        connector = Zongzhi(SourceConfig(name="zz", connector="zongzhi", settings={
            "base_url": server.url, "page_size": 5, "start_from": "2026-11-01T00:00:00+08:00"}),
            CITY)
        with pytest.raises(SourceError, match="expired 11 times in a row"):
            list(connector.extract(DISPUTES, None))
        assert connector.stats["cursor_expired"] == 11
