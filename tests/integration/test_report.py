"""The weekly quality report on data loaded by the real pipeline, read as a user would.

The 12345 simulator's history ends 2026-11-20, inside 2026-W47 (Nov 16-22). The
test loads it, then dates the runs to when they would have happened in a weekly
rhythm: the first load in W46 and a second, after the platform moved on, in W47;
plus a failed run and one replayed quarantine entry in W47. The report of W47 is
then built once and checked as HTML, in headless Chromium, and in the archive.
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import struct
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from base import clock
from base.settings import PROJECT_ROOT
from hub.cli import app
from hub.dag_reports import (
    REPORT_CRON,
    REPORT_DAG_ID,
    mail_report,
    recipients,
    report_timezone,
    week_before,
)
from hub.pipeline import run_source
from quality import report_charts
from quality.report import WeekNotOver, build, chromium_command, find_chromium, payload_excerpt
from quality.report_data import Week

WEEK = "2026-W47"
W46_RUN = "2026-11-12 10:00+08"
W47_RUN = "2026-11-20 10:00+08"
W47_FAILED = "2026-11-21 09:00+08"
LEAKED_PHONE = "13812348000"
# The name the test's sources file gives the platform: the report shows it, not the id.
LABEL = "测试热线W47"
# The schedule's time zone: the project sources file's city.timezone (Asia/Shanghai).
REPORT_TIMEZONE = report_timezone()
SECTIONS = ("summary", "scorecard", "volume", "freshness", "runs", "rules", "mapping",
            "quarantine", "governance")
_BUILT: dict[str, Any] = {}


def _date_run(db: psycopg.Connection, run_id: int, when: str) -> None:
    """Move a run and what it recorded to `when`, as if it had run then."""
    db.execute("UPDATE ops.run SET started_at = %s::timestamptz,"
               " finished_at = %s::timestamptz + interval '1 minute' WHERE run_id = %s",
               (when, when, run_id))
    db.execute("UPDATE quality.quarantine SET quarantined_at = %s WHERE run_id = %s", (when, run_id))
    db.execute("UPDATE quality.quarantine SET resolved_at = %s WHERE resolved_run_id = %s",
               (when, run_id))
    db.execute("UPDATE quality.finding SET found_at = %s WHERE run_id = %s", (when, run_id))


@pytest.fixture
def w47(db: psycopg.Connection, hotline, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Load, date and report once for the module; later tests reuse what the first built."""
    if _BUILT:
        return _BUILT
    source, config, server = hotline()
    first = run_source(source, config)
    _date_run(db, first.run_id, W46_RUN)
    server.advance(15)
    second = run_source(source, config)
    _date_run(db, second.run_id, W47_RUN)
    db.execute("INSERT INTO ops.run (source_system, connector, started_at, finished_at, outcome,"
               " error) VALUES (%s, 'hotline12345', %s, %s, 'failed', %s)",
               (source, W47_FAILED, W47_FAILED,
                f"HTTPError: platform answered 500 for caller {LEAKED_PHONE}"))
    replayed = db.execute(
        "UPDATE quality.quarantine SET state = 'replayed', resolved_at = %s, resolved_run_id = %s"
        " WHERE quarantine_id = (SELECT min(quarantine_id) FROM quality.quarantine"
        " WHERE source_system = %s AND state = 'open') RETURNING quarantine_id",
        (W47_RUN, second.run_id, source)).fetchone()
    # Two reports of one incident (as linking would mark them): a repeat in the figures.
    db.execute(
        "UPDATE core.event SET cluster_key = 'w47-incident' WHERE valid_to IS NULL AND"
        " (source_system, source_id) IN (SELECT source_system, source_id FROM mart.event_current"
        "  WHERE source_system = %s AND report_week = %s ORDER BY category_l1_code, source_id"
        "  LIMIT 2)", (source, WEEK))
    out = tmp_path_factory.mktemp("report")
    named = yaml.safe_load(config.read_text(encoding="utf-8"))
    named["sources"][source]["display_name"] = LABEL
    (out / "sources.yaml").write_text(yaml.safe_dump(named, allow_unicode=True), encoding="utf-8")
    # With Chromium the PDF comes along (one build for both); without, HTML only.
    built = build(WEEK, pdf=find_chromium() is not None, out_dir=out,
                  now=datetime(2026, 11, 23, 8, 0, tzinfo=UTC), config=out / "sources.yaml")
    _BUILT.update(source=source, server=server, built=built, out=out, replayed=replayed,
                  html=built.html_path.read_text(encoding="utf-8"),
                  runs=(first, second))
    return _BUILT


