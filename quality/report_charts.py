"""The weekly report's charts: matplotlib figures embedded as base64 PNG, and sparklines
as small inline SVG.

Chinese labels need a CJK font. The first installed one of `CJK_FONTS` is used
(Debian: `fonts-noto-cjk`). matplotlib keeps its list of fonts in a cache
(`~/.cache/matplotlib/fontlist-*.json` or `$MPLCONFIGDIR`) and does not look again
when a font is installed later: when the list has no CJK font, the CJK font files the
system knows (fc-list, the usual folders) are added to it, and failing that the whole
list is built again from the system's fonts (which also writes a fresh cache). Only
when even that finds none do the charts fall back to matplotlib's default font with
ASCII labels, and the page says so (`Charts.cjk_font is None`): then installing a CJK
font and generating the report again is the whole remedy.
"""

from __future__ import annotations

import base64
import glob
import io
import logging
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers

import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.patches import Patch

log = logging.getLogger(__name__)

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "Source Han Sans SC",
             "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "Droid Sans Fallback", "SimHei", "Microsoft YaHei", "PingFang SC")
# Where CJK fonts are installed, when fc-list is not there to say (Debian, Red Hat,
# macOS, Windows); files only, never fetched.
CJK_FONT_GLOBS = (
    "/usr/share/fonts/**/Noto*CJK*", "/usr/share/fonts/**/SourceHan*",
    "/usr/share/fonts/**/wqy*", "/usr/share/fonts/**/DroidSansFallback*",
    "/usr/local/share/fonts/**/*CJK*", str(Path.home() / ".local/share/fonts/**/*CJK*"),
    "/System/Library/Fonts/PingFang.ttc", "/Library/Fonts/*CJK*",
    "C:/Windows/Fonts/msyh*.tt*", "C:/Windows/Fonts/simhei.ttf",
)
FONT_SUFFIXES = (".ttf", ".ttc", ".otf", ".otc")
FC_LIST_TIMEOUT_S = 20
PALETTE = ("#1f5fa8", "#e07b39", "#3a9e5c", "#c23b3b", "#7a5cb8", "#8c6d31", "#2aa5b5", "#d45fa0")
MACHINE_COLOR = "#8a8f98"
SMALL_COLOR = "#d5d8dd"  # a rate from too few events
WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")


# ---------------------------------------------------------------- the CJK font


def _known_cjk_font() -> str | None:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def cjk_font_files() -> list[str]:
    """Font files of the system that hold Chinese: what fc-list says, and the usual places."""
    found: list[str] = []
    fc_list = shutil.which("fc-list")
    if fc_list:
        try:
            out = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True,
                                 timeout=FC_LIST_TIMEOUT_S).stdout
            found += [line.split(":", 1)[0].strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    for pattern in CJK_FONT_GLOBS:
        found += glob.glob(pattern, recursive=True)
    return sorted({f for f in found if f.lower().endswith(FONT_SUFFIXES) and Path(f).is_file()})


def _add_fonts(paths: Iterable[str]) -> None:
    manager = font_manager.fontManager
    known = {f.fname for f in manager.ttflist}
    for path in paths:
        if path in known:
            continue
        try:
            manager.addfont(path)
        except (OSError, RuntimeError, ValueError) as exc:  # a broken or unreadable file
            log.debug("font %s not added: %s", path, exc)


def _rebuild_font_list() -> None:
    """matplotlib's font list built again from the system's fonts, as on a first run
    (and written to its cache for the next process)."""
    fresh = font_manager._load_fontmanager(try_read_cache=False)  # type: ignore[attr-defined]
    manager = font_manager.fontManager
    manager.ttflist[:] = fresh.ttflist
    manager.afmlist[:] = fresh.afmlist
    manager._findfont_cached.cache_clear()  # type: ignore[attr-defined]


def _save_font_list() -> None:
    """Keep the fonts found in matplotlib's cache, so the next process finds them at once."""
    path = Path(matplotlib.get_cachedir(), f"fontlist-v{font_manager.FontManager.__version__}.json")
    try:
        font_manager.json_dump(font_manager.fontManager, path)
    except OSError as exc:
        log.debug("matplotlib's font cache %s not rewritten: %s", path, exc)


@cache
def cjk_font() -> str | None:
    """Name of an installed font that has Chinese glyphs, or None when the system has none.

    A font list cached before the font was installed does not hide it: the CJK font
    files are added to the list, else the list is rebuilt."""
    name = _known_cjk_font()
    if name:
        return name
    _add_fonts(cjk_font_files())
    name = _known_cjk_font()
    if name is None:
        _rebuild_font_list()
        name = _known_cjk_font()
    if name:
        log.info("matplotlib's font list lacked the CJK font %s (a cache from before it was"
                 " installed): found it and rewrote the cache", name)
        _save_font_list()
    return name


# ---------------------------------------------------------------- drawing


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: plt.Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)


def _label(zh: str, en: str) -> str:
    return zh if cjk_font() else en


def _fonts() -> Any:  # rc settings (matplotlib types them as a dict of known keys)
    font = cjk_font()
    return {"font.family": [font] if font else ["DejaVu Sans"], "axes.unicode_minus": False}


@dataclass(frozen=True)
class Charts:
    daily_volume_png: str | None
    district_rates_png: str | None
    cjk_font: str | None


