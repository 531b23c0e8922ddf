"""How well the warehouse's keys link records, scored against a ground truth.

The truth is a CSV of `entity,source_system,source_id,truth_id` (entity: person,
organization or event): what each record really is (a human, an organization, an
incident). The simulators write one (sandbox.truth); a data steward's hand-checked
sample in the same form works as well. `evaluate` reads the current rows
(`valid_to IS NULL`) of core.person, core.organization and core.event and scores their
keys — `person_key`, `org_key`, `cluster_key` — against it:

- records scored are those on both sides: current rows the truth lists. Rows of the
  truth's source systems it does not list (`not_in_truth`) and truth records with no
  current row (`not_loaded`: quarantined, not pulled yet, closed) are counted, not
  scored;
- a NULL key is a cluster of one (a record linked to nothing);
- pairwise: a pair of records is *true* when the truth puts both in one cluster,
  *predicted* when their keys are equal; precision = correct / predicted pairs,
  recall = correct / true pairs, F1 their harmonic mean;
- B-cubed: per record, precision = |its predicted cluster ∩ its true cluster| / |its
  predicted cluster| and recall the same over its true cluster, averaged over records.

Pairs are never enumerated: from the contingency table of (true cluster, predicted
cluster) sizes, the correct pairs are Σ C(n_ij, 2) over its cells, the true pairs
Σ C(a_i, 2) over true clusters and the predicted pairs Σ C(b_j, 2) over predicted ones;
B-cubed precision is Σ n_ij² / b_j / N, recall Σ n_ij² / a_i / N. Linear in the records.
The pairs *across platforms* (records of two source systems: a call and the grid
worker's report of one incident, not a camera's repeated alarms) are the pairs less those
of the same table over (label, source system).

A ratio of nothing — precision when no pair is predicted (every key NULL), recall when
the truth has no pair, either over no records — is 1.0: nothing was claimed wrongly,
nothing was missed. F1 of precision and recall both 0 is 0. So keys that link nothing
score precision 1.0, recall 0.0, F1 0.0 wherever the truth has pairs.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from schemas.model import EVENT, ORGANIZATION, PERSON, Entity

ENTITIES = ("person", "organization", "event")
# entity → (its core table, the key column that says which records are one).
KEYS: dict[str, tuple[Entity, str]] = {
    "person": (PERSON, "person_key"),
    "organization": (ORGANIZATION, "org_key"),
    "event": (EVENT, "cluster_key"),
}
TRUTH_FIELDS = ("entity", "source_system", "source_id", "truth_id")
_FETCH = 50_000


# ------------------------------------------------------------------------ metrics


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; 1.0 for 0 / 0 (nothing claimed, nothing missed)."""
    return 1.0 if denominator == 0 else numerator / denominator


