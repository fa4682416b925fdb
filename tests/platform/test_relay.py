"""The relay, the outbox's publisher, against real brokers and databases (SQLite and PostgreSQL): a broker down
while changes are written, a broker that lost its log, a failed send holding back its key's later events, one relay
per service on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.db import transaction
from tests.kit.bus import Producer, close, make_producer, make_sink, new_event_type, wait_for
from tests.kit.bus import connected as _connected
from tests.kit.bus import effects_at_least as _effects_at_least
from tests.kit.env import kafka_settings


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
        await producer.relay.leases.turn()  # the one relay: it takes every shard
        sends = _Sends()
        producer.relay._producer = sends  # type: ignore[assignment]
        settle = asyncio.create_task(producer.relay.publish_batch())

        async def three_batches_sent() -> bool:
            return len(sends.futures) >= 6

        await wait_for(three_batches_sent, timeout_s=10)
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
