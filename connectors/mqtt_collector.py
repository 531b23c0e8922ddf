"""MQTT alarms, the protocol side: subscribe, hand each message to a landing, acknowledge.

The broker pushes alarms whenever they happen while the ingest runs on a schedule,
so something must be listening in between: the collector (`hub collect <source>`,
hub.collector), one long-running process per source. This module is what it knows
of MQTT and nothing of the warehouse:

- `AlarmCollector` holds a persistent session (fixed client id, clean_session=False)
  with a QoS 1 subscription, so the broker queues alarms while the collector is
  down and delivers them when it is back. Each message goes to the `land` callable
  it is given, and is acknowledged to the broker only once `land` returned: a
  landing that failed (`LandingFailed`) is retried with backoff and never
  acknowledged meanwhile, so a crash before the landing committed means the broker
  delivers the message again, never that it is lost.
- `landing_row` turns a message into what is landed (key, device, JSON payload).
- `LandedStream` marks a connector's stream whose records are what the collector
  landed; the pipeline reads the landing for it and hands the reader to the
  connector in a `LandingContext` (`LandedAlarm`s after a landing id, in order).

Only one collector per source may run: the broker drops the older of two clients
that share a client id, and arrival order (the landing id) is the ingest's cursor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, Field, SecretStr

from connectors.base import ReadContext, Stream

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- the landed stream


@dataclass(frozen=True)
class LandedStream(Stream):
    """A stream whose records the collector lands as they are pushed: the ingest reads
    the landing (through `LandingContext.landed`) instead of asking the platform."""


@dataclass(frozen=True)
class LandedAlarm:
    """One landed message: its arrival order, key, device and payload as landed."""

    landing_id: int
    alarm_id: str
    device_id: str | None
    payload: Any


# (after landing id, at most this many, leave what landed this recently) → the landed
# messages after that id in arrival order. Supplied by the pipeline (hub.collector).
LandedReader = Callable[[int, int, float], Sequence[LandedAlarm]]


@dataclass(frozen=True)
class LandingContext(ReadContext):
    """The read context of a `LandedStream`: how to read what the collector landed."""

    landed: LandedReader | None = None


# ------------------------------------------------------------------------ messages


class LandingFailed(Exception):
    """The landing could not store a message now; it is retried, and not acknowledged."""


# (alarm id, device id, JSON payload) → True if new, False if landed before.
Landing = Callable[[str, str | None, Any], bool]


@dataclass
class CollectorStats:
    received: int = 0  # messages delivered by the broker, redeliveries included
    landed: int = 0  # new alarms inserted
    duplicates: int = 0  # alarms already landed (QoS 1 redelivery, publisher retries)
    unparseable: int = 0  # landed with their text kept, for the ingest to quarantine
    db_errors: int = 0  # landings that failed and were retried (never acknowledged)
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

    def __init__(self, source: str, settings: MqttSettings, land: Landing):
        self.source = source
        self.settings = settings
        self.land = land
        self.stats = CollectorStats()
        self._stop = threading.Event()
        # Set once the broker confirmed the subscription: from then on nothing
        # published is lost, whether this process runs or not.
        self.subscribed = threading.Event()

    def run(self, stop: threading.Event) -> CollectorStats:
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
                inserted = self.land(alarm_id, device_id, body)
                break
            except LandingFailed as exc:
                # Not acknowledged: if we give up (stop), the broker redelivers it
                # to the next session. Until then keep trying, with backoff.
                self.stats.db_errors += 1
                log.warning("%s: landing alarm %s failed: %s", self.source, alarm_id, exc)
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


def discard_session(host: str, port: int, client_id: str, timeout: float = 5.0) -> None:
    """End a persistent session and drop what the broker queued for it (connect once
    with clean_session=True): for retiring a collector's client id."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True)
    client.connect(host, port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
