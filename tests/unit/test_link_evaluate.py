"""link.evaluate: the contingency formulas against brute force, and the truth file."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from link.evaluate import (
    EntityEvaluation,
    Evaluation,
    PairCounts,
    Scores,
    bcubed,
    bcubed_of,
    contingency,
    format_evaluation,
    harmonic,
    pair_counts,
    read_truth,
)


def brute_pairs(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> PairCounts:
    true = predicted_ = correct = 0
    for i, j in combinations(range(len(truth)), 2):
        same_truth = truth[i] == truth[j]
        same_key = predicted[i] is not None and predicted[i] == predicted[j]
        true += same_truth
        predicted_ += same_key
        correct += same_truth and same_key
    return PairCounts(true, predicted_, correct)


def brute_bcubed(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> Scores:
    n = len(truth)
    if n == 0:
        return Scores(1.0, 1.0)
    precision = recall = 0.0
    for i in range(n):
        mine = {j for j in range(n) if j == i or (predicted[i] is not None
                                                   and predicted[j] == predicted[i])}
        true = {j for j in range(n) if truth[j] == truth[i]}
        precision += len(mine & true) / len(mine)
        recall += len(mine & true) / len(true)
    return Scores(precision / n, recall / n)


clusterings = st.integers(0, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 6), min_size=n, max_size=n),
    st.lists(st.one_of(st.none(), st.sampled_from("abcdef")), min_size=n, max_size=n)))


@given(clusterings)
def test_contingency_counts_equal_pair_enumeration(labels):
    truth, predicted = labels
    assert pair_counts(truth, predicted) == brute_pairs(truth, predicted)


@given(clusterings)
def test_contingency_bcubed_equals_the_per_record_definition(labels):
    truth, predicted = labels
    fast, slow = bcubed(truth, predicted), brute_bcubed(truth, predicted)
    assert math.isclose(fast.precision, slow.precision, abs_tol=1e-12)
    assert math.isclose(fast.recall, slow.recall, abs_tol=1e-12)


def test_hand_made_clusterings():
    # Truth: {1,2,3} {4,5} {6}; keys: {1,2} {3,4} 5 and 6 alone.
    truth = ["A", "A", "A", "B", "B", "C"]
    keys = ["k1", "k1", "k2", "k2", None, None]
    counts = pair_counts(truth, keys)
    assert counts == PairCounts(true_pairs=4, predicted_pairs=2, correct_pairs=1)
    assert counts.scores == Scores(0.5, 0.25)
    assert math.isclose(counts.scores.f1, 2 * 0.5 * 0.25 / 0.75)
    b = bcubed(truth, keys)
    # precision per record: 1, 1, 1/2, 1/2, 1, 1; recall: 2/3, 2/3, 1/3, 1/2, 1/2, 1
    assert math.isclose(b.precision, 5 / 6)
    assert math.isclose(b.recall, (2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2 + 1) / 6)
    # Perfect keys, and keys that link everything.
    assert pair_counts(truth, truth).scores == Scores(1.0, 1.0)
    assert bcubed(truth, truth) == Scores(1.0, 1.0)
    lumped = pair_counts(truth, ["x"] * 6)
    assert lumped == PairCounts(4, 15, 4) and lumped.scores == Scores(4 / 15, 1.0)


def test_nothing_linked_is_precision_one_recall_zero():
    truth = ["A", "A", "B", "C", "C", "C"]
    counts = pair_counts(truth, [None] * 6)
    assert counts == PairCounts(true_pairs=4, predicted_pairs=0, correct_pairs=0)
    assert counts.scores == Scores(1.0, 0.0) and counts.scores.f1 == 0.0
    # Nothing to find and nothing claimed: vacuously perfect; no records at all, too.
    assert pair_counts(["A", "B"], [None, None]).scores == Scores(1.0, 1.0)
    assert bcubed([], []) == Scores(1.0, 1.0) and pair_counts([], []).scores.f1 == 1.0
    assert harmonic(0.0, 0.0) == 0.0


def test_null_keys_are_never_one_cluster():
    table = contingency(["A", "A"], [None, None])
    assert len(table.predicted_sizes) == 2
    assert bcubed_of(table) == Scores(1.0, 0.5)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="2 true labels but 1 predicted"):
        contingency(["A", "B"], ["k"])


def test_read_truth(tmp_path: Path):
    path = tmp_path / "truth.csv"
    path.write_text("entity,source_system,source_id,truth_id\n"
                    "person,hotline,caller:1,17\nperson,hotline,caller:1,18\n"
                    "event,hotline,2111,H1\norganization,grid,9121,org:3\n", encoding="utf-8")
    truth = read_truth(path)
    assert truth["person"] == {("hotline", "caller:1"): "17"}  # the first listing stands
    assert truth["event"] == {("hotline", "2111"): "H1"}
    assert truth["organization"] == {("grid", "9121"): "org:3"}
    path.write_text("entity,source_system,source_id,truth_id\nthing,x,y,z\n", encoding="utf-8")
    with pytest.raises(ValueError, match="thing"):
        read_truth(path)
    path.write_text("entity,source_id\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source_system"):
        read_truth(path)


def test_the_table_names_every_entity_and_measure():
    def one(entity: str) -> EntityEvaluation:
        return EntityEvaluation(entity, 6, 1, 2, 3, 5, PairCounts(4, 2, 1), Scores(0.8, 0.6))

    text = format_evaluation(Evaluation("truth.csv", one("person"), one("organization"),
                                        one("event")))
    lines = text.splitlines()
    assert "truth.csv" in lines[0] and "pair F1" in lines[1] and "B³ F1" in lines[1]
    person = next(line for line in lines if line.startswith("person "))
    assert person.split()[1:] == ["6", "3", "5", "4", "2", "1", "0.500", "0.250", "0.333",
                                  "0.800", "0.600", "0.686"]
    assert "1 current rows the truth does not list" in text
