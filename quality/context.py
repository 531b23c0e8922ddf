"""What the rules check against, read from the warehouse once per run."""

from __future__ import annotations

import psycopg

from base import clock
from base.settings import CityConfig
from quality.rules import RuleContext


def rule_context(conn: psycopg.Connection, city: CityConfig) -> RuleContext:
    divisions = conn.execute(
        "SELECT code, level, retired_on IS NOT NULL, replaced_by FROM core.division"
        " WHERE valid_to IS NULL"
    ).fetchall()
    grids = [r[0] for r in conn.execute(
        "SELECT DISTINCT grid_code FROM core.grid WHERE valid_to IS NULL"
    ).fetchall()]
    return RuleContext(
        division_codes=frozenset(c for c, level, retired, _ in divisions
                                 if level != "street" and not retired),
        retired_divisions={c: r for c, _, retired, r in divisions if retired},
        street_codes=frozenset(c for c, level, _, _ in divisions if level == "street"),
        # No grids loaded yet (no grid platform configured): the grid rule can't judge.
        grid_codes=frozenset(grids) if grids else None,
        extent=city.extent,
        now=clock.now(),
        timezone=city.timezone,
    )
