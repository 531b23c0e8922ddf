"""按期办结 at the boundary: finished exactly at the deadline is on time, a second later is
not. Hand-made events of this module's own source, in 2024 (no simulator writes it)."""

from __future__ import annotations

import uuid

import psycopg

SOURCE = f"test_deadline_{uuid.uuid4().hex[:8]}"
DEADLINE = "2024-03-06 09:00:00+08"
#  id        resolved_at               expected is_closed_on_time
EVENTS = [("EXACT", "2024-03-06 09:00:00+08", True),
          ("LATE", "2024-03-06 09:00:01+08", False),
          ("EARLY", "2024-03-06 08:59:59+08", True)]


def test_finishing_exactly_at_the_deadline_is_on_time(warehouse):
    with psycopg.connect(warehouse, autocommit=True) as db:
        for no, resolved, _ in EVENTS:
            db.execute(
                "INSERT INTO core.event (source_system, source_id, source_stream, valid_from,"
                " channel, category_code, source_category, status, source_status,"
                " division_code, accepted_at, resolved_at, deadline_at, source_updated_at)"
                " VALUES (%s, %s, 'orders', now(), '电话', 'SZ01', '110301 道路坑洼', 'resolved',"
                " '已办结', '211103', '2024-03-04 09:00:00+08', %s, %s, now())",
                (SOURCE, no, resolved, DEADLINE))
        got = dict(db.execute("SELECT source_id, is_closed_on_time FROM mart.event_current"
                              " WHERE source_system = %s", (SOURCE,)).fetchall())
        week = db.execute("SELECT closed, closed_on_time FROM mart.governance_weekly"
                          " WHERE source_system = %s", (SOURCE,)).fetchone()
    assert got == {no: expected for no, _, expected in EVENTS}
    assert week == (3, 2)
