"""The ingest and refresh DAGs' task callables, without a scheduler: what a stream task
runs and emits, which streams wait for which, the task log kept to the hub's own lines,
and what the refresh DAG's link task finds to run."""

from __future__ import annotations

import logging
import types
from typing import Any, ClassVar

import pytest

from connectors.base import Connector, Stream
from connectors.registry import CONNECTORS
from hub import dag_factory, dag_refresh
from hub.dag_factory import (
    LOCK_WAIT,
    asset_events,
    core_asset,
    quiet_third_party_logs,
    run_stream,
    stream_alias,
    stream_graph,
)


def summary(**changed: dict[str, int]) -> dict[str, Any]:
    """A stream run's summary as the task returns it, with `changed` per table."""
    return {"run_id": 41, "source": "grid_a", "streams": ["events"], "outcome": "succeeded",
            "extracted": 12, "loaded": 10, "quarantined": 2, "inserted": 3, "updated": 1,
            "unchanged": 6, "closed": 0,
            "changed": {t.replace("_", "."): c for t, c in changed.items()}}


# ------------------------------------------------------------- the Asset events


def test_asset_events_carry_each_changed_table_s_counts() -> None:
    events = asset_events(summary(core_event={"inserted": 3, "updated": 1, "closed": 0},
                                  core_person={"inserted": 0, "updated": 0, "closed": 2}))
    assert events == {
        "core.event": {"source": "grid_a", "streams": ["events"], "run_id": 41, "inserted": 3,
                       "updated": 1, "closed": 0, "extracted": 12, "loaded": 10,
                       "quarantined": 2},
        "core.person": {"source": "grid_a", "streams": ["events"], "run_id": 41, "inserted": 0,
                        "updated": 0, "closed": 2, "extracted": 12, "loaded": 10,
                        "quarantined": 2},
    }


@pytest.mark.parametrize("changed", [
    {},  # nothing read
    {"core_event": {"inserted": 0, "updated": 0, "closed": 0}},  # all unchanged, or quarantined
])
def test_no_asset_event_when_nothing_changed(changed: dict[str, dict[str, int]]) -> None:
    assert asset_events(summary(**changed)) == {}


def test_only_the_tables_that_changed_get_an_event() -> None:
    events = asset_events(summary(core_event={"inserted": 0, "updated": 2, "closed": 0},
                                  core_person={"inserted": 0, "updated": 0, "closed": 0}))
    assert list(events) == ["core.event"]


class Outlets:
    """Airflow's `outlet_events` as a task sees it: accessors by alias, recording `add`."""

    def __init__(self) -> None:
        self.added: list[tuple[str, Any, dict[str, Any]]] = []

    def __getitem__(self, alias: Any) -> Any:
        outlets = self

        class Accessor:
            def add(self, asset: Any, extra: dict[str, Any] | None = None) -> None:
                outlets.added.append((alias.name, asset, dict(extra or {})))

        return Accessor()


