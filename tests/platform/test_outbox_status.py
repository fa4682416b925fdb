"""The relays' outbox status on the bus (shared/bus/status.py), against a real broker and real databases (SQLite
and PostgreSQL): what a producer's outbox still holds reaches a reader in another service through the broker only,
0 once published, unknown once the producer stops saying; a reader starts at the tail of the topic, not at its
start; one replica of a service sends it, and another takes over when it stops."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.bus import Outbox
from shared.bus.models import SHARDS, shard_of
from shared.bus.relay import Relay
from shared.bus.status import LOOKBACK, OutboxStatusReader, ensure_status_topic, outbox_status
from shared.clock import utcnow
from shared.db import read_only, transaction
from shared.events.status import OUTBOX_STATUS_TOPIC
from tests.kit.bus import close, hung_replica_holds, hung_replica_lets_go, make_producer, new_event_type, wait_for
from tests.kit.env import kafka_settings

INTERVAL_S = 0.2


async def test_pending_events_reach_the_consumers_through_the_broker(broker: LocalBroker,
                                                                     databases: ScratchDatabases) -> None:
    """While a hung replica holds every outbox shard but 0, the events of those shards wait; a reader (in no group,
    knowing nothing of the producer's database) learns how many per topic, then 0 once the shards are given back
    and everything is published, then nothing (null) once the producer has stopped."""
    settings = kafka_settings(broker.bootstrap_servers, outbox_status_interval_s=INTERVAL_S,
                              relay_lease_s=1.5, relay_heartbeat_s=0.5)
    event_type = new_event_type()
    service = f"producer-{uuid.uuid4().hex[:8]}"  # the status is keyed by service: one of this test's own
    producer = await make_producer(await databases.new("producer"), settings, event_type, service=service)
    reader = OutboxStatusReader("sink", settings)
    await hung_replica_holds(producer.maker, producer.outbox, range(1, SHARDS))
    producer.relay.start()
    reader.start()
    try:
        await wait_for(lambda: _true(producer.relay.leases.owned == [0] and producer.relay.sends_status))
        await producer.changes(event_type, range(1, 4), keys=20)
        waiting = 3 * sum(shard_of(f"w{key}") != 0 for key in range(20))
        assert waiting > 0
        await wait_for(lambda: _pending_in_outbox(producer.outbox, producer.engine, waiting))  # shard 0's went out
        await wait_for(lambda: _true(reader.pending([event_type.topic]) == {event_type.topic: waiting}), 30)
        assert reader.pending(["nobody.s.topic"]) == {"nobody.s.topic": None}
        status = reader.statuses[service]
        assert set(status.topics) == {event_type.topic} and status.interval_s == INTERVAL_S
        assert status.topics[event_type.topic].oldest_pending_at is not None

        await hung_replica_lets_go(producer.maker, producer.outbox)
        await wait_for(lambda: _true(reader.pending([event_type.topic]) == {event_type.topic: 0}), 30)
        assert await _pending_in_outbox(producer.outbox, producer.engine, 0)
        assert reader.statuses[service].topics[event_type.topic].oldest_pending_at is None

        await producer.relay.stop()
        await wait_for(lambda: _true(reader.pending([event_type.topic]) == {event_type.topic: None}), 30)
    finally:
        await reader.stop()
        await close(producer)


async def test_a_reader_starts_at_the_tail_of_the_topic(broker: LocalBroker) -> None:
    """Apache Kafka keeps the topic's log: a reader starting later reads the last `LOOKBACK` records of it, not
    its whole history, and keeps the newest status of each service."""
    settings = kafka_settings(broker.bootstrap_servers)
    service, topic = f"history-{uuid.uuid4().hex[:8]}", f"test.{uuid.uuid4().hex[:12]}.widget"
    await ensure_status_topic(settings, client_id="test")
    sender = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await sender.start()
    history = 3 * LOOKBACK
    try:
        for n in range(history):  # one record a batch, so the broker's end offset is exact (see test_consumer)
            status = outbox_status(service, {topic: (n, utcnow())}, [topic], measured_at=utcnow(), interval_s=60)
            await sender.send_and_wait(OUTBOX_STATUS_TOPIC, status.model_dump_json().encode(), key=service.encode())
    finally:
        await sender.stop()
    reader = OutboxStatusReader("late", settings)
    reader.start()
    try:
        await wait_for(lambda: _true(reader.pending([topic]) == {topic: history - 1}), 30)
        assert reader.records_read <= LOOKBACK, "it read from near the end, not from the start"
    finally:
        await reader.stop()


async def test_one_replica_sends_the_status_and_another_takes_over(broker: LocalBroker,
                                                                   databases: ScratchDatabases) -> None:
    """Two relays on one PostgreSQL outbox: the one holding shard 0 sends the status, the other does not; when
    it stops (its shards given back), the other takes shard 0 and the status goes on."""
    if databases.kind != "postgres":
        pytest.skip("replicas share a PostgreSQL database; a SQLite file has one process")
    settings = kafka_settings(broker.bootstrap_servers, outbox_status_interval_s=INTERVAL_S,
                              relay_lease_s=1.5, relay_heartbeat_s=0.5)
    event_type = new_event_type()
    service = f"producer-{uuid.uuid4().hex[:8]}"
    producer = await make_producer(await databases.new("producer"), settings, event_type, service=service)
    twin = Relay(producer.outbox, producer.maker, settings, topics=[event_type.topic])
    reader = OutboxStatusReader("sink", settings)
    producer.relay.start()
    twin.start()
    reader.start()
    relays = (producer.relay, twin)
    try:
        await wait_for(lambda: _true(sorted(len(r.leases.owned) for r in relays) == [16, 16]))
        assert [r.sends_status for r in relays].count(True) == 1
        sender = next(r for r in relays if r.sends_status)
        other = twin if sender is producer.relay else producer.relay
        async with transaction(producer.maker) as session:
            await producer.change(session, event_type, "w0", 1)
        await wait_for(lambda: _true(reader.pending([event_type.topic]) == {event_type.topic: 0}), 30)
        await sender.stop()
        await wait_for(lambda: _true(other.sends_status and len(other.leases.owned) == SHARDS))
        sent_before = reader.statuses[service].measured_at
        await wait_for(lambda: _true(reader.statuses[service].measured_at > sent_before), 30)
    finally:
        await reader.stop()
        await twin.stop()
        await close(producer)


async def _pending_in_outbox(outbox: Outbox, engine: AsyncEngine, count: int) -> bool:
    async with read_only(engine) as conn:
        return (await outbox.pending_stats(conn))[0] == count


async def _true(value: bool) -> bool:
    return value
