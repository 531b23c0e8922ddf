"""Cross-source consistency: checks that need two platforms' data, run after a load.

One so far, worth watching weekly: a 12345 order transferred to 数字城管 (a case
with source 12345转办, whose description quotes the order number) should appear in
both platforms within a day. A case is judged once it is a day old, so a hotline
load that simply has not run yet is not mistaken for a missing order. Results are
recorded like any rule's: counts in quality.rule_result, one finding per case in
quality.finding, under the run that triggered the check.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from quality.rules import definitions

TRANSFER_RULE = "transfer_in_both_platforms"
TRANSFER_CHANNEL = "12345转办"
# Connectors whose runs trigger which checks.
Check = Callable[[psycopg.Connection, str, int], tuple[int, int]]


def _transfers(conn: psycopg.Connection, source: str, run_id: int) -> tuple[int, int]:
    """Transferred cases of `source` a day old or more: (evaluated, failed)."""
    template = definitions()[TRANSFER_RULE].reasons
    rows = conn.execute(
        """
        WITH cases AS (
            SELECT c.source_id, c.reported_at,
                   substring(c.description FROM '工单号[：:]\\s*([0-9A-Za-z]+)') AS order_no
              FROM core.event c
             WHERE c.source_system = %(source)s AND c.valid_to IS NULL
               AND c.channel = %(channel)s AND c.reported_at < now() - interval '1 day'
        ), hotline AS (
            SELECT DISTINCT source_system FROM ops.run WHERE connector = 'hotline12345'
        )
        SELECT cases.source_id, cases.order_no,
               min(abs(extract(epoch FROM h.accepted_at - cases.reported_at))) / 3600.0
          FROM cases
          LEFT JOIN core.event h ON h.source_id = cases.order_no AND h.valid_to IS NULL
               AND h.source_system IN (SELECT source_system FROM hotline)
         GROUP BY 1, 2
        """,
        {"source": source, "channel": TRANSFER_CHANNEL},
    ).fetchall()
    failed = []
    for case_no, order_no, hours in rows:
        if order_no is None:
            failed.append((case_no, template["no_order_no"].format(case=case_no)))
        elif hours is None:
            failed.append((case_no, template["missing"].format(order=order_no)))
        elif hours > 24:
            failed.append((case_no, template["late"].format(order=order_no,
                                                           hours=f"{hours:.0f}")))
    definition = definitions()[TRANSFER_RULE]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.finding (run_id, source_system, entity, source_id, rule,"
            " severity, reason) VALUES (%s, %s, 'event', %s, %s, %s, %s)",
            [(run_id, source, case_no, TRANSFER_RULE, definition.severity.value, reason)
             for case_no, reason in failed],
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


CHECKS: dict[str, tuple[Check, ...]] = {"citymgmt": (_transfers,)}


def run_checks(conn: psycopg.Connection, connector: str, source: str, run_id: int) -> None:
    """The cross-source checks a load of this connector's data calls for."""
    for check in CHECKS.get(connector, ()):
        check(conn, source, run_id)