def test_a_stream_task_runs_its_stream_alone_and_emits_through_its_alias(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.pipeline

    calls: list[dict[str, Any]] = []
    result = summary(core_event={"inserted": 3, "updated": 1, "closed": 0},
                     core_person={"inserted": 0, "updated": 0, "closed": 0})
    monkeypatch.setattr(hub.pipeline, "run_source", lambda source, path=None, **kw: (
        calls.append({"source": source, "path": path, **kw})
        or types.SimpleNamespace(as_dict=lambda: result)))
    outlets = Outlets()

    returned = run_stream("grid_a", "events", "/srv/sources.yaml", outlets)

    assert returned == result
    assert calls == [{"source": "grid_a", "path": "/srv/sources.yaml", "trigger": "airflow",
                      "streams": ["events"], "lock_wait": LOCK_WAIT.total_seconds()}]
    assert outlets.added == [(stream_alias("grid_a", "events"), core_asset("core.event"),
                              asset_events(result)["core.event"])]


def test_a_stream_task_that_changed_nothing_emits_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.pipeline

    result = summary(core_event={"inserted": 0, "updated": 0, "closed": 0})
    monkeypatch.setattr(hub.pipeline, "run_source",
                        lambda *a, **kw: types.SimpleNamespace(as_dict=lambda: result))
    outlets = Outlets()

    assert run_stream("grid_a", "events", None, outlets) == result
    assert outlets.added == []


# ------------------------------------------------------------- the stream order


def test_every_platform_declares_what_its_streams_need_first() -> None:
    graphs = {name: stream_graph(name) for name in CONNECTORS}
    assert graphs["gridmgmt"] == {"grids": (), "houses": ("grids",), "orgs": ("grids",),
                                  "residents": ("grids",), "events": ("grids",)}
    assert graphs["citymgmt"] == {"unit_grids": (), "components": ("unit_grids",),
                                  "cases": ("unit_grids", "components")}
    assert graphs["zongzhi"] == {"mediation_orgs": (), "disputes": ("mediation_orgs",)}
    assert graphs["video"] == {"devices": (), "alarms": ("devices",),
                               "alarm_backfill": ("devices",)}
    assert graphs["hotline12345"] == {"workorders": ()}


@pytest.mark.parametrize("after, problem", [
    (("nowhere",), "'nowhere'"),  # no such stream
    (("second",), "'second'"),  # declared after it: the declared order would not load it first
])
def test_a_stream_after_a_stream_not_declared_before_it_is_refused(
        after: tuple[str, ...], problem: str) -> None:
    with pytest.raises(TypeError, match=problem):
        class Misdeclared(Connector):
            name = "misdeclared_streams"
            streams: ClassVar[tuple[Stream, ...]] = (
                Stream(name="first", fields=("id",), key_field="id", after=after),
                Stream(name="second", fields=("id",), key_field="id"),
            )

    assert "misdeclared_streams" not in CONNECTORS


# ------------------------------------------------------------------- the task log


def test_third_party_registration_noise_is_silenced_and_the_hub_s_lines_kept() -> None:
    registry = logging.getLogger("great_expectations.expectations.registry")
    chatty = logging.getLogger("great_expectations.data_context.types.base")
    chatty.setLevel(logging.INFO)  # GX sets this one itself
    hub_log = logging.getLogger("hub.pipeline")
    before = {lg: lg.level for lg in (registry, chatty, hub_log,
                                      logging.getLogger("great_expectations"))}
    try:
        quiet_third_party_logs()
        assert not registry.isEnabledFor(logging.INFO)
        assert not chatty.isEnabledFor(logging.INFO)
        assert registry.isEnabledFor(logging.WARNING)
        assert hub_log.isEnabledFor(logging.INFO)
    finally:
        for lg, level in before.items():
            lg.setLevel(level)


# --------------------------------------------------------------- the refresh DAG


def modules(present: dict[str, dict[str, Any]], broken: str | None = None):
    """An `import_module` that knows only `present` (module → attributes)."""
    def import_module(name: str) -> Any:
        if name == broken:
            raise ModuleNotFoundError("No module named 'splink'", name="splink")
        if name not in present:
            top = name.split(".")[0]
            missing = top if not any(m.startswith(top + ".") for m in present) else name
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return types.SimpleNamespace(**present[name])
    return import_module


def step(name: str) -> Any:
    def fn(conn: Any) -> dict[str, str]:
        return {"step": name}
    return fn


def test_link_runs_link_all_when_link_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    link_all = step("all")
    monkeypatch.setattr(dag_refresh.importlib, "import_module", modules({
        "link.run": {"link_all": link_all}, "link.people": {"link_people": step("people")}}))
    assert dag_refresh.link_steps() == [("link.run.link_all", link_all)]


def test_link_runs_the_steps_present_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    people, orgs = step("people"), step("orgs")
    monkeypatch.setattr(dag_refresh.importlib, "import_module", modules({
        "link.orgs": {"link_organizations": orgs}, "link.people": {"link_people": people}}))
    assert dag_refresh.link_steps() == [("link.people.link_people", people),
                                        ("link.orgs.link_organizations", orgs)]


def test_without_the_link_package_there_is_nothing_to_link(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dag_refresh.importlib, "import_module", modules({}))
    assert dag_refresh.link_steps() == []
    assert dag_refresh.link_entities() == {}


def test_a_link_module_that_cannot_import_its_dependency_fails_the_task(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dag_refresh.importlib, "import_module", modules(
        {"link.people": {"link_people": step("people")}}, broken="link.people"))
    with pytest.raises(ModuleNotFoundError, match="splink"):
        dag_refresh.link_steps()


def test_the_refresh_dag_waits_on_every_table_an_ingest_writes() -> None:
    from hub.lineage import tables_written

    assert set(dag_refresh.refresh_tables()) == {
        t for name in CONNECTORS for t in tables_written(name)}
    assert dag_factory.core_asset("core.event").uri == "hub://warehouse/core/event"
