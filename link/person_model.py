"""The probabilistic person model: Splink 5 on DuckDB, its comparisons, training and scoring.

Records are compared on their normal forms (link.normal): the name (exact, the same
pinyin, one character apart with the same surname, the same surname), the birth date
(exact, one keystroke apart), gender, the phone hash, and the place (the same address,
the same estate or road number, grid, street). The m and u probabilities start from the
priors below; with enough records u is estimated by random sampling, and m and the
prior that two records match from the pairs the ID numbers already link (see `train`).
Parameters, threshold and rules are stored together (ops.link_model), and the version is
a hash of them. Pairs are scored where they share a blocking key: the phone, the surname
or the pinyin with the birth date, or the name in one street (a caller known by name and
phone, a resident registered without a phone).

The model only scores. What may be linked is decided beside it, by rules it cannot
outvote (`GUARDS`): never two records whose ID hashes both exist and differ (they are not
even compared), never across birth dates or genders that both exist and disagree; only
where the names are equal or sound alike and the phone or the birth date agrees (or, with
no phone to compare, the place agrees to the street at least), or are one character apart
and the birth date agrees; and never a record without an ID that
matches two different ID numbers alike (link.people keeps only the links to the one it is
likelier than not to be, the others weighed against it, or none). Precision comes first:
wrongly merging two citizens is worse than a missed link. What the pairs leave open a
register may decide (link.registers; its estimates, `registers`, are stored and versioned
with the model).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from splink import Linker
from splink.backends.duckdb import DuckDBAPI

ENTITY = "person"
# A link needs a match likelier than not (posterior odds above 1:1) and the guards. The
# guards, the ambiguity rule and one ID number, birth date and gender per person keep
# precision (namesakes, twins, families); the threshold is the Bayes decision boundary,
# not a figure fitted to a population (0.99 left a name in its street, without a phone
# to compare, unlinked at about 0.9: the model's honest probability when a caller gives
# only a name and a phone the resident record lacks).
THRESHOLD = 0.5
# Fewer records than this: the priors stand (EM on a handful of pairs is noise).
MIN_TRAIN_RECORDS = 2_000
# A phone shared by more records than this (an office switchboard, a placeholder) is no
# blocking key: it would compare every pair of them.
MAX_PHONE_BLOCK = 30
SEED = 20261201
# Random pairs u is estimated from (at most): an exact name (u about 5e-5 in a city of a
# million) is then seen some 90 times, its u within about a tenth; the rarest agreements
# (a phone, u about 1e-6) are seen a few times whatever the sample (a level never seen
# keeps its prior: `_fill_untrained`). More pairs cost time in proportion: 5 M took 3 s
# more at a million records and linked the same (bench.link_bench: F1 0.9940 both).
U_PAIRS = 2_000_000

# Columns the model reads, in the registered table (see people.features).
FEATURE_SCHEMA = pa.schema([
    ("unique_id", pa.int64()),
    ("name", pa.string()),
    ("surname", pa.string()),
    ("pinyin", pa.string()),
    ("birth_date", pa.string()),
    ("gender", pa.string()),
    ("phone_hash", pa.string()),
    ("phone_block", pa.string()),
    ("id_hash", pa.string()),
    ("address", pa.string()),
    ("address_coarse", pa.string()),
    ("grid_code", pa.string()),
    ("street_code", pa.string()),
])

# Comparison → its levels (label, SQL, prior m, prior u), strongest first; each has a null
# level before them. Gamma values count down from the first level to 0 for the last.
_LEVELS: dict[str, tuple[str, list[tuple[str, str, float, float]]]] = {
    "name": ("name_l IS NULL OR name_r IS NULL", [
        ("exact", "name_l = name_r", 0.85, 0.0005),
        ("pinyin", "pinyin_l = pinyin_r", 0.05, 0.0005),
        # One character of three or more mistyped or two swapped (not one missing: 罗琪
        # and 罗宇琪 are more often mother and daughter than one woman).
        ("one_character", "surname_l = surname_r AND length(name_l) = length(name_r)"
         " AND length(name_l) >= 3 AND damerau_levenshtein(name_l, name_r) <= 1", 0.04, 0.002),
        ("surname", "surname_l = surname_r", 0.04, 0.05),
        ("else", "ELSE", 0.02, 0.9475),
    ]),
    "birth_date": ("birth_date_l IS NULL OR birth_date_r IS NULL", [
        ("exact", "birth_date_l = birth_date_r", 0.95, 0.00005),
        ("one_keystroke", "damerau_levenshtein(birth_date_l, birth_date_r) <= 1", 0.03, 0.001),
        ("else", "ELSE", 0.02, 0.99895),
    ]),
    "gender": ("gender_l IS NULL OR gender_r IS NULL", [
        ("exact", "gender_l = gender_r", 0.98, 0.5),
        ("else", "ELSE", 0.02, 0.5),
    ]),
    "phone": ("phone_hash_l IS NULL OR phone_hash_r IS NULL", [
        ("exact", "phone_hash_l = phone_hash_r", 0.7, 0.0001),
        ("else", "ELSE", 0.3, 0.9999),
    ]),
    "place": ("(address_l IS NULL OR address_r IS NULL) AND (grid_code_l IS NULL OR grid_code_r IS"
              " NULL) AND (street_code_l IS NULL OR street_code_r IS NULL)", [
        ("address", "address_l = address_r", 0.5, 0.0005),
        ("estate", "address_coarse_l = address_coarse_r", 0.15, 0.002),
        ("grid", "grid_code_l = grid_code_r", 0.15, 0.003),
        ("street", "street_code_l = street_code_r", 0.1, 0.02),
        ("else", "ELSE", 0.1, 0.9745),
    ]),
}
# Only pairs at least one of which has no ID hash are scored: two ID hashes decide alone.
_ONE_WITHOUT_ID = "(l.id_hash IS NULL OR r.id_hash IS NULL)"
BLOCKING_RULES = (
    f"l.phone_block = r.phone_block AND {_ONE_WITHOUT_ID}",
    f"l.surname = r.surname AND l.birth_date = r.birth_date AND {_ONE_WITHOUT_ID}",
    f"l.pinyin = r.pinyin AND l.birth_date = r.birth_date AND {_ONE_WITHOUT_ID}",
    f"l.name = r.name AND l.street_code = r.street_code AND {_ONE_WITHOUT_ID}",
)
# The rules a scored pair must also pass, on the comparisons' levels (gamma values).
GUARDS = {
    "name": "the names are equal or sound alike (exact, pinyin) and the phone hashes or the"
            " birth dates are equal, or one record has no phone and the places agree to the"
            " street at least; or one character apart and the birth dates are equal (a family"
            " shares a phone and names that look alike)",
    "ambiguous": "a record without an ID number (a birth date) that matches the records of two"
                 " different ID numbers (birth dates) links only to those of the one it is"
                 " likelier than not to be, its odds weighed against the others' (o / (1 + the"
                 " sum of the odds of every one it matches) >= 0.5); else to neither (a father"
                 " and son of one name on one phone)",
    "cluster": "a person holds one ID number, one birth date and one gender: no chain of links"
               " joins what no single link would",
    "birth_date": "no two birth dates more than one keystroke apart",
    "gender": "no two different genders",
    "id_number": "no two different ID-number hashes (such pairs are not compared)",
    "register": "a cluster without a record of a register (a platform's list holding each"
                " person once) links to the one cluster with a record of it of the same name"
                " in the same street, their clusters' phones agreeing where both have any,"
                " the rules above allowing, and no other cluster claiming it, where"
                " rho / (1 - rho) / n >= 1 (rho: the share of ID-bearing records elsewhere"
                " on the register; n: its records of that name in that street)",
}


def gamma(comparison: str, label: str) -> int:
    """The comparison vector value of a level."""
    labels = [lv[0] for lv in _LEVELS[comparison][1]]
    return len(labels) - 1 - labels.index(label)


def level_label(comparison: str, value: int) -> str:
    if value < 0:
        return "null"
    labels = [lv[0] for lv in _LEVELS[comparison][1]]
    return labels[len(labels) - 1 - value]


def guard_sql() -> str:
    """The guards as a condition on a Splink prediction's gamma columns."""
    return (f"((gamma_name >= {gamma('name', 'pinyin')}"
            f"   AND (gamma_phone = {gamma('phone', 'exact')}"
            f"        OR gamma_birth_date = {gamma('birth_date', 'exact')}"
            f"        OR (gamma_phone = -1 AND gamma_place >= {gamma('place', 'street')})))"
            f" OR (gamma_name = {gamma('name', 'one_character')}"
            f"     AND gamma_birth_date = {gamma('birth_date', 'exact')}))"
            f" AND gamma_birth_date <> {gamma('birth_date', 'else')}"
            f" AND gamma_gender <> {gamma('gender', 'else')}")


