"""link.people._drop_ambiguous: a record without an ID number (a birth date) that matches
records of two of them is one of those people at most, so its pairwise odds are weighed
against each other; it keeps the links of a value likelier than not, or none."""

from __future__ import annotations

import math
from typing import Any

from link.people import _drop_ambiguous


def _pair(a: int, b: int, probability: float) -> dict[str, Any]:
    return {"a": a, "b": b, "probability": probability,
            "match_weight": round(math.log2(probability / (1 - probability)), 3),
            "comparisons": {}}


def test_a_strong_match_outweighs_a_namesake_in_the_street() -> None:
    # 0: a caller (name and phone, no ID, no birth date); 1: the resident of that name and
    # phone (ID x); 2: a namesake in the street without a phone (ID y); 3: another call
    # from the same phone, no ID.
    identities = [None, "x", "y", None]
    births = [None, "1980-01-01", "1990-01-01", None]
    strong, weak, calls = _pair(0, 1, 0.9999), _pair(0, 2, 0.6), _pair(0, 3, 0.999)
    kept, ambiguous = _drop_ambiguous([strong, weak, calls], identities, births)
    assert ambiguous == set()
    # odds 9999 against 1.5: the resident with probability 9999 / 10001.5
    assert kept == [strong, calls]


def test_two_people_alike_leave_the_record_unlinked() -> None:
    # A father and a son of one name on one phone: the call fits both alike (odds 999
    # each: each is 999 / 1999).
    identities = [None, "father", "son", None]
    births = [None, "1960-01-01", "1988-01-01", None]
    pairs = [_pair(0, 1, 0.999), _pair(0, 2, 0.999), _pair(0, 3, 0.999), _pair(1, 4, 0.9)]
    kept, ambiguous = _drop_ambiguous(pairs, identities + [None], births + [None])
    assert ambiguous == {0}
    assert kept == [pairs[3]]


def test_two_weak_matches_stay_ambiguous() -> None:
    # Each alone would be linked (probability 0.8, odds 4): together each is 4 / 9.
    identities = [None, "x", "y"]
    births = [None, None, None]
    pairs = [_pair(0, 1, 0.8), _pair(0, 2, 0.8)]
    kept, ambiguous = _drop_ambiguous(pairs, identities, births)
    assert (kept, ambiguous) == ([], {0})


def test_birth_dates_weigh_the_same_way() -> None:
    # No ID numbers anywhere: birth dates tell the people apart.
    identities: list[str | None] = [None, None, None]
    births = [None, "1970-03-04", "2001-05-06"]
    strong, weak = _pair(0, 1, 0.99999), _pair(0, 2, 0.7)
    kept, ambiguous = _drop_ambiguous([strong, weak], identities, births)
    assert (kept, ambiguous) == ([strong], set())


def test_records_that_match_one_person_keep_every_link() -> None:
    identities = [None, "x", "x", None]
    births = [None, "1980-01-01", None, None]
    pairs = [_pair(0, 1, 0.9), _pair(0, 2, 0.6), _pair(0, 3, 0.7)]
    assert _drop_ambiguous(pairs, identities, births) == (pairs, set())
