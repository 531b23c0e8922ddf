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
candidate cluster holding a record of R (the same name and street, the guards passed,
the two clusters' phones agreeing where both have any, and no other such cluster
claiming that candidate), the odds that it is that person are

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


def complete(labels: np.ndarray, near: Sequence[Mapping[str, Any]],
             groups: Sequence[str | None], registers: Mapping[str, float],
             names: Sequence[str | None], streets: Sequence[str | None],
             phones: Sequence[str | None]) -> list[dict[str, Any]]:
    """The links the registers decide (see the module's doc), as scored edges with the
    posterior as their probability: `labels` the clusters after the model's links,
    `near` the guarded pairs below the threshold with an exact name and no phone to
    compare (each {"a", "b", "comparisons", …}). Strongest first."""
    if not near or not registers:
        return []
    group = np.array(groups, dtype=object)
    on_register = np.array([g in registers for g in groups], dtype=bool)
    # Which registers each cluster holds.
    holds = set(zip(labels[on_register].tolist(), group[on_register].tolist(), strict=True))
    rows = []
    for edge in near:
        a, b = int(edge["a"]), int(edge["b"])
        for v, c in ((a, b), (b, a)):
            register = groups[v]
            if register in registers and (int(labels[c]), register) not in holds:
                rows.append((int(labels[c]), int(labels[v]), register, c, v, edge))
    if not rows:
        return []
    frame = pd.DataFrame(rows, columns=["cc", "vc", "register", "c", "v", "edge"])
    # The phones of the clusters concerned (only theirs: a city holds a million).
    involved = np.isin(labels, np.union1d(frame["cc"].to_numpy(), frame["vc"].to_numpy()))
    phone_sets: dict[int, set[str]] = {}
    for i in np.flatnonzero(involved).tolist():
        phone = phones[i]
        if phone is not None:
            phone_sets.setdefault(int(labels[i]), set()).add(phone)
    agree = [not (pc_ and pv and not pc_ & pv) for pc_, pv in zip(
        (phone_sets.get(k) for k in frame["cc"].tolist()),
        (phone_sets.get(k) for k in frame["vc"].tolist()), strict=True)]
    frame = frame[agree]
    # One candidate per cluster and register; a candidate claimed by one cluster only.
    frame = frame[frame.groupby(["cc", "register"])["vc"].transform("nunique") == 1]
    frame = frame[frame.groupby(["vc", "register"])["cc"].transform("nunique") == 1]
    frame = frame.drop_duplicates(["cc", "register"])
    # The records of each register by name and street, for the candidates' names.
    name_of = np.array(names, dtype=object)
    asked = on_register & pd.Series(name_of).isin(set(name_of[frame["v"].to_numpy()])).to_numpy()
    counts = pd.DataFrame({"g": group[asked], "n": name_of[asked],
                           "s": np.array(streets, dtype=object)[asked]}).value_counts()
    out = []
    for row in frame.itertuples(index=False):
        rho = registers[row.register]
        n = int(counts.get((row.register, names[row.v], streets[row.v]), 1))
        odds = rho / (1.0 - rho) / n if rho < 1 else math.inf
        if odds < 1:
            continue
        finite = math.isfinite(odds)
        out.append({**row.edge, "a": min(row.c, row.v), "b": max(row.c, row.v),
                    "probability": round(odds / (1.0 + odds), 6) if finite else 1.0,
                    "match_weight": round(math.log2(odds), 3) if finite else 60.0,
                    "register": {"name": row.register, "rho": rho, "namesakes": n}})
    return sorted(out, key=lambda e: (-e["probability"], e["a"], e["b"]))
