"""source_key_unique through GX: the recorded counts equal the rules' when a batch has
repeated keys and the snapshot names conflicting ones."""

from __future__ import annotations

from dataclasses import replace

from quality.gx_suite import run_suite, suite_parameters
from quality.rules import evaluate
from schemas.model import EVENT, PERSON
from tests.support.profile_rules import conformed_table, panjin_context, synthetic_events

CTX = panjin_context()


def test_gx_counts_every_row_of_a_repeated_or_conflicting_key():
    people = conformed_table(PERSON, [
        {"source_id": k, "role": "resident"} for k in ("a", "b", "a", "c", "d", "a", "e")])
    ctx = replace(CTX, conflicting_keys=frozenset({"c", "x"}))
    evaluation = evaluate(PERSON, people, ctx)
    assert evaluation.result("source_key_unique").failed == 4  # a a a c
    report = run_suite(PERSON, people, ctx, evaluation)
    assert report.mismatches == {}
    assert report.unexpected_counts()["source_key_unique"] == 4
    assert report.parameters["conflicting_keys"].endswith(":2")  # by digest, with its size


def test_gx_counts_match_on_a_large_batch_with_conflicts():
    table = synthetic_events(20_000, seed=12)
    keys = table["source_id"].to_pylist()
    ctx = replace(CTX, conflicting_keys=frozenset(keys[100:160]))
    evaluation = evaluate(EVENT, table, ctx)
    report = run_suite(EVENT, table, ctx, evaluation)
    assert report.mismatches == {}
    assert evaluation.result("source_key_unique").failed >= 60
    # The context of the run (no conflicts) is not changed by a batch's.
    assert CTX.conflicting_keys == frozenset()
    assert suite_parameters(CTX)["conflicting_keys"].endswith(":0")
