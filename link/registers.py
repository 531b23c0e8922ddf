"""Registers: a platform's list that holds each person once, and the links that follow.

The grid platform's resident list (实有人口) holds each person once; a 12345 caller or a
综治 party is someone who may or may not be on it. When the model and its guards have
linked what the pairs alone say, a caller whom nothing placed on the register (no ID
number, no phone the register knows) and who shares an exact name in one street with a
register record that has no phone to compare is scored below a match: at a million
people several records carry that name in that street. Pairwise that is right. But the
one-to-one structure says more: the caller is on the register or not; if on it, it is
one of the records of its name in its street that nothing else claimed.

So (`complete`): for a cluster without a record of register R that has exactly one
candidate cluster holding a record of R (a record of the same name in the same street,
the two clusters' phones agreeing where both have any, the rules of `Clusters` allowing
— one ID number, birth date and gender — and no other such cluster claiming that
candidate), the odds that it is that person are

    rho / (1 - rho) / n

`rho` the share of the records outside R whose ID number is on R (estimated on every
full run, from the records that carry an ID number: what the data says, not a figure of
a simulator), `n` the records of R with that name in that street (each as likely, had
the caller been any one of them). It links where the odds are at least 1: the Bayes
decision boundary the model's threshold is. A register is found, not configured: a
platform's role (`source_system/role`) whose ID numbers repeat for at most
`MAX_REPEATED` of its records (its own duplicates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from link.clusters import Clusters

# A register holds each person once: at most this share of its ID-bearing records repeat
# an ID number (a platform's own duplicates).
MAX_REPEATED = 0.01
# Fewer ID-bearing records than this in a group or outside it: nothing to estimate from.
MIN_WITH_ID = 100


def group_of(systems: pa.ChunkedArray, roles: pa.ChunkedArray) -> list[str | None]:
    """Each record's `source_system/role` (None without a role)."""
    return pc.binary_join_element_wise(systems, roles, "/").to_pylist()


def estimate(groups: Sequence[str | None], identities: Sequence[str | None]) -> dict[str, float]:
    """The registers among the groups and, for each, rho: the share of the ID-bearing
    records outside it whose ID number is on it. Only registers with rho > 0."""
    group_codes, names = pd.factorize(pd.Series(groups, dtype=object), use_na_sentinel=True)
    id_codes, id_values = pd.factorize(pd.Series(identities, dtype=object), use_na_sentinel=True)
    keep = (group_codes >= 0) & (id_codes >= 0)
    group_codes, id_codes = group_codes[keep], id_codes[keep]
    out: dict[str, float] = {}
    for code, name in enumerate(names):
        mine = group_codes == code
        own, others = id_codes[mine], id_codes[~mine]
        if len(own) < MIN_WITH_ID or len(others) < MIN_WITH_ID:
            continue
        per_id = np.bincount(own, minlength=len(id_values))
        if (per_id[own] > 1).mean() > MAX_REPEATED:
            continue
        rho = float((per_id[others] > 0).mean())
        if rho > 0:
            out[str(name)] = round(rho, 4)
    return out