def section(html: str, name: str) -> str:
    m = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert m, f"no section {name}"
    return m.group(1)


def platform_row(html: str, name: str = LABEL) -> str:
    """The cells after a table row's platform cell (the platform as people know it)."""
    m = re.search(rf'<td><span class="nowrap">{re.escape(name)}</span></td>(.*?)</tr>', html, re.S)
    assert m, f"no row for the platform {name}"
    return m.group(1)


def test_the_report_has_every_section_in_chinese(w47):
    html = w47["html"]
    for name in SECTIONS:
        section(html, name)
    for term in ("质量评分卡", "完整性", "准确性", "有效性", "一致性", "及时性", "唯一性",
                 "办结率", "按期办结率", "满意率", "响应时长", "处置时长", "隔离区"):
        assert term in html, term
    assert w47["built"].html_path.name == f"quality-report-{WEEK}.html"
    # Self-contained: charts inline, nothing fetched.
    assert html.count("data:image/png;base64,") == 2
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_scorecard_shows_the_change_from_last_week(w47):
    card = section(w47["html"], "scorecard")
    row = platform_row(card.split("近 8 周趋势")[0])
    assert "%" in row
    assert re.search(r"持平|▲|▼", row), "no change from the previous week"


def test_extracted_equals_loaded_plus_quarantined_per_source(w47, db):
    runs = section(w47["html"], "runs")
    extracted, loaded, quarantined = db.execute(
        "SELECT sum(extracted), sum(loaded), sum(quarantined) FROM ops.run WHERE source_system = %s"
        " AND started_at >= '2026-11-16 00:00+08' AND started_at < '2026-11-23 00:00+08'",
        (w47["source"],)).fetchone()
    assert extracted == loaded + quarantined > 0
    row = platform_row(runs)
    cells = [int(c) for c in re.findall(r'<td class="num[^"]*">(\d+)</td>', row)]
    assert cells[-3:] == [extracted, loaded, quarantined]
    assert "✓ 平" in row


def test_the_failed_run_is_listed_with_its_error_masked(w47):
    runs = section(w47["html"], "runs")
    assert "失败" in runs and "HTTPError" in runs
    assert LEAKED_PHONE not in w47["html"]
    assert "138****8000" in runs


def test_quarantine_counts_new_replayed_and_open(w47, db):
    q = section(w47["html"], "quarantine")
    row = platform_row(q)
    assert w47["replayed"]
    new, replayed, superseded, open_end, _ = (
        int(c) for c in re.findall(r'<td class="num[^"]*">(\d+)</td>', row))
    expected_new = db.execute(
        "SELECT count(*) FROM quality.quarantine WHERE source_system = %s AND quarantined_at"
        " >= '2026-11-16 00:00+08' AND quarantined_at < '2026-11-23 00:00+08'",
        (w47["source"],)).fetchone()[0]
    assert (new, replayed) == (expected_new, 1)
    assert open_end >= 0 and superseded >= 0


def test_top_rules_show_masked_examples(w47, db):
    rules = section(w47["html"], "rules")
    top = db.execute(
        "SELECT rr.rule, sum(rr.failed) FROM quality.rule_result rr JOIN ops.run r USING (run_id)"
        " WHERE rr.source_system = %s AND r.started_at >= '2026-11-16 00:00+08'"
        " AND r.started_at < '2026-11-23 00:00+08' GROUP BY 1 HAVING sum(rr.failed) > 0"
        " ORDER BY 2 DESC, 1 LIMIT 1", (w47["source"],)).fetchone()
    assert top, "the W47 run found nothing to report"
    assert f'<td class="mono">{top[0]}</td>' in rules
    examples = re.findall(r"<li>(.*?)</li>", rules, re.S)
    assert examples
    for e in examples:
        assert not re.search(r"(?<!\d)(\d{17}[\dX]|1[3-9]\d{9})(?!\d)", e), e


def test_no_clear_id_number_or_phone_of_any_caller(w47):
    html = w47["html"]
    orders = w47["server"].data.orders.values()
    for values in ({o.get("callerPhone") for o in orders}, {o.get("callerIdNo") for o in orders}):
        leaked = {v for v in values if v and len(str(v)) >= 7 and str(v) in html}
        assert not leaked, f"clear personal data in the report: {sorted(leaked)[:3]}"


