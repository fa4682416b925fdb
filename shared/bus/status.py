"""What the producers' outboxes still hold, across services, through the broker only.

Each service's relay sends a snapshot of its outbox (`OutboxStatus`: per topic it publishes, the events not yet
published) to `OUTBOX_STATUS_TOPIC`, keyed by the service, every `outbox_status_interval_s`: the replica holding
outbox shard 0 does (`Relay.send_status`). Every replica of every consuming service reads that topic with an
`OutboxStatusReader`, in no consumer group, and keeps the newest status of each service in memory: a cache of
what the broker holds, the same in every replica. "Caught up" is then the group's lag 0 *and* nothing pending in
the producers' outboxes (reporting's freshness, each service's `/v1/bus`).

The topic is small and only its tail matters: a reader starts `LOOKBACK` records before each partition's end,
never at the start of an ever-growing log, and a status older than `STALE_AFTER_INTERVALS` of its producer's
intervals is not believed. Apache Kafka keeps the topic for an hour (`STATUS_TOPIC_CONFIGS`); Tansu keeps nothing
across its restart, and the relay and the readers create the topic again (idempotently) when they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared.bus.kafka import ensure_topics
from shared.bus.tasks import cancel
from shared.clock import utcnow
from shared.db import as_utc
from shared.events.status import OUTBOX_STATUS_TOPIC, OutboxStatus, TopicPending
from shared.settings import KafkaSettings

log = structlog.get_logger("kaenkhun.bus.status")

# The outbox shard whose holder sends the service's status (one replica at a time; see `Relay.sends_status`).
STATUS_SHARD = 0
# One partition: a handful of small records per interval, read whole by every reader.
STATUS_TOPIC_PARTITIONS = 1
# An hour of statuses, in segments of an hour (Apache Kafka deletes whole segments; its default is 7 days each).
STATUS_TOPIC_CONFIGS = {"retention.ms": "3600000", "segment.ms": "3600000"}
# Records a reader starts before each partition's end: the last few intervals of dozens of services (one status per
# service and interval), whatever the log holds behind them.
LOOKBACK = 200
STALE_AFTER_INTERVALS = 3
# A reader that has heard nothing for this many of its own intervals connects again (a broker may have lost the
# topic): a cheap check, seldom enough not to churn on a quiet bus.
SILENT_INTERVALS = 10


def outbox_status(service: str, pending: Mapping[str, tuple[int, datetime | None]], topics: Iterable[str], *,
                  measured_at: datetime, interval_s: float) -> OutboxStatus:
    """The status of a service's outbox from `Outbox.pending_by_topic`: every topic it publishes, 0 where none
    waits."""
    by_topic = {}
    for topic in sorted(set(topics) | set(pending)):
        count, oldest = pending.get(topic, (0, None))
        by_topic[topic] = TopicPending(pending=count, oldest_pending_at=as_utc(oldest) if oldest else None)
    return OutboxStatus(service=service, measured_at=measured_at, interval_s=interval_s, topics=by_topic)


async def ensure_status_topic(settings: KafkaSettings, client_id: str) -> None:
    """Create the status topic if the broker does not have it (idempotent)."""
    await ensure_topics(settings, [OUTBOX_STATUS_TOPIC], client_id=client_id, partitions=STATUS_TOPIC_PARTITIONS,
                        configs=STATUS_TOPIC_CONFIGS)


def is_fresh(status: OutboxStatus, now: datetime) -> bool:
    """Measured less than `STALE_AFTER_INTERVALS` of its producer's intervals ago (by this process's clock)."""
    return now - status.measured_at <= timedelta(seconds=STALE_AFTER_INTERVALS * status.interval_s)


class OutboxStatusReader:
    """The newest outbox status of each producing service, read from the broker by this replica (no group)."""

    def __init__(self, name: str, settings: KafkaSettings) -> None:
        self.name = name
        self.settings = settings
        self.connected = False
        self.statuses: dict[str, OutboxStatus] = {}  # service -> its newest status
        self._received: dict[str, float] = {}  # service -> when (loop time) its newest status came in
        self.records_read = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what it knows -------------------------------------------------------------------------------

    def pending(self, topics: Iterable[str]) -> dict[str, int | None]:
        """Per topic, the events still waiting in its producers' outboxes by their fresh statuses (summed, should
        several services publish it); None where no fresh status names it (its producer stopped sending, or this
        replica has heard nothing yet)."""
        fresh = self._fresh()
        result: dict[str, int | None] = {}
        for topic in topics:
            counts = [s.topics[topic].pending for s in fresh if topic in s.topics]
            result[topic] = sum(counts) if counts else None
        return result

    def received_at(self, topics: Iterable[str]) -> float | None:
        """When (loop time) the newest of the fresh statuses naming these topics came in; None if none did.

        An event counted by neither a status nor the consumer group's lag would be one published between the
        two measurements: "caught up" needs a lag measured after this (`Consumer.group_lag_by_topic`). Every
        event written before the status was measured is then pending in it, or in the broker's log when the lag
        is measured. By the time of arrival, so the hosts' clocks do not matter."""
        wanted = set(topics)
        times = [self._received[s.service] for s in self._fresh() if wanted & set(s.topics)]
        return max(times, default=None)

    def _fresh(self) -> list[OutboxStatus]:
        now = utcnow()
        return [s for s in self.statuses.values() if is_fresh(s, now)]

    def take(self, value: bytes | None) -> None:
        """Keep a status record if it is the newest of its service; a record that is no status is ignored."""
        self.records_read += 1
        try:
            status = OutboxStatus.model_validate_json(value or b"")
        except ValidationError:
            log.warning("not an outbox status", reader=self.name, value=(value or b"")[:200])
            return
        held = self.statuses.get(status.service)
        if held is None or status.measured_at >= held.measured_at:
            self.statuses[status.service] = status
            self._received[status.service] = asyncio.get_running_loop().time()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-status-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        await self._close()

    async def run(self) -> None:
        """Read statuses as they come; reconnect with backoff when the broker goes away, and after
        `SILENT_INTERVALS` intervals of silence (a restarted broker may have lost the topic)."""
        backoff = self.settings.relay_backoff_initial_s
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            try:
                consumer = self._consumer or await self._connect()
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.take(record.value)
                if batch:
                    heard = loop.time()
                elif loop.time() - heard > SILENT_INTERVALS * self.settings.outbox_status_interval_s:
                    heard = loop.time()
                    await self._close()
                backoff = self.settings.relay_backoff_initial_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox status reader error, reconnecting", reader=self.name, error=repr(exc),
                            retry_in_s=backoff)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.relay_backoff_max_s)

    async def _connect(self) -> AIOKafkaConsumer:
        """Assign every partition of the topic, each from `LOOKBACK` records before its end."""
        client_id = f"{self.name}-outbox-status"
        await ensure_status_topic(self.settings, client_id)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=None,
                                    client_id=client_id, enable_auto_commit=False,
                                    # A broker that lost its log (a restarted Tansu) starts again at 0.
                                    auto_offset_reset="earliest",
                                    request_timeout_ms=self.settings.request_timeout_ms)
        await consumer.start()
        try:
            await consumer.topics()  # fresh metadata
            partitions = [TopicPartition(OUTBOX_STATUS_TOPIC, p)
                          for p in sorted(consumer.partitions_for_topic(OUTBOX_STATUS_TOPIC) or ())]
            if not partitions:
                raise ConnectionError(f"the broker has no topic {OUTBOX_STATUS_TOPIC}")
            consumer.assign(partitions)
            beginnings = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(beginnings[tp], ends[tp] - LOOKBACK))
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        self.connected = True
        return consumer

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self.connected = False
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
