"""Events without a grid code get the grid their point lies in; a point outside every
grid is flagged, not guessed."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from conform.base import build
from conform.grid_assign import GridIndex
from hub.pipeline import assign_grids
from quality.rules import RuleContext
from quality.validate import validate
from sandbox.city import City
from schemas.model import EVENT

EXTENT = (121.42, 40.65, 122.52, 41.45)


def test_points_get_their_grid_and_outsiders_are_flagged():
    city = City("2111", scale=0.01)
    a, b = city.grids[0], city.grids[1]
    index = GridIndex.from_wkt([a.code, b.code], [a.wkt(), b.wkt()])
    far = city.grids[-1].centre  # in the city, but not in the two grids indexed
    rows = {
        "source_id": ["in_a", "in_b", "outside", "given", "zero", "none"],
        "grid_code": [None, None, None, "999999999999999", None, None],
        "longitude": [a.centre[0], b.centre[0], far[0], a.centre[0], 0.0, None],
        "latitude": [a.centre[1], b.centre[1], far[1], a.centre[1], 0.0, None],
    }
    n = len(rows["source_id"])
    table = build(EVENT, {k: pa.array(v) for k, v in rows.items()} | {
        "channel": pa.scalar("电话"), "category_code": pa.scalar("SR01"),
        "source_category": pa.scalar("x"), "status": pa.scalar("accepted"),
        "source_status": pa.scalar("x"),
        "source_updated_at": pa.scalar(datetime(2026, 11, 20, tzinfo=UTC)),
    }, n)

    assigned = assign_grids(table, index)
    assert assigned["grid_code"].to_pylist() == [a.code, b.code, None, "999999999999999",
                                                 None, None]
    assert assign_grids(table, None)["grid_code"].to_pylist() == rows["grid_code"]

    ctx = RuleContext.from_reference("2111", EXTENT, datetime.now(UTC),
                                     grid_codes={a.code, b.code})
    checked = validate(EVENT, assigned, ctx)
    flagged = checked.findings.filter(pa.compute.equal(checked.findings["rule"], "grid_assigned"))
    assert [rows["source_id"][i] for i in flagged["row_index"].to_pylist()] == ["outside"]
    assert "outside every grid" in flagged["reason"][0].as_py()
    assert not checked.quarantine.any()  # a warning: the event still loads