def complete(clusters: Clusters, fresh: np.ndarray, groups: Sequence[str | None],
             registers: Mapping[str, float], names: Sequence[str | None],
             streets: Sequence[str | None], phones: Sequence[str | None]
             ) -> list[dict[str, Any]]:
    """The links the registers decide (see the module's doc), as edges with the posterior
    as their probability, strongest first: `clusters` after the model's links, `fresh`
    the records compared in this run (a link joins a cluster holding one of them). The
    candidates come from the records themselves (a name in a street), not from scored
    pairs, so an incremental run, which reads every record of a fresh record's name in
    its street, counts them as a full run does."""
    if not registers:
        return []
    labels = clusters.labels()
    n = len(labels)
    group_codes, group_names = pd.factorize(pd.Series(groups, dtype=object),
                                            use_na_sentinel=True)
    # A name in a street as one number (-1: either missing).
    name_codes, _ = pd.factorize(pd.Series(names, dtype=object), use_na_sentinel=True)
    street_codes, street_names = pd.factorize(pd.Series(streets, dtype=object),
                                              use_na_sentinel=True)
    place = np.where((name_codes >= 0) & (street_codes >= 0),
                     name_codes.astype(np.int64) * max(len(street_names), 1) + street_codes, -1)
    named = pd.DataFrame({"record": np.arange(n), "cluster": labels, "group": group_codes,
                          "place": place})[place >= 0]
    with_fresh = np.zeros(n, dtype=bool)
    with_fresh[labels[fresh]] = True
    edges: list[dict[str, Any]] = []
    for code, register in enumerate(group_names):
        rho = registers.get(register)
        if rho is None:
            continue
        # A cluster holds the register by any record of it, named and placed or not.
        holding = np.zeros(n, dtype=bool)
        holding[labels[group_codes == code]] = True
        on_it = (named["group"] == code).to_numpy()
        side_v = named[on_it]
        side_c = named[~on_it & ~holding[named["cluster"].to_numpy()]]
        pairs = side_c.merge(side_v, on="place", suffixes=("_c", "_v"))
        touched = (with_fresh[pairs["cluster_c"].to_numpy()]
                   | with_fresh[pairs["cluster_v"].to_numpy()])
        if not touched.any():
            continue
        # Every candidate counts; only a pair with a fresh record is decided (what stood,
        # stands).
        namesakes = side_v["place"].value_counts()
        edges += _decide(clusters, pairs.assign(touched=touched).drop_duplicates(
            ["cluster_c", "cluster_v"]), labels, str(register), rho, namesakes, phones)
    return sorted(edges, key=lambda e: (-e["probability"], e["a"], e["b"]))


def _decide(clusters: Clusters, pairs: pd.DataFrame, labels: np.ndarray, register: str,
            rho: float, namesakes: pd.Series, phones: Sequence[str | None]
            ) -> list[dict[str, Any]]:
    """The candidate pairs of one register (a record of a cluster without it, a record on
    it, one name in one street: one `place`) that link: the clusters' phones agreeing
    where both have any, the rules allowing, one candidate each way, and the odds at
    least 1."""
    involved = np.isin(labels, np.union1d(pairs["cluster_c"].to_numpy(),
                                          pairs["cluster_v"].to_numpy()))
    phone_sets: dict[int, set[str]] = {}
    for i in np.flatnonzero(involved).tolist():
        phone = phones[i]
        if phone is not None:
            phone_sets.setdefault(int(labels[i]), set()).add(phone)
    rows = []
    for c, v, cc, vc, place, touched in zip(
            pairs["record_c"].tolist(), pairs["record_v"].tolist(), pairs["cluster_c"].tolist(),
            pairs["cluster_v"].tolist(), pairs["place"].tolist(), pairs["touched"].tolist(),
            strict=True):
        pc_, pv = phone_sets.get(cc), phone_sets.get(vc)
        if pc_ and pv and not pc_ & pv or not clusters.allowed(c, v):
            continue
        rows.append((c, v, cc, vc, place, "exact" if pc_ and pv else "null", touched))
    frame = pd.DataFrame(rows, columns=["c", "v", "cc", "vc", "place", "phone", "touched"])
    frame = frame[frame.groupby("cc")["vc"].transform("nunique") == 1]
    frame = frame[(frame.groupby("vc")["cc"].transform("nunique") == 1) & frame["touched"]]
    out = []
    for row in frame.drop_duplicates("cc").itertuples(index=False):
        n = int(namesakes.get(row.place, 1))
        odds = rho / (1.0 - rho) / n if rho < 1 else math.inf
        if odds < 1:
            continue
        finite = math.isfinite(odds)
        out.append({"a": min(row.c, row.v), "b": max(row.c, row.v),
                    "probability": round(odds / (1.0 + odds), 6) if finite else 1.0,
                    "match_weight": round(math.log2(odds), 3) if finite else 60.0,
                    "comparisons": {"name": "exact", "place": "street", "phone": row.phone},
                    "register": {"name": register, "rho": rho, "namesakes": n}})
    return out
