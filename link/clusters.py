"""Clusters under hard rules, and keys that outlive a rerun.

`Clusters` is a union-find whose merges keep two rules whatever the scores say: two
records a steward split never end in one cluster (cannot-link), and two records with
different identities (two ID-number hashes) never do either, unless a steward merged
them. Edges are offered strongest first, so a record scored against two people who
cannot be one joins the likelier.

`stable_keys` names the clusters of a run so that a golden record keeps its key while
any of its records remains: each cluster takes the key of the previous cluster it
overlaps most; a cluster without one gets a new key made from its smallest record.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Letters only (no 0/1/l/o look-alikes): a key never reads as a phone or ID number.
_KEY_ALPHABET = "abcdefghjkmnpqrstuvwxyz"


class Clusters:
    """Union-find over records 0..n-1 with cannot-link pairs and identities.

    `identities` (an ID-number hash per record, or None) may not mix in a cluster unless a
    steward forces it; each column of `exclusive` (a birth date, a gender per record) holds
    at most one value per cluster, so no chain of links joins what no single link would.
    """

    def __init__(self, n: int, identities: Sequence[str | None],
                 cannot_link: Iterable[tuple[int, int]] = (),
                 exclusive: Sequence[Sequence[object | None]] = ()):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)
        # Per column (identities first): each record's own value (an object array: taken
        # for many records at once), and for the roots of clusters of several records the
        # values its records carry.
        self.columns: list[np.ndarray] = [np.asarray(c, dtype=object)
                                          for c in (identities, *exclusive)]
        self.merged: list[dict[int, frozenset[object]]] = [{} for _ in self.columns]
        # Per root: the records its records may never be with.
        self.cannot: dict[int, set[int]] = {}
        for a, b in cannot_link:
            self.cannot_link(a, b)

    def _values(self, column: int, root: int) -> frozenset[object] | None:
        merged = self.merged[column].get(root)
        if merged is not None or self.size[root] > 1:
            return merged
        own = self.columns[column][root]
        return None if own is None else frozenset((own,))

    def group(self, groups: np.ndarray) -> None:
        """Make each group of records (one non-negative label in `groups`) a cluster without
        asking the rules: clusters that held before (the unchanged clusters of an
        incremental run). Vectorised; on records alone in their cluster."""
        members = np.flatnonzero(groups >= 0)
        if not len(members):
            return
        if not (np.array_equal(self.parent[members], members) and (self.size[members] == 1).all()):
            raise ValueError("group() takes records that are alone in their cluster")
        labels = groups[members]
        order = np.argsort(labels, kind="stable")
        members, labels = members[order], labels[order]
        starts = np.r_[True, labels[1:] != labels[:-1]]
        index = np.cumsum(starts) - 1  # the group of each member, 0..groups-1
        heads = members[starts]
        self.parent[members] = heads[index]
        counts = np.bincount(index)
        self.size[heads] = counts
        several = counts[index] > 1
        for c, column in enumerate(self.columns):
            rows = pd.DataFrame({"head": heads[index][several],
                                 "value": pd.Series(column[members[several]], dtype="object")})
            rows = rows.dropna().drop_duplicates()
            several_values = rows["head"].duplicated(keep=False).to_numpy()
            one = rows[~several_values]  # most clusters: one value each, set at once
            self.merged[c].update(zip(one["head"].tolist(),
                                      map(frozenset, zip(one["value"].tolist())), strict=True))
            for head, values in rows[several_values].groupby("head")["value"]:
                self.merged[c][int(head)] = frozenset(values.tolist())

    def join_consistent(self, groups: np.ndarray) -> np.ndarray:
        """Make each group of records (one non-negative label in `groups`) one cluster at
        once where `union` of its records one by one could refuse nothing: each record alone
        in its cluster, bound by no cannot-link, and at most one value of every column in
        the group. Returns `groups` without the groups it joined: the rest are for `union`,
        a record at a time."""
        members = np.flatnonzero(groups >= 0)
        if not len(members):
            return groups
        bound = np.fromiter(self.cannot, dtype=np.int64, count=len(self.cannot))
        frame = pd.DataFrame({
            "group": groups[members],
            "ok": ((self.parent[members] == members) & (self.size[members] == 1)
                   & ~np.isin(members, bound)),
            **{f"v{c}": pd.Series(column[members], dtype="object")
               for c, column in enumerate(self.columns)},
        })
        per = frame.groupby("group")
        ok = per["ok"].all()
        for c in range(len(self.columns)):
            ok &= per[f"v{c}"].nunique() <= 1
        good = frame["group"].isin(ok.index[ok]).to_numpy()
        joined = np.full_like(groups, -1)
        joined[members[good]] = groups[members[good]]
        self.group(joined)
        rest = groups.copy()
        rest[members[good]] = -1
        return rest

    def cannot_link(self, a: int, b: int) -> None:
        """`a` and `b` may never share a cluster (they do not yet)."""
        ra, rb = self.find(a), self.find(b)
        self.cannot.setdefault(ra, set()).add(b)
        self.cannot.setdefault(rb, set()).add(a)

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        up = int(parent[root])
        while up != root:
            root, up = up, int(parent[up])
        while a != root:  # path compression
            parent[a], a = root, int(parent[a])
        return root

    def allowed(self, a: int, b: int, *, force_identity: bool = False) -> bool:
        """Whether `a`'s and `b`'s clusters may become one."""
        return self._allowed(self.find(a), self.find(b), force_identity)

    def _allowed(self, ra: int, rb: int, force_identity: bool) -> bool:
        """`allowed` of two roots."""
        if ra == rb:
            return True
        cannot_a, cannot_b = self.cannot.get(ra), self.cannot.get(rb)
        if cannot_a or cannot_b:
            small, other = (ra, rb) if len(cannot_a or ()) <= len(cannot_b or ()) else (rb, ra)
            if any(self.find(p) == other for p in self.cannot.get(small, ())):
                return False
        if force_identity:
            return True
        for column in range(len(self.columns)):
            va, vb = self._values(column, ra), self._values(column, rb)
            # Two values may share a cluster only where a steward put them together, and
            # then a cluster holding both may still take records of either.
            if not (va is None or vb is None or va <= vb or vb <= va):
                return False
        return True

    def union(self, a: int, b: int, *, force_identity: bool = False) -> bool:
        """Join the clusters of `a` and `b` if the rules allow; whether they are one now."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not self._allowed(ra, rb, force_identity):
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        for column in range(len(self.columns)):
            values = (self._values(column, ra) or frozenset()) | (
                self._values(column, rb) or frozenset())
            self.merged[column].pop(rb, None)
            if values:
                self.merged[column][ra] = values
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        cb = self.cannot.pop(rb, None)
        if cb:
            self.cannot.setdefault(ra, set()).update(cb)
        return True

    def labels(self) -> np.ndarray:
        """The root of every record's cluster."""
        parent = self.parent
        while True:  # pointer jumping, vectorised
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent.copy()
            parent = grand


