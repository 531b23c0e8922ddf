"""What the 12345 load writes, read back directly: times in the platform's zone, and no
clear ID number or mobile anywhere in a stored row."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from psycopg import sql

from hub.pipeline import run_source

CITIZEN_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
# Keyed hashes and keys are hex or numbers by design; they are not personal data.
NOT_PERSONAL = re.compile(r".*(_hash|_key|_id)$|^source_id$|^record_hash$")


def test_accept_time_is_stored_as_the_platforms_local_time(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    stored = dict(db.execute("SELECT source_id, accepted_at FROM core.event WHERE"
                             " source_system = %s AND valid_to IS NULL", (source,)).fetchall())
    shanghai = ZoneInfo("Asia/Shanghai")
    compared = 0
    for no, order in server.data.orders.items():
        if no not in stored or not order.get("acceptTime") or stored[no] is None:
            continue
        local = datetime.strptime(order["acceptTime"], "%Y-%m-%d %H:%M:%S")
        assert stored[no] == local.replace(tzinfo=shanghai), no
        assert stored[no].astimezone(shanghai).strftime("%Y-%m-%d %H:%M:%S") == order["acceptTime"]
        compared += 1
    assert compared > 50


def test_no_clear_id_number_or_mobile_is_stored_in_core_rows(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    planted_ids = {o["callerIdNo"] for o in server.data.orders.values() if o.get("callerIdNo")}
    assert planted_ids, "the simulator sent no ID numbers: this test would prove nothing"
    scanned = 0
    for table in ("core.event", "core.person", "core.organization"):
        columns = [r[0] for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s AND data_type IN ('text', 'character varying', 'jsonb')",
            tuple(table.split(".")))]
        for column in columns:
            if NOT_PERSONAL.match(column):
                continue
            for (value,) in db.execute(
                    sql.SQL("SELECT {}::text FROM {} WHERE source_system = %s AND {} IS NOT NULL")
                    .format(sql.Identifier(column), sql.Identifier(*table.split(".")),
                            sql.Identifier(column)), (source,)):
                scanned += 1
                assert not CITIZEN_ID.search(value), (table, column)
                assert not MOBILE.search(value), (table, column)
    assert scanned > 100


def test_the_optional_contact_fields_arrive_where_sent(db, hotline):
    """firstContactTime and isSolved (sources.md §1, optional) land as first_contact_at
    and is_solved; orders from older platforms leave them out, and dispatch counts."""
    source, config, _ = hotline()
    run_source(source, config)
    row = db.execute(
        "SELECT count(*) FILTER (WHERE first_contact_at IS NOT NULL),"
        " count(*) FILTER (WHERE first_contact_at IS NULL AND dispatched_at IS NOT NULL),"
        " count(*) FILTER (WHERE is_solved IS NOT NULL),"
        " count(*) FILTER (WHERE is_solved IS NOT NULL AND closed_at IS NULL),"
        " count(*) FILTER (WHERE first_contact_at < accepted_at)"
        " FROM core.event WHERE source_system = %s AND valid_to IS NULL", (source,)).fetchone()
    sent, left_out, solved_known, solved_open, before_accept = row
    assert sent > 0 and left_out > 0 and solved_known > 0
    assert solved_open == 0 and before_accept == 0