def test_governance_figures_per_district_come_from_the_mart(w47, db):
    gov = section(w47["html"], "governance")
    rows = db.execute("SELECT district_name, accepted, closure_rate FROM"
                      " mart.governance_weekly_district WHERE report_week = %s AND accepted > 0",
                      (WEEK,)).fetchall()
    assert rows
    for name, _accepted, rate in rows:
        # Events without a division (a grid event with no grid code) are shown as such.
        assert (name or "（未知区划）") in gov
        assert f"{float(rate) * 100:.1f}%" in gov, (name, rate)


def test_repeat_reports_per_category_come_from_the_mart(w47, db):
    gov = section(w47["html"], "governance")
    assert "重复报告（按类别）" in gov
    rows = db.execute("SELECT category_l1_name, sum(events), sum(repeat_events)"
                      " FROM mart.governance_weekly WHERE report_week = %s GROUP BY 1",
                      (WEEK,)).fetchall()
    assert sum(r[2] for r in rows) >= 1  # the incident's second report (and others' repeats)
    table = gov[gov.index("重复报告（按类别）"):]
    for name, events, repeats in rows:
        row = re.search(rf"<td>{re.escape(name or '（未分类）')} .*?</tr>", table, re.S)
        assert row, name
        cells = re.findall(r'<td class="num">(.*?)</td>', row.group(0), re.S)
        assert cells[:2] == [str(events), str(repeats)], (name, cells)
        assert f"{repeats / events * 100:.1f}%" in cells[2], (name, cells)


def test_the_report_is_archived(w47, db):
    built = w47["built"]
    week, html, pdf, summary = db.execute(
        "SELECT week, html, pdf, summary FROM quality.report WHERE report_id = %s",
        (built.report_id,)).fetchone()
    assert (week, html) == (WEEK, w47["html"])
    assert (pdf is None) == (built.pdf_path is None)
    assert w47["source"] in summary["scores"]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="headless Chromium is not installed (Debian: chromium)")


@needs_chromium
def test_chromium_shows_the_scorecard_and_the_districts(w47, tmp_path):
    chromium = find_chromium()
    assert chromium
    url = w47["built"].html_path.resolve().as_uri()
    dom = subprocess.run(chromium_command(chromium, tmp_path / "p1") + ["--dump-dom", url],
                         capture_output=True, text=True, timeout=60).stdout
    assert "质量评分卡" in dom and "治理指标" in dom
    assert re.search(r"(兴隆台区|双台子区|大洼区|盘山县)", dom)
    shot = tmp_path / "report.png"
    subprocess.run(chromium_command(chromium, tmp_path / "p2") + [
        "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}", url],
        capture_output=True, timeout=60, check=True)
    data = shot.read_bytes()
    assert _png_size(data) == (1200, 2400)
    assert len(data) > 100_000, "the screenshot is nearly blank"


@needs_chromium
def test_pdf_is_printed_and_archived(w47, db):
    built = w47["built"]
    assert built.pdf_path and built.pdf_path.read_bytes()[:5] == b"%PDF-"
    pdf = db.execute("SELECT pdf FROM quality.report WHERE report_id = %s",
                     (built.report_id,)).fetchone()[0]
    assert bytes(pdf) == built.pdf_path.read_bytes()


def test_pdf_without_chromium_fails_clearly(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="needs headless Chromium"):
        build(WEEK, pdf=True, out_dir=tmp_path)


# ---------------------------------------------------------------- units


def test_payload_examples_mask_people_and_drop_free_text():
    shown = dict(payload_excerpt({"orderNo": "2111261110000001", "callerName": "卢帅帆",
                               "callerPhone": "13466714525", "callerIdNo": "211103196908196579",
                               "content": "请联系 13466714525", "status": "已回访"}))
    assert shown == {"orderNo": "2111261110000001", "callerName": "卢**",
                     "callerPhone": "134****4525", "callerIdNo": "211103********6579",
                     "status": "已回访"}


def test_payload_examples_show_addresses_to_the_street_and_people_by_key():
    shown = dict(payload_excerpt({"address": "盘锦市兴隆台区渤海路12号幸福小区3号楼",
                                  "categoryName": "市容环境", "summary": "申请人张三丰与邻居纠纷",
                                  "legal_rep": "赵六", "idNo": "无", "联系电话": "1381234"}))
    assert shown == {"address": "盘锦市兴隆台区***", "categoryName": "市容环境",
                     "legal_rep": "赵*", "idNo": "*", "联系电话": "*******"}