def daily_volume(days: Sequence[date], counts: Mapping[str, Mapping[date, int]],
                 alarms: Mapping[str, Mapping[date, int]] | None = None,
                 names: Mapping[str, str] | None = None) -> str | None:
    """Events per platform per day, as small multiples: one panel per platform with its
    own scale, people's reports first, machine alarms (grey) after."""
    fig = daily_volume_figure(days, counts, alarms, names)
    return _png(fig) if fig else None


def daily_volume_figure(days: Sequence[date], counts: Mapping[str, Mapping[date, int]],
                        alarms: Mapping[str, Mapping[date, int]] | None = None,
                        names: Mapping[str, str] | None = None) -> Figure | None:
    names = names or {}
    font = cjk_font()

    def title(source: str, machine: bool) -> str:
        name = names.get(source, source) if font else source
        return f"{name} · {_label('机器告警', 'machine alarms')}" if machine else name

    panels = [(title(s, False), per_day, PALETTE[i % len(PALETTE)])
              for i, (s, per_day) in enumerate(sorted(
                  counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))]
    panels += [(title(s, True), per_day, MACHINE_COLOR)
               for s, per_day in sorted((alarms or {}).items())]
    if not panels:
        return None
    with plt.rc_context(_fonts()):
        cols = min(3, len(panels))
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.4, 2.2 * rows + 0.3),
                                 squeeze=False)
        labels = [f"{d:%d}\n" + (WEEKDAYS[d.weekday()] if font else f"{d:%a}") for d in days]
        for ax, (name, per_day, color) in zip(axes.flat, panels, strict=False):
            values = [per_day.get(day, 0) for day in days]
            ax.bar(range(len(days)), values, color=color, width=0.7)
            ax.set_title(f"{name}（{sum(values)}）" if font else f"{name} ({sum(values)})",
                         fontsize=9, loc="left")
            ax.set_xticks(range(len(days)), labels, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_ylim(0, max(max(values), 1) * 1.15)
            _style(ax)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.supylabel(_label("事件数（按上报日期，各图刻度不同）",
                             "events by report date (own scale per panel)"), fontsize=8)
        fig.tight_layout()
        return fig


# The district chart's rates: column of the rate, of its denominator, and its label.
RATES = (("response_rate", "response_due", "响应率", "responded in time / due"),
         ("closure_rate", "accepted", "办结率", "closed / accepted"),
         ("on_time_rate", "closed", "按期办结率", "on time / closed"),
         ("solution_rate", "return_called", "解决率", "solved / called back"),
         ("satisfaction_rate", "evaluated", "满意率", "satisfied / evaluated"))


def district_rates(rows: Sequence[Mapping[str, Any]], min_count: int = 10) -> str | None:
    fig = district_rates_figure(rows, min_count)
    return _png(fig) if fig else None


def district_rates_figure(rows: Sequence[Mapping[str, Any]], min_count: int = 10
                          ) -> Figure | None:
    """The rates per district as grouped horizontal bars, each labelled with its value and
    its number of events (n); a rate from fewer than `min_count` events is greyed out."""
    rows = [r for r in rows if r.get("accepted")]
    if not rows:
        return None
    font = cjk_font()
    series = [(key, n_key, _label(zh, en)) for key, n_key, zh, en in RATES
              if any(r.get(key) is not None for r in rows)]
    with plt.rc_context(_fonts()):
        fig, ax = plt.subplots(figsize=(8.6, 0.22 * len(series) * len(rows) + 1.4))
        names = [str(r.get("district_name") or r.get("division_code") or "?") if font
                 else str(r.get("division_code") or "?") for r in rows]
        height = 0.84 / len(series)
        for i, (key, n_key, _) in enumerate(series):
            ys = [y + (i - (len(series) - 1) / 2) * height for y in range(len(rows))]
            values = [float(r[key]) * 100 if r.get(key) is not None else 0.0 for r in rows]
            counts = [int(r.get(n_key) or 0) for r in rows]
            colors = [PALETTE[i] if n >= min_count else SMALL_COLOR for n in counts]
            bars = ax.barh(ys, values, height=height * 0.92, color=colors)
            ax.bar_label(bars, labels=[f"{v:.0f}% (n={n})" if r.get(key) is not None else ""
                                       for v, n, r in zip(values, counts, rows, strict=True)],
                         fontsize=6.5, padding=2, color="#444444")
        ax.set_yticks(range(len(rows)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 122)  # room for the value labels
        ax.set_xticks(range(0, 101, 20))
        ax.set_xlabel("%")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        legend = [Patch(color=PALETTE[i], label=label) for i, (_, _, label) in enumerate(series)]
        legend.append(Patch(color=SMALL_COLOR, label=_label(f"少于 {min_count} 件",
                                                            f"< {min_count} events")))
        ax.legend(handles=legend, frameon=False, fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
        return fig


def sparkline(values: Sequence[float | int | None], *, width: int = 120, height: int = 24,
              color: str = PALETTE[0]) -> str:
    """A small inline SVG line of `values` (None = a gap), the last point marked; "" when
    there is nothing to draw."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = (width - 6) / max(len(values) - 1, 1)
    points = [(3 + i * step, height - 3 - (float(v) - low) / span * (height - 6))
              for i, v in enumerate(values) if v is not None]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
            f' role="img" aria-label="{escape(" ".join(f"{v:g}" for v in known))}">'
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>'
            f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.2" fill="{color}"/></svg>')
