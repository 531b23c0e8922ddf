"""Configuration: the hub's own settings (environment) and the sources file (YAML).

Two layers, on purpose:
- `HubSettings` holds where the hub keeps its state and the secrets it needs
  itself (warehouse URL, the personal-data hashing key). They come from the
  environment (`HUB_*`) or a local `.env`, never from a committed file.
- The sources file names each platform instance the hub pulls, its connector and
  that connector's settings. A connector's secrets (app keys, passwords) are
  declared as `SecretStr` fields of its settings model and must not appear in the
  file: `resolve_secrets` fills them from `HUB_<SOURCE>_<FIELD>` environment
  variables or, inside Airflow, from the connection `hub_<source>`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES_FILE = PROJECT_ROOT / "sources.yaml"


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    home: Path = Field(PROJECT_ROOT / ".hub", description="state folder: embedded warehouse, keys")
    warehouse_url: SecretStr | None = Field(
        None, description="PostgreSQL >= 15 URL; unset = the embedded server under `home`"
    )
    warehouse_url_loader: SecretStr | None = Field(
        None, description="URL the pipeline connects with (role hub_loader); unset = "
                          "warehouse_url with the login hub_loader and no password")
    warehouse_url_reader: SecretStr | None = Field(
        None, description="URL `hub sql` connects with (role hub_reader); unset = derived likewise")
    warehouse_url_steward: SecretStr | None = Field(
        None, description="URL the quality review connects with (role hub_steward)")
    warehouse_url_pii_reader: SecretStr | None = Field(
        None, description="URL audited clear reads connect with (role hub_pii_reader)")
    pii_key: SecretStr | None = Field(
        None, description="key of the personal-data hash; required with an external warehouse"
    )
    sources_file: Path = Field(DEFAULT_SOURCES_FILE, description="the sources configuration")
    batch_rows: int = Field(50_000, ge=100, description="records conformed and loaded per transaction")
    defer_indexes_from: int = Field(
        10_000, ge=1, description="a load whose first batch writes this many rows into an empty"
        " core table builds the table's secondary indexes when it ends, not row by row")
    rules_file: Path | None = Field(
        None, description="the deployment's own rules.yaml (severities); default quality/rules.yaml"
    )


@lru_cache(maxsize=1)
def settings() -> HubSettings:
    return HubSettings()


class ResponseLimits(BaseModel):
    """How soon an accepted event must be first responded to (首次联系, else 派遣), by urgency:
    what the marts' 响应率 counts as in time. `hub migrate` records it in ops.city_setting."""

    model_config = ConfigDict(extra="forbid")

    urgent_hours: float = Field(2.0, gt=0, description="urgent events (紧急件)")
    normal_hours: float = Field(24.0, gt=0, description="every other event")


class ReportConfig(BaseModel):
    """The weekly report's and the 考核 table's settings."""

    model_config = ConfigDict(extra="forbid")

    min_ratings: int = Field(10, ge=1, description=(
        "a rate from fewer events than this (ratings, closed events, return calls …) is "
        "shown greyed out, and an organization with fewer accepted events is marked and "
        "ranked after the others"))


class CityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="4-digit city (地级市) code, e.g. 2111 for 盘锦")
    extent: tuple[float, float, float, float] = Field(
        description="WGS84 min_lon, min_lat, max_lon, max_lat: coordinates outside are findings"
    )
    timezone: str = Field("Asia/Shanghai", description=(
        "IANA time zone of the city: the platforms' local times, the marts' weeks and days, "
        "the weekly report's week and schedule"))
    response_limits: ResponseLimits = Field(default_factory=ResponseLimits)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("code")
    @classmethod
    def _four_digits(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}", v):
            raise ValueError(f"city code must be 4 digits, got {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as "
                             "Asia/Shanghai") from None
        return v


# The name people know a platform by, per connector, when its source gives none.
DEFAULT_DISPLAY_NAMES = {
    "gridmgmt": "网格化服务管理平台",
    "hotline12345": "12345热线",
    "citymgmt": "数字城管",
    "video": "雪亮工程",
    "zongzhi": "综治",
}


