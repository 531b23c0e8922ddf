"""link.people._link_identities_and_pairs decides each connected component of the links on
its own, most of them at once: over many generated cases it gives the clusters and the
strongest held links that joining every link one at a time gives (the ID numbers first,
then the pairs strongest first), whatever the conflicts (two ID numbers, birth dates or
genders in one component, a steward's split, clusters that stood before)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from link.clusters import Clusters
from link.people import _link_identities_and_pairs, _link_scored

N = 14


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    values = st.one_of(st.none(), st.sampled_from(["x", "y", "z"]))
    identities = draw(st.lists(st.one_of(st.none(), st.sampled_from(["i1", "i2", "i3", "i4"])),
                               min_size=N, max_size=N))
    births = draw(st.lists(values, min_size=N, max_size=N))
    genders = draw(st.lists(st.one_of(st.none(), st.sampled_from(["1", "2"])),
                            min_size=N, max_size=N))
    record = st.integers(0, N - 1)
    edges = draw(st.lists(st.tuples(record, record, st.floats(0.5, 0.9999)).filter(
        lambda e: e[0] != e[1]), max_size=25, unique_by=lambda e: (min(e[:2]), max(e[:2]))))
    pairs = sorted(({"a": min(a, b), "b": max(a, b), "probability": round(p, 4)}
                    for a, b, p in edges), key=lambda e: (-e["probability"], e["a"], e["b"]))
    splits = draw(st.lists(st.tuples(record, record).filter(lambda s: s[0] != s[1]),
                           max_size=2))
    stood = draw(st.lists(st.integers(-1, 2), min_size=N, max_size=N))  # an incremental run's
    return {"identities": identities, "births": births, "genders": genders, "pairs": pairs,
            "splits": splits, "stood": np.array(stood)}


def _clusters(case: dict[str, Any]) -> Clusters:
    c = Clusters(N, case["identities"], exclusive=(case["births"], case["genders"]))
    c.group(case["stood"])
    for a, b in case["splits"]:
        if c.find(a) != c.find(b):
            c.cannot_link(a, b)
    return c


def _one_at_a_time(c: Clusters, case: dict[str, Any]) -> dict[int, tuple[dict[str, Any], int]]:
    codes, _ = pd.factorize(pd.Series(case["identities"], dtype="object"), use_na_sentinel=True)
    first: dict[int, int] = {}
    for i, code in enumerate(codes.tolist()):
        if code >= 0:
            c.union(first.setdefault(code, i), i)
    return _link_scored(c, case["pairs"])


def _partition(c: Clusters) -> set[frozenset[int]]:
    labels = c.labels()
    return {frozenset(np.flatnonzero(labels == root).tolist()) for root in set(labels.tolist())}


@settings(max_examples=400, deadline=None)
@given(cases())
def test_components_decided_at_once_link_as_one_link_at_a_time(case: dict[str, Any]) -> None:
    reference, fast = _clusters(case), _clusters(case)
    expected = _one_at_a_time(reference, case)
    got = _link_identities_and_pairs(fast, case["identities"], case["pairs"])
    assert _partition(fast) == _partition(reference)
    assert {r: (e["a"], e["b"], other) for r, (e, other) in got.items()} == \
        {r: (e["a"], e["b"], other) for r, (e, other) in expected.items()}


def test_a_component_of_two_birth_dates_is_joined_link_by_link() -> None:
    # 0-1-2 a chain whose ends disagree on the birth date: the stronger link holds, the
    # weaker is refused; 3-4 agree and are joined at once.
    case = {"identities": [None] * N, "births": ["x", None, "y", "x", "x"] + [None] * (N - 5),
            "genders": [None] * N, "splits": [], "stood": np.full(N, -1),
            "pairs": [{"a": 1, "b": 2, "probability": 0.99}, {"a": 3, "b": 4, "probability": 0.9},
                      {"a": 0, "b": 1, "probability": 0.8}]}
    c = _clusters(case)
    best = _link_identities_and_pairs(c, case["identities"], case["pairs"])
    labels = c.labels()
    assert labels[1] == labels[2] != labels[0]
    assert labels[3] == labels[4]
    assert 0 not in best  # record 0's only link was refused
    assert best[1][1] == 2 and best[4][1] == 3
