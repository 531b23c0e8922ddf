"""One conformance test for every connector: the same checks over each platform's protocol.

For each registered connector, against its simulator: the settings validate; one
page or chunk of every stream parses into the unified model; a run advances every
stream's cursor and reconciles; a second run adds nothing.
"""

from __future__ import annotations

import pytest
import yaml

from base.settings import load_sources
from conform.base import REGISTERED as CONFORMERS
from conform.mapped import MappedConformer, stream_mapping
from conform.video import VideoAlarmConformer
from connectors.registry import CONNECTORS, PLATFORMS
from connectors.video import Video
from hub.lineage import conformer_class, connector_class
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.platform import STARTERS, start
from schemas.arrow import conformed_schema


def test_every_connector_has_a_simulator_and_conformers():
    assert set(STARTERS) == set(CONNECTORS) == set(PLATFORMS)
    for name, cls in CONNECTORS.items():
        for stream in cls.streams:
            # A conform step exists (the look-up raises otherwise) and makes rows of an
            # entity of the model, keyed like every core table.
            primary = conformer_class(name, stream.name).primary
            assert "source_id" in conformed_schema(primary).names, (name, stream.name)
    # …and no conform step waits for a stream its platform does not have.
    streams = {(name, s.name) for name, cls in CONNECTORS.items() for s in cls.streams}
    assert {key for key in CONFORMERS if key[0] in CONNECTORS} == streams


def test_every_conform_step_reads_settings_its_connector_has():
    """A conform step reads its source's settings by name (conform never imports a
    connector): each field it declares is a setting of its connector, and the
    connector's default passes the step's model."""
    for name, cls in CONNECTORS.items():
        fields = cls.settings_model.model_fields
        for stream in cls.streams:
            step = conformer_class(name, stream.name)
            for field in step.settings_model.model_fields:
                assert field in fields, f"{name}/{stream.name} reads {field}, no setting of {name}"
                step.settings_model.model_validate({field: fields[field].default})


def test_a_mapping_file_says_what_becomes_of_every_field():
    mapped = {(p, s): step for (p, s), step in CONFORMERS.items()
              if p in CONNECTORS and issubclass(step, MappedConformer)}
    assert ("hotline12345", "workorders") in mapped and ("zongzhi", "disputes") in mapped
    for (platform, stream), step in mapped.items():
        mapping = stream_mapping(platform, step.streams[0])
        assert mapping.fields == set(connector_class(platform).stream(stream).fields), stream
        for rule in mapping.rules:
            assert rule.to is not None or rule.why, f"{platform}/{stream}.{rule.field}: say why"


def test_a_name_is_registered_once():
    with pytest.raises(TypeError, match="two connectors named 'video'"):
        class Impostor(Video):
            name = "video"
    with pytest.raises(TypeError, match="two conform steps for stream 'alarms' of 'video'"):
        class AlarmsAgain(VideoAlarmConformer):
            streams = ("alarms",)
    assert connector_class("video") is Video
    assert conformer_class("video", "alarms") is VideoAlarmConformer


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
