"""The outbox path of the event-bus benchmark (bench/bus.py): the events both paths carry, and a producer service
(state + outbox + relay, in this process) feeding a consumer service (effects + inbox, in a child process) through
Kafka, timed and checked for correctness."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ops.scratchdb import ScratchDatabases
from shared.bus import (
    Consumer,
    Delivery,
    Handlers,
    Outbox,
    PendingEvent,
    Relay,
    ensure_topics,
    inbox_table,
    outbox_table,
)
from shared.bus.models import SHARDS
from shared.db import create_engine, new_metadata, sessionmaker, transaction
from shared.events.catalogue import Catalogue, EventType
from shared.events.envelope import CloudEvent
from shared.settings import KafkaSettings

SERVICE = "bench-producer"


class Changed(BaseModel):
    """Benchmark payload: the seq-th change of one aggregate."""

    key: str
    seq: int
    label: str = "ขอนแก่น"


def event_type_on(topic: str) -> EventType:
    """The benchmark's event type, on a topic of its own."""
    return EventType("bench.changed", 1, topic, SERVICE, "item", Changed)


def key_seq(i: int, keys: int) -> tuple[str, int]:
    """The i-th event's key (round-robin over `keys`) and its sequence number within that key."""
    return f"item-{i % keys:04d}", i // keys


def new_topic(label: str) -> str:
    return f"bench.{uuid.uuid4().hex[:8]}.{label}"


# -- the outbox path -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Rows published by the relays of one producer service (its replicas), and when the `target`-th was."""

    target: int
    published: int = 0
    done_at: float = 0.0


