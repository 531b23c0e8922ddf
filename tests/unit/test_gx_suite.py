"""quality.gx_suite: the suites derived from the model, run through GX 1.x, count
exactly what quality.rules counts."""

from __future__ import annotations

import json
from datetime import timedelta

import great_expectations as gx
import pytest

from quality.gx_suite import (
    ExpectRowsToPassHubRule,
    build_suite,
    run_suite,
    sample,
    suite_parameters,
)
from quality.rules import CONTEXT, RULES, applied_rules, evaluate
from schemas.model import ENTITIES, EVENT, GRID, HOUSE, ORGANIZATION, PERSON, THING
from tests.support.profile_rules import NOW, conformed_table, panjin_context, synthetic_events

CTX = panjin_context()


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_one_expectation_per_rule_with_meta(entity):
    suite = build_suite(entity)
    rules = applied_rules(entity)
    assert isinstance(suite, gx.ExpectationSuite)
    assert suite.name == f"hub.{entity.name}"
    metas = [e.meta or {} for e in suite.expectations]
    assert [m["rule"] for m in metas] == [r.name for r in rules]
    for exp, meta, rule in zip(suite.expectations, metas, rules, strict=True):
        assert meta["severity"] == rule.severity.value
        assert meta["dimension"] == rule.dimension
        assert exp.severity.value == ("critical" if rule.severity == "blocking" else "warning")
        assert meta["columns"] == list(rule.columns)
    required = [f.name for f in entity.fields if f.required]
    present = [e for e in suite.expectations if e.rule == "required_present"]
    assert [e.reads for e in present] == [[name] for name in required]
    # the recorded definition is plain JSON, reference tables only as parameters
    text = json.dumps(suite.to_json_dict(), ensure_ascii=False)
    assert "$PARAMETER" in text or entity.name == "division"
    assert len(text) < 50_000


def test_every_rule_has_an_expectation():
    # One kind of expectation, parameterised by the rule; every rule is in some suite.
    expectations = [e for entity in ENTITIES for e in build_suite(entity).expectations]
    assert all(type(e) is ExpectRowsToPassHubRule for e in expectations)
    assert {e.rule for e in expectations} == set(RULES)
    # and it can name every value of the run a check may read
    assert set(CONTEXT) <= set(ExpectRowsToPassHubRule.__fields__)


def _assert_counts_match(entity, table, ctx=CTX):
    evaluation = evaluate(entity, table, ctx)
    report = run_suite(entity, table, ctx, evaluation, max_rows=None)
    gx_counts = report.unexpected_counts()
    rule_counts = {r.rule: r.failed for r in evaluation.results}
    assert gx_counts == rule_counts
    assert report.mismatches == {}
    assert not report.sampled
    assert all(o.error is None for o in report.outcomes)
    return evaluation, report


def test_gx_counts_equal_rule_counts_on_dirty_events():
    table = synthetic_events(30_000, seed=9)
    evaluation, report = _assert_counts_match(EVENT, table)
    failing = {r.rule for r in evaluation.results if r.failed}
    assert len(failing) >= 12  # the dirty batch exercises most rules
    assert not report.success and not report.blocking_success
    by_rule = {o.rule: o for o in report.outcomes}
    assert by_rule["required_present:category_code"].success
    assert by_rule["lifecycle_order"].severity == "blocking"


def test_gx_counts_equal_rule_counts_on_other_entities():
    bad_id = "211103199003071234"
    people = conformed_table(PERSON, [
        {"source_id": "p1", "role": "resident", "id_number": bad_id, "phone": "139123456",
         "division_code": "211121", "street_code": "211103999", "grid_code": "x"},
        {"source_id": "p1", "role": " ", "id_number": "21110319900307123"},
        {"source_id": "p2", "role": "caller", "id_number": None, "phone": "13912345678"},
    ])
    _assert_counts_match(PERSON, people)
    orgs = conformed_table(ORGANIZATION, [
        {"source_id": "o1", "org_name": "甲公司", "uscc": "91110000802100433B"},
        {"source_id": "o2", "org_name": None, "uscc": "91110000802100433C"},
    ])
    _assert_counts_match(ORGANIZATION, orgs)
    things = conformed_table(THING, [
        {"source_id": "t1", "thing_type": "component", "thing_code": "9999990101000001",
         "longitude": 0.0, "latitude": 0.0},
        {"source_id": "t2", "thing_type": "camera", "thing_code": "21110300001180000001",
         "longitude": 122.0, "latitude": None},
        {"source_id": "t3", "thing_type": "nvr", "thing_code": "21110300001180000001"},
    ])
    _assert_counts_match(THING, things)
    grids = conformed_table(GRID, [
        {"source_id": "g1", "grid_code": "2111030010010", "grid_type": "单元",
         "worker_phone": "12345"},
        {"source_id": "g2", "grid_code": "兴隆台-03", "grid_type": "综合"},
    ])
    _assert_counts_match(GRID, grids)
    houses = conformed_table(HOUSE, [
        {"source_id": "h1", "house_code": None, "owner_id_number": bad_id},
    ])
    _assert_counts_match(HOUSE, houses)


def test_grid_expectation_evaluates_nothing_without_grids():
    ctx = panjin_context(with_grids=False)
    table = synthetic_events(2_000, seed=2)
    evaluation, report = _assert_counts_match(EVENT, table, ctx)
    assert evaluation.result("grid_code_known").evaluated == 0
    assert report.unexpected_counts()["grid_code_known"] == 0
    assert suite_parameters(ctx)["grid_codes"] is None


def test_archived_result_is_json_without_personal_data():
    table = synthetic_events(5_000, seed=4)
    evaluation = evaluate(EVENT, table, CTX)
    report = run_suite(EVENT, table, CTX, evaluation)
    doc = json.loads(json.dumps(report.to_json_dict(), ensure_ascii=False, default=str))
    text = json.dumps(doc, ensure_ascii=False)
    for column in ("reporter_id_number", "reporter_phone"):
        for value in table[column].drop_null().to_pylist():
            assert value not in text
    assert "********" in text  # masked ID numbers are there
    hub = doc["hub"]
    assert hub["parameters"]["street_codes"].startswith("sha256:")
    assert hub["parameters"]["latest_allowed"] == (NOW + timedelta(minutes=10)).isoformat()
    assert hub["mismatches"] == {}
    assert len(doc["results"]) == len(applied_rules(EVENT))


def test_large_batches_run_on_a_deterministic_sample():
    table = synthetic_events(12_000, seed=6)
    picked = sample(table, 3_000)
    assert picked.num_rows == 3_000
    assert picked.equals(sample(table, 3_000))
    report = run_suite(EVENT, table, CTX, evaluate(EVENT, table, CTX), max_rows=3_000)
    assert report.sampled and report.rows == 3_000 and report.batch_rows == 12_000
    assert report.mismatches == {}  # not compared on a sample
    assert report.unexpected_counts() == {
        r.rule: r.failed for r in evaluate(EVENT, picked, CTX).results}


def test_empty_batch():
    table = conformed_table(EVENT, [])
    report = run_suite(EVENT, table, CTX, evaluate(EVENT, table, CTX))
    assert report.success
    assert all(o.unexpected_count == 0 for o in report.outcomes)