def test_weeks():
    w = Week.parse("2026-w47")
    assert (str(w), w.monday.isoformat(), str(w.previous)) == ("2026-W47", "2026-11-16", "2026-W46")
    assert str(Week.parse("2027-W01").previous) == "2026-W53"
    with pytest.raises(ValueError, match="ISO week"):
        Week.parse("2026-47")
    # Monday 08:00 Beijing = Monday 00:00 UTC: the run reports the week before.
    assert week_before(datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == "2026-W47"


def test_weeks_are_the_city_s_local_weeks():
    # Monday 01:30 in Beijing is still Sunday in Urumqi (UTC+6) and in UTC.
    monday_0130 = datetime(2023, 3, 13, 1, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    default = Week.containing(monday_0130)  # the project sources file's city: Beijing time
    assert (str(default), default.timezone) == ("2023-W11", "Asia/Shanghai")
    for zone in ("Asia/Urumqi", "UTC"):
        week = Week.containing(monday_0130, zone)
        assert (str(week), week.timezone) == ("2023-W10", zone)
        assert (str(week.previous), week.previous.timezone) == ("2023-W09", zone)
    urumqi = Week.parse("2023-W10", "Asia/Urumqi")
    assert (urumqi.start.isoformat(), urumqi.end.isoformat()) == (
        "2023-03-06T00:00:00+06:00", "2023-03-13T00:00:00+06:00")
    assert Week.parse("2023-W10") == Week(2023, 10, "Asia/Shanghai") != urumqi
    with pytest.raises(ValueError, match="unknown time zone"):
        Week.parse("2023-W10", "Asia/Nowhere")
    # The Monday 08:00 run in a city on Urumqi time reports its own previous week.
    assert week_before(datetime(2023, 3, 13, 8, 0, tzinfo=ZoneInfo("Asia/Urumqi")),
                       "Asia/Urumqi") == "2023-W10"


class _Built:
    week, html_path, pdf_path = WEEK, Path("/nonexistent.html"), None


def test_mailing_is_skipped_without_smtp(caplog):
    caplog.set_level("INFO")
    assert mail_report(_Built(), lookup=lambda _: None) == []  # type: ignore[arg-type]
    assert "not mailed" in caplog.text
    assert mail_report(_Built(), lookup=lambda _: {"from_email": "a@b"}) == []  # type: ignore[arg-type]
    assert recipients({"report_to": "a@x.cn, b@x.cn"}) == ["a@x.cn", "b@x.cn"]


class _SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to take one message: what the SMTP connection would talk to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _SmtpHandler)


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _SmtpSink = self.server  # type: ignore[assignment]
        msg: dict[str, Any] = {"to": []}
        self.wfile.write(b"220 sink\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                msg["data"] = body
                server.messages.append(msg)
                reply = b"250 queued"
            elif verb == b"RCPT":
                msg["to"].append(line.split(b":", 1)[1].strip(b" <>\r\n").decode())
                reply = b"250 ok"
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                reply = b"250 ok"
            self.wfile.write(reply + b"\r\n")


@pytest.mark.slow
def test_the_report_is_mailed_through_the_airflow_smtp_connection(w47, monkeypatch):
    with _SmtpSink() as sink:
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": sink.server_address[1],
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "hub@example.cn",
                      "report_to": "zhihui@example.cn, chengguan@example.cn"}}))
        sent_to = mail_report(w47["built"])
        sink.shutdown()
    assert sent_to == ["zhihui@example.cn", "chengguan@example.cn"]
    [msg] = sink.messages
    assert msg["to"] == sent_to
    assert f'quality-report-{WEEK}.html'.encode() in msg["data"]


@pytest.mark.slow
def test_the_dag_parses_with_its_schedule(tmp_path):
    from sandbox.airflow_runner import PROJECT_DAGS_FOLDER, LocalAirflow

    report = LocalAirflow(home=tmp_path / "airflow", dags_folder=PROJECT_DAGS_FOLDER).list_dags(
        extra_env={"HUB_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/none",
                   "HUB_HOME": str(tmp_path / "home")})
    assert not {f: e for f, e in report.import_errors.items() if "hub_quality_report" in f}
    dag = report.dags[REPORT_DAG_ID]
    assert Path(dag.fileloc).name == "hub_quality_report.py"
    assert (dag.cron, dag.timezone, dag.timetable) == (REPORT_CRON, REPORT_TIMEZONE,
                                                       "CronTriggerTimetable")
    assert dag.catchup is False and list(dag.tasks) == ["weekly_report"]
    assert not (tmp_path / "home").exists(), "parsing the DAG touched the hub's state"



