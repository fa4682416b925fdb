"""The event backbone against a real broker and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import func, select

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.db import transaction
from shared.events.catalogue import EventType, dlq_topic
from shared.events.envelope import CloudEvent
from shared.settings import KafkaSettings
from tests.kit.bus import Producer, Sink, WidgetChanged, make_producer, make_sink, new_event_type, wait_for
from tests.kit.env import kafka_settings


@asynccontextmanager
async def pipeline(
    databases: ScratchDatabases, bootstrap: str, *, batch: bool = False, **overrides: Any
) -> AsyncIterator[tuple[Producer, Sink, EventType, KafkaSettings]]:
    """A producer (outbox + relay) and a sink (consumer + inbox) on fresh databases, both running."""
    settings = kafka_settings(bootstrap, **overrides)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink = await make_sink(await databases.new("sink"), settings, event_type, batch=batch)
    producer.relay.start()
    sink.consumer.start()
    try:
        yield producer, sink, event_type, settings
    finally:
        await close(producer, sink)


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


async def close(*parts: Producer | Sink) -> None:
    for part in parts:
        if isinstance(part, Producer):
            await part.relay.stop()
        else:
            await part.consumer.stop()
        await part.engine.dispose()


async def test_thousand_events_fifty_keys_once_each_in_order(
    broker: LocalBroker, databases: ScratchDatabases
) -> None:
    async with pipeline(databases, broker.bootstrap_servers) as (producer, sink, event_type, _):
        # 1,000 state changes, each in its own transaction, interleaving 50 keys.
        for seq in range(1, 21):
            for key in range(50):
                async with transaction(producer.maker) as session:
                    await producer.change(session, event_type, f"w{key:02d}", seq)

        async def all_applied() -> bool:
            return await sink.effect_count() >= 1000

        await wait_for(all_applied)
        await asyncio.sleep(0.5)  # let any stray duplicate arrive before counting
        effects = await sink.effects_by_key()
        assert len(effects) == 50
        for key, seqs in effects.items():
            assert seqs == list(range(1, 21)), f"{key} applied {seqs}"
        assert await sink.effect_count() == 1000


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


async def test_broker_down_while_500_changes_are_written(own_broker: LocalBroker, databases: ScratchDatabases) -> None:
    settings = kafka_settings(own_broker.bootstrap_servers)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    producer.relay.start()
    sink.consumer.start()
    try:
        await wait_for(lambda: _connected(sink))
        own_broker.stop()
        for seq in range(1, 101):
            for key in range(5):
                async with transaction(producer.maker) as session:
                    await producer.change(session, event_type, f"w{key}", seq)
        async with transaction(producer.maker) as session:
            pending, _ = await producer.outbox.pending_stats(session)
        assert pending == 500, "nothing can be published while the broker is down"
        # The restarted local broker is a new, empty cluster: topics and offsets are gone.
        own_broker.start()
        await wait_for(lambda: _effects_at_least(sink, 500), timeout_s=90)
        await asyncio.sleep(1.0)
        effects = await sink.effects_by_key()
        assert await sink.effect_count() == 500
        for seqs in effects.values():
            assert seqs == list(range(1, 101))
    finally:
        await close(producer, sink)


async def test_a_broker_that_lost_its_log_gets_the_outbox_again(own_broker: LocalBroker,
                                                                databases: ScratchDatabases) -> None:
    """Published, never consumed, then the broker restarts empty (Tansu keeps nothing): the relay notices
    that the end offsets went back, publishes its outbox again, and the consumer applies each event once."""
    settings = kafka_settings(own_broker.bootstrap_servers)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    producer.relay.start()
    try:
        for seq in range(1, 41):
            for key in range(5):
                async with transaction(producer.maker) as session:
                    await producer.change(session, event_type, f"w{key}", seq)
        await producer.relay.flush()
        async with transaction(producer.maker) as session:
            noted = (await session.execute(select(func.count()).select_from(producer.outbox.positions))).scalar()
        assert 1 <= noted <= 5  # the partitions the five keys went to: the broker's acks are noted there
        own_broker.stop()
        own_broker.start()  # a new, empty cluster: the 200 events are gone with it
        sink.consumer.start()
        for seq in range(41, 51):
            for key in range(5):
                async with transaction(producer.maker) as session:
                    await producer.change(session, event_type, f"w{key}", seq)
        await wait_for(lambda: _effects_at_least(sink, 250), timeout_s=90)
        await asyncio.sleep(1.0)
        assert await sink.effect_count() == 250
        for seqs in (await sink.effects_by_key()).values():
            assert seqs == list(range(1, 51))
    finally:
        await close(producer, sink)


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


async def test_replay_publishes_again_without_second_effect(broker: LocalBroker, databases: ScratchDatabases) -> None:
    async with pipeline(databases, broker.bootstrap_servers) as (producer, sink, event_type, settings):
        async with transaction(producer.maker) as session:
            for seq in range(1, 6):
                await producer.change(session, event_type, "w", seq)
        await wait_for(lambda: _effects_at_least(sink, 5))
        async with transaction(producer.maker) as session:
            requeued = await producer.outbox.mark_for_replay(
                session, since=CloudEvent(source="x", type="x").time.replace(year=2000)
            )
        assert requeued == 5
        await producer.relay.flush()
        fresh = await make_sink(await databases.new("fresh"), settings, event_type)
        fresh.consumer.start()
        # A new projection rebuilt from the replayed (and original) events sees each once.
        await wait_for(lambda: _effects_at_least(fresh, 5))
        await asyncio.sleep(1.0)
        assert (await fresh.effects_by_key())["w"] == [1, 2, 3, 4, 5]
        assert await sink.effect_count() == 5
        await close(fresh)


def test_a_failed_send_holds_back_later_events_of_its_key() -> None:
    from types import SimpleNamespace

    from shared.bus.relay import Relay

    rows = [SimpleNamespace(id=i, topic="t", key=k) for i, k in enumerate(["a", "b", "a", "a", "b"], start=1)]
    boom = ConnectionError("lost")
    published, failed, error = Relay._sort_outcomes(rows, [None, None, boom, None, None])
    assert published == [1, 2, 5]
    assert failed == [3, 4], "row 4 succeeded but must wait for row 3 of the same key"
    assert error is boom


class _Sends:
    """A stand-in producer whose sends the test completes or fails by hand, in any order."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []
        self.keys: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.keys.append(key)
        return future


