"""Pairs across platforms (link.evaluate.across): the pairs of records of two source
systems, what cross-channel clustering is about, apart from a platform's own repeats."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from link.evaluate import across, pair_counts

records = st.lists(st.tuples(st.sampled_from("ABC"), st.sampled_from(("k1", "k2", None)),
                             st.sampled_from(("hotline", "video"))), max_size=30)


@given(records)
def test_pairs_across_platforms_are_the_pairs_of_records_of_two_systems(rows):
    truth = [t for t, _, _ in rows]
    keys = [k for _, k, _ in rows]
    systems = [s for _, _, s in rows]
    within = pair_counts(list(zip(truth, systems, strict=True)),
                         [None if k is None else (k, s) for k, s in zip(keys, systems, strict=True)])
    counted = across(pair_counts(truth, keys), within)
    # Enumerated: pairs of two systems, true / predicted / both.
    two = [(a, b) for a, b in combinations(rows, 2) if a[2] != b[2]]
    true = sum(a[0] == b[0] for a, b in two)
    predicted = sum(a[1] is not None and a[1] == b[1] for a, b in two)
    correct = sum(a[0] == b[0] and a[1] is not None and a[1] == b[1] for a, b in two)
    assert (counted.true_pairs, counted.predicted_pairs, counted.correct_pairs) == \
        (true, predicted, correct)