def harmonic(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        return harmonic(self.precision, self.recall)


@dataclass(frozen=True)
class PairCounts:
    true_pairs: int  # pairs the truth puts in one cluster
    predicted_pairs: int  # pairs with equal keys
    correct_pairs: int  # both

    @property
    def scores(self) -> Scores:
        return Scores(ratio(self.correct_pairs, self.predicted_pairs),
                      ratio(self.correct_pairs, self.true_pairs))


NO_PAIRS = PairCounts(0, 0, 0)


@dataclass(frozen=True)
class Contingency:
    """Sizes: of each (true, predicted) cell, of each true and each predicted cluster."""

    cells: Counter[tuple[Hashable, Hashable]]
    true_sizes: Counter[Hashable]
    predicted_sizes: Counter[Hashable]

    @property
    def records(self) -> int:
        return sum(self.true_sizes.values())


class _Alone:
    """The predicted cluster of a record whose key is NULL: equal to nothing else."""

    __slots__ = ()


def contingency(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> Contingency:
    """The contingency table of two row-aligned clusterings (a None prediction: alone)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predicted ones")
    labels = [_Alone() if p is None else p for p in predicted]
    return Contingency(Counter(zip(truth, labels, strict=True)), Counter(truth),
                       Counter(labels))


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_counts_of(table: Contingency) -> PairCounts:
    return PairCounts(true_pairs=sum(_pairs(n) for n in table.true_sizes.values()),
                      predicted_pairs=sum(_pairs(n) for n in table.predicted_sizes.values()),
                      correct_pairs=sum(_pairs(n) for n in table.cells.values()))


def bcubed_of(table: Contingency) -> Scores:
    n = table.records
    precision = sum(c * c / table.predicted_sizes[p] for (_, p), c in table.cells.items())
    recall = sum(c * c / table.true_sizes[t] for (t, _), c in table.cells.items())
    return Scores(ratio(precision, n), ratio(recall, n))


def across(all_pairs: PairCounts, within: PairCounts) -> PairCounts:
    """The pairs of `all_pairs` that are not among `within` (the pairs of records of one
    source system: from the contingency of (label, system) on both sides)."""
    return PairCounts(all_pairs.true_pairs - within.true_pairs,
                      all_pairs.predicted_pairs - within.predicted_pairs,
                      all_pairs.correct_pairs - within.correct_pairs)


def pair_counts(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> PairCounts:
    """Pairwise counts of row-aligned true and predicted labels (None: alone)."""
    return pair_counts_of(contingency(truth, predicted))


def bcubed(truth: Sequence[Hashable], predicted: Sequence[Hashable | None]) -> Scores:
    """B-cubed precision and recall of row-aligned true and predicted labels (None: alone)."""
    return bcubed_of(contingency(truth, predicted))


# ------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class EntityEvaluation:
    entity: str
    records: int  # current rows the truth lists: the records scored
    not_in_truth: int  # current rows of the truth's source systems it does not list
    not_loaded: int  # truth records without a current row
    true_clusters: int
    predicted_clusters: int
    pairs: PairCounts
    bcubed: Scores
    # Pairs of records of two source systems: one thing known to two platforms.
    cross_pairs: PairCounts = NO_PAIRS

    @property
    def pairwise(self) -> Scores:
        return self.pairs.scores


@dataclass(frozen=True)
class Evaluation:
    truth_csv: str
    person: EntityEvaluation
    organization: EntityEvaluation
    event: EntityEvaluation

    def __iter__(self) -> Iterator[EntityEvaluation]:
        return iter((self.person, self.organization, self.event))

    def of(self, entity: str) -> EntityEvaluation:
        return {"person": self.person, "organization": self.organization,
                "event": self.event}[entity]


Truth = dict[str, dict[tuple[str, str], str]]


def read_truth(path: Path) -> Truth:
    """entity → (source_system, source_id) → truth_id. A record listed twice keeps its
    first truth id; an entity the evaluation does not know is an error."""
    out: Truth = {e: {} for e in ENTITIES}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = set(TRUTH_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(sorted(missing))}; a truth file"
                             f" has {','.join(TRUTH_FIELDS)}")
        for line, row in enumerate(reader, start=2):
            entity = row["entity"]
            if entity not in out:
                raise ValueError(f"{path}:{line}: entity {entity!r} is none of "
                                 f"{', '.join(ENTITIES)}")
            out[entity].setdefault((row["source_system"], row["source_id"]), row["truth_id"])
    return out


def evaluate_entity(conn: psycopg.Connection, entity: str,
                    truth: dict[tuple[str, str], str]) -> EntityEvaluation:
    """Score one entity's current keys against its truth."""
    model, key = KEYS[entity]
    systems = sorted({s for s, _ in truth})
    true_labels: list[str] = []
    predicted: list[str | None] = []
    of_system: list[str] = []
    seen = 0
    if systems:
        query = sql.SQL("SELECT source_system, source_id, {key} FROM {table}"
                        " WHERE valid_to IS NULL AND source_system = ANY(%s)").format(
            key=sql.Identifier(key), table=sql.Identifier(*model.table.split(".")))
        with conn.cursor() as cur:
            cur.execute(query, (systems,))
            while rows := cur.fetchmany(_FETCH):
                for system, source_id, value in rows:
                    seen += 1
                    label = truth.get((system, source_id))
                    if label is not None:
                        true_labels.append(label)
                        predicted.append(value)
                        of_system.append(system)
    table = contingency(true_labels, predicted)
    within = pair_counts(list(zip(true_labels, of_system, strict=True)),
                         [None if p is None else (p, s)
                          for p, s in zip(predicted, of_system, strict=True)])
    return EntityEvaluation(
        entity=entity, records=table.records, not_in_truth=seen - table.records,
        not_loaded=len(truth) - table.records, true_clusters=len(table.true_sizes),
        predicted_clusters=len(table.predicted_sizes), pairs=pair_counts_of(table),
        bcubed=bcubed_of(table), cross_pairs=across(pair_counts_of(table), within))


def evaluate(conn: psycopg.Connection, truth_csv: Path) -> Evaluation:
    """The warehouse's current person, organization and event keys scored against the
    truth in `truth_csv` (see the module's doc for the measures)."""
    truth = read_truth(truth_csv)
    return Evaluation(str(truth_csv),
                      *(evaluate_entity(conn, e, truth[e]) for e in ENTITIES))


# ------------------------------------------------------------------------ the table


_COLUMNS = ("entity", "records", "true clusters", "hub clusters", "true pairs", "hub pairs",
            "correct pairs", "pair P", "pair R", "pair F1", "B³ P", "B³ R", "B³ F1")


def _figure(x: float) -> str:
    return f"{x:.3f}"


def format_evaluation(e: Evaluation) -> str:
    """A plain-text table of the scores, one line per entity, and what was not scored."""
    rows = [[ev.entity, f"{ev.records:,}", f"{ev.true_clusters:,}",
             f"{ev.predicted_clusters:,}", f"{ev.pairs.true_pairs:,}",
             f"{ev.pairs.predicted_pairs:,}", f"{ev.pairs.correct_pairs:,}",
             _figure(ev.pairwise.precision), _figure(ev.pairwise.recall),
             _figure(ev.pairwise.f1), _figure(ev.bcubed.precision),
             _figure(ev.bcubed.recall), _figure(ev.bcubed.f1)] for ev in e]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    out = [f"linking scored against {e.truth_csv}", line(_COLUMNS),
           "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append("")
    out += [f"{ev.entity} across platforms (pairs of records of two source systems):"
            f" {ev.cross_pairs.true_pairs:,} true, {ev.cross_pairs.predicted_pairs:,} hub,"
            f" {ev.cross_pairs.correct_pairs:,} correct; pair P"
            f" {_figure(ev.cross_pairs.scores.precision)} R {_figure(ev.cross_pairs.scores.recall)}"
            f" F1 {_figure(ev.cross_pairs.scores.f1)}" for ev in e]
    out += [f"{ev.entity}: {ev.not_in_truth:,} current rows the truth does not list,"
            f" {ev.not_loaded:,} truth records not in the warehouse (not scored)" for ev in e]
    out.append("a NULL key is a cluster of one; a ratio of nothing (no pair predicted, no true"
               " pair) is 1.000")
    return "\n".join(out)