def new_key(prefix: str, seed: str, salt: int = 0) -> str:
    """`prefix` and 12 letters of a hash of `seed` (the smallest record of the cluster)."""
    return new_keys(prefix, [seed], salt)[0]


def new_keys(prefix: str, seeds: Sequence[str], salt: int = 0) -> list[str]:
    """`new_key` of many seeds at once (the letters picked with numpy)."""
    if not seeds:
        return []
    digests = b"".join(hashlib.blake2b(f"{s}\x1f{salt}".encode(), digest_size=12).digest()
                       for s in seeds)
    codes = np.frombuffer(digests, dtype=np.uint8).reshape(len(seeds), 12) % len(_KEY_ALPHABET)
    letters = np.frombuffer(_KEY_ALPHABET.encode(), dtype="S1")[codes]
    return [prefix + row.tobytes().decode() for row in letters]


@dataclass(frozen=True)
class KeyAssignment:
    keys: np.ndarray              # the key of every record (object array of str)
    kept: int                     # clusters that kept a previous key
    new: int                      # clusters given a new key
    retired: dict[str, str | None]  # previous key no cluster kept → the key most of its
    #                                 records carry now (None: none of them remains)


def stable_keys(labels: np.ndarray, previous: Sequence[str | None], seeds: Sequence[str],
                prefix: str, taken: set[str]) -> KeyAssignment:
    """Keys of the clusters `labels` (one per record) given each record's `previous` key.

    A cluster takes the previous key most of its records held (ties: the smaller key),
    unless a larger overlap claimed it for another cluster; one without a key gets
    `new_key(prefix, smallest seed)`, never one of `taken` (keys ever given, retired ones
    too). `seeds` name the records (e.g. source_system and source_id) and decide which is
    smallest, so the same records get the same new key in any run.
    """
    n = len(labels)
    frame = pd.DataFrame({"cluster": labels, "previous": pd.array(previous, dtype="string"),
                          "seed": pd.array(seeds, dtype="string")})
    overlap = (frame.dropna(subset=["previous"])
               .groupby(["cluster", "previous"], sort=False).size().reset_index(name="n"))
    overlap = overlap.sort_values(["n", "previous", "cluster"], ascending=[False, True, True])
    cluster_key: dict[int, str] = {}
    used: set[str] = set()
    for cluster, prev in zip(overlap["cluster"].to_numpy(), overlap["previous"].to_numpy(),
                             strict=True):
        if cluster in cluster_key or prev in used:
            continue
        cluster_key[int(cluster)] = str(prev)
        used.add(str(prev))
    kept = len(cluster_key)
    smallest = frame.groupby("cluster", sort=True)["seed"].min()
    unnamed = smallest[~smallest.index.isin(list(cluster_key))]
    taken_now = taken | used
    made = 0
    for cluster, seed, key in zip(unnamed.index.tolist(), unnamed.tolist(),
                                  new_keys(prefix, unnamed.astype(str).tolist()), strict=True):
        salt = 0
        while key in taken_now:
            salt += 1
            key = new_key(prefix, str(seed), salt)
        cluster_key[int(cluster)] = key
        taken_now.add(key)
        made += 1
    keys = np.array([cluster_key[int(c)] for c in labels], dtype=object) if n else \
        np.array([], dtype=object)
    # Previous keys no cluster kept: where did most of their records go?
    moved: dict[str, Counter[str]] = {}
    for prev, key in zip(previous, keys, strict=True):
        if prev is not None and prev not in used:
            moved.setdefault(prev, Counter())[key] += 1
    retired: dict[str, str | None] = {
        prev: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for prev, c in moved.items()}
    return KeyAssignment(keys, kept, made, retired)
