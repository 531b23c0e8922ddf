"""`python -m sandbox serve`: the simulated platforms, kept running for a real scheduler.

Starts a simulator for every enabled source of the sources file (as `make demo`
does), writes a copy of the sources file pointed at them, and an environment file
holding everything `airflow standalone` needs to run the hub's DAGs against them:
PATH with the venv's bin, AIRFLOW_HOME, the DAG folder, the API port and the
execution API's URL on it, HUB_SOURCES_FILE and the simulators' secrets. Then the
platforms move on in time (`advance()` every `--advance-every` seconds: orders get
handled, a new day's files are dropped, alarms are published) until Ctrl-C, which
stops them.

The README's "Scheduling with Airflow" section uses it word for word.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from base.settings import PROJECT_ROOT, SourceConfig, load_sources, settings
from hub.dag_factory import ingest_dag_id, pool_command, pool_definitions
from sandbox.city import City
from sandbox.demo import write_simulated_sources
from sandbox.platform import STARTERS, DemoPlatform, start

DEFAULT_AIRFLOW_PORT = 28080
DEFAULT_ADVANCE_EVERY = 300.0


@dataclass(frozen=True)
class ServePaths:
    """Where `serve` writes, under the hub's state folder (HUB_HOME, default .hub/)."""

    home: Path

    @property
    def sources_file(self) -> Path:
        return self.home / "serve-sources.yaml"

    @property
    def env_file(self) -> Path:
        return self.home / "serve.env"

    @property
    def pools_file(self) -> Path:
        return self.home / "serve-pools.json"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow-serve"

    @property
    def workdir(self) -> Path:
        return self.home / "serve"


# Variables whose value extends the shell's own (`$PATH`): written for the shell to expand.
EXTENDED = ("PATH", "PYTHONPATH")


def airflow_env(airflow_home: Path, port: int) -> dict[str, str]:
    """What `airflow standalone` needs to serve the project's DAGs on `port`."""
    return {
        # standalone starts `airflow scheduler`, `airflow api-server`… by name.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}$PATH",
        # The tasks import the hub from the project folder, installed or not.
        "PYTHONPATH": f"{PROJECT_ROOT}${{PYTHONPATH:+{os.pathsep}$PYTHONPATH}}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",  # this machine only
        "AIRFLOW__API__PORT": str(port),
        # Workers reach the API server here; the default says port 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }


def env_lines(env: Mapping[str, str]) -> list[str]:
    """`export` lines a shell can `source` (PATH and PYTHONPATH expanded by the shell)."""
    lines = []
    for key, value in env.items():
        quoted = f'"{value}"' if key in EXTENDED else shlex.quote(value)
        lines.append(f"export {key}={quoted}")
    return lines


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Simulated:
    """The simulators of every enabled source, running, and how the DAGs reach them."""

    sources: list[SourceConfig]
    platforms: dict[str, DemoPlatform]
    sources_file: Path
    # HUB_SOURCES_FILE (the copy pointed at the simulators) and the simulators' secrets.
    env: dict[str, str]


@contextmanager
def simulators(paths: ServePaths, *, scale: float, days: int, console: Console,
               header: str) -> Iterator[Simulated]:
    """Start a simulator for every enabled source; write the sources file pointed at them
    (`header` first) and the pools file; stop them on leaving."""
    config_path = settings().sources_file
    config = load_sources(config_path)
    sources: list[SourceConfig] = [s for s in config.sources.values()
                                   if s.enabled and s.connector in STARTERS]
    city = City(config.city.code, scale=scale)
    with ExitStack() as stack:
        platforms: dict[str, DemoPlatform] = {}
        for src in sources:
            with console.status(f"starting the {src.name} simulator"):
                platform = start(src.connector, city, days, paths.workdir / src.name, src.name)
            stack.callback(platform.stop)
            platforms[src.name] = platform
            console.print(f"{src.name} simulator: "
                          + ", ".join(f"{k}={v}" for k, v in platform.settings.items()))
        sources_file = write_simulated_sources(
            config_path, {n: p.settings for n, p in platforms.items()}, paths.sources_file,
            header)
        paths.pools_file.write_text(json.dumps(pool_definitions(sources), indent=2) + "\n",
                                    encoding="utf-8")
        yield Simulated(sources, platforms, sources_file,
                        {"HUB_SOURCES_FILE": str(sources_file),
                         **{k: v for p in platforms.values() for k, v in p.env.items()}})


def serve(*, scale: float, days: int, advance_every: float, airflow_port: int,
          console: Console) -> None:
    """Start the simulators, print and write the environment, advance until Ctrl-C."""
    paths = ServePaths(settings().home)
    if not port_free(airflow_port):
        console.print(f"[yellow]port {airflow_port} is in use: pick another with "
                      "--airflow-port before starting Airflow[/yellow]")

    with simulators(paths, scale=scale, days=days, console=console, header=(
            "# written by `python -m sandbox serve`: the sources file pointed at the"
            " simulators\n")) as simulated:
        sources = simulated.sources
        env = {**airflow_env(paths.airflow_home, airflow_port),
               # The tasks' warehouse and keys: the embedded server under this state folder.
               "HUB_HOME": str(paths.home),
               **simulated.env}
        lines = env_lines(env)
        paths.env_file.write_text(
            "# written by `python -m sandbox serve`; `source` it in the shell that runs Airflow."
            "\n# The simulators' secrets change each time serve starts.\n"
            + "\n".join(lines) + "\n", encoding="utf-8")
        paths.env_file.chmod(0o600)  # the simulators' secrets

        def say(text: str = "") -> None:  # whole lines, to copy: no markup, no wrapping
            console.print(text, markup=False, highlight=False, soft_wrap=True)

        console.rule("the simulators are running")
        say(f"sources file: {simulated.sources_file}")
        say(f"environment (written to {paths.env_file}):")
        for line in lines:
            say(f"  {line}")
        say(f"Airflow's pools, one per source (written to {paths.pools_file}):")
        for src in sources:
            say(f"  {pool_command(src)}")
        first = ingest_dag_id(sources[0].name) if sources else "hub_ingest_<source>"
        say()
        say("In another shell, from the project folder:")
        say(f"  source {paths.env_file}")
        say("  airflow db migrate && airflow pools import \"$HUB_HOME/serve-pools.json\"")
        say("  airflow standalone")
        say(f"UI and REST API on http://127.0.0.1:{airflow_port}; in a third shell (after the"
            f" same `source`): airflow dags unpause {first} && airflow dags trigger {first}")
        if advance_every > 0:
            console.print(f"the platforms move on every {advance_every:g} s; Ctrl-C stops them")
        else:
            console.print("the platforms stand still (--advance-every 0); Ctrl-C stops them")
        _advance_until_interrupted(simulated.platforms, advance_every, console)
    console.print("simulators stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _advance_until_interrupted(platforms: Mapping[str, DemoPlatform], every: float,
                               console: Console) -> None:
    # Ctrl-C, `kill -INT` (which a shell's background job otherwise ignores) and `kill`
    # all stop the simulators the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(every if every > 0 else 3600)
            if every <= 0:
                continue
            for name, platform in platforms.items():
                try:
                    changed = platform.advance()
                except Exception as exc:  # one simulator's hiccup does not stop the others
                    console.print(f"[red]{name}: advancing failed: {type(exc).__name__}: "
                                  f"{exc}[/red]")
                    continue
                console.print(f"{time.strftime('%H:%M:%S')} {name}: {changed} records"
                              " changed on the platform")
    except KeyboardInterrupt:
        console.print("\nstopping the simulators")
