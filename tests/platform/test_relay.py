"""The relay, the outbox's publisher, against real brokers and databases (SQLite and PostgreSQL): a broker down
while changes are written, a broker that lost its log, a failed send holding back its key's later events, replicas
sharing the outbox's shards (and taking over a frozen one's) on PostgreSQL, readiness without shards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import Column, MetaData, Table, func, select

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.bus.models import SHARDS, outbox_shard_table, shard_of
from shared.bus.relay import Relay
from shared.db import transaction
from shared.events.catalogue import EventType
from shared.settings import REPO_ROOT, KafkaSettings
from tests.kit.bus import Producer, close, make_producer, make_sink, new_event_type, wait_for
from tests.kit.bus import connected as _connected
from tests.kit.bus import effects_at_least as _effects_at_least
from tests.kit.env import kafka_settings
from tests.kit.plans import table_scans


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
        await producer.changes(event_type, range(1, 101), keys=5)
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
    await _lost_log_scenario(own_broker, databases, kafka_settings(own_broker.bootstrap_servers))


async def test_sends_acknowledged_below_earlier_ones_mean_a_lost_log(own_broker: LocalBroker,
                                                                    databases: ScratchDatabases,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The second detector alone, with the end-offset check switched off: the producer reconnects to the
    restarted broker by itself and its next batches are acknowledged at offsets at or below the ones it was
    given before. That too means the log is gone, and everything is published again (without it, the 200
    events sent before the restart would be lost: the sink would apply 50). The batch that revealed the loss
    was delivered before the older events published again: each event is applied once, but not in order
    (the projections keep the highest version; the end-offset check, which runs before sending, keeps the
    order where it can)."""
    async def unchecked(self: Relay) -> None:
        return None

    monkeypatch.setattr(Relay, "_verify_log", unchecked)
    await _lost_log_scenario(own_broker, databases, kafka_settings(own_broker.bootstrap_servers), ordered=False)


async def test_a_topic_recreated_with_fewer_partitions_gets_every_event(own_broker: LocalBroker,
                                                                        databases: ScratchDatabases) -> None:
    """The service creates its topics with 12 partitions; the topic is deleted and created again with 4 (as a
    restarted Tansu does when a consumer asks for the topic before the relay: 4 is its default; Apache Kafka
    with auto-creation off cannot), and the relay's connection never breaks. The relay refreshes its
    producer's metadata before it verifies the log, so it partitions by 4 from then on: no event goes to a
    partition 4–11 that nobody reads (without the refresh, this sink never gets its 250). Which of the two
    checks finds the loss first depends on timing, so the order of a key's events is not asserted."""
    settings = kafka_settings(own_broker.bootstrap_servers, topic_partitions=12)

    async def recreated_with_four(topic: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=own_broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([topic])
            await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        finally:
            await admin.close()

    await _lost_log_scenario(own_broker, databases, settings, lose=recreated_with_four, ordered=False)


async def _lost_log_scenario(own_broker: LocalBroker, databases: ScratchDatabases, settings: KafkaSettings, *,
                             lose: Callable[[str], Awaitable[None]] | None = None, ordered: bool = True) -> None:
    """40 changes of five keys published, then the log lost (`lose(topic)`; by default the broker restarted
    empty), 10 more changes each: the sink, started after the loss, applies all 250 once (`ordered`: in each
    key's order)."""
    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), settings, event_type)
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    producer.relay.start()
    try:
        await producer.changes(event_type, range(1, 41), keys=5)
        await producer.relay.flush()
        async with transaction(producer.maker) as session:
            noted = (await session.execute(select(func.count()).select_from(producer.outbox.positions))).scalar()
        assert 1 <= noted <= 5  # the partitions the five keys went to: the broker's acks are noted there
        if lose is None:
            own_broker.stop()
            own_broker.start()  # a new, empty cluster: the 200 events are gone with it
        else:
            await lose(event_type.topic)
        sink.consumer.start()
        await producer.changes(event_type, range(41, 51), keys=5)
        await wait_for(lambda: _effects_at_least(sink, 250), timeout_s=90)
        await asyncio.sleep(1.0)
        assert await sink.effect_count() == 250
        for seqs in (await sink.effects_by_key()).values():
            assert (seqs if ordered else sorted(seqs)) == list(range(1, 51))
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
        self.client = self  # the relay refreshes its producer's metadata before it verifies the log

    async def force_metadata_update(self) -> bool:
        return True

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


