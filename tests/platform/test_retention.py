"""Retention of the bus tables: published outbox rows and inbox rows past their retention are deleted by the relay
and the consumer (each on one replica at a time); pending outbox rows never are; the history
checker judges only what both sides must still hold (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ops import consistency
from ops.scratchdb import ScratchDatabases
from services import load
from shared.bus import retention
from shared.bus.leader import holds_transaction_lock
from shared.bus.retention import Retention, purge_inbox, purge_published
from shared.clock import utcnow
from shared.db import create_engine, sessionmaker, transaction
from shared.settings import KafkaSettings
from tests.kit.bus import make_producer, make_sink, new_event_type, wait_for
from tests.kit.env import kafka_settings
from tests.kit.plans import table_scans

NOWHERE = "127.0.0.1:1"  # no broker: the relay and the consumer purge before they connect
DAY = timedelta(days=1)


def retained(**overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {"outbox_retention_days": 7, "inbox_retention_days": 8, "topic_retention_days": 7,
                              "retention_interval_s": 0.1}
    return kafka_settings(NOWHERE, **(values | overrides))


def outbox_row(age: timedelta, *, published: bool = True, topic: str = "t", key: str = "k",
               event_id: str | None = None) -> dict[str, Any]:
    written = utcnow() - age
    return {"event_id": event_id or str(uuid.uuid4()), "topic": topic, "key": key, "event_type": "test.v1",
            "value": "{}", "created_at": written, "published_at": written if published else None}


def inbox_row(consumer: str, age: timedelta, *, event_id: str | None = None, topic: str = "t") -> dict[str, Any]:
    return {"consumer": consumer, "event_id": event_id or str(uuid.uuid4()), "event_type": "test.v1",
            "topic": topic, "partition": 0, "offset": 0, "outcome": "processed", "processed_at": utcnow() - age}


async def event_ids(engine: AsyncEngine, table: Table, **where: Any) -> set[str]:
    query = select(table.c.event_id)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return set((await conn.execute(query)).scalars())


def test_the_inbox_must_outlive_the_outbox_and_the_topics() -> None:
    assert KafkaSettings().outbox_retention_days is None  # kept for ever unless set: rebuild needs the history
    assert KafkaSettings().inbox_retention_days is None
    assert KafkaSettings().topic_retention_days == 14  # Apache Kafka's retention.ms + segment.ms, 7 + 7 days
    KafkaSettings(outbox_retention_days=7)  # the inbox keeps every id for ever: fine
    KafkaSettings(outbox_retention_days=7, inbox_retention_days=14)
    KafkaSettings(outbox_retention_days=7, inbox_retention_days=8, topic_retention_days=7)
    with pytest.raises(ValidationError, match="at least topic_retention_days"):
        KafkaSettings(outbox_retention_days=7, inbox_retention_days=8)  # the broker may deliver it again
    with pytest.raises(ValidationError, match="at least outbox_retention_days"):
        KafkaSettings(outbox_retention_days=7, inbox_retention_days=7.5)
    with pytest.raises(ValidationError, match="kept for ever"):
        KafkaSettings(inbox_retention_days=30)  # the outbox may publish any event again, however old
    with pytest.raises(ValidationError):
        KafkaSettings(outbox_retention_days=0)


async def test_purges_delete_only_what_is_past_the_retention(databases: ScratchDatabases) -> None:
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), retained(), event_type)
    sink = await make_sink(await databases.new("sink"), retained(), event_type)
    outbox, inbox = producer.outbox.table, sink.consumer.inbox
    old, new = outbox_row(8 * DAY), outbox_row(6 * DAY)
    old_pending, new_pending = outbox_row(30 * DAY, published=False), outbox_row(DAY, published=False)
    taken_old, taken_new = inbox_row("sink", 9 * DAY), inbox_row("sink", 7 * DAY)
    others = inbox_row("another", 30 * DAY)  # another consumer's rows are its own business
    try:
        async with transaction(producer.maker) as session:
            await session.execute(insert(outbox), [old, new, old_pending, new_pending])
        async with transaction(sink.maker) as session:
            await session.execute(insert(inbox), [taken_old, taken_new, others])
        before = utcnow() - 7 * DAY
        async with transaction(producer.maker) as session:
            assert await purge_published(session, outbox, before=before) == 1
        async with transaction(sink.maker) as session:
            assert await purge_inbox(session, inbox, consumer="sink", before=utcnow() - 8 * DAY) == 1
        assert await event_ids(producer.engine, outbox) == {
            new["event_id"], old_pending["event_id"], new_pending["event_id"]}  # pending rows, however old, stay
        assert await event_ids(sink.engine, inbox) == {taken_new["event_id"], others["event_id"]}
        async with transaction(producer.maker) as session:  # in batches of `limit`
            await session.execute(insert(outbox), [outbox_row(10 * DAY) for _ in range(5)])
        async with transaction(producer.maker) as session:
            assert await purge_published(session, outbox, before=before, limit=3) == 3
        async with transaction(producer.maker) as session:
            assert await purge_published(session, outbox, before=before, limit=3) == 2
    finally:
        await producer.engine.dispose()
        await sink.engine.dispose()


async def test_a_purge_runs_once_an_interval_and_a_long_history_over_several_turns(
    databases: ScratchDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 4)
    monkeypatch.setattr(retention, "BATCHES_PER_TURN", 2)
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), retained(), event_type)
    table = producer.outbox.table
    try:
        async with transaction(producer.maker) as session:
            await session.execute(insert(table), [outbox_row(8 * DAY) for _ in range(10)] + [outbox_row(DAY)])
        outbox = Retention("outbox", producer.maker, lambda session, before, limit: purge_published(
            session, table, before=before, limit=limit), days=7, interval_s=3600)
        assert await outbox.run_when_due() == 8  # two batches of four, and more is left: again at the next turn
        assert await outbox.run_when_due() == 2  # the rest: done until the interval has passed
        async with transaction(producer.maker) as session:
            await session.execute(insert(table), [outbox_row(8 * DAY)])
        assert await outbox.run_when_due() == 0
        assert len(await event_ids(producer.engine, table)) == 2
        unset = Retention("outbox", producer.maker, lambda *_a, **_k: pytest.fail("no retention, no purge"),
                          days=None, interval_s=0.1)
        assert await unset.run_when_due() == 0
    finally:
        await producer.engine.dispose()


async def test_a_relay_purges_its_outbox_whichever_shards_it_holds(databases: ScratchDatabases) -> None:
    """The relay purges before it connects (here to no broker at all), whether or not it publishes any shard: on
    PostgreSQL, a replica whose shards another relay holds purges too (one replica at a time, under a transaction
    advisory lock)."""
    event_type = new_event_type()
    url = await databases.new("producer")
    other = await make_producer(url, kafka_settings(NOWHERE), event_type)  # keeps everything
    replica = await make_producer(url, retained(), event_type)
    table = replica.outbox.table
    old, new, pending = outbox_row(8 * DAY), outbox_row(6 * DAY), outbox_row(30 * DAY, published=False)
    try:
        async with transaction(replica.maker) as session:
            await session.execute(insert(table), [old, new, pending])
        other.relay.start()
        await wait_for(lambda: _true(len(other.relay.leases.owned) == 32))
        replica.relay.start()

        async def purged() -> bool:
            return await event_ids(replica.engine, table) == {new["event_id"], pending["event_id"]}

        await wait_for(purged)
    finally:
        await other.relay.stop(flush_timeout_s=0.1)
        await replica.relay.stop(flush_timeout_s=0.1)
        await other.engine.dispose()
        await replica.engine.dispose()


async def test_the_consumer_purges_its_inbox_one_replica_at_a_time(databases: ScratchDatabases) -> None:
    event_type = new_event_type()
    sink = await make_sink(await databases.new("sink"), retained(), event_type)
    inbox = sink.consumer.inbox
    old, new = inbox_row("sink", 9 * DAY), inbox_row("sink", 7 * DAY)
    try:
        async with transaction(sink.maker) as session:
            await session.execute(insert(inbox), [old, new])
        if databases.kind == "postgres":
            # Another replica is purging (it holds the lock in its transaction): this one leaves it to it.
            async with transaction(sink.maker) as other:
                assert await holds_transaction_lock(other, "kaenkhun-inbox-retention:sink")
                assert await sink.consumer.retention.run_when_due() == 0
            assert await event_ids(sink.engine, inbox) == {old["event_id"], new["event_id"]}
            await asyncio.sleep(0.1)  # the interval (retention_interval_s) passes; the lock is free again
        sink.consumer.start()

        async def purged() -> bool:
            return await event_ids(sink.engine, inbox) == {new["event_id"]}

        await wait_for(purged)
    finally:
        await sink.consumer.stop(timeout_s=2)
        await sink.engine.dispose()


async def test_the_inbox_purge_reads_an_index_whatever_the_statistics(databases: ScratchDatabases) -> None:
    """The consumer's purge, once an interval, reads its inbox rows by age through the index on (consumer,
    processed_at), never the whole inbox: with statistics from when the inbox was empty and from when every row
    was old, after 200,000 recent rows went in without ANALYZE (nothing to delete: an idle service's purge)."""
    if databases.kind != "postgres":
        pytest.skip("PostgreSQL's planner")
    from sqlalchemy import text

    sink = await make_sink(await databases.new("sink"), retained(), new_event_type())
    load_rows = ("INSERT INTO inbox (consumer, event_id, event_type, topic, partition, \"offset\", outcome, "
                 "processed_at) SELECT 'sink', md5(i::text), 'x', 't', 0, i, 'processed', now() "
                 "FROM generate_series(1, 200000) AS i")

    async def purge() -> None:
        async with transaction(sink.maker) as session:
            await sink.consumer.retention.purge(session, before=utcnow() - 8 * DAY, limit=retention.BATCH)
            await session.rollback()

    try:
        async with sink.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE inbox"))  # empty
            await conn.execute(text(load_rows))
        assert await table_scans(sink.engine, "inbox", purge) == (1, [])
        async with sink.engine.connect() as conn:  # statistics from a moment every row was old
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("UPDATE inbox SET processed_at = now() - interval '30 days'"))
            await conn.execute(text("ANALYZE inbox"))
            await conn.execute(text("UPDATE inbox SET processed_at = now()"))
        assert await table_scans(sink.engine, "inbox", purge) == (1, [])
    finally:
        await sink.engine.dispose()


