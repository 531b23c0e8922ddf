"""综治 (矛盾纠纷排查调处) → the unified model, as schemas/mappings/zongzhi/mapping.yaml says.

- disputes (one row per dispute) → core.event; the first 申请人 is the event's reporter,
  and every party becomes a core.person row (role party), keyed by the keyed hash of
  its ID number's identity (of its phone without one), as the 12345 callers are;
- mediation committees (one row per committee in the platform's full list) →
  core.organization, keyed by their 统一社会信用代码.

The mapping file holds every platform field with its column, its reader and its code
map. `MappedConformer` reads such a file and knows nothing of the platform; the party
rows are the only code of this platform's own. Times are ISO 8601 instants: stored as
sent, with no local-time assumption.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from base import identity
from conform import values as v
from conform.derived import people, person_keys
from conform.mapped import MappedConformer, json_objects, json_text
from schemas.model import EVENT, ORGANIZATION, PERSON

PLATFORM = "zongzhi"


class ZongzhiDisputes(MappedConformer):
    platform, streams = PLATFORM, ("disputes",)
    primary = EVENT
    derived = (PERSON,)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        field = next(r.field for r in self.mapping.rules if r.to == PERSON.name)
        return {"person": party_rows(raw[field], primary)}


class ZongzhiMediationOrgs(MappedConformer):
    platform, streams = PLATFORM, ("mediation_orgs",)
    primary = ORGANIZATION


# ------------------------------------------------------------------------ parties


def parties(text: str | None) -> list[dict[str, Any]] | None:
    """A `parties` value as sent: a JSON list of objects; None when it is not one."""
    return json_objects(text)


def party_rows(values: v.Column, events: pa.Table) -> pa.Table:
    """One person record per party who left an ID number or a phone; the latest dispute
    of the batch naming a party gives its place."""
    at: list[int] = []
    names: list[str | None] = []
    ids: list[str | None] = []
    phones: list[str | None] = []
    for i, text in enumerate(values.to_pylist()):
        for p in parties(text) or []:
            at.append(i)
            names.append(json_text(p.get("name")))
            ids.append(json_text(p.get("idNo")))
            phones.append(json_text(p.get("phone")))
    id_numbers = identity.citizen_ids(v.blank_to_null(pa.array(ids, pa.string())))
    phone_numbers = identity.phones(pa.array(phones, pa.string()))
    keys = person_keys("party", id_numbers, phone_numbers)
    rows = pa.array(at, pa.int64())
    return people(pa.table({
        "source_id": keys,
        "name": v.trimmed(pa.array(names, pa.string())),
        "id_number": id_numbers,
        "phone": phone_numbers,
        **{c: events[c].take(rows) for c in ("division_code", "source_division_code",
                                              "street_code", "grid_code")},
        "updated": events["source_updated_at"].take(rows),
    }).filter(pc.is_valid(keys)), "party")

