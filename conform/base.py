"""The conform contract: platform records in, unified-model rows out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from base.settings import CityConfig
from conform.values import Column, fold_divisions
from schemas.arrow import conformed_schema
from schemas.model import Entity


@dataclass
class Conformed:
    """Rows of the primary entity, one per platform record and in the same order."""

    table: pa.Table
    # Values that were sent but could not be read (a date that is no date): per
    # platform field, a row mask. They quarantine the record; nothing becomes a
    # silent NULL.
    unparseable: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Lookups:
    """Records of the warehouse a conformer maps with (the cameras an alarm names…).

    Conform is pure: it never queries. A conformer names what it needs in `needs`;
    the pipeline reads those once per stream and passes them in. A lookup not given
    is empty: nothing is known, and the conformer maps without it.
    """

    # Current cameras and NVRs of the video network, one row per device code:
    # thing_code, longitude, latitude, address, division_code, street_code, grid_code
    # as core.thing holds them (GB/T 28181 ids are national: whichever source loaded them).
    cameras: pa.Table | None = None


class ConformSettings(BaseModel):
    """What a conform step reads of its source's settings, declared by the step.

    Read by name off the connector's settings (conform never imports a connector: a
    connector's settings model has fields of these names), with the value the step
    assumes where they say nothing. A step that reads none takes this model itself.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", from_attributes=True)


_REGISTERED: dict[tuple[str, str], type[Conformer]] = {}
# Every conform step by (platform, stream): a class registers itself when its module is
# imported (hub.lineage imports every platform's).
REGISTERED: Mapping[tuple[str, str], type[Conformer]] = MappingProxyType(_REGISTERED)


class Conformer(ABC):
    """Maps one platform's records onto the unified model.

    `conform` gives the primary entity (the platform's own records: work orders,
    cases, residents…), row-aligned with its input so a rejected row leads back
    to its original record. `derive` gives the entities those records mention
    (callers, handling departments), from the records that passed validation.

    A class naming `streams` is the conform step of those streams of `platform` (the
    connector's `name`) and registers under each pair.
    """

    platform: ClassVar[str]
    streams: ClassVar[tuple[str, ...]] = ()
    primary: ClassVar[Entity]
    derived: ClassVar[tuple[Entity, ...]] = ()
    # The `Lookups` fields this conformer maps with (the pipeline reads only those).
    needs: ClassVar[frozenset[str]] = frozenset()
    # What it reads of the source's settings (see `ConformSettings`).
    settings_model: ClassVar[type[ConformSettings]] = ConformSettings
    settings: ConformSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for stream in cls.__dict__.get("streams", ()):
            known = _REGISTERED.get((cls.platform, stream))
            if known is not None and _where(known) != _where(cls):
                raise TypeError(f"two conform steps for stream {stream!r} of {cls.platform!r}:"
                                f" {_where(known)} and {_where(cls)}")
            _REGISTERED[(cls.platform, stream)] = cls

    def __init__(self, settings: object, city: CityConfig, lookups: Lookups | None = None):
        """`settings`: the source's (the connector's settings), or anything with the
        fields `settings_model` names."""
        self.settings = self.settings_model.model_validate(settings, from_attributes=True)
        self.city = city
        self.lookups = lookups or Lookups()

    @abstractmethod
    def conform(self, raw: pa.Table) -> Conformed: ...

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {}


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def conformer_class(platform: str, stream: str) -> type[Conformer]:
    """The conform step of a platform's stream, among those registered (hub.lineage
    imports every platform's)."""
    try:
        return REGISTERED[(platform, stream)]
    except KeyError:
        raise KeyError(f"no conform step for stream {stream!r} of {platform!r}") from None


FOLDED = "division_code"
AS_SENT = "source_division_code"


def fold_division(columns: Mapping[str, Column | pa.Scalar | None], n: int
                  ) -> dict[str, Column | pa.Scalar | None]:
    """`division_code` as the current code: a retired county code becomes the code that
    replaced it (schemas/reference), and the code as given goes to
    `source_division_code` unless the caller gave that column itself (a derived
    entity passing on its record's). The rule division_code_known still judges the
    code as sent: a retired code is reported, but the districts in the marts are
    today's."""
    out = dict(columns)
    given = out.get(FOLDED)
    if given is None:
        return out
    if isinstance(given, pa.Scalar):
        given = pa.array([given.as_py()] * n, pa.string())
    if out.get(AS_SENT) is None:
        out[AS_SENT] = given
    out[FOLDED] = fold_divisions(given.cast(pa.string()))
    return out


def build(entity: Entity, columns: Mapping[str, Column | pa.Scalar | None], n: int) -> pa.Table:
    """A conformed table of `entity`: given columns, NULL for the rest, model types.

    Where the entity keeps a division code, it is folded to the current code (see
    `fold_division`).
    """
    schema = conformed_schema(entity)
    if AS_SENT in schema.names:
        columns = fold_division(columns, n)
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(value, pa.Scalar):
            arrays.append(pa.array([value.as_py()] * n, f.type))
        else:
            arrays.append(value.cast(f.type))
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise KeyError(f"{entity.table} has no field(s) {sorted(unknown)}")
    return pa.table(arrays, schema=schema)


def last_per_key(table: pa.Table, key: str, order: str | None = None) -> pa.Table:
    """One row per key: the last by `order`, ties (and no order) by position."""
    ranked = table.append_column("_position", pa.array(np.arange(table.num_rows)))
    sort = [(key, "ascending")] + ([(order, "ascending")] if order else [])
    ranked = ranked.sort_by(sort + [("_position", "ascending")])
    keys = ranked[key].to_numpy(zero_copy_only=False)
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[:-1] != keys[1:]
    kept = ranked.filter(pa.array(last))
    # Back in arrival order, so row-aligned consumers keep their meaning.
    return kept.sort_by("_position").drop_columns(["_position"])
