"""The development tools' command line: `python -m sandbox demo` (what `make demo` runs),
`python -m sandbox serve` (the simulators kept running for a real Airflow),
`python -m sandbox scaleout` (what `make scaleout` runs: the DAGs on Celery workers) and
`python -m sandbox city` (what `make bench-city` runs: the whole city, timed).

Kept out of the `hub` command: the product never imports the simulators.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.console import console
from sandbox.city_bench import run_city
from sandbox.city_bench import summarise as summarise_city
from sandbox.demo import run_demo
from sandbox.scaleout import (
    DEFAULT_DAYS,
    DEFAULT_SCALE,
    ScaleoutError,
    ScaleoutSkipped,
    run_scaleout,
    summarise,
)
from sandbox.serve import DEFAULT_ADVANCE_EVERY, DEFAULT_AIRFLOW_PORT
from sandbox.serve import serve as run_serve

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


@app.command()
def serve(
    scale: Annotated[float, typer.Option(help="simulated city size (1 = all of 盘锦)")] = 0.05,
    days: Annotated[int, typer.Option(help="days of history the simulators start with")] = 3,
    advance_every: Annotated[float, typer.Option(
        help="seconds between the platforms moving on (orders handled, a new day's files, "
             "new alarms); 0 = never")] = DEFAULT_ADVANCE_EVERY,
    airflow_port: Annotated[int, typer.Option(
        help="the port Airflow's API server (UI, REST API, execution API) is to listen on, "
             "written into the environment")] = DEFAULT_AIRFLOW_PORT,
) -> None:
    """Keep the simulators running for a real scheduler until Ctrl-C; print (and write to
    .hub/serve.env) the environment `airflow standalone` needs to run the DAGs against them."""
    run_serve(scale=scale, days=days, advance_every=advance_every, airflow_port=airflow_port,
              console=console)


@app.command()
def scaleout(
    scale: Annotated[float, typer.Option(help="simulated city size (1 = all of 盘锦)")]
    = DEFAULT_SCALE,
    days: Annotated[int, typer.Option(help="days of history the simulators serve")]
    = DEFAULT_DAYS,
    keep: Annotated[bool, typer.Option(
        help="keep the databases (Airflow's metadata, both warehouses) to look into")] = False,
) -> None:
    """Run every ingest DAG on Airflow's CeleryExecutor with two workers (the machine's Redis
    and PostgreSQL), then with one; show the tasks spread, the per-source lock held and the
    warehouses equal. Skips, saying why, when Redis, PostgreSQL or the provider is missing."""
    try:
        result = run_scaleout(scale=scale, days=days, keep=keep, console=console)
    except ScaleoutSkipped as skipped:
        console.print(f"[yellow]scale-out run skipped: {skipped}[/yellow]")
        return
    except ScaleoutError as failed:
        console.print(f"[red]scale-out run failed: {failed}[/red]")
        raise typer.Exit(1) from None
    summarise(result, console)
    if result.problems():
        raise typer.Exit(1)


@app.command()
def city(
    scale: Annotated[float, typer.Option(help="simulated city size (1 = all of 盘锦)")] = 1.0,
    days: Annotated[int, typer.Option(help="days of history the first ingest reads")] = 3,
    keep: Annotated[bool, typer.Option(help="keep the run's home folder (its warehouse)")]
    = False,
) -> None:
    """Generate the whole city, run every source's first ingest, then a day later every
    source's daily run, in a warehouse of its own; print the times and peak memory."""
    summarise_city(run_city(scale=scale, days=days, keep=keep, console=console), console)


if __name__ == "__main__":
    app()
