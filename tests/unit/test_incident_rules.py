"""The rules by which a report joins an incident's cluster (link.incident_rules), on
generated reports: clusters are anchored on their lead, so no chain of near neighbours
grows one, and a camera's alarms join only alarms of their own type."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from link.incident_rules import (
    Cluster,
    Pair,
    Report,
    Rules,
    best_join,
    bigrams,
    category_distance,
    join,
)

RULES = Rules()
CODES = ("SR", "SR01", "SR02", "JM01", "JM03", "SZ01", "AQ01", "MD01", "ZC", "unmapped")
WORDS = ("流动摊贩占道经营卖水果", "路面塌陷出现大坑", "井盖缺失行人易摔", "垃圾堆积没人清运")


def cluster_all(reports: list[Report], pairs: dict[int, list[Pair]]) -> dict[int, int]:
    """Each report, in report order, joins its best cluster: report id → its lead's id."""
    clusters: dict[int, Cluster] = {}
    cluster_of: dict[int, int] = {}
    by_id = {r.id: r for r in reports}
    for r in reports:
        chosen = best_join(RULES, r, pairs.get(r.id, []), clusters, cluster_of, by_id)
        if chosen is not None:
            join(r, chosen, clusters, cluster_of, by_id)
    return cluster_of


@st.composite
def city_day(draw: st.DrawFn) -> tuple[list[Report], dict[int, list[Pair]]]:
    """Reports in time order and the candidate pairs the database would offer: earlier
    reports within the window in a compatible category (or unmapped), at a drawn distance
    within distance_m."""
    n = draw(st.integers(2, 12))
    gaps = draw(st.lists(st.floats(0, 30 * 3600), min_size=n, max_size=n))
    reports, t = [], 0.0
    for i, gap in enumerate(gaps, start=1):
        t += gap
        worded = draw(st.booleans())
        category = draw(st.sampled_from(CODES))
        reports.append(Report(i, t, category, f"{'words' if worded else 'video'}|{category}",
                              bigrams(draw(st.sampled_from(WORDS))) if worded else None))
    pairs: dict[int, list[Pair]] = {}
    for b in reports:
        for a in reports[:b.id - 1]:
            compatible = "unmapped" in (a.category, b.category) \
                or category_distance(a.category, b.category) is not None
            if compatible and b.t - a.t <= RULES.window_s and draw(st.booleans()):
                distance = draw(st.floats(0, RULES.distance_m))
                pairs.setdefault(b.id, []).append(Pair(a.id, "near", distance, (b.t - a.t) / 60))
    return reports, pairs


@settings(max_examples=60)
@given(city_day())
def test_every_member_matches_its_lead_and_alarms_keep_their_type(case):
    reports, pairs = case
    by_id = {r.id: r for r in reports}
    cluster_of = cluster_all(reports, pairs)
    for member, lead in cluster_of.items():
        if member == lead:
            continue
        m, led = by_id[member], by_id[lead]
        # Anchored on the lead: within the window of it, and a candidate pair with it.
        assert led.t <= m.t <= led.t + RULES.window_s
        assert lead in {p.a for p in pairs[member]}
        if m.grams is None and led.grams is None:
            assert m.kind == led.kind  # an alarm joins alarms of its very type


def test_a_chain_of_neighbours_is_not_one_incident():
    """A is like B and B like C, but C is a day and a half from A: single-link clustering
    made one cluster of them; here C is not joined to A's."""
    grams = bigrams(WORDS[0])
    a, b, c = (Report(i, t * 3600, "SR01", "words|SR01", grams) for i, t in
               ((1, 0), (2, 30), (3, 60)))
    rules_day = Rules(window_hours=36)
    clusters: dict[int, Cluster] = {}
    cluster_of: dict[int, int] = {}
    by_id = {r.id: r for r in (a, b, c)}
    ab = best_join(rules_day, b, [Pair(1, "near", 10, 30 * 60)], clusters, cluster_of, by_id)
    assert ab is not None
    join(b, ab, clusters, cluster_of, by_id)
    # C pairs with B (30 h apart) but not with A (60 h): it does not join.
    assert best_join(rules_day, c, [Pair(2, "near", 10, 30 * 60)], clusters, cluster_of,
                     by_id) is None


