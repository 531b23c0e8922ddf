"""The batch stages one by one: dedupe → conform → enrich → validate, each a value in and
a value out, with no transaction until the store stage."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa

from base.settings import CityConfig
from conform.gridmgmt import HousesConformer
from connectors.base import Extract, RowReject
from connectors.gridmgmt import HOUSES
from hub.pipeline import (
    Reference,
    conform,
    dedupe,
    enrich,
    read_reference,
    snapshot_keys,
    validate_batch,
)

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))


def house(code: str | None, address: str = "兴隆大街1号") -> dict[str, str | None]:
    return {"房屋编码": code, "地址": address, "楼栋": "1", "单元": "1", "房号": "101",
            "用途": "住宅", "产权人身份号码": None, "所属网格": "211103001001001"}


def extract(rows: list[dict[str, str | None]], **kw: object) -> Extract:
    table = pa.table({f: pa.array([r[f] for r in rows], pa.string()) for f in HOUSES.fields})
    return Extract(table, {"files": {}}, snapshot_id="houses_20261101.xlsx#abc", **kw)


def stages(batch: Extract, reference: Reference):
    conformer = HousesConformer(SimpleNamespace(), CITY)
    return validate_batch(enrich(conform(dedupe(batch, HOUSES), conformer), HOUSES, reference),
                          conformer)


def test_a_batch_goes_through_the_stages_to_a_verdict_per_row(db):
    reference = read_reference(db, CITY)
    batch = extract([house("H1"), house("H1"), house("H2"), house("H3", "甲"),
                     house("H3", "乙")], conflicting_keys={"H3": 0})
    checked = stages(batch, reference)
    deduped = checked.enriched.conformed.deduped
    assert deduped.raw.num_rows == 4 and deduped.reread == 1  # H1 read twice
    # The snapshot's conflicting raw keys, as the model's keys for the rules.
    assert checked.enriched.ctx.conflicting_keys == {"H3"}
    held = dict(zip(checked.primary.table["source_id"].to_pylist(),
                    checked.primary.quarantine.tolist(), strict=False))
    assert held["H3"] and not held["H1"] and not held["H2"]
    assert reference.rules.conflicting_keys == frozenset()  # the batch's, not the stream's


def test_snapshot_keys_are_the_conformed_rows_keys_and_the_unreadable_rows_keys(db):
    reject = RowReject(rule="row_readable", reason="houses line 9: 3 fields", where="line 9",
                       payload={"房屋编码": "H9"}, source_id="H9")
    keyless = RowReject(rule="row_readable", reason="line 10", where="line 10", payload={})
    checked = stages(extract([house("H1"), house("H2"), house(None)],
                             rejects=[reject, keyless]), read_reference(db, CITY))
    # Quarantined or loaded, a record was in the snapshot; a row without a key names none.
    assert snapshot_keys(checked).to_pylist() == ["H1", "H2", "H9"]
