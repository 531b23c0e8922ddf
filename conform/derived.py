"""Rows of the entities a platform's records mention (`Conformer.derive`): the
departments that handle or own things, and the people who call, report or are party.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from base import identity
from base.pii import keyed_hash
from conform import values as v
from conform.base import build, last_per_key
from schemas.model import ORGANIZATION, PERSON


def departments(names: v.Column, codes: v.Column | None = None) -> pa.Table:
    """One core.organization row (a department) per department the records name: keyed by
    the platform's own department code where it has one (the last record naming a code
    gives its name), else by the name."""
    names = v.trimmed(names)
    keys = names if codes is None else v.trimmed(codes)
    named = pa.table({"source_id": keys, "org_name": names}).filter(pc.is_valid(keys))
    named = last_per_key(named, "source_id")
    return build(ORGANIZATION, {"source_id": named["source_id"], "org_name": named["org_name"],
                                "org_type": pa.scalar("department")}, named.num_rows)


def person_keys(kind: str, id_numbers: v.Column, phones: v.Column) -> pa.Array:
    """`<kind>:` and a keyed hash of what identifies a person the records mention who has no
    key on the platform: the identity of the ID number, else the phone (never the number
    itself); null where neither is given."""
    who = pc.coalesce(
        pc.binary_join_element_wise(
            "id:", identity.per_distinct(id_numbers, identity.citizen_id_identity), ""),
        pc.binary_join_element_wise("tel:", phones, ""))
    return pc.binary_join_element_wise(
        f"{kind}:", identity.per_distinct(who, lambda s: keyed_hash(s)[:32]), "")


def people(mentions: pa.Table, role: str) -> pa.Table:
    """core.person rows in `role`, one per `source_id` of `mentions` (person columns and
    `updated`, the time of the record mentioning them): a person mentioned twice in a batch
    gets the details of the latest record."""
    latest = last_per_key(mentions, "source_id", "updated")
    cols: dict[str, v.Column | pa.Scalar | None] = {
        c: latest[c] for c in latest.column_names if c != "updated"}
    cols["role"] = pa.scalar(role)
    return build(PERSON, cols, latest.num_rows)
