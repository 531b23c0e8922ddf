"""A conform step declared by a mapping file, not coded: schemas/mappings/<platform>/mapping.yaml.

The file names, per stream, the entity its records become and, per platform field,
the unified column it fills, the reader that parses it (`PARSERS`), the code map it
goes through (given in the file, or one of the platform's code tables: categories.csv,
statuses.csv), and — for a JSON-valued field — the member to take. A platform whose
fields map one to one needs no conform code at all: a `MappedConformer` subclass
naming the platform, the stream and the entity; one that needs a column computed from
several fields computes it from `columns` in its own `conform`. Values a reader cannot
read are reported per field (they quarantine the record, as in every conformer).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from base import identity
from base.pii import mask_name
from conform import mappings
from conform import values as v
from conform.base import Conformed, Conformer, build
from schemas.arrow import conformed_schema
from schemas.model import Entity, entity

# A `to:` naming an entity, not a column: the conformer derives rows of it (parties
# of a dispute become people).
ROWS_OF = frozenset({"person"})
Mask = np.ndarray | None
Columns = dict[str, v.Column | pa.Scalar | None]


@dataclass(frozen=True)
class Reading:
    """What a reader is given besides the values."""

    codes: Mapping[str, str]  # the field's code map (`code`)
    timezone: str  # of the platform's local times (`local_time`)


Parser = Callable[[v.Column, Reading], tuple[v.Column, Mask]]


@dataclass(frozen=True)
class FieldRule:
    """One platform field → one unified column (None: not kept, `why` says why)."""

    field: str
    to: str | None
    parse: str = "verbatim"
    codes: Mapping[str, str] | None = None
    # A code table of the platform (`mappings.code_table`), read when conforming.
    code_table: str | None = None
    key: str | None = None
    pick: Mapping[str, str] | None = None
    when: Mapping[str, tuple[str, ...]] | None = None
    why: str | None = None


@dataclass(frozen=True)
class StreamMapping:
    entity: Entity
    rules: tuple[FieldRule, ...]
    constants: Mapping[str, str]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.rules)


@cache
def stream_mapping(platform: str, stream: str) -> StreamMapping:
    """A stream's mapping, checked: known readers, columns of the entity, hub codes."""
    path = mappings.MAPPINGS / platform / "mapping.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))[stream]
    target, codes = entity(spec["entity"]), spec.get("codes", {})
    columns = set(conformed_schema(target).names) | ROWS_OF
    vocab = {"category_code": mappings.hub_categories(), "status": mappings.hub_statuses()}
    rules = []
    for name, entries in spec["fields"].items():
        for e in entries if isinstance(entries, list) else [entries]:
            given = codes.get(e.get("codes"))
            table = given if isinstance(given, str) else None
            rule = FieldRule(name, e["to"], e.get("parse", "verbatim"),
                             None if table else given, table, e.get("key"), e.get("pick"),
                             {k: tuple(x) for k, x in e["when"].items()} if "when" in e else None,
                             e.get("why"))
            bad = [f"no column {rule.to}"] if rule.to and rule.to not in columns else []
            bad += [f"no reader {rule.parse}"] if rule.parse not in PARSERS else []
            bad += [f"no code map {e.get('codes')}"] if rule.parse == "code" and not given else []
            if table:
                mappings.code_table(platform, table)  # there, and mapping to hub codes
            hub = vocab.get(rule.to or "")
            bad += [f"{c!r} is no hub code" for c in (rule.codes or {}).values() if hub and c not in hub]
            if bad:
                raise ValueError(f"{path}: {stream}.{name}: {'; '.join(bad)}")
            rules.append(rule)
    return StreamMapping(target, tuple(rules), spec.get("constants", {}))


