"""The command centre's weekly quality report: one self-contained HTML file (and PDF).

`build_report("2026-W47")` reads the week from the warehouse (quality.report_data),
draws the charts (quality.report_charts), renders templates/report.html.j2 with
inline CSS and base64 images, writes the file, and archives it in
`quality.report`. With `pdf=True` headless Chromium prints the same page to PDF.

Personal data never reaches the page in clear: reasons and quarantined payloads are
masked when they are recorded (the clear payload is sealed), and everything shown
from the warehouse passes through the hub's masking policy (base.masking) again all
the same: ID numbers and phone numbers anywhere in a text, and payload fields by
what their key names (a person's name to the surname, an address to the street).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from psycopg.types.json import Jsonb

from base import clock
from base.masking import FieldKind, field_kind, mask_field, mask_text
from base.settings import settings
from quality import report_charts
from quality.report_data import DIMENSIONS, ReportData, Week, collect
from warehouse.db import Role, connect
from warehouse.migrate import require_current

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 120
PAYLOAD_FIELDS_SHOWN = 6
PAYLOAD_VALUE_CHARS = 40
# Dimensions as the report shows them: the standard terms in the standard order.
DIMENSION_NOTES = {
    "完整性": "必填项是否齐全",
    "准确性": "时间、坐标等是否真实可信",
    "有效性": "编码、证件号、电话是否符合标准",
    "一致性": "分类/状态是否映射、流程时间是否自洽",
    "及时性": "数据是否按时到达（暂无逐行规则，见“数据时效”）",
    "唯一性": "同一记录是否重复",
}
# How the page names a time zone it knows by name; any other is shown by its IANA name.
ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Urumqi": "乌鲁木齐时间", "UTC": "协调世界时（UTC）"}

# Free text (content, summary) can name anyone and anywhere: left out of examples.
_FREE_TEXT_KEY = re.compile(r"content|description|summary|title|remark|memo|内容|描述|摘要|备注",
                            re.IGNORECASE)


def payload_excerpt(payload: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A few fields of a quarantined record, safe to show: masked by the hub's policy
    (base.masking), free text left out, and an ID number or phone field in which
    nothing was recognised hidden whole."""
    if not payload:
        return []
    shown: list[tuple[str, str]] = []
    for key, value in payload.items():
        if value is None or value == "" or _FREE_TEXT_KEY.search(key):
            continue
        masked = mask_field(key, value)
        text = masked if isinstance(masked, str) else json.dumps(masked, ensure_ascii=False)
        if field_kind(key) in (FieldKind.ID_NUMBER, FieldKind.PHONE) and "*" not in text:
            text = "*" * min(len(text), 8)
        shown.append((key, text if len(text) <= PAYLOAD_VALUE_CHARS
                      else text[:PAYLOAD_VALUE_CHARS] + "…"))
        if len(shown) >= PAYLOAD_FIELDS_SHOWN:
            break
    return shown


@dataclass(frozen=True)
class BuiltReport:
    week: str
    report_id: int
    html_path: Path
    pdf_path: Path | None


def build_report(week: str | None = None, *, pdf: bool = False, out_dir: Path | None = None,
                 timezone: str | None = None) -> Path:
    """Write the quality report of an ISO week (default: last week), archive it, return the HTML path.

    The week, its days and the times shown are the city's local ones: `timezone`
    (default: the sources file's city.timezone). With `pdf=True` the PDF is written next
    to it (same name, .pdf) and archived too; it needs Chromium and fails with a clear
    message without it.
    """
    return build(week, pdf=pdf, out_dir=out_dir, timezone=timezone).html_path


def build(week: str | None = None, *, pdf: bool = False, out_dir: Path | None = None,
          now: datetime | None = None, timezone: str | None = None) -> BuiltReport:
    """`build_report` with everything it did: the archive row and both paths."""
    chromium = find_chromium() if pdf else None
    if pdf and chromium is None:
        raise RuntimeError(
            "--pdf needs headless Chromium, and none was found on PATH (looked for "
            f"{', '.join(CHROMIUM_NAMES)}); install it (Debian: apt-get install chromium) "
            "or leave out --pdf for the HTML report")
    the_week = Week.parse(week, timezone) if week else Week.last_complete(now, timezone)
    generated_at = now or clock.now()
    require_current()  # reading never migrates: `hub migrate` is an explicit step
    with connect(Role.LOADER, autocommit=True) as conn:
        # Fresh statistics: just after a load (or on a new warehouse) the planner would
        # take the event table for empty and join the 45,000 division codes row by row.
        conn.execute("ANALYZE core.event, core.division")
    with connect(Role.LOADER) as conn:
        data = collect(conn, the_week, generated_at)
    html = render(data, generated_at)

    folder = Path(out_dir) if out_dir else settings().home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"quality-report-{the_week}.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path: Path | None = None
    pdf_bytes: bytes | None = None
    if chromium is not None:
        pdf_path = html_path.with_suffix(".pdf")
        print_pdf(chromium, html_path, pdf_path)
        pdf_bytes = pdf_path.read_bytes()

    with connect(Role.LOADER) as conn:
        row = conn.execute(
            "INSERT INTO quality.report (week, generated_at, html, pdf, summary)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING report_id",
            (str(the_week), generated_at, html, pdf_bytes, Jsonb(summary(data))),
        ).fetchone()
    assert row is not None
    log.info("quality report %s: %s (archived as quality.report %s)", the_week, html_path, row[0])
    return BuiltReport(str(the_week), int(row[0]), html_path, pdf_path)


