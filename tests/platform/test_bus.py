"""The event backbone end to end against a real broker and real databases (SQLite and PostgreSQL): outbox,
relay, Kafka, consumer and inbox, each event applied once and in order, and a replay."""

from __future__ import annotations

import asyncio

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.db import transaction
from shared.events.envelope import CloudEvent
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
        await producer.relay.flush()
        fresh = await make_sink(await databases.new("fresh"), settings, event_type)
        fresh.consumer.start()
        # A new projection rebuilt from the replayed (and original) events sees each once.
        await wait_for(lambda: _effects_at_least(fresh, 5))
        await asyncio.sleep(1.0)
        assert (await fresh.effects_by_key())["w"] == [1, 2, 3, 4, 5]
        assert await sink.effect_count() == 5
        await close(fresh)
