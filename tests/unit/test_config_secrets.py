"""The sources file carries no secret: not in a secret field, not inside any URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from base.settings import SourceConfig


def source(**settings: object) -> SourceConfig:
    return SourceConfig(name="s", connector="hotline12345", settings=settings)


@pytest.mark.parametrize("url", [
    "https://12345.example.gov.cn/api?password=Hunter2",
    "https://12345.example.gov.cn/api?appSecret=Hunter2",
    "https://12345.example.gov.cn/api?access_token=Hunter2",
    "https://admin:Hunter2@12345.example.gov.cn/api",
    "mysql+pymysql://reader:Hunter2@db.example:3306/dcm?charset=utf8mb4",
])
def test_a_credential_in_any_url_is_refused_without_repeating_it(url):
    for settings in ({"base_url": url}, {"url": url}, {"mirrors": [url]}, {"nested": {"u": url}}):
        with pytest.raises(ValidationError) as err:
            source(**settings)
        assert "Hunter2" not in str(err.value)
        assert "credential" in str(err.value)


@pytest.mark.parametrize("url", [
    "https://12345.example.gov.cn/api?pageSize=500",
    "mysql+pymysql://reader@db.example:3306/dcm?charset=utf8mb4",
    "sqlite:///.hub/demo/citymgmt/citymgmt.sqlite",
])
def test_urls_without_credentials_are_accepted(url):
    assert source(base_url=url).settings["base_url"] == url