def summary(data: ReportData) -> dict[str, Any]:
    """Headline numbers kept with the archived report, for trends across weeks."""
    return {
        "scores": {s: {d: c["score"] for d, c in dims.items()} for s, dims in data.scores.items()},
        "failed_runs": len(data.bad_runs),
        "quarantine_open": sum(int(r["open_at_end"]) for r in data.quarantine),
        "unmapped_events": sum(int(r["events"]) for r in data.unmapped),
        "unknown_code_events": sum(int(r["events"]) for r in data.unknown_codes),
        "timezone": data.week.timezone,
    }


# ---------------------------------------------------------------- rendering


def _pct(value: object, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.{digits}f}%"  # type: ignore[arg-type]


def _delta(value: object) -> str:
    if value is None:
        return ""
    points = float(value) * 100  # type: ignore[arg-type]
    if abs(points) < 0.05:
        return "持平"
    return f"{'▲' if points > 0 else '▼'} {abs(points):.1f} 个百分点"


def _hours(value: object) -> str:
    if value is None:
        return "—"
    h = float(value)  # type: ignore[arg-type]
    return f"{h:.1f} 小时" if h < 48 else f"{h / 24:.1f} 天"


def _when_in(zone: ZoneInfo) -> Callable[[object], str]:
    """The `when` filter: an instant as the city's local time."""

    def when(value: object) -> str:
        if not isinstance(value, datetime):
            return "—"
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return when


def zone_name(timezone: str) -> str:
    """The time zone as the page names it: 北京时间 for Asia/Shanghai."""
    return ZONE_NAMES.get(timezone, f"{timezone} 时间")


def _grade(score: object) -> str:
    if score is None:
        return "na"
    s = float(score)  # type: ignore[arg-type]
    return "good" if s >= 0.99 else "fair" if s >= 0.95 else "poor"


def _environment(zone: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, delta=_delta, hours=_hours, when=_when_in(zone), grade=_grade,
                       mask=mask_text, payload=payload_excerpt)
    return env


def render(data: ReportData, generated_at: datetime) -> str:
    charts = report_charts.Charts(
        daily_volume_png=report_charts.daily_volume(data.week.days, data.daily_volume),
        district_rates_png=report_charts.district_rates(data.districts),
        cjk_font=report_charts.cjk_font(),
    )
    overall = [c for dims in data.scores.values() for c in dims.values() if c["evaluated"]]
    evaluated = sum(int(c["evaluated"] or 0) for c in overall)
    failed = sum(int(c["failed"] or 0) for c in overall)
    headline = {
        "score": 1 - failed / evaluated if evaluated else None,
        "failed_runs": len(data.bad_runs),
        "quarantine_new": sum(int(r["new"]) for r in data.quarantine),
        "quarantine_open": sum(int(r["open_at_end"]) for r in data.quarantine),
        "unmapped": sum(int(r["events"]) for r in data.unmapped),
        "unknown_codes": sum(int(r["events"]) for r in data.unknown_codes),
        "not_reconciled": [r["source_system"] for r in data.reconciliation if not r["reconciles"]],
        "events": sum(sum(d.values()) for d in data.daily_volume.values()),
    }
    return _environment(data.week.zone).get_template("report.html.j2").render(
        data=data, week=data.week, zone_name=zone_name(data.week.timezone),
        generated_at=generated_at, charts=charts,
        dimensions=DIMENSIONS, dimension_notes=DIMENSION_NOTES, headline=headline,
        sources=sorted(set(data.sources) | set(data.scores)),
    )


# ---------------------------------------------------------------- PDF


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def chromium_command(chromium: str, profile: Path) -> list[str]:
    """Headless Chromium that phones nowhere and keeps its profile in `profile`."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


def print_pdf(chromium: str, html_path: Path, pdf_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="hub-chromium-") as profile:
        cmd = chromium_command(chromium, Path(profile)) + [
            "--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    if proc.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise RuntimeError(f"Chromium could not print {html_path} to PDF (exit {proc.returncode}):\n"
                           + proc.stderr[-2000:])