def test_without_a_cjk_font_charts_fall_back_and_the_page_says_so(warehouse, tmp_path,
                                                                  monkeypatch):
    from datetime import date

    from quality import report_charts

    monkeypatch.setattr(report_charts, "CJK_FONTS", ("No Such Font",))
    report_charts.cjk_font.cache_clear()
    try:
        days = Week.parse(WEEK).days
        png = report_charts.daily_volume(days, {"hotline": {date(2026, 11, 17): 5}})
        assert png and len(png) > 1000
        # A week without any data still gives a complete page.
        html = build("2020-W01", out_dir=tmp_path).html_path.read_text(encoding="utf-8")
    finally:
        report_charts.cjk_font.cache_clear()
    assert "没有中文字体" in html
    for name in SECTIONS:
        section(html, name)


# ------------------------------------------------ issue 13: as the people who read it


def test_platforms_appear_by_the_names_people_know(w47):
    html, source = w47["html"], w47["source"]
    for name in ("scorecard", "volume", "freshness", "runs", "quarantine"):
        assert LABEL in section(html, name), name
    # The source's id only where the footer says which name is which source.
    footer = html.split("<footer>", 1)[1]
    assert html.count(source) == footer.count(source) == 1
    assert f"{LABEL} = <span class=\"mono\">{source}</span>" in footer


def test_every_rate_shows_its_count_and_small_ones_are_greyed(w47, db):
    gov = section(w47["html"], "governance")
    rates = re.findall(r'<span class="(small)?"[^>]*>([\d.]+)%</span><span class="cnt">（(\d+)）',
                       gov)
    assert rates, "no rate with its count"
    for grey, _, n in rates:
        assert bool(grey) == (int(n) < 10), (grey, n)
    assert any(grey for grey, _, _ in rates), "the simulated week has no small count"
    # 响应率 and its count, from the mart (no 12345 first-contact time: the dispatch counts).
    for due, rate in db.execute("SELECT response_due, response_rate FROM"
                                " mart.governance_weekly_district WHERE report_week = %s"
                                " AND accepted > 0 AND response_due > 0", (WEEK,)).fetchall():
        assert f">{float(rate) * 100:.1f}%</span><span class=\"cnt\">（{due}）" in gov


def test_the_assessment_shows_the_best_and_worst_organizations(w47, db):
    part = section(w47["html"], "assessment")
    assert "承办单位考核" in part and "较上周下降最多的单位" in part
    ranked = db.execute("SELECT handling_org, rank_in_week FROM mart.assessment_weekly"
                        " WHERE report_week = %s AND NOT is_small ORDER BY rank_in_week,"
                        " accepted DESC, handling_org", (WEEK,)).fetchall()
    assert ranked, "the simulated week ranks no organization"
    best = part.split("得分最低的")[0]
    for org, rank in ranked[:10]:
        assert re.search(rf'<span class="rank">{rank}</span></td><td>{re.escape(org)}', best), org
    # Small organizations are counted, not ranked among the others.
    small = db.execute("SELECT count(*) FROM mart.assessment_weekly WHERE report_week = %s"
                       " AND is_small", (WEEK,)).fetchone()[0]
    assert f"{small} 个受理少于 10 件" in part


def test_a_trend_of_the_last_eight_weeks(w47):
    card = section(w47["html"], "scorecard")
    trend = card.split("近 8 周趋势", 1)[1]
    assert [f"W{n}" for n in range(40, 48)] == re.findall(r'<th class="num">(W\d\d)</th>', trend)
    row = platform_row(trend)
    assert row.count("<svg") == 2  # score and events
    assert row.count('class="na">—') == 6  # runs in W46 and W47 only


def test_examples_show_short_references_and_no_hashes(w47):
    rules = section(w47["html"], "rules")
    assert not re.search(r"[0-9a-f]{24,}", rules), "a hash in the examples"


