"""Registers (link.registers): which groups hold each person once, and the links their
one-to-one structure decides below the model's threshold, on generated cases."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from link.clusters import Clusters
from link.registers import MIN_WITH_ID, complete, estimate

RESIDENT, CALLER = "gridmgmt/resident", "hotline12345/caller"


def test_a_group_holding_each_id_once_is_a_register_with_its_share_of_the_others():
    residents = [f"id{i}" for i in range(200)]
    # Callers: 150 with an ID, 120 of them residents; a caller may call twice.
    callers = [f"id{i}" for i in range(120)] + [f"out{i}" for i in range(30)] + ["id0", "id1"]
    groups = [RESIDENT] * len(residents) + [CALLER] * len(callers)
    registers = estimate(groups, residents + callers)
    # The callers repeat IDs (two calls of one person): not a register. The residents'
    # rho is the share of the others' ID-bearing records found on it.
    assert registers == {RESIDENT: round(122 / 152, 4)}


def test_too_few_ids_or_too_many_repeats_make_no_register():
    few = [f"id{i}" for i in range(MIN_WITH_ID - 1)]
    assert estimate([RESIDENT] * len(few) + [CALLER] * len(few), few + few) == {}
    repeated = [f"id{i // 2}" for i in range(400)]  # every ID twice
    callers = [f"id{i}" for i in range(200)]
    assert RESIDENT not in estimate([RESIDENT] * 400 + [CALLER] * 200, repeated + callers)


def _case(rho: float, namesakes: int, caller_phone: str | None,
          resident_cluster_phone: str | None, candidates: int = 1):
    """Record 0: a caller alone. Records 1..candidates: phoneless residents of its name in
    its street; then `namesakes` - candidates more residents of the name who have a phone
    (other people's); the last record, if `resident_cluster_phone`, another platform's
    record in the first resident's cluster (joined to it)."""
    names = ["李秀英"] * (1 + namesakes)
    groups = [CALLER] + [RESIDENT] * namesakes
    phones: list[str | None] = [caller_phone] + [None] * candidates + [
        f"p{i}" for i in range(namesakes - candidates)]
    if resident_cluster_phone is not None:
        names.append("王五")
        groups.append("zongzhi/party")
        phones.append(resident_cluster_phone)
    clusters = Clusters(len(names), [None] * len(names))
    if resident_cluster_phone is not None:
        clusters.union(1, len(names) - 1)
    fresh = np.ones(len(names), dtype=bool)
    return (clusters, fresh, groups, {RESIDENT: rho}, names, ["211103001"] * len(names),
            phones)


@settings(max_examples=200)
@given(rho=st.floats(0.05, 0.99), namesakes=st.integers(1, 8),
       candidates=st.integers(1, 2), caller_phone=st.sampled_from([None, "p-caller"]),
       other_phone=st.sampled_from([None, "p-caller", "p-other"]))
def test_a_register_links_its_one_candidate_where_the_odds_say_so(rho, namesakes, candidates,
                                                                    caller_phone, other_phone):
    candidates = min(candidates, namesakes)
    links = complete(*_case(rho, namesakes, caller_phone, other_phone, candidates))
    odds = rho / (1 - rho) / namesakes
    # A resident whose cluster has another phone than the caller's is not the caller: the
    # first candidate's (other_phone), and the namesakes' with phones of their own when
    # the caller has one.
    if caller_phone is None:
        compatible = [v for v in range(1, namesakes + 1)]
    else:
        compatible = [v for v in range(1, candidates + 1)
                      if not (v == 1 and other_phone not in (None, caller_phone))]
    should = len(compatible) == 1 and odds >= 1
    assert len(links) == (1 if should else 0)
    for link in links:
        assert (link["a"], link["b"]) == (0, compatible[0])
        assert math.isclose(link["probability"], odds / (1 + odds), rel_tol=1e-5)
        assert link["register"] == {"name": RESIDENT, "rho": rho, "namesakes": namesakes}


def test_a_cluster_already_on_the_register_or_a_candidate_claimed_twice_links_nothing():
    clusters, fresh, groups, registers, names, streets, phones = _case(0.9, 1, None, None)
    # The caller's cluster holds a resident already (record 2, joined to it).
    on_it = Clusters(3, [None] * 3)
    on_it.union(0, 2)
    assert complete(on_it, np.ones(3, dtype=bool), groups + [RESIDENT], registers,
                    names + ["李秀英"], streets + [streets[0]], phones + [None]) == []
    # … even by a resident record without a street (it holds the register all the same).
    nameless = Clusters(3, [None] * 3)
    nameless.union(0, 2)
    assert complete(nameless, np.ones(3, dtype=bool), groups + [RESIDENT], registers,
                    names + ["李秀英"], streets + [None], phones + [None]) == []
    # A second caller alone, of the same name in the street: neither.
    assert complete(Clusters(3, [None] * 3), np.ones(3, dtype=bool), groups + [CALLER],
                    registers, names + ["李秀英"], streets + [streets[0]],
                    phones + [None]) == []


def test_an_incremental_run_counts_the_candidates_a_full_run_does():
    # Two phoneless residents of the caller's name, one of them new: a run that compares
    # only the new one still sees both (they are records, not scored pairs): no link.
    groups = [CALLER, RESIDENT, RESIDENT]
    names, streets = ["李秀英"] * 3, ["211103001"] * 3
    fresh = np.array([False, False, True])
    assert complete(Clusters(3, [None] * 3), fresh, groups, {RESIDENT: 0.9}, names, streets,
                    ["p-caller", None, None]) == []
    # Nothing fresh in either cluster: what stood, stands.
    assert complete(Clusters(2, [None] * 2), np.zeros(2, dtype=bool), groups[:2],
                    {RESIDENT: 0.9}, names[:2], streets[:2], ["p-caller", None]) == []
