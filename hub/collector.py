"""The durable MQTT alarm collector and its landing zone in the warehouse.

`hub collect <source>` (or `python -m hub.collector <source> [sources file]`) runs
the protocol side (connectors.mqtt_collector) with a landing that inserts each
alarm into `raw.video_alarm` in its own transaction (`ON CONFLICT DO NOTHING`: a
redelivered alarm is a no-op). The message is acknowledged to the broker only
after that insert committed, so a crash before the commit means the broker
delivers it again, never that it is lost.

The ingest reads the landing back (`LandingReader`, handed to the connector in a
`LandingContext` by hub.pipeline): both ends of `raw.video_alarm` live here.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from base.settings import load_sources, resolve_secrets
from connectors.mqtt_collector import (
    AlarmCollector,
    CollectorStats,
    LandedAlarm,
    LandingFailed,
    MqttSettings,
)
from connectors.registry import connector_class
from warehouse.db import Role, connect
from warehouse.migrate import require_current

log = logging.getLogger(__name__)

LANDING_SQL = (
    "INSERT INTO raw.video_alarm (source_system, alarm_id, device_id, payload)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (source_system, alarm_id) DO NOTHING"
)
# landing_id is handed out when an insert starts, so a reader could see id 10
# committed while id 9 is still in flight and move its cursor past 9. The collector
# commits one alarm at a time within milliseconds; leaving the last `settle` seconds
# of arrivals for the next run closes that window.
LANDED_SQL = (
    "SELECT landing_id, alarm_id, device_id, payload FROM raw.video_alarm"
    " WHERE source_system = %s AND landing_id > %s"
    " AND received_at <= now() - make_interval(secs => %s)"
    " ORDER BY landing_id LIMIT %s"
)


class WarehouseLanding:
    """The collector's landing: one committed insert per alarm, on a connection of its own."""

    def __init__(self, source: str):
        self.source = source
        self._conn: psycopg.Connection | None = None

    def __call__(self, alarm_id: str, device_id: str | None, body: Any) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(Role.LOADER, application_name=f"hub-collect-{self.source}")
            with self._conn.transaction():
                cur = self._conn.execute(LANDING_SQL,
                                         (self.source, alarm_id, device_id, Jsonb(body)))
                return cur.rowcount == 1
        except psycopg.Error as exc:
            self.close()  # the next try reconnects
            raise LandingFailed(str(exc)) from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


class LandingReader:
    """What the collector landed for one source, read in arrival order (a `LandedReader`).

    One autocommit connection, opened at the first read and held until `close`: the
    pipeline opens a reader per stream and closes it when the stream is read.
    """

    def __init__(self, source: str):
        self.source = source
        self._conn: psycopg.Connection | None = None

    def __call__(self, after: int, limit: int, settle_seconds: float) -> list[LandedAlarm]:
        if self._conn is None:
            self._conn = connect(Role.LOADER, autocommit=True, application_name=f"hub-landing-{self.source}")
        rows = self._conn.execute(LANDED_SQL, (self.source, after, settle_seconds, limit))
        return [LandedAlarm(int(landing_id), alarm_id, device_id, payload)
                for landing_id, alarm_id, device_id, payload in rows]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LandingReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def collect(source_name: str, sources_path: Path | str | None = None,
            stop_event: threading.Event | None = None,
            ready_event: threading.Event | None = None) -> CollectorStats:
    """Collect the MQTT alarms of one configured source until `stop_event` is set
    (or, without one, until SIGINT/SIGTERM). `ready_event` is set once the broker
    has confirmed the subscription. Returns what it did."""
    config = load_sources(sources_path)
    src = config.source(source_name)
    model = connector_class(src.connector).settings_model
    if not issubclass(model, MqttSettings):
        raise ValueError(f"source {source_name!r} ({src.connector}) has no MQTT alarms to collect")
    settings = model.model_validate(resolve_secrets(src, model.secret_fields()))
    require_current()
    stop = stop_event or _stop_on_signals()
    landing = WarehouseLanding(source_name)
    collector = AlarmCollector(source_name, settings, landing)
    if ready_event is not None:
        collector.subscribed = ready_event
    try:
        return collector.run(stop)
    finally:
        landing.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def main(argv: list[str] | None = None) -> None:
    """`python -m hub.collector <source> [sources file]`: the collector without the CLI.
    Prints `subscribed` on stdout once the broker confirmed it."""
    p = argparse.ArgumentParser(prog="python -m hub.collector",
                                description="Land a source's MQTT alarms in the warehouse.")
    p.add_argument("source")
    p.add_argument("sources_file", nargs="?")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ready = threading.Event()
    threading.Thread(target=lambda: ready.wait() and print("subscribed", flush=True),
                     daemon=True).start()
    stats = collect(args.source, args.sources_file, ready_event=ready)
    print(json.dumps(stats.as_dict()), flush=True)


if __name__ == "__main__":
    main()
