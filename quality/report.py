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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from psycopg.types.json import Jsonb

from base import clock
from base.masking import FieldKind, field_kind, mask_address, mask_field, mask_text
from base.settings import DEFAULT_DISPLAY_NAMES, load_city, load_sources, settings
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
# A key the hub derived from a keyed hash (resident:<64 hex>, party:<32 hex>), whole or
# with digits of it masked already: people see mart.record_ref's short reference.
_HASH_KEY = re.compile(r"(?<![0-9A-Za-z])(?:[a-z_]+:)?[0-9a-f*]{32,64}(?![0-9A-Za-z*])")
# A value that reads as an address below the street (a road, compound or building and a
# house number), whatever its key is called: masked to the street like an address.
_ADDRESS_LIKE = re.compile(r"(?:路|街|巷|弄|胡同|村|组|小区|社区|大厦|花园|家园|公寓|楼|院)"
                           r"[^，,；;。]*?\d+\s*(?:号|栋|幢|楼|单元|室|层|户)")
# Records keyed by a code people look records up by (grid and component codes, device
# ids): their keys are shown as they are, not read as ID numbers.
CODE_KEYED = frozenset({"grid", "thing", "division"})


class WeekNotOver(ValueError):
    """The week asked for has not ended by the hub's clock: nothing to report yet."""