LEASE_S, HEARTBEAT_S = 2.0, 0.5
# One key per outbox shard, so every replica has events to publish whichever shards it holds.
KEYS = [next(f"w{n}" for n in range(10_000) if shard_of(f"w{n}") == shard) for shard in range(SHARDS)]


async def test_replicas_share_the_shards_and_take_over_a_frozen_one(broker: LocalBroker, databases: ScratchDatabases,
                                                                    tmp_path: Path) -> None:
    """Two relays in processes of their own on one PostgreSQL database split the shards; one frozen (SIGSTOP) for
    longer than the lease has its shards taken over, and its pending events go out through the other, in order;
    resumed (SIGCONT), it publishes nothing stale, and the two split the shards again."""
    if databases.kind != "postgres":
        pytest.skip("replicas in several processes share a PostgreSQL database; a SQLite file has one process")
    settings = kafka_settings(broker.bootstrap_servers)
    event_type = new_event_type()
    url = await databases.new("producer")
    writer = await make_producer(url, settings, event_type)  # the service's writes; its own relay never runs
    sink = await make_sink(await databases.new("sink"), settings, event_type)
    sink.consumer.start()
    first = await _relay_process(url, broker, event_type, tmp_path / "first.log")
    second = await _relay_process(url, broker, event_type, tmp_path / "second.log")
    try:
        await wait_for(lambda: _connected(sink))
        await wait_for(lambda: _split(writer, {first.pid: 16, second.pid: 16}))
        await _write(writer, event_type, range(1, 11))
        await wait_for(lambda: _effects_at_least(sink, 320))
        await wait_for(lambda: _nothing_pending(writer))
        frozen = await _shards_of(writer, first.pid)
        os.kill(first.pid, signal.SIGSTOP)  # hung while idle: nothing of its own in flight
        stopped_at = asyncio.get_running_loop().time()
        await _write(writer, event_type, range(11, 21))  # half of them in the frozen relay's shards
        await wait_for(lambda: _effects_at_least(sink, 640))
        print(f"the frozen relay's events went out {asyncio.get_running_loop().time() - stopped_at:.1f} s after "
              f"it froze (lease {LEASE_S} s)")
        assert await _split(writer, {second.pid: 32}), "the other relay took every shard over"
        assert len(frozen) == 16 and sorted({shard_of(k) for k in KEYS} & frozen) == sorted(frozen)
        os.kill(first.pid, signal.SIGCONT)
        await wait_for(lambda: _split(writer, {first.pid: 16, second.pid: 16}))
        await _write(writer, event_type, range(21, 31))
        await wait_for(lambda: _effects_at_least(sink, 960))
        await asyncio.sleep(1.0)
        assert await sink.effect_count() == 960, "each event applied once"
        effects = await sink.effects_by_key()
        assert sorted(effects) == sorted(KEYS)
        for seqs in effects.values():
            assert seqs == list(range(1, 31)), "a key's events in order, none lost"
        # Nothing stale and nothing twice: the topic holds each event exactly once.
        event_ids = await _topic_event_ids(broker, event_type.topic, 960)
        assert len(event_ids) == 960 and len(set(event_ids)) == 960
    finally:
        for process in (first, second):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
            await process.wait()
        await close(writer, sink)


