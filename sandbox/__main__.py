"""The development tools' command line: `python -m sandbox demo` (what `make demo` runs).

Kept out of the `hub` command: the product never imports the simulators.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.console import console
from sandbox.demo import run_demo

app = typer.Typer(help="Development tools of the governance data hub: simulators and the demo.",
                  no_args_is_help=True)


@app.callback()
def _tools() -> None:
    """Development tools of the governance data hub: simulators and the demo."""


@app.command()
def demo(
    scale: Annotated[float, typer.Option(
        help="simulated city size: 1 = all of 盘锦 (1.4 M residents, ~1,000 orders and "
             "~20,000 alarms a day); the default 0.05 runs in a few minutes")] = 0.05,
    days: Annotated[int, typer.Option(help="days of history the simulators serve")] = 3,
) -> None:
    """Start the simulators, run the real ingest DAGs with Airflow, print a summary."""
    run_demo(scale=scale, days=days, console=console)


if __name__ == "__main__":
    app()
