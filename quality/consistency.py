"""Cross-source consistency: checks that need two platforms' data, run after a load.

A check is declared by what it checks, never by a source's name: the connectors whose
loads call for it (`applies_to`; the pipeline says which connector it just loaded) and
the connectors whose data it checks against, whose sources are every source that ran
with one of them (ops.run). A second 12345 instance, a county's own 数字城管 or a
renamed source is checked like the first.

One so far, worth watching weekly: an event transferred from the 12345 hotline should
appear in the hotline's data, accepted there within a day of the transfer. Transferred
events are those with channel 12345转办 or a `transfer_ref`; each platform says where
the order number is: a 数字城管 case quotes it in its description (工单号：…), a 综治
dispute carries it in `transfer_ref` (transferNo). An event is judged once it is a day
old (by the hub clock), so a hotline load that simply has not run yet is not mistaken
for a missing order. Results are recorded like any rule's: counts in
quality.rule_result, one finding per event in quality.finding, under the run that
triggered the check.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum

import psycopg

from base import clock
from quality.rules import definitions

TRANSFER_RULE = "transfer_in_both_platforms"
TRANSFER_CHANNEL = "12345转办"
# The connectors of the 12345 hotline: their sources hold the orders transfers name.
HOTLINE_CONNECTORS: frozenset[str] = frozenset({"hotline12345"})


class OrderNumberIn(Enum):
    """Where a platform's transferred event names the 12345 order it came from."""

    DESCRIPTION = "description"  # quoted in the text: 工单号：2111…
    TRANSFER_REF = "transfer_ref"  # a field of its own (core.event.transfer_ref)


# The platforms 12345 transfers events to, by connector, and where each names the order.
TRANSFERRED_FROM_HOTLINE: dict[str, OrderNumberIn] = {
    "citymgmt": OrderNumberIn.DESCRIPTION,
    "zongzhi": OrderNumberIn.TRANSFER_REF,
}

# (connection, connector, source, run_id) → (evaluated, failed)
CheckFunction = Callable[[psycopg.Connection, str, str, int], tuple[int, int]]


@dataclass(frozen=True)
class Check:
    """One cross-source check: the rule it records, the connectors whose loads call for
    it, and the core tables it judges: a run that wrote none of them (one stream of a
    source, say its reference data) does not call for it."""

    rule: str
    applies_to: frozenset[str]
    run: CheckFunction
    judges: frozenset[str]


def _transfers(conn: psycopg.Connection, connector: str, source: str,
               run_id: int) -> tuple[int, int]:
    """Events of `source` transferred from 12345, a day old or more: (evaluated, failed)."""
    definition = definitions()[TRANSFER_RULE]
    template = definition.reasons
    rows = conn.execute(
        """
        WITH transferred AS (
            SELECT c.source_id, c.reported_at,
                   CASE %(order_no_in)s
                       WHEN 'transfer_ref' THEN nullif(btrim(c.transfer_ref), '')
                       ELSE substring(c.description FROM '工单号[：:]\\s*([0-9A-Za-z]+)')
                   END AS order_no
              FROM core.event c
             WHERE c.source_system = %(source)s AND c.valid_to IS NULL
               AND (c.channel = %(channel)s OR c.transfer_ref IS NOT NULL)
               AND c.reported_at < %(now)s::timestamptz - interval '1 day'
        ), hotline AS (
            SELECT DISTINCT source_system FROM ops.run WHERE connector = ANY(%(hotline)s)
        )
        SELECT t.source_id, t.order_no,
               min(abs(extract(epoch FROM h.accepted_at - t.reported_at))) / 3600.0
          FROM transferred t
          LEFT JOIN core.event h ON h.source_id = t.order_no AND h.valid_to IS NULL
               AND h.source_system IN (SELECT source_system FROM hotline)
         GROUP BY 1, 2
        """,
        {"source": source, "channel": TRANSFER_CHANNEL, "now": clock.now(),
         "order_no_in": TRANSFERRED_FROM_HOTLINE[connector].value,
         "hotline": sorted(HOTLINE_CONNECTORS)},
    ).fetchall()
    failed = []
    for event_no, order_no, hours in rows:
        if order_no is None:
            failed.append((event_no, template["no_order_no"].format(case=event_no)))
        elif hours is None:
            failed.append((event_no, template["missing"].format(order=order_no)))
        elif hours > 24:
            failed.append((event_no, template["late"].format(order=order_no,
                                                            hours=f"{hours:.0f}")))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.finding (run_id, source_system, entity, source_id, rule,"
            " severity, reason) VALUES (%s, %s, 'event', %s, %s, %s, %s)",
            [(run_id, source, event_no, TRANSFER_RULE, definition.severity.value, reason)
             for event_no, reason in failed],
        )
        cur.execute(
            "INSERT INTO quality.rule_result (run_id, source_system, entity, rule, severity,"
            " dimension, evaluated, failed) VALUES (%s, %s, 'event', %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, entity, rule) DO UPDATE SET evaluated = EXCLUDED.evaluated,"
            " failed = EXCLUDED.failed",
            (run_id, source, TRANSFER_RULE, definition.severity.value, definition.dimension,
             len(rows), len(failed)),
        )
    return len(rows), len(failed)


CHECKS: tuple[Check, ...] = (
    Check(TRANSFER_RULE, frozenset(TRANSFERRED_FROM_HOTLINE), _transfers,
          judges=frozenset({"core.event"})),
)


def checks_for(connector: str, tables: Collection[str] | None = None) -> list[Check]:
    """The cross-source checks a load of this connector's data calls for; with `tables`,
    those judging one of the tables the load wrote."""
    return [check for check in CHECKS if connector in check.applies_to
            and (tables is None or not check.judges.isdisjoint(tables))]


def run_checks(conn: psycopg.Connection, connector: str, source: str, run_id: int,
               tables: Collection[str] | None = None) -> dict[str, tuple[int, int]]:
    """Run the checks a load of `source` (served by `connector`) calls for, or with
    `tables` (the core tables the run wrote) those judging one of them:
    rule → (evaluated, failed)."""
    return {check.rule: check.run(conn, connector, source, run_id)
            for check in checks_for(connector, tables)}
