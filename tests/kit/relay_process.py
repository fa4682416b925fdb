"""A replica's relay in a process of its own, on the tiny producer service of tests/kit/bus.py, for the tests that
freeze one replica (SIGSTOP) while another goes on: `python -m tests.kit.relay_process URL BOOTSTRAP TOPIC LEASE_S
HEARTBEAT_S`. It publishes until SIGTERM, then stops as a service does (flush, give its shards back)."""

from __future__ import annotations

import asyncio
import signal
import sys

from shared.events.catalogue import EventType
from tests.kit.bus import WidgetChanged, close, make_producer
from tests.kit.env import kafka_settings


async def main(url: str, bootstrap: str, topic: str, lease_s: float, heartbeat_s: float) -> None:
    settings = kafka_settings(bootstrap, relay_lease_s=lease_s, relay_heartbeat_s=heartbeat_s)
    event_type = EventType("widget.changed", 1, topic, "producer", "widget", WidgetChanged)
    producer = await make_producer(url, settings, event_type)  # the tables exist: creating them is a no-op
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    producer.relay.start()
    await stopped.wait()
    await close(producer)


if __name__ == "__main__":
    url, bootstrap, topic, lease_s, heartbeat_s = sys.argv[1:6]
    asyncio.run(main(url, bootstrap, topic, float(lease_s), float(heartbeat_s)))