async def test_a_failure_in_the_pipeline_leaves_later_batches_pending(databases: ScratchDatabases) -> None:
    """Batches sent ahead of a failed one are not marked published, even if acked: all go again."""
    from sqlalchemy import select

    settings = kafka_settings("127.0.0.1:1", relay_batch_size=2, relay_pipeline_depth=3)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    try:
        async with transaction(producer.maker) as session:
            for seq, key in enumerate(["a", "b", "a", "b", "a", "b", "c"], start=1):
                await producer.change(session, event_type, key, seq)
        sends = _Sends()
        producer.relay._producer = sends  # type: ignore[assignment]
        settle = asyncio.create_task(producer.relay.publish_batch())
        await asyncio.sleep(0.1)
        assert len(sends.futures) == 6, "three batches of two in flight before the first is awaited"
        sends.futures[0].set_exception(ConnectionError("lost"))  # row 1 (key a) fails ...
        for future in sends.futures[1:]:
            future.set_result(None)  # ... everything after it is acked
        with pytest.raises(ConnectionError):
            await settle
        table = producer.outbox.table
        async with transaction(producer.maker) as session:
            rows = (await session.execute(
                select(table.c.id, table.c.published_at.is_not(None), table.c.attempts).order_by(table.c.id)
            )).all()
        assert [(r[0], bool(r[1]), r[2]) for r in rows] == [
            (1, False, 1), (2, True, 0), (3, False, 0), (4, False, 0), (5, False, 0), (6, False, 0), (7, False, 0)
        ]
        assert not producer.relay._in_flight
    finally:
        producer.relay._producer = None
        await producer.engine.dispose()


async def _connected(sink: Sink) -> bool:
    return sink.consumer.connected and bool(sink.consumer._consumer and sink.consumer._consumer.assignment())


async def _effects_at_least(sink: Sink, n: int) -> bool:
    return await sink.effect_count() >= n


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


async def test_one_relay_per_service_on_postgresql(broker: LocalBroker, databases: ScratchDatabases) -> None:
    if databases.kind != "postgres":
        pytest.skip("leader election applies to PostgreSQL; a SQLite file has one process")
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    url = await databases.new("producer")
    first = await make_producer(url, settings, event_type)
    second = await make_producer(url, settings, event_type)  # a replica on the same database
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    first.relay.start()
    await wait_for(lambda: _is_leader(first))
    second.relay.start()
    sink.consumer.start()
    try:
        for seq in range(1, 51):
            async with transaction(second.maker) as session:
                await second.change(session, event_type, "w", seq)
        await wait_for(lambda: _effects_at_least(sink, 50))
        assert not await _is_leader(second), "the replica must not relay while the leader lives"
        await first.relay.stop()  # the leader goes away: the replica takes over
        for seq in range(51, 101):
            async with transaction(second.maker) as session:
                await second.change(session, event_type, "w", seq)
        await wait_for(lambda: _effects_at_least(sink, 100))
        assert await _is_leader(second)
        assert (await sink.effects_by_key())["w"] == list(range(1, 101))
    finally:
        await close(first, second, sink)


async def _is_leader(producer: Producer) -> bool:
    return producer.relay.leadership.held