def prior_settings(*, term_frequencies: bool, probability_two_random_records_match: float
                   ) -> dict[str, Any]:
    """Splink settings with the prior m and u of every level."""
    comparisons = []
    for name, (null_sql, levels) in _LEVELS.items():
        out: list[dict[str, Any]] = [
            {"sql_condition": null_sql, "label_for_charts": "null", "is_null_level": True}]
        for label, condition, m, u in levels:
            level: dict[str, Any] = {"sql_condition": condition, "label_for_charts": label,
                                     "m_probability": m, "u_probability": u}
            if term_frequencies and name == "name" and label == "exact":
                level.update(tf_adjustment_column="name", tf_adjustment_weight=1.0)
            out.append(level)
        comparisons.append({"output_column_name": name, "comparison_levels": out})
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": probability_two_random_records_match,
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": [{"blocking_rule": r} for r in BLOCKING_RULES],
        # The comparison levels (gamma columns) come with the matching columns only.
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": False,
        "additional_columns_to_retain": [],
        "em_convergence": 0.0001,
        "max_iterations": 25,
    }


@dataclass(frozen=True)
class Model:
    """A stored model: what ops.link_model keeps."""

    version: str
    settings: dict[str, Any]  # {"splink", "threshold", "registers", "training", "rules"}
    records: int

    @property
    def splink(self) -> dict[str, Any]:
        return copy.deepcopy(self.settings["splink"])

    @property
    def threshold(self) -> float:
        return float(self.settings["threshold"])

    @property
    def registers(self) -> dict[str, float]:
        """Register → rho (link.registers); none in a model stored before registers."""
        return dict(self.settings.get("registers", {}))

    @property
    def term_frequencies(self) -> bool:
        return any(lv.get("tf_adjustment_column") for c in self.settings["splink"]["comparisons"]
                   for lv in c["comparison_levels"])


