"""The embedded warehouse's personal-data key is private from the moment it exists."""

from __future__ import annotations

import os
import stat

from base.pii import pii_key, write_private
from base.settings import settings


def test_the_key_file_is_created_owner_only_even_under_a_permissive_umask(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HUB_PII_KEY", raising=False)
    monkeypatch.delenv("HUB_WAREHOUSE_URL", raising=False)
    settings.cache_clear()
    pii_key.cache_clear()
    old_umask = os.umask(0)
    try:
        key = pii_key()
    finally:
        os.umask(old_umask)
        settings.cache_clear()
        pii_key.cache_clear()
    path = tmp_path / "home" / "pii.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32


def test_an_existing_key_is_never_overwritten(tmp_path):
    path = tmp_path / "pii.key"
    write_private(path, "first")
    write_private(path, "second")
    assert path.read_text() == "first"