async def _true(value: bool) -> bool:
    return value


# -- the history checker ----------------------------------------------------------------------------------------


async def test_the_checker_judges_what_both_sides_still_hold(databases: ScratchDatabases,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry publishes `registry.household`, the assessment service takes it. Each side deletes old rows on its
    own schedule; the checker (and `settle`) must neither call a deleted row lost or from nowhere, nor miss a
    recent event that is really lost or really from nowhere."""
    # The retention the services run with, read from the environment as `kaenkhun check-consistency` reads it.
    monkeypatch.setenv("KAENKHUN_KAFKA_OUTBOX_RETENTION_DAYS", "7")
    monkeypatch.setenv("KAENKHUN_KAFKA_INBOX_RETENTION_DAYS", "8")
    monkeypatch.setenv("KAENKHUN_KAFKA_TOPIC_RETENTION_DAYS", "7")
    engines = {name: create_engine(await databases.new(name)) for name in ("registry", "assessment")}
    for name, engine in engines.items():
        spec = load(name).spec
        async with engine.begin() as conn:
            await conn.run_sync(spec.outbox.table.create)
            await conn.run_sync(spec.inbox.create)
    outbox, inbox = load("registry").spec.outbox.table, load("assessment").spec.inbox

    def both(age: timedelta) -> tuple[dict[str, Any], dict[str, Any]]:
        row = outbox_row(age, topic="registry.household", key=str(uuid.uuid4()))
        return row, inbox_row("assessment", age, event_id=row["event_id"], topic="registry.household")

    async def add(outboxed: list[dict[str, Any]], taken: list[dict[str, Any]]) -> None:
        for engine, table, rows in ((engines["registry"], outbox, outboxed), (engines["assessment"], inbox, taken)):
            if rows:
                async with transaction(sessionmaker(engine)) as session:
                    await session.execute(insert(table), rows)

    async def delivery(kafka: KafkaSettings | None = None) -> dict[str, consistency.Finding]:
        return {f.check: f for f in await consistency.delivery(engines, kafka=kafka)}

    # 30 days old: both sides have deleted it. 7.5 days: the outbox has (7), the inbox not yet (8).
    # 8.5 days: the inbox has, the outbox's purge has not run yet. 1 hour: both hold it.
    rows = {age: both(age) for age in (30 * DAY, 7.5 * DAY, 8.5 * DAY, timedelta(hours=1))}
    await add([rows[8.5 * DAY][0], rows[timedelta(hours=1)][0]], [rows[7.5 * DAY][1], rows[timedelta(hours=1)][1]])
    try:
        found = await delivery()
        assert all(f.ok for f in found.values()), found
        assert "1 published before" in found["assessment: no event lost"].summary
        assert "1 taken before" in found["assessment: no event from nowhere"].summary
        assert await consistency.settle(engines, timeout_s=0)

        # Not knowing the retention, the deleted rows look lost and from nowhere: the accounting is needed.
        unaware = await delivery(kafka_settings(NOWHERE, outbox_retention_days=None, inbox_retention_days=None))
        assert not unaware["assessment: no event lost"].ok
        assert not unaware["assessment: no event from nowhere"].ok

        # A recent event really lost, and one really from nowhere, are still found.
        lost, _ = both(timedelta(hours=2))
        _, phantom = both(timedelta(hours=2))
        await add([lost], [phantom])
        found = await delivery()
        assert found["assessment: no event lost"].examples == [
            f"registry test.v1 {lost['event_id']} (key {lost['key']})"]
        assert found["assessment: no event from nowhere"].examples == [f"{phantom['event_id']} on registry.household"]
        settled = await consistency.settle(engines, timeout_s=0)
        assert not settled
        assert "assessment has yet to take 1 of the events" in settled.waiting_for
    finally:
        for engine in engines.values():
            await engine.dispose()
