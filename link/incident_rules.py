"""When a report joins an incident's cluster: the rules, pure (no database).

A cluster is anchored on its **lead** (its earliest report): a later report joins it only
when it matches the lead in place, time and category, so no chain of reports each a
little further on drifts a cluster across a street or a week (single-link clustering
did: one cluster of eleven camera alarms over three days). Given a candidate pair with
the lead (the database found it: within `distance_m`, or the same grid where one has no
coordinates, within `window_hours`, categories compatible), the report joins

- by **transfer** whatever the time and place: it names a member (the 12345 order
  number a 数字城管 case or 综治 dispute quotes). A report that names a report still
  alone and without a place (a web message: no coordinates, no grid) is placed by its own
  coordinates and words instead: where those join it to a cluster led before the named
  report, it joins that cluster and **brings** the named report with it (a message sent
  at noon, transferred to 数字城管 and located there, about the manhole a caller reported
  in the morning). The reports still alone, after the lead of the cluster it joins, that
  it says in words it is one with come along too (a dispute the grid worker entered,
  entered again from the 12345 transfer). The lead stays the cluster's earliest report;
- by **words**: it has words of its own and says what a member with words said: the
  share of the shorter text's character bigrams the other has too (`overlap`: a grid
  worker's terse note and a caller's long account of one thing agree) is at least
  `text_threshold` + `text_stretch` × how far apart the two are (the mean of time apart
  / window and distance / distance_m; a grid pair counts as distance_m apart). Words
  that disagree keep it out;
- **without words** (a camera's alarm, or a report joining a cluster of alarms): it came
  within `wordless_gap_hours` of the cluster's latest report; an alarm has coordinates
  (a grid is too coarse to tell two vendors apart without words) and the very type of an
  alarm lead (the platform's own) or the very category of a lead in words; a report in
  words has a category of the lead's L1 or one naming the same thing (`SAME_THING`:
  流动摊贩 and 占道经营). A camera raises an alarm again while the situation lasts, an
  operator files the case from the video within hours in the platform's own vocabulary;
  the same camera's alarm of the next morning is another incident.

Among the clusters a report may join it takes the best: a transfer, then the most
similar words, then the nearest category, then the nearest lead.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

# Hub L1 categories that one incident is often reported under (schemas/taxonomy.csv): a
# vendor on the pavement is 市容环境 to one caller and 街面秩序 to another, a noisy
# neighbour 环境保护 or 矛盾纠纷, a blocked fire lane 街面秩序 or 安全隐患.
COMPATIBLE_CATEGORIES: frozenset[tuple[str, str]] = frozenset({
    ("JM", "SR"),  # 街面秩序 · 市容环境: 占道经营 / 流动摊贩
    ("HB", "SC"),  # 环境保护 · 市场监管: 餐饮油烟 / 餐饮食品卫生
    ("HB", "MD"),  # 环境保护 · 矛盾纠纷: 噪声扰民 / 邻里纠纷
    ("AQ", "JM"),  # 安全隐患 · 街面秩序: 消防通道堵塞 / 违章停车
    ("AQ", "MD"),  # 安全隐患 · 矛盾纠纷: 房屋安全隐患 / 物业纠纷
    ("AQ", "SZ"),  # 安全隐患 · 市政设施: 井盖缺失, 路面塌陷
    ("JT", "SZ"),  # 交通出行 · 市政设施: 交通设施 / 道路破损
    ("MS", "SZ"),  # 民生服务 · 市政设施: 停水停暖 / 供排水
})

CLOSED = -1  # the lead of a cluster whose lead is past the window of any report decided

# Hub categories of two L1s that name one thing (schemas/taxonomy.csv), as a camera's
# type and a case's category may: the only cross-L1 pairs a report without words joins.
SAME_THING: frozenset[tuple[str, str]] = frozenset({
    ("JM03", "SR01"),  # 流动摊贩 · 占道经营
    ("AQ01", "JM01"),  # 消防隐患 · 违章停车 (a car in the fire lane)
    ("AQ", "SZ02"),  # 安全隐患 · 井盖缺损
})

_NOT_CJK = re.compile(r"[^\u4e00-\u9fff]+")
_TAXONOMY_CODE = re.compile(r"^[A-Z]{2}(\d{2})?$")


def bigrams(text: str | None) -> frozenset[str]:
    """The character bigrams of the Chinese text in `text`: CJK unified ideographs only,
    so digits, Latin letters, punctuation and blanks (full-width or not) do not count, nor
    does an address number or an order number."""
    if not text:
        return frozenset()
    chars = _NOT_CJK.sub("", text)
    return frozenset(map(operator.add, chars, chars[1:]))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / min(|a|, |b|) (the overlap coefficient): how much of the shorter text
    the longer one says too, so that a grid worker's terse note and a caller's long
    account of one thing agree; 0 when either is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def category_distance(a: str | None, b: str | None,
                      compatible: Iterable[tuple[str, str]] = COMPATIBLE_CATEGORIES
                      ) -> int | None:
    """Steps apart in the hub taxonomy (two levels, `SR` 市容环境 over `SR01` 占道经营):
    0 the same code, 1 the same L1 (a code and its parent, or two siblings), 2 two L1s one
    incident is often reported under (`compatible`); None otherwise, or when either is
    not a taxonomy code (unmapped)."""
    if a is None or b is None or not _TAXONOMY_CODE.match(a) or not _TAXONOMY_CODE.match(b):
        return None
    if a == b:
        return 0
    if a[:2] == b[:2]:
        return 1
    pair = (min(a[:2], b[:2]), max(a[:2], b[:2]))
    return 2 if pair in {(min(p), max(p)) for p in compatible} else None


@dataclass(frozen=True)
class Rules:
    """The thresholds of the clustering (recorded with every cluster's evidence)."""

    window_hours: float = 72  # a cluster spans at most this from its lead (bar transfers)
    distance_m: float = 300  # a report is at most this far from its cluster's lead
    text_threshold: float = 0.15  # words in common needed next door and at once …
    text_stretch: float = 0.7  # … plus this much at the edge of the window and distance
    wordless_gap_hours: float = 2  # no words: at most this after the cluster's latest report
    compatible: frozenset[tuple[str, str]] = COMPATIBLE_CATEGORIES
    same_thing: frozenset[tuple[str, str]] = SAME_THING

    def __post_init__(self) -> None:
        # The database packs cells of distance_m and time buckets of the window in a bigint.
        if self.window_hours < 0.25 or self.distance_m < 10:
            raise ValueError("window_hours must be 0.25 or more and distance_m 10 or more")

    @property
    def window_s(self) -> float:
        return self.window_hours * 3600.0

    def compatible_pairs(self) -> list[str]:
        """The compatible L1 pairs as the database compares them: `AQ:JM`."""
        return sorted({"{}:{}".format(*sorted(p)) for p in self.compatible})

    def params(self) -> dict[str, object]:
        return {"window_hours": self.window_hours, "distance_m": self.distance_m,
                "text_threshold": self.text_threshold, "text_stretch": self.text_stretch,
                "wordless_gap_hours": self.wordless_gap_hours,
                "compatible": self.compatible_pairs(),
                "same_thing": sorted(":".join(p) for p in self.same_thing)}


@dataclass(frozen=True, slots=True)
class Report:
    id: int  # report order: a later report has a larger id
    t: float  # reported at, epoch seconds
    category: str | None  # hub taxonomy code
    kind: str  # its platform and the platform's own category (an alarm's type)
    grams: frozenset[str] | None  # its words' bigrams; None: no words of its own
    placed: bool = True  # it has coordinates or a grid


@dataclass(frozen=True, slots=True)
class Pair:
    """A candidate pair from the database, seen from its later report: the earlier one."""

    a: int
    rule: str  # transfer / near / grid
    distance_m: float | None  # None: a grid pair, or a transfer without coordinates
    minutes: float


@dataclass(slots=True)
class Cluster:
    lead: Report
    last_t: float  # its latest report


@dataclass(frozen=True, slots=True)
class Join:
    """Why a report joins a cluster: the pair it joins through and how well it matched."""

    cluster: Cluster | None  # None: a new cluster led by the pair's earlier report
    lead: int
    rank: tuple[float, float, float, float]
    rule: str
    via: int
    distance_m: float | None
    minutes: float
    text_similarity: float | None
    # Reports still alone that join with it (b's joins with them, each led by one).
    brings: tuple[Join, ...] = ()


def _apart(rules: Rules, pair: Pair) -> float:
    distance = pair.distance_m if pair.distance_m is not None else rules.distance_m
    return (pair.minutes * 60 / rules.window_s + distance / rules.distance_m) / 2


def judge(rules: Rules, b: Report, lead: Report, cluster: Cluster | None,
          pairs: list[Pair], reports: dict[int, Report]) -> Join | None:
    """May report b join the cluster led by `lead` (`cluster` None: lead alone so far),
    given b's candidate pairs with that cluster's reports? The join, or None."""
    transfer = next((p for p in pairs if p.rule == "transfer"), None)
    if transfer is not None:
        return Join(cluster, lead.id, (3.0, 1.0, 0.0, 0.0), "transfer", transfer.a,
                    transfer.distance_m, transfer.minutes, None)
    with_lead = next((p for p in pairs if p.a == lead.id), None)
    if with_lead is None or b.t - lead.t > rules.window_s:
        return None
    nearness = -(with_lead.distance_m if with_lead.distance_m is not None else rules.distance_m)
    if b.grams is not None:
        compared = [(overlap(r.grams, b.grams), p) for p in pairs
                    if (r := reports[p.a]).grams is not None]
        if compared:
            similarity, best = max(compared, key=lambda c: (c[0], -c[1].a))
            if similarity < rules.text_threshold + rules.text_stretch * _apart(rules, best):
                return None
            return Join(cluster, lead.id, (2.0, similarity, 0.0, nearness), best.rule, best.a,
                        best.distance_m, best.minutes, round(similarity, 4))
    # Without words, only the place, the time and the category say it.
    steps = category_distance(lead.category, b.category, rules.compatible)
    if b.grams is None and with_lead.distance_m is None or steps is None \
            or steps == 2 and (min(lead.category or "", b.category or ""),
                               max(lead.category or "", b.category or "")) not in rules.same_thing:
        return None
    last_t = cluster.last_t if cluster is not None else lead.t
    # An alarm joins an alarm of its very type, or a report in words of its very category;
    # a report in words, in its own vocabulary, what the alarms saw.
    if b.grams is None and (b.kind != lead.kind if lead.grams is None else steps != 0):
        return None
    if b.t - last_t > rules.wordless_gap_hours * 3600:
        return None
    return Join(cluster, lead.id, (1.0, 0.0, -steps, nearness), with_lead.rule, lead.id,
                with_lead.distance_m, with_lead.minutes, None)


def best_join(rules: Rules, b: Report, pairs: list[Pair], clusters: dict[int, Cluster],
              cluster_of: dict[int, int], reports: dict[int, Report]) -> Join | None:
    """The cluster report b joins, if any: `clusters` by lead id, `cluster_of` a clustered
    report's lead (CLOSED: a cluster too old to join), `reports` the reports of b's pairs."""
    by_lead: dict[int, list[Pair]] = {}
    for p in pairs:
        by_lead.setdefault(cluster_of.get(p.a, p.a), []).append(p)
    joins = [j for lead, into in by_lead.items() if lead != CLOSED
             if (j := judge(rules, b, clusters[lead].lead if lead in clusters else reports[lead],
                            clusters.get(lead), into, reports)) is not None]
    best = max(joins, key=_order, default=None)
    if best is None or best.rule != "transfer":
        return best
    others = [j for j in joins if j.rule != "transfer"]
    if best.cluster is None and not reports[best.lead].placed:
        # The named report is alone and has no place: b's own place and words choose, among
        # the clusters led before it (the lead stays the earliest report); it comes along.
        placed = [j for j in others if j.lead < best.lead]
        if placed:
            chosen = max(placed, key=_order)
            return replace(chosen, brings=(best, *_alone_in_words(
                [j for j in others if j is not chosen], chosen.lead)))
    return replace(best, brings=_alone_in_words(others, best.lead))


def _order(j: Join) -> tuple[tuple[float, float, float, float], int]:
    return j.rank, -j.lead


def _alone_in_words(joins: list[Join], lead: int) -> tuple[Join, ...]:
    """The reports still alone that a transferred report says in words it is one with,
    reported after the lead of the cluster it joins: they come along (one dispute entered
    by the grid worker and again from the 12345 transfer)."""
    return tuple(j for j in joins
                 if j.cluster is None and j.text_similarity is not None and j.lead > lead)


def join(b: Report, chosen: Join, clusters: dict[int, Cluster], cluster_of: dict[int, int],
         reports: dict[int, Report]) -> Cluster:
    """Put b in the chosen cluster (made, led by the pair's earlier report, if new)."""
    cluster = chosen.cluster
    if cluster is None:
        lead = reports[chosen.lead]
        cluster = clusters[lead.id] = Cluster(lead, lead.t)
        cluster_of[lead.id] = lead.id
    cluster.last_t = max(cluster.last_t, b.t)
    cluster_of[b.id] = cluster.lead.id
    for brought in chosen.brings:
        cluster_of[brought.lead] = cluster.lead.id
    return cluster
