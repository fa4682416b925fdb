"""The relay: publishes the outbox's pending rows to Kafka in id order, batch by batch, and marks them published
once the broker acknowledged them. Every replica of a service runs one, publishing the outbox shards it leases
(`shared.bus.shards`); each keeps a producer connected, owning shards or not, so every replica is ready. The one
holding shard 0 also sends the outbox's status now and then (`shared.bus.status`)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka.structs import RecordMetadata
from sqlalchemy import bindparam, delete, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus.kafka import Offsets, ensure_topics, new_producer, with_dlqs
from shared.bus.models import SHARDS
from shared.bus.outbox import Outbox
from shared.bus.retention import Retention, purge_published
from shared.bus.shards import ShardLeases, upsert
from shared.bus.status import STATUS_SHARD, ensure_status_topic, outbox_status
from shared.bus.tasks import cancel
from shared.clock import utcnow
from shared.db import as_utc, read_only, transaction
from shared.events.envelope import CORRELATION_HEADER
from shared.events.status import OUTBOX_STATUS_TOPIC
from shared.settings import KafkaSettings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from shared.observability import Metrics

log = structlog.get_logger("kaenkhun.bus.outbox")

BROKER_CHECK_INTERVAL_S = 2.0
# How old the last comparison of the broker's end offsets with ours may be when a new run of sends starts.
VERIFY_INTERVAL_S = 0.5


@dataclass
class Flight:
    """A batch sent and not yet settled: its outbox rows, their send futures, and the shards (-> tokens) it was
    sent under (only rows of shards still held under them are marked)."""

    rows: Sequence[Any]
    futures: list[asyncio.Future[Any]]
    tokens: Mapping[int, int]


class Relay:
    """Publishes pending outbox rows in id order, in batches, with acks=all; retries with backoff."""

    def __init__(
        self,
        outbox: Outbox,
        maker: async_sessionmaker[AsyncSession],
        settings: KafkaSettings,
        *,
        topics: Iterable[str],
        metrics: Metrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.table = outbox.table
        self.maker = maker
        self.settings = settings
        self.published_topics = sorted(topics)  # the outbox's own topics (the status lists each)
        self.topics = with_dlqs(self.published_topics)
        self.metrics = metrics
        self.connected = False
        self._producer: AIOKafkaProducer | None = None
        # Batches sent and not yet settled, oldest first.
        self._in_flight: deque[Flight] = deque()
        self._task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._status_due = asyncio.Event()  # send the outbox status now, not at the end of the interval
        self._stopping = False
        self._last_check = 0.0
        self._offsets: Offsets | None = None  # asks the broker for end offsets (see _verify_log)
        self._verified_at = -math.inf  # when the broker's end offsets were last compared with ours
        # Per partition, the first offset of the newest batch this relay's sends were acknowledged at. In one log
        # a partition's offsets only grow, so a later batch acknowledged at or below it means the broker lost its
        # log while our sends went on (a restarted Tansu the producer reconnected to on its own): see
        # publish_batch. Replicas share partitions, so only this relay's own acks are compared.
        self._acked: dict[tuple[str, int], int] = {}
        engine: AsyncEngine = maker.kw["bind"]
        self._engine = engine
        # `_any_pending`: the first pending row of a range of shards, from the index of pending rows (the range
        # on `shard` and the order by (shard, id) leave no other index to read it from); built once.
        t = self.table
        self._probe = (select(t.c.id).where(t.c.shard.between(bindparam("lo"), bindparam("hi")),
                                            t.c.published_at.is_(None)).order_by(t.c.shard, t.c.id).limit(1))
        # Several replicas of a service share one database: each publishes the shards it leases, so one key's
        # events (one shard) leave from one relay at a time, in order.
        self.leases = ShardLeases(maker, self.table.metadata, lease_s=settings.relay_lease_s,
                                  heartbeat_s=settings.relay_heartbeat_s, on_change=self._shards_changed)
        # Any replica may purge; one at a time (a transaction advisory lock on PostgreSQL).
        self.retention = Retention("outbox", maker, partial(purge_published, table=self.table),
                                   days=settings.outbox_retention_days, interval_s=settings.retention_interval_s,
                                   lock=f"kaenkhun-outbox-retention:{outbox.service}")

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self.leases.start()
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.outbox.service}")
        self._status_task = asyncio.create_task(self._send_status_now_and_then(),
                                                name=f"outbox-status-{self.outbox.service}")

    async def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Stop the loop after publishing what is pending in its shards (bounded by `flush_timeout_s`), then give
        the shards back."""
        self._stopping = True
        self.outbox.wakeup.set()
        status_task, self._status_task = self._status_task, None
        await cancel(status_task)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=flush_timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        await self._close_producer()
        await self.leases.stop()

    def _shards_changed(self) -> None:
        self._record_shards()
        self.outbox.wakeup.set()  # publish the pending rows of shards gained now
        self._status_due.set()  # shard 0 gained: send the status at once (lost: nothing is sent)

    def _record_shards(self) -> None:
        if self.metrics is None:
            return
        owned = set(self.leases.owned)
        self.metrics.outbox_shards_owned.labels(member=self.leases.member).set(len(owned))
        for shard in range(SHARDS):
            self.metrics.outbox_shard_owned.labels(shard=str(shard)).set(int(shard in owned))

    async def run(self) -> None:
        """Loop until stopped: publish batches of the shards held, sleep when idle, back off while the broker is
        down; now and then delete published rows past their retention."""
        backoff = self.settings.relay_backoff_initial_s
        self._record_shards()
        while True:
            try:
                await self.retention.run_when_due()
                await self._producer_ready()
                published = await self.publish_batch()
                backoff = self.settings.relay_backoff_initial_s
                if published == 0:
                    if self._stopping:
                        return
                    await self._sleep(self.settings.relay_idle_interval_s)
                    await self._check_broker()
                elif not self._in_flight and published < self.settings.relay_batch_size and not self._stopping:
                    await asyncio.sleep(self.settings.relay_linger_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down, topic missing, database busy: retry them all
                self.connected = False
                log.warning("outbox relay error, retrying", error=repr(exc), retry_in_s=backoff)
                await self._close_producer()
                if self._stopping:
                    return
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.settings.relay_backoff_max_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.outbox.wakeup.wait(), timeout=seconds)
        self.outbox.wakeup.clear()

    # -- publishing ----------------------------------------------------------------------------------

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.settings, self.topics, client_id=f"{self.outbox.service}-relay")
            await ensure_status_topic(self.settings, client_id=f"{self.outbox.service}-relay")
            producer = new_producer(self.settings, client_id=f"{self.outbox.service}-relay")
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
            for topic in [*self.topics, OUTBOX_STATUS_TOPIC]:
                producer.client.add_topic(topic)
            self._verified_at = -math.inf
            self.connected = True
        return self._producer

    async def _verify_log(self) -> None:
        """Before sending, when the pipeline is empty and the last check is over VERIFY_INTERVAL_S old (always
        after a pause or a reconnection; at most twice a second under steady writes). If a partition's end
        offset is not above the first offset of the newest batch the broker acknowledged to us there, the
        broker has lost its log (a restarted Tansu is a new, empty cluster; a topic was deleted and
        recreated), and what we published may never have reached our consumers. A restart between this
        check and the next sends loses nothing either (the next check finds it), but may deliver a key's
        newer events before the older ones published again; projections keep the highest version.

        It first refreshes the producer's metadata: a broker that came back empty may have had our topics
        recreated meanwhile with another partition count (Tansu creates a topic a consumer asks for with 4
        partitions), and a producer still partitioning by the old count would send keys to partitions no
        consumer is assigned (Tansu accepts them), where they are never read."""
        if self._producer is not None:
            await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout=5)
        async with read_only(self._engine) as conn:
            rows = (await conn.execute(select(self.outbox.positions))).all()
        acked = {(r.topic, r.partition): r.batch_base for r in rows}
        if not acked:
            return
        if self._offsets is None:
            self._offsets = await Offsets.open(self.settings, client_id=f"{self.outbox.service}-relay")
        now = await self._offsets.end_offsets(list(acked))
        lost = [f"{t}[{p}] end {now[(t, p)]} <= {base}" for (t, p), base in sorted(acked.items())
                if now[(t, p)] <= base]
        if lost:
            await self._publish_everything_again(lost)
        self._verified_at = asyncio.get_running_loop().time()

    async def _publish_everything_again(self, lost: list[str]) -> None:
        """Make every retained row pending again: the relay publishes them once more, in id order, and each
        consumer's inbox takes every event once. Apache Kafka keeps its log, and this never runs there."""
        async with transaction(self.maker) as session:
            count = await self.outbox.mark_for_replay(session)
            await session.execute(delete(self.outbox.positions))
        self._acked.clear()
        self._verified_at = -math.inf  # verify (and refresh the metadata) again before the next send
        log.warning("the broker lost its log: publishing the outbox again", service=self.outbox.service,
                    partitions=lost[:10], events=count)

    async def _check_broker(self) -> None:
        # While idle nothing would notice a lost broker (a restarted one has forgotten our topics):
        # ask for metadata now and then, and reconnect (recreating topics) when that fails.
        now = asyncio.get_running_loop().time()
        if now - self._last_check < BROKER_CHECK_INTERVAL_S or self._producer is None:
            return
        self._last_check = now
        if not await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout=5):
            raise ConnectionError("broker metadata unavailable")
        if not {*self.topics, OUTBOX_STATUS_TOPIC} <= self._producer.client.cluster.topics():
            raise ConnectionError("broker lost our topics")

    async def _close_producer(self) -> None:
        self._in_flight.clear()  # their rows are still pending: sent again on reconnect
        offsets, self._offsets = self._offsets, None
        if offsets is not None:
            with contextlib.suppress(Exception):
                await offsets.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish_batch(self) -> int:
        """Settle the oldest batch in flight, keeping the pipeline full; returns how many rows it published.

        Up to `relay_pipeline_depth` batches are sent ahead, in id order, before the oldest is awaited:
        the producer keeps each partition's order, and the broker's round trip is paid once per
        pipeline instead of once per batch. A row is marked published only after its ack.
        """
        await self._fill_pipeline()
        if not self._in_flight:
            return 0
        flight = self._in_flight.popleft()
        rows = flight.rows
        results = await asyncio.gather(*flight.futures, return_exceptions=True)
        published, failed, first_error = self._sort_outcomes(rows, results)
        bases: dict[tuple[str, int], int] = {}
        for result in results:
            if isinstance(result, RecordMetadata):
                tp = (result.topic, result.partition)
                bases[tp] = min(bases.get(tp, result.offset), result.offset)
        went_back = [f"{t}[{p}] acked at {base} <= {self._acked[(t, p)]}" for (t, p), base in sorted(bases.items())
                     if (t, p) in self._acked and base <= self._acked[(t, p)]]
        for tp, base in bases.items():
            self._acked[tp] = max(base, self._acked.get(tp, base))
        if first_error is not None:
            # Later batches may hold later events of the failed keys: none of them counts as
            # published; they all go again, in order, after the backoff (the inbox absorbs duplicates).
            await self._abandon_pipeline()
        now = utcnow()
        async with transaction(self.maker) as session:
            # Fencing: only rows of shards still held under the tokens they were sent under (a replica that
            # took a shard over publishes its rows itself).
            held = await self.leases.still_held(session, flight.tokens)
            shard_of = {row.id: row.shard for row in rows}
            published = [i for i in published if shard_of[i] in held]
            failed = [i for i in failed if shard_of[i] in held]
            if published:
                await session.execute(
                    update(self.table).where(self.table.c.id.in_(published)).values(published_at=now)
                )
            await self._advance_positions(session, bases)
            if failed:
                await session.execute(
                    update(self.table)
                    .where(self.table.c.id.in_(failed))
                    .values(attempts=self.table.c.attempts + 1, last_error=repr(first_error)[:2000])
                )
        if self.metrics is not None:
            published_ids = set(published)
            for row in rows:
                if row.id in published_ids:
                    self.metrics.events_published_total.labels(topic=row.topic).inc()
        if went_back:
            # What was published before the loss, and was not verified since, may be gone: everything again.
            await self._abandon_pipeline()
            await self._publish_everything_again(went_back)
        if first_error is not None:
            raise first_error
        return len(published)

    async def _advance_positions(self, session: AsyncSession, bases: dict[tuple[str, int], int]) -> None:
        """Note, per partition, the first offset of this batch (never going back). Not the last: Tansu reports
        a partition's end offset as its newest record batch's base offset + 1, so only "the end offset is
        not above the base of what we sent last" tells a lost log on both brokers. One upsert keeping the
        larger base: replicas publishing to the same partitions race here; rows in one order, so two such
        upserts cannot deadlock."""
        if not bases:
            return
        t = self.outbox.positions
        stmt = upsert(session)(t).values([{"topic": topic, "partition": partition, "batch_base": base}
                                          for (topic, partition), base in sorted(bases.items())])
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[t.c.topic, t.c.partition], set_={"batch_base": stmt.excluded.batch_base},
            where=t.c.batch_base < stmt.excluded.batch_base))

    async def _fill_pipeline(self) -> None:
        """Send pending rows of the shards held after the last one in flight, batch by batch, until the pipeline
        is full. After a change of shards, nothing more is sent until the batches in flight are settled (the
        next rows are then read afresh, from the first pending one of each shard now held)."""
        while len(self._in_flight) < self.settings.relay_pipeline_depth:
            tokens = self.leases.held()
            if not tokens or (self._in_flight and self._in_flight[-1].tokens is not tokens):
                return
            after = self._in_flight[-1].rows[-1].id if self._in_flight else None
            rows = await self._pending_rows(after, tokens)
            if not rows:
                return
            producer = await self._producer_ready()
            if not self._in_flight and asyncio.get_running_loop().time() - self._verified_at > VERIFY_INTERVAL_S:
                await self._verify_log()
                rows = await self._pending_rows(None, tokens)  # what is pending may have grown
                if not rows:
                    return
            if self.leases.held() is not tokens:
                return  # the leases ran out (or changed) meanwhile: renew first, send nothing stale
            futures = []
            for row in rows:
                headers = [
                    ("content-type", b"application/cloudevents+json; charset=UTF-8"),
                    ("ce_type", row.event_type.encode()),
                ]
                if row.correlation_id:
                    headers.append((CORRELATION_HEADER, row.correlation_id.encode()))
                futures.append(
                    await producer.send(row.topic, value=row.value.encode(), key=row.key.encode(), headers=headers)
                )
            self._in_flight.append(Flight(rows, futures, tokens))
            if len(rows) < self.settings.relay_batch_size:
                return

    async def _pending_rows(self, after: int | None, shards: Iterable[int]) -> Sequence[Any]:
        """The first pending rows (after id `after`) of the given shards, in id order.

        Per shard, the ids come from one range of the index on (shard, id) of pending rows, and only from it:
        the range condition on `shard` and the order by (shard, id) leave no other index able to give them in
        order, whatever the statistics say (by `shard = :s ORDER BY id`, a planner that believes most rows
        pending may walk the primary key through every published row instead). The first `limit` ids of all
        shards are then read in full by primary key.
        """
        t, limit = self.table, self.settings.relay_batch_size
        async with read_only(self._engine) as conn:
            if after is None and not await self._any_pending(conn, shards):
                self._set_pending(0, None)
                return []
            per_shard = []
            for shard in sorted(shards):
                ids = (select(t.c.id).where(t.c.shard.between(shard, shard), t.c.published_at.is_(None))
                       .order_by(t.c.shard, t.c.id).limit(limit))
                if after is not None:
                    ids = ids.where(t.c.id > after)
                per_shard.append(select(ids.subquery()))
            first = union_all(*per_shard).order_by("id").limit(limit).subquery()
            merged = (select(t.c.id, t.c.shard, t.c.topic, t.c.key, t.c.value, t.c.correlation_id, t.c.event_type)
                      .where(t.c.id.in_(select(first.c.id))).order_by(t.c.id))
            rows = (await conn.execute(merged)).all()
            if after is None:
                await self._record_pending(conn)
        return rows

    async def _any_pending(self, conn: AsyncConnection, shards: Iterable[int]) -> bool:
        """Whether a pending row may be in the shards held: one probe of the index of pending rows over the range
        from the lowest to the highest (a row of a shard in between that another replica holds says yes, and
        the full read finds nothing of ours). An idle relay asks this five times a second: building and
        running the per-shard read instead cost an idle service ~9 % of a core (py-spy: half its event loop's
        samples, building the statement), this a prepared statement and one index probe."""
        held = sorted(shards)
        return (await conn.execute(self._probe, {"lo": held[0], "hi": held[-1]})).first() is not None

    async def _abandon_pipeline(self) -> None:
        """Forget the batches in flight: their rows stay pending and are sent again."""
        flights, self._in_flight = list(self._in_flight), deque()
        for flight in flights:
            await asyncio.gather(*flight.futures, return_exceptions=True)

    @staticmethod
    def _sort_outcomes(rows: Sequence[Any], results: Sequence[Any]) -> tuple[list[int], list[int], Exception | None]:
        # A row counts as published only if no earlier row of its key failed in this batch: the
        # failed one and everything after it on that key go again, in order (the inbox absorbs
        # the duplicates), so a key's events never overtake each other.
        published: list[int] = []
        failed: list[int] = []
        blocked_keys: set[tuple[str, str]] = set()
        first_error: Exception | None = None
        for row, result in zip(rows, results, strict=True):
            key = (row.topic, row.key)
            if isinstance(result, BaseException) or key in blocked_keys:
                if isinstance(result, Exception) and first_error is None:
                    first_error = result
                blocked_keys.add(key)
                failed.append(row.id)
            else:
                published.append(row.id)
        return published, failed, first_error

    async def _record_pending(self, conn: AsyncConnection) -> None:
        if self.metrics is not None:
            self._set_pending(*await self.outbox.pending_stats(conn))

    def _set_pending(self, count: int, oldest: datetime | None) -> None:
        """The pending rows' metrics: how many, and how long the oldest has waited."""
        if self.metrics is None:
            return
        self.metrics.outbox_pending.set(count)
        lag = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        self.metrics.outbox_publish_lag_seconds.set(max(lag, 0.0))

    # -- outbox status -------------------------------------------------------------------------------

    @property
    def sends_status(self) -> bool:
        """Whether this replica's relay is the one sending the outbox's status: the one holding shard 0. Any
        replica would measure the same (the whole outbox), so one is enough: one query and one record per
        interval, whatever the replicas; should it hang or be lost, the replica that takes shard 0 over sends
        (at once: see `_shards_changed`)."""
        return STATUS_SHARD in self.leases.held()

    async def send_status(self) -> bool:
        """Measure the outbox (`Outbox.pending_by_topic`: pending rows through their index, by shard) and send its
        status to `OUTBOX_STATUS_TOPIC`, keyed by the service, if this relay sends it and is connected; whether it
        did. Straight to the broker, not through the outbox it describes: a snapshot, harmless if sent twice."""
        producer = self._producer
        if producer is None or not self.sends_status:
            return False
        measured_at = utcnow()
        async with read_only(self._engine) as conn:
            pending = await self.outbox.pending_by_topic(conn)
        status = outbox_status(self.outbox.service, pending, self.published_topics, measured_at=measured_at,
                               interval_s=self.settings.outbox_status_interval_s)
        await (await producer.send(OUTBOX_STATUS_TOPIC, value=status.model_dump_json().encode(),
                                   key=self.outbox.service.encode()))
        return True

    async def _send_status_now_and_then(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_due.wait(), timeout=self.settings.outbox_status_interval_s)
            self._status_due.clear()
            try:
                await self.send_status()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: the relay's loop reconnects; next interval
                log.info("outbox status not sent", service=self.outbox.service, error=repr(exc))

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Publish until nothing is pending (used by tests and by shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with read_only(self._engine) as conn:
                count, _ = await self.outbox.pending_stats(conn)
            if count == 0:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{count} outbox rows still pending")
            self.outbox.wakeup.set()
            await asyncio.sleep(0.05)
