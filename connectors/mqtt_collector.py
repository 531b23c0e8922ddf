"""The durable MQTT alarm collector: lands every alarm in the warehouse, loses none.

A long-running process (`hub collect <source>`), one per source: the broker pushes
alarms whenever they happen, while the ingest runs on a schedule, so something
must be listening in between. It holds a persistent session (fixed client id,
clean_session=False) with a QoS 1 subscription, so the broker queues alarms while
the collector is down and delivers them when it is back. Each alarm is inserted
into `raw.video_alarm` (`ON CONFLICT DO NOTHING`: a redelivered alarm is a no-op)
and acknowledged to the broker only once that insert has committed: a crash before
the commit means the broker delivers it again, never that it is lost. The ingest
then reads the landed alarms incrementally (the `alarms` stream of connectors.video).

Only one collector per source may run: the broker drops the older of two clients
that share a client id, and arrival order (landing_id) is the ingest's cursor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field, SecretStr

log = logging.getLogger(__name__)

LANDING_SQL = (
    "INSERT INTO raw.video_alarm (source_system, alarm_id, device_id, payload)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (source_system, alarm_id) DO NOTHING"
)


class MqttSettings(BaseModel):
    """Where the alarms are pushed, and who the hub is to the broker."""

    mqtt_host: str = Field("127.0.0.1", description="the broker's host")
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str = Field("", description="empty: connect anonymously")
    mqtt_password: SecretStr = SecretStr("")
    mqtt_client_id: str = Field(
        "hub-video-collector",
        description="fixed: the broker keeps the session, and queues alarms, under this id",
    )
    alarm_topic: str = Field("vms/alarms/+", description="subscription; the last level is the deviceId")
    alarm_key_field: str = Field("alarmId", description="the payload field that identifies an alarm")
    mqtt_keepalive_seconds: int = Field(30, ge=5)
    reconnect_min_seconds: int = Field(1, ge=1, description="first reconnect delay; doubles")
    reconnect_max_seconds: int = Field(60, ge=1)


@dataclass
class CollectorStats:
    received: int = 0  # messages delivered by the broker, redeliveries included
    landed: int = 0  # new alarms inserted
    duplicates: int = 0  # alarms already landed (QoS 1 redelivery, publisher retries)
    unparseable: int = 0  # landed with their text kept, for the ingest to quarantine
    db_errors: int = 0  # inserts that failed and were retried (never acknowledged)
    connects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def landing_row(payload: bytes, topic: str, key_field: str) -> tuple[str, str | None, Any]:
    """(alarm_id, device_id, JSON payload) of one message.

    A message that is not a JSON object with a key is still landed, under a hash of
    its bytes, so that the ingest quarantines it with its text instead of the
    collector dropping it.
    """
    device_from_topic = topic.rsplit("/", 1)[-1] or None
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get(key_field) not in (None, ""):
        device = body.get("deviceId")
        return str(body[key_field]), str(device) if device else device_from_topic, body
    digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]
    text = payload.decode("utf-8", errors="replace")
    return f"unparseable:{digest}", device_from_topic, {"_unparseable": text, "_topic": topic}


class AlarmCollector:
    """Subscribes, lands, acknowledges. `run` blocks until `stop` is set."""

    def __init__(self, source: str, settings: MqttSettings):
        self.source = source
        self.settings = settings
        self.stats = CollectorStats()
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        # Set once the broker confirmed the subscription: from then on nothing
        # published is lost, whether this process runs or not.
        self.subscribed = threading.Event()

    def run(self, stop: threading.Event) -> CollectorStats:
        import paho.mqtt.client as mqtt

        self._stop = stop
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            clean_session=False,  # the broker keeps our subscription and queues for us
            protocol=mqtt.MQTTv311,
            manual_ack=True,  # PUBACK only after the landing committed
        )
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, s.mqtt_password.get_secret_value() or None)
        client.reconnect_delay_set(s.reconnect_min_seconds, s.reconnect_max_seconds)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_seconds)
        client.loop_start()  # connects, and reconnects with backoff, in its own thread
        log.info("%s: collecting %s from %s:%d as %s", self.source, s.alarm_topic,
                 s.mqtt_host, s.mqtt_port, s.mqtt_client_id)
        try:
            stop.wait()
        finally:
            client.disconnect()
            client.loop_stop()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            log.info("%s: collector stopped: %s", self.source, self.stats.as_dict())
        return self.stats

    # ---- callbacks (the network thread) -----------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("%s: broker refused the connection: %s", self.source, reason_code)
            return
        self.stats.connects += 1
        # The session keeps the subscription; subscribing again is harmless and
        # covers a broker that lost its session store.
        client.subscribe(self.settings.alarm_topic, qos=1)
        log.info("%s: connected (session present: %s)", self.source, flags.session_present)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("%s: the broker refused the subscription to %s: %s", self.source,
                      self.settings.alarm_topic, reason_codes)
            return
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if not self._stop.is_set():
            log.warning("%s: disconnected (%s); reconnecting", self.source, reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.stats.received += 1
        alarm_id, device_id, body = landing_row(message.payload, message.topic,
                                                self.settings.alarm_key_field)
        delay = float(self.settings.reconnect_min_seconds)
        while True:
            try:
                inserted = self._land(alarm_id, device_id, body)
                break
            except psycopg.Error as exc:
                # Not acknowledged: if we give up (stop), the broker redelivers it
                # to the next session. Until then keep trying, with backoff.
                self.stats.db_errors += 1
                log.warning("%s: landing alarm %s failed: %s", self.source, alarm_id, exc)
                self._reset_db()
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, float(self.settings.reconnect_max_seconds))
        if inserted:
            self.stats.landed += 1
            if alarm_id.startswith("unparseable:"):
                self.stats.unparseable += 1
        else:
            self.stats.duplicates += 1
        client.ack(message.mid, message.qos)

    # ---- the landing ------------------------------------------------------------------

    def _land(self, alarm_id: str, device_id: str | None, body: Any) -> bool:
        from warehouse.db import connect

        if self._conn is None or self._conn.closed:
            self._conn = connect(application_name=f"hub-collect-{self.source}")
        with self._conn.transaction():
            cur = self._conn.execute(LANDING_SQL, (self.source, alarm_id, device_id, Jsonb(body)))
            return cur.rowcount == 1

    def _reset_db(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def collect(source_name: str, sources_path: Path | str | None = None,
            stop_event: threading.Event | None = None,
            ready_event: threading.Event | None = None) -> CollectorStats:
    """Collect the MQTT alarms of one configured source until `stop_event` is set
    (or, without one, until SIGINT/SIGTERM). `ready_event` is set once the broker
    has confirmed the subscription. Returns what it did."""
    from base.settings import load_sources, resolve_secrets
    from connectors.registry import connector_class
    from warehouse.migrate import migrate

    config = load_sources(sources_path)
    src = config.source(source_name)
    model = connector_class(src.connector).settings_model
    if not issubclass(model, MqttSettings):
        raise ValueError(f"source {source_name!r} ({src.connector}) has no MQTT alarms to collect")
    settings = model.model_validate(resolve_secrets(src, model.secret_fields()))
    migrate()
    stop = stop_event or _stop_on_signals()
    collector = AlarmCollector(source_name, settings)
    if ready_event is not None:
        collector.subscribed = ready_event
    return collector.run(stop)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def discard_session(host: str, port: int, client_id: str, timeout: float = 5.0) -> None:
    """End a persistent session and drop what the broker queued for it (connect once
    with clean_session=True): for retiring a collector's client id."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True)
    client.connect(host, port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m connectors.mqtt_collector <source> [sources file]`: the collector
    without the CLI. Prints `subscribed` on stdout once the broker confirmed it."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m connectors.mqtt_collector",
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
    # Run the importable module's main, not this __main__ copy: the connectors'
    # settings subclass connectors.mqtt_collector.MqttSettings, not ours.
    from connectors.mqtt_collector import main as _main

    _main()
