"""The consumer side of the bus against a real broker and real databases (SQLite and PostgreSQL): batch
handlers, the inbox (a message delivered twice, a crash before the offset commit, a rebalance), dead letters."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.db import transaction
from shared.events.catalogue import dlq_topic
from shared.events.envelope import CloudEvent
from tests.kit.bus import WidgetChanged, close, make_producer, make_sink, new_event_type, pipeline, wait_for
from tests.kit.bus import connected as _connected
from tests.kit.bus import effects_at_least as _effects_at_least
from tests.kit.env import kafka_settings


async def read_dlq(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on a topic's dead-letter topic."""
    dlq = AIOKafkaConsumer(dlq_topic(topic), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                           group_id=None)
    await dlq.start()
    try:
        batch = await dlq.getmany(timeout_ms=10_000)
    finally:
        await dlq.stop()
    return [record for records in batch.values() for record in records]


async def test_batch_handler_gets_events_together_once_each_in_order(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    async with pipeline(databases, broker.bootstrap_servers, batch=True) as (producer, sink, event_type, _):
        # A bulk write: 1,000 changes over 50 keys in ten transactions.
        for seq in range(1, 21, 2):
            async with transaction(producer.maker) as session:
                for s in (seq, seq + 1):
                    for key in range(50):
                        await producer.change(session, event_type, f"w{key:02d}", s)

        await wait_for(lambda: _effects_at_least(sink, 1000))
        await asyncio.sleep(0.5)
        effects = await sink.effects_by_key()
        assert all(seqs == list(range(1, 21)) for seqs in effects.values()), effects
        assert await sink.effect_count() == 1000 == sink.calls
        assert max(sink.batch_sizes) > 1, "events polled together must reach the handler together"
        assert len(sink.batch_sizes) < 1000


async def test_failing_batch_falls_back_to_one_by_one_and_dead_letters_only_the_culprit(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    async with pipeline(databases, broker.bootstrap_servers, batch=True, topic_partitions=1) as (
        producer, sink, event_type, _
    ):
        sink.fail_keys.add("poison")
        async with transaction(producer.maker) as session:
            for seq in range(1, 4):
                await producer.change(session, event_type, "ok", seq)
            await producer.change(session, event_type, "poison", 1)
            for seq in range(4, 7):
                await producer.change(session, event_type, "ok", seq)
        await wait_for(lambda: _effects_at_least(sink, 6))
        assert (await sink.effects_by_key()) == {"ok": [1, 2, 3, 4, 5, 6]}
        records = await read_dlq(broker.bootstrap_servers, event_type.topic)
        assert [r.key for r in records] == [b"poison"]


async def test_same_message_delivered_twice_has_one_effect(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    event = CloudEvent(source="urn:test", type=event_type.type,
                       data=WidgetChanged(widget_id="w1", seq=1).model_dump())
    raw = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    sink.consumer.start()
    await raw.start()
    try:
        await wait_for(lambda: _connected(sink))
        for _ in range(2):
            await raw.send_and_wait(event_type.topic, event.to_json(), key=b"w1")
        # A third copy after it was applied, to be sure the inbox (not timing) drops it.
        await wait_for(lambda: _effects_at_least(sink, 1))
        await raw.send_and_wait(event_type.topic, event.to_json(), key=b"w1")
        await asyncio.sleep(1.0)
        assert await sink.effect_count() == 1
        assert sink.calls == 1
    finally:
        await raw.stop()
        await close(sink)


async def test_crash_after_db_commit_before_offset_commit(broker: LocalBroker, databases: ScratchDatabases) -> None:
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    group = f"crashy-{uuid.uuid4().hex[:8]}"
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink_url = await databases.new("sink")
    sink = await make_sink(sink_url, settings, event_type, group=group)
    crashed = asyncio.Event()

    async def crash(_tp: TopicPartition, _offset: int) -> None:
        crashed.set()
        await asyncio.Event().wait()  # hang here until killed: the offset is never committed

    sink.consumer.before_offset_commit = crash
    producer.relay.start()
    sink.consumer.start()
    try:
        async with transaction(producer.maker) as session:
            for seq in range(1, 11):
                await producer.change(session, event_type, "w1", seq)
        await asyncio.wait_for(crashed.wait(), timeout=60)
        applied_before_crash = await sink.effect_count()
        assert applied_before_crash >= 1
        await sink.consumer.kill()

        # The same consumer group starts again on the same database and gets the records again.
        restarted = await make_sink(sink_url, settings, event_type, group=group)
        restarted.consumer.start()
        await wait_for(lambda: _effects_at_least(restarted, 10))
        await asyncio.sleep(1.0)
        assert await restarted.effect_count() == 10
        assert (await restarted.effects_by_key())["w1"] == list(range(1, 11))
        assert restarted.calls == 10 - applied_before_crash, "redelivered events must not be applied again"
        await close(restarted)
    finally:
        await close(producer, sink)


async def test_failing_handler_dead_letters_and_moves_on(broker: LocalBroker, databases: ScratchDatabases) -> None:
    async with pipeline(databases, broker.bootstrap_servers, topic_partitions=1) as (
        producer, sink, event_type, settings
    ):
        sink.fail_keys.add("poison")
        async with transaction(producer.maker) as session:
            await producer.change(session, event_type, "ok", 1)
            await producer.change(session, event_type, "poison", 1)
            await producer.change(session, event_type, "ok", 2)
        await wait_for(lambda: _effects_at_least(sink, 2))
        assert (await sink.effects_by_key()) == {"ok": [1, 2]}

        records = await read_dlq(broker.bootstrap_servers, event_type.topic)
        assert len(records) == 1
        dead = records[0]
        headers = dict(dead.headers)
        assert dead.key == b"poison"
        assert b"RuntimeError: cannot apply poison" in headers["dlq-error"]
        assert headers["dlq-original-topic"] == event_type.topic.encode()
        assert headers["dlq-attempts"] == str(settings.consumer_max_attempts).encode()
        assert CloudEvent.from_json(dead.value).data["widget_id"] == "poison"


async def test_malformed_message_is_dead_lettered_without_retries(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    settings = kafka_settings(broker.bootstrap_servers, topic_partitions=1)
    event_type = new_event_type()
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    raw = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    sink.consumer.start()
    await raw.start()
    try:
        await wait_for(lambda: _connected(sink))
        good = CloudEvent(source="urn:test", type=event_type.type, data={"widget_id": "w", "seq": 1})
        await raw.send_and_wait(event_type.topic, b"{not json", key=b"w")
        await raw.send_and_wait(event_type.topic, good.to_json(), key=b"w")
        await wait_for(lambda: _effects_at_least(sink, 1))
        assert await sink.effect_count() == 1
        records = await read_dlq(broker.bootstrap_servers, event_type.topic)
        assert [r.value for r in records] == [b"{not json"]
        assert b"not a CloudEvent" in dict(records[0].headers)["dlq-error"]
    finally:
        await raw.stop()
        await close(sink)


async def test_rebalance_to_a_second_member_loses_and_repeats_nothing(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    # Two members of one consumer group share one database (two replicas of a service).
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    group = f"pair-{uuid.uuid4().hex[:8]}"
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink_url = await databases.new("sink")
    first = await make_sink(sink_url, settings, event_type, group=group)
    second = await make_sink(sink_url, settings, event_type, group=group)
    producer.relay.start()
    first.consumer.start()
    try:
        for seq in range(1, 11):
            async with transaction(producer.maker) as session:
                for key in range(20):
                    await producer.change(session, event_type, f"w{key:02d}", seq)
            if seq == 4:
                second.consumer.start()  # joins mid-stream: the group rebalances
        await wait_for(lambda: _effects_at_least(first, 200), timeout_s=90)
        await asyncio.sleep(1.0)
        effects = await first.effects_by_key()
        assert await first.effect_count() == 200
        assert all(seqs == list(range(1, 11)) for seqs in effects.values()), effects
        assert first.calls + second.calls >= 200
    finally:
        await close(producer, first, second)


async def test_group_lag_counts_every_partition_whoever_holds_it(broker: LocalBroker,
                                                                 databases: ScratchDatabases) -> None:
    """The lag a consumer reports (reporting's freshness) is the group's, from the broker: the events of every
    partition not committed yet, whichever replica holds them. A consumer that holds no partition at all
    (not started, as a replica whose twin has them all) says the same as one that holds every one."""
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    sink = await make_sink(await databases.new("sink"), settings, event_type, group)
    idle_twin = await make_sink(await databases.new("twin"), settings, event_type, group)
    producer.relay.start()
    try:
        await producer.changes(event_type, range(1, 11), keys=3)
        await producer.relay.flush()

        async def lag() -> int:
            return (await idle_twin.consumer.group_lag_by_topic(max_age_s=0) or {}).get(event_type.topic, -1)

        # Published, nothing consumed: the idle twin, which holds no partition, sees the lag. (Apache Kafka
        # says 30. Tansu's end offset of a partition is the first offset of its newest record batch + 1, not
        # the last offset + 1, so it says less while records wait; caught up, it says 0 as Kafka does.)
        async def waiting() -> bool:
            return 0 < await lag() <= 30

        await wait_for(waiting, timeout_s=30)
        sink.consumer.start()
        await wait_for(lambda: _effects_at_least(sink, 30))

        async def caught_up() -> bool:  # applied and committed by the twin that holds the partitions
            return await lag() == 0

        await wait_for(caught_up, timeout_s=30)
        assert await sink.consumer.group_lag_by_topic(max_age_s=0) == {event_type.topic: 0}
    finally:
        await close(producer, sink, idle_twin)