def test_a_transfer_joins_whatever_the_time_place_and_words():
    order = Report(1, 0, "SZ02", "hotline|110302", bigrams("小区门口井盖缺失"))
    case = Report(2, 10 * 86400, "MD01", "zongzhi|邻里纠纷", bigrams("邻里因故发生争执调解"))
    chosen = best_join(RULES, case, [Pair(1, "transfer", 5000, 10 * 1440)], {}, {},
                       {1: order, 2: case})
    assert chosen is not None and chosen.rule == "transfer" and chosen.lead == 1


@given(st.sampled_from(CODES), st.sampled_from(CODES))
def test_category_distance_is_a_distance_in_the_taxonomy(a, b):
    d = category_distance(a, b)
    assert d == category_distance(b, a)
    if "unmapped" in (a, b):
        assert d is None
    elif a == b:
        assert d == 0
    elif a[:2] == b[:2]:
        assert d == 1
    else:
        assert d in (2, None)
    assert category_distance("SR01", "JM03") == 2 and category_distance("SR01", "MD01") is None




def _call_message_and_case(message_placed: bool, message_first: bool, call_words: bool = True
                           ) -> tuple[list[Report], dict[int, list[Pair]]]:
    """A caller reports a missing drain cover (or a camera sees it: no words); a web
    message about it (no coordinates, no grid unless `message_placed`; before the call if
    `message_first`) is transferred to 数字城管, where the case (id 3) is located next to
    the call."""
    words = bigrams("小区门口雨水篦子缺失行人易摔")
    call_id, message_id = (2, 1) if message_first else (1, 2)
    call = Report(call_id, call_id * 3600, "SZ02", "hotline|110302",
                  words if call_words else None)
    message = Report(message_id, message_id * 3600, "SZ02", "hotline|110302", words,
                     placed=message_placed)
    case = Report(3, 3 * 3600, "SZ02", "citymgmt|部件/01/01", words)
    pairs = {3: [Pair(message_id, "transfer", None, (3 - message_id) * 60),
                 Pair(call_id, "near", 20, (3 - call_id) * 60)]}
    return sorted((call, message, case), key=lambda r: r.id), pairs


def test_a_transfer_places_the_placeless_report_it_names_in_the_incident_around_it():
    reports, pairs = _call_message_and_case(message_placed=False, message_first=False)
    # The case joins the caller's cluster by place and words, and brings the message.
    assert cluster_all(reports, pairs) == {1: 1, 2: 1, 3: 1}
    chosen = best_join(RULES, reports[2], pairs[3], {}, {}, {r.id: r for r in reports})
    assert chosen is not None and chosen.rule == "near"
    assert [(j.lead, j.rule) for j in chosen.brings] == [(2, "transfer")]


def test_a_transfer_brings_what_it_says_in_words_after_its_cluster_began():
    # The message came first: the case joins it by transfer and brings the call.
    reports, pairs = _call_message_and_case(message_placed=False, message_first=True)
    assert cluster_all(reports, pairs) == {1: 1, 2: 1, 3: 1}
    # Not a camera's alarm (no words to say it is one with the case) …
    reports, pairs = _call_message_and_case(message_placed=False, message_first=True,
                                            call_words=False)
    assert cluster_all(reports, pairs) == {1: 1, 3: 1}
    # … nor a call before the cluster's lead (the lead stays the earliest report).
    reports, pairs = _call_message_and_case(message_placed=True, message_first=False)
    assert cluster_all(reports, pairs) == {2: 2, 3: 2}