def _clean(splink_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings without what changes between identical models (the linker's random id)."""
    out = {k: v for k, v in splink_settings.items() if k not in ("linker_uid", "sql_dialect")}
    out["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": r["blocking_rule"]} for r in out["blocking_rules_to_generate_predictions"]]
    return out


def make_model(splink_settings: Mapping[str, Any], records: int, training: dict[str, Any],
               registers: Mapping[str, float], threshold: float = THRESHOLD) -> Model:
    settings = {"splink": _clean(splink_settings), "threshold": threshold,
                "registers": dict(registers), "training": training, "rules": GUARDS}
    digest = hashlib.sha256(json.dumps(
        {k: settings[k] for k in ("splink", "threshold", "registers", "rules")},
        sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return Model(f"{ENTITY}-{digest[:12]}", settings, records)


def _quiet() -> None:
    # Splink logs every level EM could not observe: a warning per run is noise here.
    logging.getLogger("splink").setLevel(logging.ERROR)


def identity_match_rate(con: duckdb.DuckDBPyConnection, table: str) -> float:
    """The prior that two records match, from the pairs the ID hashes link: those pairs
    over all pairs, divided by the share of matching pairs the IDs can see (both records
    of a pair with an ID)."""
    # DuckDB, not the warehouse: `table` is the caller's registered table.
    row = con.execute(
        f"SELECT (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) AS n FROM {table}"  # noqa: S608
        f" WHERE id_hash IS NOT NULL GROUP BY id_hash)), count(*), count(id_hash) FROM {table}"
    ).fetchall()[0]
    assert row is not None
    pairs, n, with_id = float(row[0]), float(row[1]), float(row[2])
    if n < 2 or with_id < 2 or pairs == 0:
        return 1e-4
    seen = (with_id / n) ** 2
    return min(max(pairs / seen / (n * (n - 1) / 2), 1e-9), 1e-2)


def train(db: DuckDBAPI, table: str, records: int, registers: Mapping[str, float]) -> Model:
    """A model for the records registered as `table` in `db` (FEATURE_SCHEMA), deciding
    with `registers` (link.registers.estimate) as well.

    u by random sampling; m from the pairs the ID numbers already link (records with one
    ID-number hash are one person: labels the data brings, Splink's
    `estimate_m_from_label_column`); the prior that two records match from those pairs
    too. Expectation maximisation is not used: people sharing a phone are mostly families,
    and EM over phone-blocked pairs learns a family as one person (m of "same surname
    only" about 0.3, a birth date that disagrees no evidence against a match)."""
    _quiet()
    rate = identity_match_rate(db.duckdb_con, table)
    if records < MIN_TRAIN_RECORDS:
        settings = prior_settings(term_frequencies=False, probability_two_random_records_match=rate)
        return make_model(settings, records, {"method": "prior", "records": records,
                                              "probability_two_random_records_match": rate},
                          registers)
    settings = prior_settings(term_frequencies=True, probability_two_random_records_match=rate)
    linker = Linker(db.register(table), settings, log_level=None)
    linker.training.estimate_u_using_random_sampling(
        max_pairs=min(U_PAIRS, records * 20), seed=SEED)
    linker.training.estimate_m_from_label_column("id_hash")
    trained = linker.misc.save_model_to_json()
    trained["probability_two_random_records_match"] = rate
    _fill_untrained(trained)
    return make_model(trained, records, {"method": "labels", "records": records,
                                         "m": "pairs of records with one ID-number hash",
                                         "u": "random sampling",
                                         "probability_two_random_records_match": rate},
                      registers)


def _fill_untrained(settings: dict[str, Any]) -> None:
    """A level EM never observed keeps its prior, not Splink's default."""
    for comparison in settings["comparisons"]:
        null_sql, levels = _LEVELS[comparison["output_column_name"]]
        priors = {label: (m, u) for label, _, m, u in levels}
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = priors[level["label_for_charts"]]
            for key, prior in (("m_probability", m), ("u_probability", u)):
                value = level.get(key)
                if value is None or not (0 < float(value) <= 1):
                    level[key] = prior


def linker(db: DuckDBAPI, table: str, model: Model,
           frequencies: pa.Table | None = None) -> Linker:
    """A linker over the records registered as `table`, scoring with `model`; the names'
    term frequencies from `frequencies` (columns name, tf_name) when given, else from
    `table`."""
    _quiet()
    out = Linker(db.register(table), model.splink, log_level=None)
    if model.term_frequencies:
        if frequencies is None:
            out.table_management.compute_tf_table("name")
        else:
            out.table_management.register_term_frequency_lookup(
                db.register(frequencies, table_name="name_frequencies"), "name")
    return out