def payload_excerpt(payload: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A few fields of a quarantined record, safe to show: masked by the hub's policy
    (base.masking), addresses down to the street whatever their key, free text and
    hash-derived keys left out, and an ID number or phone field in which nothing was
    recognised hidden whole."""
    if not payload:
        return []
    shown: list[tuple[str, str]] = []
    for key, value in payload.items():
        if value is None or value == "" or _FREE_TEXT_KEY.search(key):
            continue
        if isinstance(value, str) and _HASH_KEY.fullmatch(value.strip()):
            continue  # the record's key, shown as its reference already
        masked = mask_field(key, value)
        text = masked if isinstance(masked, str) else json.dumps(masked, ensure_ascii=False)
        if field_kind(key) in (FieldKind.ID_NUMBER, FieldKind.PHONE) and "*" not in text:
            text = "*" * min(len(text), 8)
        elif field_kind(key) is None and _ADDRESS_LIKE.search(text):
            text = mask_address(text)
        shown.append((key, text if len(text) <= PAYLOAD_VALUE_CHARS
                      else text[:PAYLOAD_VALUE_CHARS] + "…"))
        if len(shown) >= PAYLOAD_FIELDS_SHOWN:
            break
    return shown


def shown_key(source_id: str, ref: str | None, entity: str | None = None) -> str:
    """A record's key as the report shows it: a hash-derived key as its short reference
    (mart.record_ref), a code as it is, anything else masked (a platform keying people
    by their ID number)."""
    if ref and ref != source_id:
        return ref
    return source_id if entity in CODE_KEYED else mask_text(source_id)


def shown_reason(reason: str | None, source_id: str, ref: str | None) -> str:
    """A rule's reason as the report shows it: the record's hash-derived key as its
    reference, any other such key left out, ID numbers and phones masked."""
    text = reason or ""
    if ref and ref != source_id:
        for form in {source_id, mask_text(source_id)}:
            text = text.replace(form, ref)
    return mask_text(_HASH_KEY.sub("（散列键）", text))


def platform_names(sources: Iterable[str], connectors: Mapping[str, str],
                   config: Path | str | None = None) -> dict[str, str]:
    """The name people know each platform by: the sources file's `display_name`, else
    the usual name of its connector (ops.run says which), else its source name; two
    platforms of one name are told apart by their source names."""
    try:
        configured = load_sources(config).sources
    except (OSError, ValueError) as exc:  # the report still names what it can
        log.info("platform names without the sources file: %s", exc)
        configured = {}
    names = {s: configured[s].label if s in configured
             else DEFAULT_DISPLAY_NAMES.get(connectors.get(s, ""), s) for s in sources}
    twice = {n for n, k in Counter(names.values()).items() if k > 1}
    return {s: f"{n}（{s}）" if n in twice and n != s else n for s, n in names.items()}


@dataclass(frozen=True)
class BuiltReport:
    week: str
    report_id: int
    html_path: Path
    pdf_path: Path | None


def build_report(week: str | None = None, *, pdf: bool = False, out_dir: Path | None = None,
                 timezone: str | None = None, config: Path | str | None = None,
                 partial: bool = False) -> Path:
    """Write the quality report of an ISO week (default: last week), archive it, return the HTML path.

    The week, its days and the times shown are the city's local ones: `timezone`
    (default: the sources file's city.timezone). With `pdf=True` the PDF is written next
    to it (same name, .pdf) and archived too; it needs Chromium and fails with a clear
    message without it.
    """
    return build(week, pdf=pdf, out_dir=out_dir, timezone=timezone, config=config,
                 partial=partial).html_path


def build(week: str | None = None, *, pdf: bool = False, out_dir: Path | None = None,
          now: datetime | None = None, timezone: str | None = None,
          config: Path | str | None = None, partial: bool = False) -> BuiltReport:
    """`build_report` with everything it did: the archive row and both paths.

    `config`: the sources file the platforms' display names and the report's settings
    come from (default: HUB_SOURCES_FILE, else ./sources.yaml). A week that has not
    ended by the hub's clock (`now`, default base.clock) is refused with `WeekNotOver`
    before anything is read, written or archived; `partial=True` lets the week under
    way through (the page says it is not over: the demo's simulated days are this
    week's), never a week that has not begun."""
    generated_at = now or clock.now()
    the_week = Week.parse(week, timezone) if week else Week.last_complete(generated_at, timezone)
    refuse_unfinished(the_week, generated_at, partial=partial)
    chromium = find_chromium() if pdf else None
    if pdf and chromium is None:
        raise RuntimeError(
            "--pdf needs headless Chromium, and none was found on PATH (looked for "
            f"{', '.join(CHROMIUM_NAMES)}); install it (Debian: apt-get install chromium) "
            "or leave out --pdf for the HTML report")
    require_current()  # reading never migrates: `hub migrate` is an explicit step
    with connect(Role.LOADER, autocommit=True) as conn:
        # Fresh statistics: just after a load (or on a new warehouse) the planner would
        # take the event table for empty and join the 45,000 division codes row by row.
        conn.execute("ANALYZE core.event, core.division")
    with connect(Role.LOADER) as conn:
        data = collect(conn, the_week, generated_at)
    html = render(data, generated_at, config)

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


def refuse_unfinished(week: Week, now: datetime, *, partial: bool = False) -> None:
    """Raise `WeekNotOver` unless `week` has ended by `now` (with `partial`: has begun)."""
    if week.end <= now or (partial and week.start <= now):
        return
    zone = week.zone
    raise WeekNotOver(
        f"the week {week} has not ended yet: it ends {week.end:%Y-%m-%d %H:%M} "
        f"({zone_name(week.timezone)}) and the hub's clock says "
        f"{now.astimezone(zone):%Y-%m-%d %H:%M}; the last complete week is "
        f"{Week.last_complete(now, week.timezone)} (leave out --week for it)")


def summary(data: ReportData) -> dict[str, Any]:
    """Headline numbers kept with the archived report, for trends across weeks."""
    return {
        "scores": {s: {d: c["score"] for d, c in dims.items()} for s, dims in data.scores.items()},
        "failed_runs": len(data.bad_runs),
        "quarantine_open": sum(int(r["open_at_end"]) for r in data.quarantine),
        "unmapped_events": sum(int(r["events"]) for r in data.unmapped),
        "unknown_code_events": sum(int(r["events"]) for r in data.unknown_codes),
        "timezone": data.week.timezone,
        "partial": data.as_of < data.week.end,
        "events": {s: sum(d.values()) for s, d in data.daily_volume.items()},
        "machine_alarms": {s: sum(d.values()) for s, d in data.daily_alarms.items()},
        "assessment": {r["handling_org"]: _number(r["assessment_score"])
                       for r in data.assessment.rows},
    }


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


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


def _points(value: object) -> str:
    """A change of a share as signed percentage points: ▼ 3.2."""
    if value is None:
        return "—"
    points = float(value) * 100  # type: ignore[arg-type]
    return "持平" if abs(points) < 0.05 else f"{'▲' if points > 0 else '▼'} {abs(points):.1f}"


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
    env.filters.update(pct=_pct, delta=_delta, points=_points, hours=_hours,
                       when=_when_in(zone), grade=_grade, mask=mask_text, payload=payload_excerpt,
                       spark=report_charts.sparkline)
    return env


def _settings_note(data: ReportData, config: Path | str | None) -> str | None:
    """What to do when the sources file's limits are not what the warehouse judges by."""
    try:
        city = load_city(config)
    except (OSError, ValueError):
        return None
    wanted = (city.response_limits.urgent_hours, city.response_limits.normal_hours,
              city.report.min_ratings)
    recorded = (data.city.response_limit_urgent_h, data.city.response_limit_normal_h,
                data.city.min_ratings)
    if wanted == recorded:
        return None
    return (f"数据源文件中的响应时限或小样本阈值（{wanted[0]:g}/{wanted[1]:g} 小时，{wanted[2]} 件）"
            f"与数据仓库记录的（{recorded[0]:g}/{recorded[1]:g} 小时，{recorded[2]} 件）不同，"
            "本报告按后者计算；执行 hub migrate 后重新生成即可。")


def render(data: ReportData, generated_at: datetime, config: Path | str | None = None) -> str:
    names = platform_names(sorted(set(data.sources) | set(data.scores) | set(data.daily_volume)
                                  | set(data.daily_alarms)), data.connectors, config)
    min_count = data.city.min_ratings
    charts = report_charts.Charts(
        daily_volume_png=report_charts.daily_volume(data.week.days, data.daily_volume,
                                                    data.daily_alarms, names),
        district_rates_png=report_charts.district_rates(data.districts, min_count),
        cjk_font=report_charts.cjk_font(),
    )
    for rule in data.top_rules:
        for e in rule.get("examples", []):
            e["shown_id"] = shown_key(e["source_id"], e.get("ref"), rule.get("entity"))
            e["shown_reason"] = shown_reason(e["reason"], e["source_id"], e.get("ref"))
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
        "not_reconciled": [names.get(r["source_system"], r["source_system"])
                           for r in data.reconciliation if not r["reconciles"]],
        "events": sum(sum(d.values()) for d in data.daily_volume.values()),
        "alarms": sum(sum(d.values()) for d in data.daily_alarms.values()),
    }
    return _environment(data.week.zone).get_template("report.html.j2").render(
        data=data, week=data.week, zone_name=zone_name(data.week.timezone),
        generated_at=generated_at, charts=charts,
        dimensions=DIMENSIONS, dimension_notes=DIMENSION_NOTES, headline=headline,
        sources=sorted(set(data.sources) | set(data.scores), key=lambda s: (names[s], s)),
        names=names, min_count=min_count, settings_note=_settings_note(data, config),
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
