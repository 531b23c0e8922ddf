"""The terminal the `hub` commands print to, and their tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

# Values up to this many characters are kept on one line.
SHORT = 14
console = Console()
err = Console(stderr=True)


def print_table(columns: list[str], rows: Sequence[Sequence[object]],
                title: str | None = None) -> None:
    # Light borders: tables fit an 80-column terminal. Numbers and other short values
    # never wrap (a count split over two lines reads as two counts); long text folds.
    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False, collapse_padding=True)
    for i, c in enumerate(columns):
        values = [r[i] for r in rows if r[i] is not None]
        numeric = bool(values) and all(_is_number(v) for v in values)
        short = all(len(str(v)) <= SHORT for v in values)
        table.add_column(c, overflow="fold", no_wrap=numeric or short,
                         justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)
    console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) or (
        isinstance(value, str) and value.replace(",", "").replace(".", "", 1).isdigit())
