"""Thin helpers around aiokafka: producer settings, idempotent topic creation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.events.catalogue import dlq_topic
from shared.settings import KafkaSettings

log = structlog.get_logger("kaenkhun.bus")

TOPIC_ALREADY_EXISTS = 36


def new_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas; idempotence only where the broker has it."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.idempotent_producer,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
    )


def with_dlqs(topics: Iterable[str]) -> list[str]:
    """Each topic and its dead-letter topic."""
    result: list[str] = []
    for topic in topics:
        result += [topic, dlq_topic(topic)]
    return result


class Offsets:
    """A client that asks the broker for partitions' end offsets (a consumer in no group)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    @classmethod
    async def open(cls, settings: KafkaSettings, client_id: str = "kaenkhun") -> Offsets:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, client_id=f"{client_id}-offsets",
                                    group_id=None, request_timeout_ms=settings.request_timeout_ms)
        await consumer.start()
        return cls(consumer)

    async def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Each (topic, partition)'s end offset now; a partition the broker does not have counts as 0."""
        wanted = list(partitions)
        existing = await self._consumer.topics()  # fresh metadata: a restarted broker may have none of them
        known = [TopicPartition(t, p) for t, p in wanted
                 if t in existing and p in (self._consumer.partitions_for_topic(t) or set())]
        found = await self._consumer.end_offsets(known) if known else {}
        return {(t, p): found.get(TopicPartition(t, p), 0) for t, p in wanted}

    async def beginning_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Each (topic, partition)'s earliest offset the broker still holds (above 0: retention deleted the
        records before it)."""
        found = await self._consumer.beginning_offsets([TopicPartition(t, p) for t, p in partitions])
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def value_at(self, topic: str, partition: int, offset: int, timeout_ms: int = 5000) -> bytes | None:
        """The value of the record at `offset` of a partition, None if the broker no longer has it there."""
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, offset)
        found = await self._consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)
        records = found.get(tp, [])
        return records[0].value if records and records[0].offset == offset else None

    async def partitions(self, topics: Iterable[str]) -> list[tuple[str, int]]:
        """Every (topic, partition) the broker has of `topics` now."""
        existing = await self._consumer.topics()
        return [(t, p) for t in topics if t in existing for p in sorted(self._consumer.partitions_for_topic(t) or ())]

    async def close(self) -> None:
        await self._consumer.stop()


async def group_lag(settings: KafkaSettings, groups: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Per consumer group, the records of its topics it has not committed yet (`group_lag_by_topic`, summed),
    asked through one offsets client."""
    offsets = await Offsets.open(settings, client_id="kaenkhun-lag")
    try:
        return {group: sum((await _group_lag_by_topic(offsets, settings, group, topics)).values())
                for group, topics in groups.items()}
    finally:
        await offsets.close()


async def group_lag_by_topic(settings: KafkaSettings, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Per topic, the records a consumer group has not committed yet: Σ (end offset − committed offset) over
    the topic's partitions (a partition it never committed counts from 0), whichever replica holds them. Asked
    as a member of no generation (it never subscribes, so the group does not rebalance)."""
    offsets = await Offsets.open(settings, client_id="kaenkhun-lag")
    try:
        return await _group_lag_by_topic(offsets, settings, group, topics)
    finally:
        await offsets.close()


async def _group_lag_by_topic(offsets: Offsets, settings: KafkaSettings, group: str,
                              topics: Iterable[str]) -> dict[str, int]:
    topics = list(topics)
    ends = await offsets.end_offsets(await offsets.partitions(topics))
    reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                              client_id="kaenkhun-lag", enable_auto_commit=False,
                              request_timeout_ms=settings.request_timeout_ms)
    await reader.start()
    try:
        committed = {tp: await reader.committed(TopicPartition(*tp)) or 0 for tp in ends}
    finally:
        await reader.stop()
    lag = dict.fromkeys(topics, 0)
    for (topic, partition), end in ends.items():
        lag[topic] += max(end - committed[(topic, partition)], 0)
    return lag


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str], client_id: str = "kaenkhun", *,
                        partitions: int | None = None, configs: Mapping[str, str] | None = None) -> None:
    """Create the topics that do not exist yet; safe to repeat (a restarted broker may have lost them). New topics
    get `partitions` (default `topic_partitions`) and `configs` besides `min.insync.replicas`; existing ones are
    left as they are."""
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return
        wanted_configs = dict(configs or {}) | (
            {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
            if settings.topic_min_insync_replicas is not None else {})
        response = await admin.create_topics(
            [
                NewTopic(t, num_partitions=partitions or settings.topic_partitions,
                         replication_factor=settings.topic_replication_factor, topic_configs=wanted_configs or None)
                for t in missing
            ]
        )
        for topic, code, message in _topic_errors(response):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {topic}: error {code} {message}")
        log.info("topics created", topics=missing)
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = []
    for entry in getattr(response, "topic_errors", []):
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        errors.append((topic, code, message))
    return errors