class SourceConfig(BaseModel):
    """One platform instance: which connector speaks to it and how."""

    # A refused value may be a secret: errors name the setting, never repeat it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str
    connector: str
    description: str = ""
    display_name: str | None = Field(None, description=(
        "the name people know the platform by (reports); default: the connector's usual "
        "Chinese name (DEFAULT_DISPLAY_NAMES), else the source name"))
    enabled: bool = True
    schedule: str | None = Field("@hourly", description="cron or Airflow preset; null = manual only")
    retries: int = Field(3, ge=0)
    tags: list[str] = []
    settings: dict[str, Any] = {}

    @property
    def label(self) -> str:
        """The name people know the platform by: `display_name`, else the connector's."""
        return self.display_name or DEFAULT_DISPLAY_NAMES.get(self.connector, self.name)

    @field_validator("settings")
    @classmethod
    def _no_credential_in_urls(cls, values: dict[str, Any]) -> dict[str, Any]:
        for where, url in _urls(values):
            problem = url_credential(url)
            if problem:
                # The message names the setting, never the secret itself.
                raise ValueError(f"settings.{where}: {problem}; URLs in the sources file must "
                                 "carry no credential (set the connector's secret field "
                                 "through the environment or an Airflow connection)")
        return values


# Query parameters that carry a credential, whatever the platform calls them.
# Refusing a harmless parameter costs a rename; accepting a secret costs a leak.
_CREDENTIAL_PARAM = re.compile(
    r"pass|pwd|secret|token|key|sign|auth|credential|session|ticket", re.IGNORECASE)


def url_credential(url: str) -> str | None:
    """What credential a URL carries (a password in its user-info, a secret-looking query
    parameter), or None. A user name alone (reader@db) is no credential."""
    parts = urlsplit(url)
    if "@" in parts.netloc and ":" in parts.netloc.rsplit("@", 1)[0]:
        return "the URL carries a password in its user-info"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _CREDENTIAL_PARAM.search(name):
            return f"the URL carries a credential in its query parameter {name!r}"
    return None


def _urls(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(setting path, text) of every URL-like string in a settings tree."""
    if isinstance(value, str):
        if "://" in value:
            yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _urls(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _urls(v, f"{where}[{i}]")


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    city: CityConfig
    sources: dict[str, SourceConfig]

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            raise KeyError(f"no source {name!r} in the sources file; known: "
                           f"{', '.join(self.sources) or 'none'}") from None


def _read_sources(path: Path | str | None) -> dict[str, Any]:
    path = Path(path) if path else settings().sources_file
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a sources file is a mapping with `city` and `sources`")
    return raw


def load_sources(path: Path | str | None = None) -> SourcesFile:
    """Read and validate a sources file (default: `HUB_SOURCES_FILE` or ./sources.yaml)."""
    raw = _read_sources(path)
    for name, src in (raw.get("sources") or {}).items():
        if isinstance(src, dict):
            src.setdefault("name", name)
    return SourcesFile.model_validate(raw)


def load_city(path: Path | str | None = None) -> CityConfig:
    """The sources file's `city` alone, validated: for what needs only the city (its time
    zone: the report, the marts, the CLI's times) and must not fail on a source entry."""
    raw = _read_sources(path)
    if "city" not in raw:
        raise ValueError(f"{path or settings().sources_file}: the sources file has no `city`")
    return CityConfig.model_validate(raw["city"])


def _airflow_connection_extra(source: str) -> dict[str, Any]:
    """The extra fields of Airflow connection `hub_<source>`, when running under Airflow."""
    if "AIRFLOW_CTX_DAG_ID" not in os.environ and f"AIRFLOW_CONN_HUB_{source.upper()}" not in os.environ:
        return {}
    try:
        from airflow.sdk import BaseHook
        conn = BaseHook.get_connection(f"hub_{source}")
    except Exception:  # no such connection: the environment may still hold the secret
        return {}
    extra: dict[str, Any] = dict(conn.extra_dejson or {})
    if conn.login:
        extra.setdefault("login", conn.login)
    if conn.password:
        extra.setdefault("password", conn.password)
    return extra


def resolve_secrets(source: SourceConfig, secret_fields: list[str]) -> dict[str, Any]:
    """The source's settings plus its secrets, from the environment or Airflow.

    A secret written into the sources file is refused: files get committed.
    """
    values = dict(source.settings)
    leaked = [f for f in secret_fields if f in values]
    if leaked:
        raise ValueError(
            f"source {source.name!r}: secret field(s) {', '.join(leaked)} must not be in the "
            f"sources file; set {', '.join(secret_env_var(source.name, f) for f in leaked)} instead"
        )
    airflow_extra: dict[str, Any] | None = None
    for f in secret_fields:
        env = secret_env_var(source.name, f)
        if env in os.environ:
            values[f] = os.environ[env]
            continue
        if airflow_extra is None:
            airflow_extra = _airflow_connection_extra(source.name)
        if f in airflow_extra:
            values[f] = airflow_extra[f]
    return values


def secret_env_var(source: str, field: str) -> str:
    return f"HUB_{re.sub(r'[^A-Za-z0-9]', '_', source).upper()}_{field.upper()}"
