"""The event backbone end to end against a real broker and real databases (SQLite and PostgreSQL): outbox,
relay, Kafka, consumer and inbox, each event applied once and in order, and a replay."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.bus.kafka import Offsets, ensure_topics
from shared.db import transaction
from shared.events.envelope import CloudEvent
from shared.settings import KafkaSettings
from tests.kit.bus import close, make_sink, pipeline, wait_for
from tests.kit.bus import effects_at_least as _effects_at_least


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
        async with producer.maker() as session:  # the replay is noted on each row (ops.consistency reads it)
            table = producer.outbox.table
            replayed = (await session.execute(select(table.c.replayed_at, table.c.published_at))).all()
        assert len(replayed) == 5 and all(r.replayed_at is not None and r.published_at is None for r in replayed)
        await producer.relay.flush()
        fresh = await make_sink(await databases.new("fresh"), settings, event_type)
        fresh.consumer.start()
        # A new projection rebuilt from the replayed (and original) events sees each once.
        await wait_for(lambda: _effects_at_least(fresh, 5))
        await asyncio.sleep(1.0)
        assert (await fresh.effects_by_key())["w"] == [1, 2, 3, 4, 5]
        assert await sink.effect_count() == 5
        await close(fresh)


async def test_topics_are_created_with_twelve_partitions_by_default(broker: LocalBroker) -> None:
    """The default leaves room for up to 12 replicas of a consumer to share a topic (README, "Running several
    replicas"); the replication settings go with the request (one copy on a single broker)."""
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_min_insync_replicas=1)
    assert (settings.topic_partitions, settings.topic_replication_factor) == (12, 1)
    topic = f"kk.partitions.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    offsets = await Offsets.open(settings)
    try:
        assert await offsets.partitions([topic]) == [(topic, p) for p in range(12)]
    finally:
        await offsets.close()
    with pytest.raises(ValueError, match="cannot exceed topic_replication_factor"):
        KafkaSettings(topic_replication_factor=1, topic_min_insync_replicas=2)