async def test_a_replica_that_owns_no_shard_is_ready(own_broker: LocalBroker, databases: ScratchDatabases) -> None:
    """Readiness does not depend on publishing: a second replica, while the first holds every shard, answers 200
    on /readyz and says on /v1/bus that it publishes none (nor sends the outbox status). (A broker of its own: the
    registry's consumer groups are new there, so no member of another test's run delays joining them.)"""
    broker = own_broker
    from services import load
    from shared import migrations
    from shared.db import create_engine
    from tests.kit.apps import bearer, make_settings, running, wait_ready

    url = await databases.new("registry")
    # A replica gives shards back only at its heartbeats, a minute apart here.
    slow = make_settings("registry", url, broker.bootstrap_servers,
                         kafka=kafka_settings(broker.bootstrap_servers, relay_lease_s=180, relay_heartbeat_s=60))
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, load("registry").spec.migrations_dir)
    finally:
        await engine.dispose()
    first_app = load("registry").create_app(slow)
    async with running(first_app) as first:
        response = await wait_ready(first)
        assert response.status_code == 200, response.text
        await wait_for(lambda: _true(len(first_app.state.relay.leases.owned) == SHARDS))
        second_app = load("registry").create_app(slow)
        async with running(second_app) as second:
            response = await wait_ready(second)
            assert response.status_code == 200, response.text
            assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}
            admin = bearer(slow.auth, "registry:admin")
            bus = (await second.get("/v1/bus", headers=admin)).json()
            assert bus["outbox_shards"] == [] and bus["relay_members_alive"] == 2 and bus["relay_connected"]
            assert bus["sends_outbox_status"] is False, "the replica holding shard 0 sends the outbox's status"
            first_bus = (await first.get("/v1/bus", headers=admin)).json()
            assert first_bus["outbox_shards"] == list(range(SHARDS)) and first_bus["sends_outbox_status"] is True
            metrics = (await second.get("/metrics")).text
            assert f'outbox_shards_owned{{member="{bus["relay_member"]}"}} 0.0' in metrics
            assert 'outbox_shard_owned{shard="0"} 0.0' in metrics


async def test_the_migration_gives_existing_rows_their_key_s_shard(databases: ScratchDatabases) -> None:
    """Rows written before the outbox had shards (published ones too: a replay makes them pending again) get their
    key's shard, as the outbox computes it for new rows."""
    from sqlalchemy import insert, text

    from services import load
    from shared import migrations
    from shared.clock import utcnow
    from shared.db import create_engine

    engine = create_engine(await databases.new("registry"))
    spec = load("registry").spec
    try:
        await migrations.upgrade(engine, spec.migrations_dir, "registry_0009")
        rows = [{"event_id": f"e{n}", "topic": "t", "key": key, "event_type": "x", "value": "{}",
                 "created_at": utcnow(), "published_at": utcnow() if n % 2 else None}
                for n, key in enumerate(KEYS[:5] + ["ขอนแก่น-1", "ขอนแก่น-1"])]
        async with engine.begin() as conn:
            await conn.execute(insert(Table("outbox", MetaData(), *(Column(c) for c in rows[0]))), rows)
        await migrations.upgrade(engine, spec.migrations_dir)
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT key, shard FROM outbox ORDER BY event_id"))).all()
        assert sorted(found) == sorted((row["key"], shard_of(row["key"])) for row in rows)
    finally:
        await engine.dispose()


async def test_the_relay_s_periodic_queries_use_indexes_whatever_the_statistics(databases: ScratchDatabases) -> None:
    """What the relay and its retention run again and again — whether any row of its shards is pending (an idle
    relay's one probe), the pending rows of its shards, the pending count and
    age, the purge of old published rows — read the outbox through indexes, never a scan of the whole table: with
    statistics from when the outbox was empty (autovacuum off) and from when a bulk import's rows were all still
    pending, after 200,000 published rows and 1,000 pending ones went in without ANALYZE. The plans are tested, not
    the time."""
    if databases.kind != "postgres":
        pytest.skip("PostgreSQL's planner; SQLite plans from no statistics unless asked to")
    from sqlalchemy import text

    event_type = new_event_type()
    producer = await make_producer(await databases.new("producer"), kafka_settings("127.0.0.1:1"), event_type)
    table = producer.outbox.table.name
    load = (f"INSERT INTO {table} (event_id, topic, key, event_type, value, created_at, published_at, shard) "
            f"SELECT md5(:tag || i), '{event_type.topic}', 'k' || i % 5000, 'x', repeat('x', 300), "
            "now() - interval '30 days', {published}, i % 32 FROM generate_series(1, :rows) AS i")
    try:
        async with producer.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"ANALYZE {table}"))  # empty
            await conn.execute(text(load.format(published="now()")), {"tag": "p", "rows": 200_000})
            await conn.execute(text(load.format(published="NULL")), {"tag": "q", "rows": 1_000})
        assert await _outbox_scans(producer) == []
        async with producer.engine.connect() as conn:  # statistics from a moment every row was pending
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"UPDATE {table} SET published_at = NULL"))
            await conn.execute(text(f"ANALYZE {table}"))
            await conn.execute(text(f"UPDATE {table} SET published_at = now() WHERE id <= 200000"))
        assert await _outbox_scans(producer) == []
    finally:
        await producer.engine.dispose()


