"""Transactional outbox: events are written with the state change, in the caller's transaction; the relay
(`shared.bus.relay`) publishes them afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, event, func, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.bus.models import SHARDS, outbox_member_table, outbox_position_table, outbox_shard_table, shard_of
from shared.clock import utcnow
from shared.db import bulk_insert, rowcount
from shared.events.catalogue import EventType
from shared.events.envelope import encode_event, source_for

# From this many events in one call, the outbox rows go in through the driver's bulk path: rendering a
# multi-row INSERT costs SQLAlchemy ~35 µs per row on PostgreSQL (measured with bench.registry).
BULK_ROWS = 50
# Encoding an event takes ~50 µs: a bulk of them lets the event loop run its other tasks every this many, so
# that an import's chunk (500 events) does not hold it for the whole batch.
YIELD_EVERY = 100


@dataclass(frozen=True)
class PendingEvent:
    """What a caller asks to publish: an event type, its payload and the aggregate it concerns.

    The payload is the event type's model, or on a bulk path that builds it itself its `model_dump(mode="json")`
    exactly (a dict, written as given: validating and dumping thousands of models costs more than the rest of
    writing them; a test must show that the dict is what the model gives)."""

    event_type: EventType
    payload: BaseModel | dict[str, Any]
    key: str
    subject: str | None = None


class Outbox:
    """Writes events into the service's outbox table inside the caller's transaction."""

    def __init__(self, service: str, table: Table) -> None:
        self.service = service
        self.table = table
        self.positions = outbox_position_table(table.metadata)
        # The relays' leases of the outbox's shards (shared/bus/shards.py), in the same database.
        outbox_shard_table(table.metadata)
        outbox_member_table(table.metadata)
        self.source = source_for(service)
        # Set after a transaction that wrote outbox rows commits, so the relay wakes at once.
        self.wakeup = asyncio.Event()

    async def add(
        self,
        session: AsyncSession,
        event_type: EventType,
        payload: BaseModel,
        *,
        key: str,
        subject: str | None = None,
    ) -> str:
        """Record one event in the caller's transaction; the message key is the aggregate id. Returns its id."""
        return (await self.add_many(session, [PendingEvent(event_type, payload, key, subject)]))[0]

    async def add_many(self, session: AsyncSession, pending: Sequence[PendingEvent]) -> list[str]:
        """Record several events, in order, in the caller's transaction; returns their event ids."""
        from shared.observability import get_correlation_id

        correlation_id = get_correlation_id()
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for n, item in enumerate(pending, 1):
            if n % YIELD_EVERY == 0:  # a bulk (an import's chunk): let the loop serve others meanwhile
                await asyncio.sleep(0)
            if isinstance(item.payload, dict):
                data = item.payload
            elif isinstance(item.payload, item.event_type.payload):
                data = item.payload.model_dump(mode="json")
            else:
                raise TypeError(f"{item.event_type.type} expects {item.event_type.payload.__name__}")
            event_id, value = encode_event(
                source=self.source,
                type=item.event_type.type,
                time=now,
                subject=item.subject or item.key,
                correlationid=correlation_id,
                partitionkey=item.key,
                data=data,
            )
            rows.append(
                {
                    "event_id": event_id,
                    "topic": item.event_type.topic,
                    "key": item.key,
                    "shard": shard_of(item.key),
                    "event_type": item.event_type.type,
                    "value": value.decode(),
                    "correlation_id": correlation_id,
                    "created_at": now,
                }
            )
        if len(rows) >= BULK_ROWS:
            await bulk_insert(session, self.table, rows)  # a bulk import: COPY / executemany
        elif rows:
            await session.execute(insert(self.table), rows)
        if rows:
            self._wake_after_commit(session)
        return [row["event_id"] for row in rows]

    def _wake_after_commit(self, session: AsyncSession) -> None:
        sync_session = session.sync_session
        if sync_session.info.get("outbox_wakeup_hooked"):
            return
        sync_session.info["outbox_wakeup_hooked"] = True

        def _after_commit(_session: Any) -> None:
            _session.info.pop("outbox_wakeup_hooked", None)
            self.wakeup.set()

        event.listen(sync_session, "after_commit", _after_commit, once=True)

    async def pending_stats(self, session: AsyncSession | AsyncConnection) -> tuple[int, datetime | None]:
        """How many rows are unpublished and when the oldest was written (`pending_by_topic`, over every topic)."""
        by_topic = await self.pending_by_topic(session)
        oldest = [at for _, at in by_topic.values() if at is not None]
        return sum(count for count, _ in by_topic.values()), min(oldest, default=None)

    async def pending_by_topic(self, session: AsyncSession | AsyncConnection,
                               ) -> dict[str, tuple[int, datetime | None]]:
        """Per topic with unpublished rows, how many there are and when the oldest was written.

        Counted shard by shard, each from its range of the index of pending rows (`ix_outbox_shard_pending`),
        whatever the statistics say. One count over the table is planned from them, and statistics taken while
        the outbox was empty, or while a bulk import's rows were all still pending, have PostgreSQL scan the
        whole table for it (measured: an idle service kept it at 72 % of a core with a 2 GB outbox), on every
        idle turn of the relay. Per shard, a scan of the table would be repeated for each of the shards.
        """
        t = self.table
        pending = union_all(*(select(t.c.topic, t.c.created_at)
                              .where(t.c.shard.between(shard, shard), t.c.published_at.is_(None))
                              for shard in range(SHARDS))).subquery()
        rows = (await session.execute(select(pending.c.topic, func.count(), func.min(pending.c.created_at))
                                      .group_by(pending.c.topic))).all()
        return {topic: (int(count), oldest) for topic, count, oldest in rows}

    async def mark_for_replay(self, session: AsyncSession, *, since: datetime | None = None,
                              topic: str | None = None) -> int:
        """Make rows written since `since` (every retained row if None) pending again, so the relay publishes
        them once more, noting when (`replayed_at`); returns how many rows that is."""
        stmt = update(self.table).values(published_at=None, replayed_at=utcnow())
        if since is not None:
            stmt = stmt.where(self.table.c.created_at >= since)
        if topic is not None:
            stmt = stmt.where(self.table.c.topic == topic)
        result = await session.execute(stmt)
        self.wakeup.set()
        return rowcount(result)
