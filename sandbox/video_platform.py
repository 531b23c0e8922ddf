"""The video platform (雪亮工程) as a demo or a test runs it: the device and back-fill
HTTP API, an MQTT broker (embedded, or a real Mosquitto) and the alarm publisher, over
one simulated `VideoData`.

`python -m sandbox.video_platform --port 8014 --mqtt-port 1883 --scale 0.05 --days 1`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from sandbox.city import City
from sandbox.hotline12345 import fmt, parse_local
from sandbox.platform import DemoPlatform, run_until_interrupted
from sandbox.video import DEMO_SOURCE, TOPIC_PREFIX, AlarmPublisher, VideoData
from sandbox.video_broker import EmbeddedBroker
from sandbox.video_server import VideoServer


class VideoPlatform:
    """HTTP API + MQTT publisher (+ an embedded broker when asked): start/stop as one."""

    def __init__(self, data: VideoData, *, mqtt_host: str = "127.0.0.1",
                 mqtt_port: int | None = 1883, embedded_broker: bool = False,
                 topic_prefix: str = TOPIC_PREFIX, http_port: int = 0):
        self.data = data
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.embedded_broker = embedded_broker
        self.topic_prefix = topic_prefix
        self.http_port = http_port
        self.server: VideoServer | None = None
        self.broker: EmbeddedBroker | None = None
        self.publisher: AlarmPublisher | None = None

    def start(self) -> VideoPlatform:

        self.server = VideoServer(self.data, port=self.http_port).start()
        if self.embedded_broker:

            self.broker = EmbeddedBroker(host=self.mqtt_host, port=self.mqtt_port or 0).start()
            self.mqtt_port = self.broker.port
        if self.mqtt_port is not None:
            self.publisher = AlarmPublisher(self.data, self.mqtt_host, self.mqtt_port,
                                            self.topic_prefix)
        return self

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the video platform is not started")
        return str(self.server.url)

    @property
    def alarm_topic(self) -> str:
        """The subscription that receives every alarm of this platform."""
        return f"{self.topic_prefix}/+"

    def publish(self, n: int | None = None) -> list[str]:
        if self.publisher is None:
            raise RuntimeError("no MQTT broker configured for this platform")
        return self.publisher.publish(n)

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> VideoPlatform:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_for_demo(city: City, days: int, workdir: Path, source: str = DEMO_SOURCE
                   ) -> DemoPlatform:
    """The platform with an in-process MQTT broker (amqtt) on a free port, its history
    published. The collector is optional for the demo: the back-fill stream reads
    whatever it did not land (amqtt does not keep queued messages reliably).

    The history counts as published without being sent: on a broker started a moment
    ago no one has subscribed yet, so it would reach no one, and sending it took most
    of the start-up at scale 1 (61 k QoS 1 round trips through the embedded broker).
    What the platform raises from then on (`advance`) is sent."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = VideoData(city, days=days)
    platform = VideoPlatform(data, embedded_broker=True, mqtt_port=0).start()
    data.mark_published(alarm["alarmId"] for alarm in data.take_unpublished())
    settings = {
        "base_url": platform.url,
        "mqtt_host": platform.mqtt_host,
        "mqtt_port": platform.mqtt_port,
        "alarm_topic": platform.alarm_topic,
        "mqtt_client_id": f"hub-{source}-collector",
        "backfill_start_from": fmt(data.end - timedelta(days=days + 1)),
    }

    def advance() -> int:
        """An hour of the platform's life: devices change, new alarms are published."""
        moved = data.advance()
        platform.publish()
        return int(moved["devices"] + moved["alarms"])

    # The demo broker accepts anonymous clients: no secret to pass.
    return DemoPlatform(settings=settings, env={}, advance=advance, stop=platform.stop,
                        simulator=platform)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox.video_platform",
                                description="Run the video platform (雪亮工程) simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8014, help="HTTP API port; 0 picks a free one")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--embedded-broker", action="store_true",
                   help="run an in-process amqtt broker on --mqtt-port instead of using one")
    p.add_argument("--topic-prefix", default=TOPIC_PREFIX)
    p.add_argument("--city", default="2111")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--scale", type=float, default=0.05)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--end", help="yyyy-MM-dd[ HH:mm:ss] local; default today 00:00 Asia/Shanghai")
    p.add_argument("--advance-every", type=float, default=0.0,
                   help="seconds between advances (new alarms published); 0 = never")
    args = p.parse_args(argv)

    data = VideoData(City(args.city, seed=args.seed, scale=args.scale), days=args.days,
                     end=parse_local(args.end) if args.end else None)
    platform = VideoPlatform(data, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
                             embedded_broker=args.embedded_broker,
                             topic_prefix=args.topic_prefix, http_port=args.port).start()
    published = platform.publish()
    print(platform.url, flush=True)
    print(f"{len(data.devices)} devices; {len(published)} alarms published on "
          f"{platform.alarm_topic} at {platform.mqtt_host}:{platform.mqtt_port}",
          file=sys.stderr, flush=True)

    def advance() -> None:
        data.advance()
        print(f"published {len(platform.publish())} new alarms", file=sys.stderr, flush=True)

    run_until_interrupted(platform.stop, every=args.advance_every, tick=advance)


if __name__ == "__main__":
    main()
