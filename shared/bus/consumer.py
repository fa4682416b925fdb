"""Idempotent consumer: effects and the inbox row in one transaction, offsets committed after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from sqlalchemy import Table, delete, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.handlers import NOT_NEEDED, BatchHandler, Delivery, Handlers
from shared.bus.kafka import ensure_topics, group_lag_by_topic, new_producer, with_dlqs
from shared.bus.retention import Retention, purge_inbox
from shared.clock import utcnow
from shared.db import among, bulk_insert, lost_to_contention, transaction
from shared.events.catalogue import dlq_topic
from shared.settings import KafkaSettings

if TYPE_CHECKING:
    from shared.observability import Metrics

log = structlog.get_logger("kaenkhun.bus.consumer")


class Consumer:
    """One consumer group per service; processes each partition's records in order, exactly once in effect."""

    def __init__(
        self,
        name: str,
        handlers: Handlers,
        maker: async_sessionmaker[AsyncSession],
        inbox: Table,
        settings: KafkaSettings,
        *,
        metrics: Metrics | None = None,
        group_id: str | None = None,
        rewind: Table | None = None,
    ) -> None:
        self.name = name
        self.group_id = group_id or name
        self.handlers = handlers
        self.maker = maker
        self.inbox = inbox
        self.rewind = rewind  # partitions to read again from the earliest offset (`rewind_table`), if any
        self.settings = settings
        self.metrics = metrics
        self.connected = False
        self.topics = handlers.topics()
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._group_lag: tuple[float, dict[str, int]] | None = None  # (when, per topic): `group_lag_by_topic`
        self._applied, self._next_analyze = 0, 1000
        # Replicas share the inbox: one at a time deletes what is past its retention.
        self.retention = Retention("inbox", maker, partial(purge_inbox, table=inbox, consumer=name),
                                   days=settings.inbox_retention_days, interval_s=settings.retention_interval_s,
                                   lock=f"kaenkhun-inbox-retention:{name}")
        # Hook for tests that simulate a crash between the database commit and the offset commit.
        self.before_offset_commit: Callable[[TopicPartition, int], Awaitable[None]] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.topics:
            return
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.name}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch in hand, commit its offsets, leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        await self._close()

    async def kill(self) -> None:
        """Stop abruptly, as a crash would: no further commits (tests use it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._dlq_producer = self._dlq_producer, None
        self.connected = False
        for client in (consumer, producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def _connect(self) -> AIOKafkaConsumer:
        await ensure_topics(self.settings, with_dlqs(self.topics), client_id=f"{self.name}-consumer")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            # A restarted local broker forgets committed offsets: start from the beginning and let
            # the inbox drop what was already handled.
            auto_offset_reset="earliest",
            max_poll_records=self.settings.consumer_batch_size,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            request_timeout_ms=max(self.settings.request_timeout_ms, 40_000),
        )
        # Subscribed before it starts, as when the topics were given to the constructor: the first join then
        # happens inside start(), with the subscription in place.
        consumer.subscribe(self.topics, listener=_Rewind(self, consumer))
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        self.connected = True
        return consumer

    async def run(self) -> None:
        """Consume until stopped; reconnect with backoff if the broker goes away; now and then delete inbox rows
        past their retention."""
        backoff = self.settings.relay_backoff_initial_s
        while not self._stopping:
            try:
                await self.retention.run_when_due()
                consumer = self._consumer or await self._connect()
                batch = await consumer.getmany(timeout_ms=200, max_records=self.settings.consumer_batch_size)
                if batch:
                    await self._process_batch(consumer, batch)
                    await self._record_lag(consumer)
                backoff = self.settings.relay_backoff_initial_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer error, reconnecting", consumer=self.name, error=repr(exc), retry_in_s=backoff)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.relay_backoff_max_s)

    async def rewind_assigned(self, consumer: AIOKafkaConsumer, assigned: Iterable[TopicPartition]) -> None:
        """Move the newly assigned partitions marked in the rewind table to the earliest offset the broker holds,
        commit that position at once (a partition that moves to another replica goes on from there too), then
        delete their marks. A failure leaves the marks, and the next assignment tries again."""
        if self.rewind is None:
            return
        table = self.rewind
        async with transaction(self.maker) as session:
            marked = {(t, p) for t, p in (await session.execute(select(table.c.topic, table.c.partition).where(
                table.c.consumer == self.name))).all()}
        due = [tp for tp in assigned if (tp.topic, tp.partition) in marked]
        if not due:
            return
        earliest = await consumer.beginning_offsets(due)
        for tp in due:
            consumer.seek(tp, earliest[tp])
        await consumer.commit({tp: earliest[tp] for tp in due})
        async with transaction(self.maker) as session:
            await session.execute(delete(table).where(table.c.consumer == self.name, tuple_(
                table.c.topic, table.c.partition).in_([(tp.topic, tp.partition) for tp in due])))
        log.info("partitions rewound to their earliest offset", consumer=self.name,
                 partitions=sorted(f"{tp.topic}[{tp.partition}]@{earliest[tp]}" for tp in due))

    # -- processing ----------------------------------------------------------------------------------

    async def _process_batch(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        await self.apply([self.handlers.decode(r) for records in batch.values() for r in records])
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        if self.before_offset_commit is not None:
            for tp, next_offset in offsets.items():
                await self.before_offset_commit(tp, next_offset)
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: another member now owns a partition and will redeliver from
            # the last committed offset; the inbox makes that redelivery a no-op.
            log.info("offset commit lost to a rebalance", consumer=self.name, error=repr(exc))

    async def apply(self, deliveries: Sequence[Delivery]) -> None:
        """Apply what a poll delivered, partition after partition, in one transaction.

        A transaction that lost to a concurrent one (a deadlock, a serialization failure: replicas writing the
        same read-model rows) kept nothing, so the whole batch runs again, up to `consumer_max_attempts` times.
        If a handler fails otherwise, the records go one at a time, so the failing one is retried,
        dead-lettered if it keeps failing, and the rest still follow in order.
        """
        if any(d.error is not None for d in deliveries):
            for delivery in deliveries:
                await self._process_one_with_retries(delivery)
            return
        for attempt in range(1, self.settings.consumer_max_attempts + 1):
            try:
                await self.process(deliveries)
                return
            except Exception as exc:
                if lost_to_contention(exc) and attempt < self.settings.consumer_max_attempts:
                    log.info("batch lost to a concurrent transaction, running it again", consumer=self.name,
                             attempt=attempt, error=str(getattr(exc, "orig", exc))[:200])
                    await asyncio.sleep(self.settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
                    continue
                log.info("batch failed, processing one by one", consumer=self.name, error=repr(exc))
                break
        for delivery in deliveries:
            await self._process_one_with_retries(delivery)

    async def process(self, deliveries: Sequence[Delivery]) -> int:
        """Apply deliveries in one transaction with their inbox rows; duplicates are skipped.

        Consecutive deliveries for the same handler go to it together, in order.
        """
        runs: list[tuple[BatchHandler, list[Delivery]]] = []
        outcomes: list[tuple[Delivery, str]] = []
        taken: list[tuple[Delivery, str]] = []  # in delivery order: the inbox keeps the order they were taken in
        async with transaction(self.maker) as session:
            seen = await self._already_seen(session, [d.event_id for d in deliveries if d.event_id])
            for delivery in deliveries:
                event, handler = delivery.event, delivery.handler
                if event is None:
                    continue
                if event.id in seen:
                    outcomes.append((delivery, "duplicate"))
                    continue
                seen.add(event.id)
                if handler is None:  # a type of a subscribed topic this consumer has no use for: accounted for
                    taken.append((delivery, NOT_NEEDED))
                    continue
                taken.append((delivery, "processed"))
                if runs and runs[-1][0] is handler:
                    runs[-1][1].append(delivery)
                else:
                    runs.append((handler, [delivery]))
            for handler, run in runs:
                await handler(session, [(d.event, d.payload) for d in run])  # type: ignore[misc]
            now = utcnow()  # one time for the batch: within it, partition and offset give the order
            inbox_rows = [self._inbox_row(d, outcome, now) for d, outcome in taken]
            outcomes.extend(taken)
            await bulk_insert(session, self.inbox, inbox_rows)
            if runs:  # last: what they write is shared with other replicas, whose locks wait for this commit
                applied = [d for d, outcome in taken if outcome == "processed"]
                for finish in self.handlers.finishers:
                    await finish(session, applied)
        self._count(outcomes)
        await self._refresh_statistics(len(inbox_rows))
        return len(inbox_rows)

    async def _refresh_statistics(self, applied: int) -> None:
        """On PostgreSQL, ANALYZE after 1,000, 2,000, 4,000 … events applied by this process.

        A burst of events grows the inbox and the projections faster than autovacuum notices (where it runs
        at all); with statistics that still say "empty", the planner scans whole tables for every batch and
        a burst slows down as it goes. Doubling keeps the cost to a few ANALYZEs, each a bounded sample.
        """
        self._applied += applied
        if self._applied < self._next_analyze:
            return
        self._next_analyze = self._applied * 2
        async with transaction(self.maker) as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(text("ANALYZE"))

    async def _already_seen(self, session: AsyncSession, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        found = await session.execute(
            select(self.inbox.c.event_id).where(
                self.inbox.c.consumer == self.name, among(session, self.inbox.c.event_id, event_ids)
            )
        )
        return set(found.scalars())

    async def _process_one_with_retries(self, delivery: Delivery) -> None:
        error: Exception | None = delivery.error
        if error is None:
            for attempt in range(1, self.settings.consumer_max_attempts + 1):
                try:
                    await self.process([delivery])
                    return
                except Exception as exc:
                    error = exc
                    if self.metrics is not None:
                        self.metrics.handler_failures_total.labels(topic=delivery.record.topic).inc()
                    log.warning(
                        "handler failed", consumer=self.name, event_id=delivery.event_id,
                        attempt=attempt, error=repr(exc),
                    )
                    if attempt < self.settings.consumer_max_attempts:
                        await asyncio.sleep(self.settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
        assert error is not None
        await self._dead_letter(delivery, error)

    async def _dead_letter(self, delivery: Delivery, error: Exception) -> None:
        record = delivery.record
        if delivery.event_id is not None:
            async with transaction(self.maker) as session:
                if await self._already_seen(session, [delivery.event_id]):
                    return
        if self._dlq_producer is None:
            producer = new_producer(self.settings, client_id=f"{self.name}-dlq")
            await producer.start()
            self._dlq_producer = producer
        headers = list(record.headers or ()) + [
            ("dlq-error", f"{type(error).__name__}: {error}"[:4000].encode()),
            ("dlq-consumer", self.name.encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
            ("dlq-attempts", str(0 if delivery.error else self.settings.consumer_max_attempts).encode()),
        ]
        await (await self._dlq_producer.send(dlq_topic(record.topic), value=record.value, key=record.key,
                                              headers=headers))
        log.error("message dead-lettered", consumer=self.name, event_id=delivery.event_id,
                  topic=record.topic, offset=record.offset, error=repr(error))
        if delivery.event is not None:
            # Remember it, so a redelivery does not retry and dead-letter the same event again.
            async with transaction(self.maker) as session:
                await session.execute(insert(self.inbox), [self._inbox_row(delivery, "dead_lettered")])
        self._count([(delivery, "dead_lettered")])

    def _inbox_row(self, delivery: Delivery, outcome: str, at: datetime | None = None) -> dict[str, Any]:
        assert delivery.event is not None
        record = delivery.record
        return {
            "consumer": self.name,
            "event_id": delivery.event.id,
            "event_type": delivery.event.type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "outcome": outcome,
            "processed_at": at or utcnow(),
        }

    def _count(self, outcomes: Iterable[tuple[Delivery, str]]) -> None:
        """The metric, by topic and outcome: one increment each per poll (a label lookup per event cost 5 % of
        the reporting consumer's time, measured with bench.consumers under cProfile)."""
        if self.metrics is None:
            return
        for (topic, outcome), count in Counter((d.record.topic, outcome) for d, outcome in outcomes).items():
            self.metrics.events_consumed_total.labels(topic=topic, outcome=outcome).inc(count)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        if self.metrics is None:
            return
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(IllegalStateError):
                position = await consumer.position(tp)
                self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(highwater - position, 0))

    async def group_lag_by_topic(self, max_age_s: float = 1.0, *,
                                 asked_after: float | None = None) -> dict[str, int] | None:
        """Per topic, the records the group has not committed yet over all the topic's partitions, whichever
        replica holds them, as the broker says (so every replica answers the same); at most `max_age_s` old, and
        asked of the broker after `asked_after` (loop time) when given; None when the broker cannot say."""
        now = asyncio.get_running_loop().time()
        cached = self._group_lag
        if (cached is not None and now - cached[0] < max_age_s
                and (asked_after is None or cached[0] >= asked_after)):
            return cached[1]
        try:
            lag = await asyncio.wait_for(group_lag_by_topic(self.settings, self.group_id, self.topics),
                                         timeout=self.settings.request_timeout_ms / 1000)
        except Exception as exc:  # broker down or slow: freshness says it does not know
            log.warning("consumer group lag unavailable", consumer=self.name, error=repr(exc))
            return None
        self._group_lag = (now, lag)
        return lag


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]
    """Calls `Consumer.rewind_assigned` when the group hands this replica its partitions."""

    def __init__(self, owner: Consumer, consumer: AIOKafkaConsumer) -> None:
        self.owner, self.consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        try:
            await self.owner.rewind_assigned(self.consumer, assigned)
        except Exception as exc:
            log.warning("rewinding partitions failed; the next assignment tries again", consumer=self.owner.name,
                        error=repr(exc))