async def _outbox_scans(producer: Producer) -> list[str]:
    """The sequential scans of the outbox in the plans of the relay's periodic queries."""
    from datetime import timedelta

    from shared.clock import utcnow

    async def periodic() -> None:
        await producer.relay._pending_rows(None, range(SHARDS))
        await producer.relay._pending_rows(100_000, range(0, SHARDS, 2))
        async with transaction(producer.maker) as session:
            await producer.outbox.pending_stats(session)
            await producer.relay.retention.purge(session, before=utcnow() - timedelta(days=7), limit=5_000)
            await session.rollback()

    explained, scans = await table_scans(producer.engine, producer.outbox.table.name, periodic)
    assert explained == 5  # the probe, the two reads of pending rows, the count, the purge
    return scans


async def _relay_process(url: str, broker: LocalBroker, event_type: EventType,
                         log: Path) -> asyncio.subprocess.Process:
    """A replica's relay (tests/kit/relay_process.py) in a process of its own, logging to `log`."""
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.kit.relay_process", url, broker.bootstrap_servers, event_type.topic,
            str(LEASE_S), str(HEARTBEAT_S), cwd=REPO_ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT)


async def _write(producer: Producer, event_type: EventType, seqs: range) -> None:
    for seq in seqs:
        async with transaction(producer.maker) as session:
            for key in KEYS:
                await producer.change(session, event_type, key, seq)


async def _owners(producer: Producer) -> dict[str, int]:
    """Each member holding shards under a lease still running (by the database's clock): how many."""
    shards = outbox_shard_table(producer.outbox.table.metadata)
    async with producer.engine.connect() as conn:
        rows = (await conn.execute(select(shards.c.owner, func.count()).where(
            shards.c.owner.is_not(None), shards.c.lease_until > func.now()).group_by(shards.c.owner))).all()
    return {owner: count for owner, count in rows}


async def _split(producer: Producer, expected: dict[int, int]) -> bool:
    """Whether the shards are held by the relay processes with these pids, that many each."""
    owners = await _owners(producer)
    return {int(owner.split(":")[-2]): count for owner, count in owners.items()} == expected


async def _shards_of(producer: Producer, pid: int) -> set[int]:
    shards = outbox_shard_table(producer.outbox.table.metadata)
    async with producer.engine.connect() as conn:
        return set((await conn.execute(select(shards.c.shard).where(
            shards.c.owner.like(f"%:{pid}:%")))).scalars())


async def _nothing_pending(producer: Producer) -> bool:
    async with producer.engine.connect() as conn:
        return (await producer.outbox.pending_stats(conn))[0] == 0


async def _topic_event_ids(broker: LocalBroker, topic: str, expected: int) -> list[str]:
    """The event ids of every record on the topic, read from the start (a while longer once `expected` are in,
    so that extra copies would show)."""
    reader = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, group_id=None,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    ids: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    try:
        while loop.time() < deadline:
            for records in (await reader.getmany(timeout_ms=200)).values():
                ids += [json.loads(record.value)["id"] for record in records]
            if len(ids) >= expected:
                deadline = min(deadline, loop.time() + 2.0)
    finally:
        await reader.stop()
    return ids


async def _true(value: bool) -> bool:
    return value
