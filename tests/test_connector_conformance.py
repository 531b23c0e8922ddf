"""One conformance test for every connector: the same checks over each platform's protocol.

For each registered connector, against its simulator: the settings validate; one
page or chunk of every stream parses into the unified model; a run advances every
stream's cursor and reconciles; a second run adds nothing.
"""

from __future__ import annotations

import pytest
import yaml

from base.settings import load_sources
from conform.registry import conformer_class
from connectors.registry import CONNECTORS, connector_class
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.platform import STARTERS, start
from schemas.arrow import conformed_schema


def test_every_connector_has_a_simulator_and_conformers():
    assert set(STARTERS) == set(CONNECTORS)
    for name, cls in CONNECTORS.items():
        for stream in cls.streams:
            assert conformer_class(name, stream.name).primary is not None


@pytest.fixture
def platform_source(request, tmp_path, monkeypatch, warehouse):
    connector = request.param
    source = f"conf_{connector}"
    platform = start(connector, City("2111", scale=0.002), 2, tmp_path / "platform", source)
    request.addfinalizer(platform.stop)
    for key, value in platform.env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({
        "city": {"code": "2111", "extent": [121.42, 40.65, 122.52, 41.45]},
        "sources": {source: {"connector": connector, "settings": platform.settings}},
    }, allow_unicode=True), encoding="utf-8")
    return connector, source, path


@pytest.mark.parametrize("platform_source", sorted(CONNECTORS), indirect=True)
def test_connector_conformance(platform_source, db):
    connector, source, path = platform_source
    config = load_sources(path)
    cls = connector_class(connector)
    instance = cls(config.source(source), config.city)  # the settings validate

    for stream in cls.streams:
        first = next(iter(instance.extract(stream, None)), None)
        assert first is not None, f"{stream.name}: nothing extracted at all"
        assert set(stream.fields) <= set(first.records.column_names), stream.name
        conformer = conformer_class(connector, stream.name)(instance.settings, config.city)
        conformed = conformer.conform(first.records)
        assert conformed.table.schema.equals(conformed_schema(conformer.primary)), stream.name
        assert conformed.table.num_rows == first.records.num_rows, stream.name

    summary = run_source(source, path)
    assert summary.extracted > 0
    assert summary.extracted == summary.loaded + summary.quarantined
    cursors = {r[0] for r in db.execute("SELECT stream FROM ops.cursor WHERE source_system = %s",
                                        (source,))}
    assert cursors == {s.name for s in cls.streams}

    again = run_source(source, path)
    assert (again.inserted, again.updated, again.closed) == (0, 0, 0), again.as_dict()
    assert again.extracted == again.loaded + again.quarantined
