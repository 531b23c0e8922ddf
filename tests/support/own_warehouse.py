"""A warehouse of a test's own: an empty database beside the shared one, migrated, with
the hub pointed at it for the test (for tests that need core tables no other test has
written to)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from base.settings import settings
from warehouse.db import conninfo
from warehouse.migrate import migrate


@contextmanager
def migrated(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    """The hub pointed at `url` and migrated there; the owner's connection to it. The
    test's environment changes are undone at the end."""
    monkeypatch.setenv("HUB_WAREHOUSE_URL", url)
    settings.cache_clear()
    conninfo.cache_clear()
    try:
        migrate()
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    finally:
        monkeypatch.undo()
        settings.cache_clear()
        conninfo.cache_clear()
