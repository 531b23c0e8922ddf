"""The terminal the `hub` commands print to, and their tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)


def print_table(columns: list[str], rows: Sequence[Sequence[object]],
                title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)
    console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
