"""A tiny producer service and consumer service built only from the shared bus, on real databases, for the bus
tests: the two running as a pipeline, stopping them, the conditions the tests wait for, and a hung replica holding
outbox shards (so their events wait in the outbox while the relay runs)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ops.scratchdb import ScratchDatabases
from shared.bus import Consumer, Handlers, Outbox, Relay, inbox_table, outbox_table
from shared.bus.models import outbox_shard_table
from shared.bus.shards import upsert
from shared.db import create_engine, new_metadata, sessionmaker, transaction
from shared.events.catalogue import Catalogue, EventType
from shared.events.envelope import CloudEvent
from shared.settings import KafkaSettings
from tests.kit.env import kafka_settings


class WidgetChanged(BaseModel):
    """Test payload: the n-th change of one widget."""

    widget_id: str
    seq: int
    label: str = "ขอนแก่น"


@dataclass
class Producer:
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    outbox: Outbox
    relay: Relay
    state: Table

    async def change(self, session: AsyncSession, event_type: EventType, widget_id: str, seq: int) -> None:
        """A state change and its event, in the caller's transaction."""
        await session.execute(insert(self.state).values(widget_id=widget_id, seq=seq))
        await self.outbox.add(session, event_type, WidgetChanged(widget_id=widget_id, seq=seq), key=widget_id)

    async def changes(self, event_type: EventType, seqs: range, keys: int) -> None:
        """For each seq, a change of keys w0 … w{keys-1}, each in a transaction of its own."""
        for seq in seqs:
            for key in range(keys):
                async with transaction(self.maker) as session:
                    await self.change(session, event_type, f"w{key}", seq)


@dataclass
class Sink:
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    consumer: Consumer
    effects: Table
    fail_keys: set[str] = field(default_factory=set)
    calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    async def effects_by_key(self) -> dict[str, list[int]]:
        """Each widget's applied sequence numbers, in the order they took effect."""
        async with transaction(self.maker) as session:
            rows = (await session.execute(
                select(self.effects.c.widget_id, self.effects.c.seq).order_by(self.effects.c.id)
            )).all()
        result: dict[str, list[int]] = defaultdict(list)
        for widget_id, seq in rows:
            result[widget_id].append(seq)
        return result

    async def effect_count(self) -> int:
        async with transaction(self.maker) as session:
            return int((await session.execute(select(func.count()).select_from(self.effects))).scalar_one())


async def wait_for(check: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float = 60.0) -> None:
    """Until `check()` is true; AssertionError after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def new_event_type() -> EventType:
    """An event type on a topic of its own, so tests sharing a broker do not see each other."""
    topic = f"test.{uuid.uuid4().hex[:12]}.widget"
    return EventType("widget.changed", 1, topic, "producer", "widget", WidgetChanged)


async def make_producer(url: str, settings: KafkaSettings, event_type: EventType, *,
                        service: str = "producer") -> Producer:
    metadata = new_metadata()
    state = Table("widget_change", metadata, Column("id", Integer, primary_key=True),
                  Column("widget_id", String(40)), Column("seq", Integer))
    outbox = Outbox(service, outbox_table(metadata))
    engine = create_engine(url)
    await _create(engine, metadata)
    maker = sessionmaker(engine)
    relay = Relay(outbox, maker, settings, topics=[event_type.topic])
    return Producer(engine, maker, outbox, relay, state)


async def make_sink(
    url: str, settings: KafkaSettings, event_type: EventType, group: str | None = None, *, batch: bool = False
) -> Sink:
    """A consumer service applying each WidgetChanged as one effect row; `batch`: through Handlers.on_batch."""
    metadata = new_metadata()
    effects = Table("effect", metadata, Column("id", Integer, primary_key=True),
                    Column("widget_id", String(40)), Column("seq", Integer))
    inbox = inbox_table(metadata)
    engine = create_engine(url)
    await _create(engine, metadata)
    maker = sessionmaker(engine)
    handlers = Handlers(Catalogue())
    sink = Sink(engine, maker, None, effects)  # type: ignore[arg-type]

    async def apply_all(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
        sink.calls += len(items)
        sink.batch_sizes.append(len(items))
        rows = []
        for _event, payload in items:
            assert isinstance(payload, WidgetChanged)
            if payload.widget_id in sink.fail_keys:
                raise RuntimeError(f"cannot apply {payload.widget_id}")
            rows.append({"widget_id": payload.widget_id, "seq": payload.seq})
        await session.execute(insert(effects), rows)

    async def apply(session: AsyncSession, event: CloudEvent, payload: BaseModel) -> None:
        await apply_all(session, [(event, payload)])

    if batch:
        handlers.on_batch(event_type)(apply_all)
    else:
        handlers.on(event_type)(apply)

    sink.consumer = Consumer("sink", handlers, maker, inbox, settings, group_id=group or f"sink-{uuid.uuid4().hex[:8]}")
    return sink


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


async def close(*parts: Producer | Sink) -> None:
    for part in parts:
        if isinstance(part, Producer):
            await part.relay.stop()
        else:
            await part.consumer.stop()
        await part.engine.dispose()


async def connected(sink: Sink) -> bool:
    """Whether the sink's consumer has joined its group and been given partitions."""
    return sink.consumer.connected and bool(sink.consumer._consumer and sink.consumer._consumer.assignment())


async def effects_at_least(sink: Sink, n: int) -> bool:
    """Whether the sink has applied at least n events (for `wait_for`)."""
    return await sink.effect_count() >= n


async def _create(engine: AsyncEngine, metadata: MetaData) -> None:
    # Test-only tables; services create theirs with Alembic migrations.
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


HUNG_REPLICA = "hung-replica"


async def hung_replica_holds(maker: async_sessionmaker[AsyncSession], outbox: Outbox, shards: Iterable[int]) -> None:
    """Another replica, hung, holds these outbox shards under a lease that does not run out: the running relays
    take none of them (and give them up at their next heartbeat), so their events wait in the outbox."""
    table = outbox_shard_table(outbox.table.metadata)
    held = {"owner": HUNG_REPLICA, "lease_until": datetime(2999, 1, 1, tzinfo=UTC)}
    async with transaction(maker) as session:
        stmt = upsert(session)(table).values([{"shard": shard, "token": 1, **held} for shard in shards])
        await session.execute(stmt.on_conflict_do_update(index_elements=[table.c.shard],
                                                         set_={**held, "token": table.c.token + 1}))


async def hung_replica_lets_go(maker: async_sessionmaker[AsyncSession], outbox: Outbox) -> None:
    """That replica gives its shards back, as a clean stop does: the relays claim them at their next heartbeat."""
    table = outbox_shard_table(outbox.table.metadata)
    async with transaction(maker) as session:
        await session.execute(update(table).where(table.c.owner == HUNG_REPLICA)
                              .values(owner=None, lease_until=None, token=table.c.token + 1))
