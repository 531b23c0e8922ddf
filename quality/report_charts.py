"""The weekly report's charts: matplotlib figures embedded as base64 PNG.

Chinese labels need a CJK font. The first installed one of `CJK_FONTS` is used
(Debian: `fonts-noto-cjk`); without any, the charts fall back to matplotlib's
default font with ASCII labels, and the page says so (`Charts.cjk_font is None`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers

import matplotlib.pyplot as plt
from matplotlib import font_manager

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "Source Han Sans SC",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "SimHei",
             "Microsoft YaHei", "PingFang SC")
PALETTE = ("#1f5fa8", "#e07b39", "#3a9e5c", "#c23b3b", "#7a5cb8", "#8c6d31", "#2aa5b5", "#d45fa0")


@cache
def cjk_font() -> str | None:
    """Name of an installed font that has Chinese glyphs, or None."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _png(fig: plt.Figure) -> str:
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


@dataclass(frozen=True)
class Charts:
    daily_volume_png: str | None
    district_rates_png: str | None
    cjk_font: str | None


def daily_volume(days: Sequence[date], counts: Mapping[str, Mapping[date, int]]) -> str | None:
    """Events per platform per day of the week, as grouped bars."""
    if not counts:
        return None
    font = cjk_font()
    with plt.rc_context({"font.family": [font] if font else ["DejaVu Sans"],
                         "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8.6, 3.4))
        n = len(counts)
        width = 0.8 / n
        weekdays = ("一", "二", "三", "四", "五", "六", "日")
        for i, (source, per_day) in enumerate(sorted(counts.items())):
            xs = [d + (i - (n - 1) / 2) * width for d in range(len(days))]
            ax.bar(xs, [per_day.get(day, 0) for day in days], width=width * 0.95,
                   label=source, color=PALETTE[i % len(PALETTE)])
        labels = [f"{d:%m-%d}\n" + (f"周{weekdays[d.weekday()]}" if font else f"{d:%a}")
                  for d in days]
        ax.set_xticks(range(len(days)), labels)
        ax.set_ylabel(_label("事件数（按上报日期）", "events (by report date)"))
        _style(ax)
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _png(fig)


def district_rates(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """办结率, 按期办结率 and 满意率 per district, as grouped horizontal bars."""
    rows = [r for r in rows if r.get("accepted")]
    if not rows:
        return None
    font = cjk_font()
    series = (("closure_rate", _label("办结率", "closed / accepted")),
              ("on_time_rate", _label("按期办结率", "on time / closed")),
              ("satisfaction_rate", _label("满意率", "satisfied / evaluated")))
    with plt.rc_context({"font.family": [font] if font else ["DejaVu Sans"],
                         "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8.6, 0.55 * len(rows) + 1.2))
        names = [str(r.get("district_name") or r.get("division_code") or "?") if font
                 else str(r.get("division_code") or "?") for r in rows]
        height = 0.8 / len(series)
        for i, (key, label) in enumerate(series):
            ys = [y + (i - 1) * height for y in range(len(rows))]
            values = [float(r[key]) * 100 if r.get(key) is not None else 0.0 for r in rows]
            bars = ax.barh(ys, values, height=height * 0.95, label=label, color=PALETTE[i])
            ax.bar_label(bars, labels=[f"{v:.0f}%" if r.get(key) is not None else ""
                                       for v, r in zip(values, rows, strict=True)],
                         fontsize=7, padding=2, color="#444444")
        ax.set_yticks(range(len(rows)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 108)  # room for the value labels
        ax.set_xlabel("%")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _png(fig)
