"""The weekly quality report DAG: every Monday 08:00 city time, last week's report.

`dags/hub_quality_report.py` only calls `quality_report_dag()`. The task builds
the report (quality.report.build, which archives it in `quality.report`) and
mails it when the Airflow SMTP connection exists and names recipients; without
one it logs that mailing was skipped. The schedule and the weeks are in the
city's time zone, the sources file's `city.timezone`: parsing reads that block of
the sources file (a broken source entry does not stop this DAG) and connects to
no warehouse.

Mail settings live in the Airflow connection `smtp_default` (provider
apache-airflow-providers-smtp): host, port, login, password as usual, and in
its extra JSON `from_email` and `report_to` (comma-separated recipients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from base.settings import load_city

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from quality.report import BuiltReport

log = logging.getLogger(__name__)

REPORT_DAG_ID = "hub_quality_report"
REPORT_CRON = "0 8 * * 1"  # Monday 08:00, in the city's time zone
SMTP_CONN_ID = "smtp_default"
RECIPIENTS_EXTRA = "report_to"
# Anchors the schedule only (catchup is off).
SCHEDULE_ANCHOR = (2026, 1, 5)


def report_timezone(sources_path: Path | str | None = None) -> str:
    """The time zone of the schedule and of the weeks reported: the sources file's
    `city.timezone` (default file: HUB_SOURCES_FILE or ./sources.yaml)."""
    return load_city(sources_path).timezone


def week_before(moment: datetime, timezone: str | None = None) -> str:
    """The ISO week (the city's local time, default the sources file's) before the one
    `moment` falls in: what a Monday run reports."""
    from quality.report_data import Week

    return str(Week.containing(moment - timedelta(days=7), timezone))


def recipients(extra: Mapping[str, Any]) -> list[str]:
    raw = extra.get(RECIPIENTS_EXTRA) or []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return [r.strip() for r in items if r and r.strip()]


def smtp_extra(conn_id: str = SMTP_CONN_ID) -> Mapping[str, Any] | None:
    """The SMTP connection's extra fields, or None when the connection is not configured."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return dict(conn.extra_dejson)


def mail_report(built: BuiltReport, *, conn_id: str = SMTP_CONN_ID,
                lookup: Callable[[str], Mapping[str, Any] | None] = smtp_extra) -> list[str]:
    """Mail the report if SMTP is configured; returns the recipients (empty = skipped)."""
    extra = lookup(conn_id)
    if extra is None:
        log.info("no Airflow connection %r: the %s report was archived, not mailed", conn_id, built.week)
        return []
    to = recipients(extra)
    if not to:
        log.info("connection %r has no %r in its extra: the %s report was archived, not mailed",
                 conn_id, RECIPIENTS_EXTRA, built.week)
        return []
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    files = [str(built.html_path)] + ([str(built.pdf_path)] if built.pdf_path else [])
    body = (f"<p>附件为 {built.week} 数据质量周报（HTML，可直接用浏览器打开）。</p>"
            f"<p>The weekly data quality report for {built.week} is attached.</p>")
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=to, subject=f"数据质量周报 {built.week}", html_content=body,
                             files=files)
    log.info("the %s report was mailed to %d recipient(s)", built.week, len(to))
    return to


def run_weekly_report(logical_date: datetime, *, pdf: bool = False,
                      timezone: str | None = None) -> dict[str, Any]:
    """The task: build last week's report, archive it, mail it when SMTP is configured."""
    from quality.report import build

    built = build(week_before(logical_date, timezone), pdf=pdf, timezone=timezone)
    mailed = mail_report(built)
    return {"week": built.week, "report_id": built.report_id, "html": str(built.html_path),
            "pdf": str(built.pdf_path) if built.pdf_path else None, "mailed_to": len(mailed)}


def quality_report_dag(*, pdf: bool = False, sources_path: Path | str | None = None) -> DAG:
    """`hub_quality_report`: one task, Monday 08:00 in the city's time zone (the sources
    file's city.timezone), reporting the previous ISO week of that time zone."""
    import pendulum
    from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

    timezone = report_timezone(sources_path)

    @dag(
        dag_id=REPORT_DAG_ID,
        doc_md=__doc__,
        schedule=CronTriggerTimetable(REPORT_CRON, timezone=timezone),
        start_date=pendulum.datetime(*SCHEDULE_ANCHOR, tz=timezone),
        catchup=False,
        max_active_runs=1,
        tags=["hub", "quality", "report"],
        default_args={"owner": "hub", "retries": 2, "retry_delay": timedelta(minutes=10)},
    )
    def report_dag() -> None:
        @task(task_id="weekly_report")
        def weekly_report() -> dict[str, Any]:
            context = get_current_context()
            moment = context.get("logical_date") or context["dag_run"].run_after
            return run_weekly_report(moment, pdf=pdf, timezone=timezone)

        weekly_report()

    return report_dag()