class TimedRelay(Relay):
    """A Relay that counts what it publishes in a tally shared with the other replicas' relays."""

    def __init__(self, *args: Any, tally: Tally, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = tally

    async def publish_batch(self) -> int:
        published = await super().publish_batch()
        tally = self.tally
        tally.published += published
        if published and tally.published >= tally.target and not tally.done_at:
            tally.done_at = time.monotonic()
        return published


class TimedConsumer(Consumer):
    """A Consumer that notes when `target` events are committed with their inbox rows."""

    def __init__(self, *args: Any, target: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target, self.applied, self.calls, self.done = target, 0, 0, asyncio.Event()
        self.done_at = 0.0

    async def process(self, deliveries: Sequence[Delivery]) -> int:
        applied = await super().process(deliveries)
        self.applied += applied
        if self.applied >= self.target and not self.done.is_set():
            self.done_at = time.monotonic()
            self.done.set()
        return applied


async def create_tables(url: str, metadata: MetaData) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An engine on `url` with `metadata`'s tables created (services use Alembic; this is a benchmark)."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine, sessionmaker(engine)


def sink_tables() -> tuple[MetaData, Table, Table]:
    """The consuming service's tables: its effects and its inbox."""
    metadata = new_metadata()
    effects = Table("effect", metadata, Column("id", Integer, primary_key=True),
                    Column("key", String(40), nullable=False), Column("seq", Integer, nullable=False))
    return metadata, effects, inbox_table(metadata)


@dataclass(frozen=True)
class SinkSpec:
    """What the consuming service's process needs (picklable)."""

    url: str
    bootstrap: str
    topic: str
    group: str
    n: int
    batch_handler: bool


def run_sink(spec: SinkSpec, conn: Connection) -> None:
    """The consuming service, in its own process as deployed: report ready, then when N events are in."""
    asyncio.run(_sink(spec, conn))


async def _sink(spec: SinkSpec, conn: Connection) -> None:
    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    settings = KafkaSettings.model_validate({"bootstrap_servers": spec.bootstrap})
    event_type = EventType("bench.changed", 1, spec.topic, SERVICE, "item", Changed)
    _, effects, inbox = sink_tables()
    engine = create_engine(spec.url)
    handlers = Handlers(Catalogue())
    consumer = TimedConsumer("bench-sink", handlers, sessionmaker(engine), inbox, settings,
                             group_id=spec.group, target=spec.n)
    if spec.batch_handler:
        @handlers.on_batch(event_type)
        async def apply_all(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
            consumer.calls += len(items)
            rows = [{"key": p.key, "seq": p.seq} for _, p in items if isinstance(p, Changed)]
            await session.execute(insert(effects), rows)
    else:
        @handlers.on(event_type)
        async def apply(session: AsyncSession, _event: CloudEvent, payload: BaseModel) -> None:
            assert isinstance(payload, Changed)
            consumer.calls += 1
            await session.execute(insert(effects).values(key=payload.key, seq=payload.seq))

    consumer.topics = handlers.topics()  # registered after construction
    consumer.start()
    try:
        deadline = time.monotonic() + 60
        while not (consumer._consumer and consumer._consumer.assignment()):
            if time.monotonic() > deadline:
                raise TimeoutError("consumer group not joined")
            await asyncio.sleep(0.02)
        conn.send("ready")
        await asyncio.wait_for(consumer.done.wait(), timeout=max(120.0, spec.n / 50))
        conn.send((consumer.done_at, consumer.calls))
    finally:
        await consumer.stop()
        await engine.dispose()


@dataclass
class Pipeline:
    """A producer service (state + outbox + relay, in this process) and a consumer service (effects +
    inbox, in a child process), each on its own database."""

    event_type: EventType
    producer_engine: AsyncEngine
    producer: async_sessionmaker[AsyncSession]
    state: Table
    outbox: Outbox
    relays: list[TimedRelay]
    tally: Tally
    sink_engine: AsyncEngine
    sink: async_sessionmaker[AsyncSession]
    effects: Table
    inbox: Table
    sink_spec: SinkSpec
    replica_engines: list[AsyncEngine] = field(default_factory=list)
    sink_process: BaseProcess | None = None
    sink_conn: Connection | None = None
    done_at: float = 0.0
    calls: int = 0
    checks: dict[str, bool] = field(default_factory=dict)

    @classmethod
    async def build(
        cls, dbs: ScratchDatabases, settings: KafkaSettings, label: str, n: int, batch_handler: bool,
        publishers: int = 1,
    ) -> Pipeline:
        """`publishers`: replicas of the producer service publishing its outbox (each its relay and engine; the
        first one also writes)."""
        event_type = event_type_on(new_topic(label))
        pmeta = new_metadata()
        state = Table("item_change", pmeta, Column("id", Integer, primary_key=True),
                      Column("key", String(40), nullable=False), Column("seq", Integer, nullable=False))
        outbox = Outbox(SERVICE, outbox_table(pmeta))
        smeta, effects, inbox = sink_tables()
        producer_url = await dbs.new("producer")
        producer_engine, producer = await create_tables(producer_url, pmeta)
        sink_url = await dbs.new("sink")
        sink_engine, sink = await create_tables(sink_url, smeta)
        tally = Tally(n)
        relays = [TimedRelay(outbox, producer, settings, topics=[event_type.topic], tally=tally)]
        replica_engines = [create_engine(producer_url) for _ in range(publishers - 1)]
        relays += [TimedRelay(outbox, sessionmaker(engine), settings, topics=[event_type.topic], tally=tally)
                   for engine in replica_engines]
        spec = SinkSpec(sink_url, settings.bootstrap_servers, event_type.topic,
                        f"bench-sink-{uuid.uuid4().hex[:8]}", n, batch_handler)
        return cls(event_type, producer_engine, producer, state, outbox, relays, tally, sink_engine, sink,
                   effects, inbox, spec, replica_engines)

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start the relays and the consumer process; return once the producers are connected, the relays
        share the outbox's shards evenly, and the group has its partitions."""
        await ensure_topics(self.relays[0].settings, [self.event_type.topic], client_id="bench")
        parent, child = multiprocessing.get_context("spawn").Pipe()
        self.sink_conn = parent
        self.sink_process = multiprocessing.get_context("spawn").Process(
            target=run_sink, args=(self.sink_spec, child), name="bench-sink"
        )
        self.sink_process.start()
        for relay in self.relays:
            relay.start()
        if not await asyncio.to_thread(parent.poll, timeout_s) or parent.recv() != "ready":
            raise TimeoutError("consumer process not ready")
        deadline = time.monotonic() + timeout_s
        while not (all(r.connected for r in self.relays)
                   and _shared_evenly([len(r.leases.owned) for r in self.relays])):
            if time.monotonic() > deadline:
                raise TimeoutError("relays not ready")
            await asyncio.sleep(0.02)

    async def wait_done(self, timeout_s: float) -> None:
        assert self.sink_conn is not None
        if not await asyncio.to_thread(self.sink_conn.poll, timeout_s):
            raise TimeoutError("consumer process did not report all events applied")
        self.done_at, self.calls = self.sink_conn.recv()

    async def write(self, n: int, keys: int, per_transaction: int, batched: bool = False) -> None:
        """n state changes, each with its outbox row, `per_transaction` of them per transaction.

        batched: one multi-row INSERT for the state and one Outbox.add_many per transaction (a bulk import).
        """
        for first in range(0, n, per_transaction):
            async with transaction(self.producer) as session:
                changes = [key_seq(i, keys) for i in range(first, min(first + per_transaction, n))]
                if batched:
                    await session.execute(insert(self.state), [{"key": k, "seq": q} for k, q in changes])
                    await self.outbox.add_many(
                        session, [PendingEvent(self.event_type, Changed(key=k, seq=q), k) for k, q in changes]
                    )
                    continue
                for key, seq in changes:
                    await session.execute(insert(self.state).values(key=key, seq=seq))
                    await self.outbox.add(session, self.event_type, Changed(key=key, seq=seq), key=key)

    async def stop(self) -> None:
        for relay in self.relays:
            await relay.stop()
        if self.sink_process is not None and self.sink_process.pid is not None:
            await asyncio.to_thread(self.sink_process.join, 30)
            if self.sink_process.is_alive():
                self.sink_process.kill()
            self.sink_process = None

    async def verify(self, n: int) -> dict[str, bool]:
        """Correctness after the run: every event applied once, in key order, all published."""
        inbox, effects, out = self.inbox, self.effects, self.outbox.table
        async with transaction(self.sink) as session:
            inbox_ids = list((await session.execute(select(inbox.c.event_id))).scalars())
            rows = (await session.execute(select(effects.c.key, effects.c.seq).order_by(effects.c.id))).all()
        async with transaction(self.producer) as session:
            outbox_ids = set((await session.execute(select(out.c.event_id))).scalars())
            pending = (await session.execute(
                select(func.count()).select_from(out).where(out.c.published_at.is_(None))
            )).scalar_one()
        last: dict[str, int] = {}
        in_order = True
        for key, seq in rows:
            in_order &= seq > last.get(key, -1)
            last[key] = seq
        self.checks = {
            f"inbox rows == {n}": len(inbox_ids) == n,
            "no duplicate inbox event ids": len(set(inbox_ids)) == len(inbox_ids),
            "inbox ids == outbox ids": set(inbox_ids) == outbox_ids,
            f"effect rows == {n}, no duplicate (key, seq)": len(rows) == n == len(set(rows)),
            f"handler called {n} times": self.calls == n,
            "each key applied in order": in_order,
            "outbox fully published": pending == 0,
        }
        return self.checks

    async def dispose(self) -> None:
        for engine in self.replica_engines:
            await engine.dispose()
        await self.producer_engine.dispose()
        await self.sink_engine.dispose()


def _shared_evenly(owned: list[int]) -> bool:
    return sum(owned) == SHARDS and max(owned) - min(owned) <= 1


@dataclass
class PathResult:
    """Timings of one outbox-path run, all from the start of the write phase."""

    label: str
    write_s: float
    published_s: float
    end_to_end_s: float
    checks: dict[str, bool]

    def rate(self, n: int) -> float:
        return n / self.end_to_end_s


async def outbox_path(dbs: ScratchDatabases, settings: KafkaSettings, n: int, keys: int, per_transaction: int,
                      label: str, batched: bool = False, publishers: int = 1) -> PathResult:
    """Write n events into the outbox while relay(s) and consumer run; time until the last is in the inbox."""
    pipeline = await Pipeline.build(dbs, settings, label, n, batch_handler=batched, publishers=publishers)
    try:
        await pipeline.start()
        started = time.monotonic()
        await pipeline.write(n, keys, per_transaction, batched)
        written = time.monotonic()
        await pipeline.wait_done(timeout_s=max(120.0, n / 50))
        await pipeline.stop()
        checks = await pipeline.verify(n)
        return PathResult(label, written - started, pipeline.tally.done_at - started,
                          pipeline.done_at - started, checks)
    finally:
        await pipeline.stop()
        await pipeline.dispose()