class MappedConformer(Conformer):
    """A conform step declared by a mapping file: schemas/mappings/<platform>/mapping.yaml."""

    @property
    def mapping(self) -> StreamMapping:
        """The mapping file's section of the (first) stream this conformer maps."""
        return stream_mapping(self.platform, self.streams[0])

    def conform(self, raw: pa.Table) -> Conformed:
        cols, unparseable = self.columns(raw)
        return Conformed(build(self.mapping.entity, cols, raw.num_rows), unparseable)

    def columns(self, raw: pa.Table) -> tuple[Columns, dict[str, np.ndarray]]:
        """The unified columns the mapping file fills, and per platform field the values
        its reader could not read."""
        m, n = self.mapping, raw.num_rows
        cols: Columns = {c: pa.scalar(x) for c, x in m.constants.items()}
        unparseable: dict[str, np.ndarray] = {}
        for rule in m.rules:
            values: v.Column = raw[rule.field]
            bad: Mask = None
            if rule.key or rule.pick:
                values, bad = _member(values, rule.key, rule.pick)
            codes = (mappings.code_table(self.platform, rule.code_table) if rule.code_table
                     else rule.codes or {})
            parsed, failed = PARSERS[rule.parse](values, Reading(codes, self.city.timezone))
            for mask in (bad, failed):
                if mask is not None:
                    unparseable[rule.field] = unparseable.get(rule.field, np.zeros(n, bool)) | mask
            if rule.to is None or rule.to in ROWS_OF:
                continue
            for other, allowed in (rule.when or {}).items():
                where = pc.is_in(v.trimmed(raw[other]), value_set=pa.array(allowed, pa.string()))
                parsed = pc.if_else(pc.fill_null(where, False), parsed, pa.nulls(n, parsed.type))
            cols[rule.to] = parsed
        return cols, unparseable


def json_text(value: Any) -> str | None:
    """A JSON member as text: text as it is, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _member(values: v.Column, key: str | None, pick: Mapping[str, str] | None
            ) -> tuple[pa.Array, np.ndarray]:
    """A member (`key`) of a JSON-valued field, of its first list element whose members
    have the `pick` values; a value that is no such JSON is a mask hit."""
    out = [_dig(text, key, pick) for text in values.to_pylist()]
    return (pa.array([x for x, _ in out], pa.string()),
            np.array([not ok for _, ok in out], dtype=bool))


def _dig(text: str | None, key: str | None, pick: Mapping[str, str] | None
         ) -> tuple[str | None, bool]:
    if text is None or not text.strip():
        return None, True
    try:
        obj = json.loads(text)
    except ValueError:
        return None, False
    if pick is not None:
        if not isinstance(obj, list):
            return None, False
        obj = next((o for o in obj if isinstance(o, dict)
                    and all(str(o.get(k)) == x for k, x in pick.items())), None)
    if key is not None and obj is not None:
        if not isinstance(obj, dict):
            return None, False
        obj = obj.get(key)
    return json_text(obj), True


def _instants(values: v.Column) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 times with an offset → UTC timestamps; one without an offset is refused."""
    text = v.trimmed(values)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text)

    def one(s: str) -> datetime | None:
        try:
            at = datetime.fromisoformat(s)
        except ValueError:
            return None
        return at if at.tzinfo is not None else None

    parsed = pc.take(pa.array([one(s) for s in encoded.dictionary.to_pylist()], v.UTC_TIMESTAMP),
                     encoded.indices)
    bad = pc.fill_null(pc.and_(identity.present(values), pc.is_null(parsed)), False)
    return parsed, np.asarray(bad, dtype=bool)



def json_objects(text: str | None) -> list[dict[str, Any]] | None:
    """A JSON list of objects as sent ([] for blank); None when it is not one."""
    if text is None or not text.strip():
        return []
    try:
        items = json.loads(text)
    except ValueError:
        return None
    ok = isinstance(items, list) and all(isinstance(p, dict) for p in items)
    return items if ok else None


def _not_object_lists(values: v.Column) -> np.ndarray:
    return np.array([json_objects(t) is None for t in values.to_pylist()], dtype=bool)


PARSERS: dict[str, Parser] = {
    "verbatim": lambda c, r: (c, None),
    "trimmed": lambda c, r: (v.trimmed(c), None),
    "float": lambda c, r: v.floats(c),
    "boolean": lambda c, r: v.booleans(c),
    "instant": lambda c, r: _instants(c),
    "local_time": lambda c, r: v.local_times(c, r.timezone),
    "code": lambda c, r: (v.map_codes(c, r.codes), None),
    "county": lambda c, r: (v.division_parts(c)[0], None),
    "street": lambda c, r: (v.division_parts(c)[1], None),
    "uscc": lambda c, r: (v.uscc_codes(c), None),
    "citizen_id": lambda c, r: (identity.citizen_ids(v.blank_to_null(c)), None),
    "phone": lambda c, r: (identity.phones(c), None),
    "masked_name": lambda c, r: (mask_name(v.blank_to_null(c)), None),
    "object_list": lambda c, r: (c, _not_object_lists(c)),
}