@needs_chromium
def test_the_pdf_is_a4(w47):
    pdf = w47["built"].pdf_path.read_bytes()
    boxes = {tuple(float(x) for x in m.split()) for m in
             re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+?)\s*\]", pdf)}
    assert boxes, "no page size in the PDF"
    for _, _, width, height in boxes:
        assert (round(width), round(height)) == (595, 842), (width, height)


def test_a_week_that_has_not_ended_is_refused(warehouse, db, tmp_path, monkeypatch):
    archived = db.execute("SELECT count(*) FROM quality.report").fetchone()[0]
    out = tmp_path / "reports"
    with clock.pinned(datetime(2026, 12, 2, 9, 0, tzinfo=UTC)):
        with pytest.raises(WeekNotOver, match=r"2027-W10 has not ended yet.*last complete week"
                                              r" is 2026-W48"):
            build("2027-W10", out_dir=out)
        # The week under way has not ended either.
        with pytest.raises(WeekNotOver, match="2026-W49 has not ended"):
            build("2026-W49", out_dir=out, pdf=True)
    monkeypatch.setenv("HUB_CLOCK", "2026-12-02T17:00:00+08:00")
    result = CliRunner().invoke(app, ["report", "--week", "2027-W10", "--out", str(out)])
    assert result.exit_code != 0
    assert "2027-W10 has not ended yet" in " ".join(result.output.split())
    assert not out.exists(), "something was written for a week that has not happened"
    assert db.execute("SELECT count(*) FROM quality.report").fetchone()[0] == archived


def _cjk_font_files() -> list[str]:
    report_charts.cjk_font.cache_clear()
    return report_charts.cjk_font_files()


# Run in a fresh interpreter: matplotlib reads its font list once per process.
STALE_CACHE_PROBE = """
import io, json, warnings
from datetime import date, timedelta
from matplotlib import font_manager
import matplotlib.pyplot as plt
stale = not any("CJK" in f.name for f in font_manager.fontManager.ttflist)
from quality import report_charts
font = report_charts.cjk_font()
days = [date(2026, 11, 16) + timedelta(days=i) for i in range(7)]
fig = report_charts.daily_volume_figure(days, {"hotline12345": {days[1]: 5}},
                                        {"video": {days[2]: 900}}, {"hotline12345": "12345热线"})
plt.rcParams["svg.fonttype"] = "none"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
print(json.dumps({"stale": stale, "font": font, "svg": svg.getvalue(),
                  "missing": [str(w.message) for w in caught if "missing from" in str(w.message)]}))
"""


@pytest.mark.skipif(not _cjk_font_files(), reason="no CJK font installed (Debian: fonts-noto-cjk)")
def test_charts_find_a_cjk_font_behind_a_stale_font_cache(tmp_path):
    """matplotlib's font list cached before the CJK font was installed: the charts still
    carry Chinese labels, and the cache is rewritten with the font."""
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                   check=True, timeout=300)
    [cache] = tmp_path.glob("fontlist-*.json")
    fonts = json.loads(cache.read_text(encoding="utf-8"))
    cjk = set(_cjk_font_files())
    fonts["ttflist"] = [f for f in fonts["ttflist"]
                        if f["fname"] not in cjk and f["name"] not in report_charts.CJK_FONTS]
    cache.write_text(json.dumps(fonts), encoding="utf-8")  # as if built before the install

    probe = subprocess.run([sys.executable, "-c", STALE_CACHE_PROBE], env=env, cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(probe.stdout)
    assert got["stale"], "the crafted cache still lists a CJK font"
    assert got["font"] in report_charts.CJK_FONTS
    assert got["missing"] == []
    assert "12345热线" in got["svg"] and "机器告警" in got["svg"]
    assert got["font"] in got["svg"]  # the labels' font (SVG text, not paths)
    rewritten = json.loads(cache.read_text(encoding="utf-8"))
    assert any(f["name"] == got["font"] for f in rewritten["ttflist"])


def test_the_governance_figures_carry_response_and_solution_rates(w47, db):
    row = db.execute("SELECT sum(response_due), sum(responded_on_time), sum(return_called)"
                     " FROM mart.governance_weekly_district WHERE report_week = %s",
                     (WEEK,)).fetchone()
    assert row[0] > 0 and row[1] <= row[0]
    assert isinstance(row[2], Decimal | int)
    gov = section(w47["html"], "governance")
    assert "响应率" in gov and "解决率" in gov and "超期未办结" in gov
