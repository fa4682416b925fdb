"""Retention of the bus tables: published outbox rows and inbox rows older than the configured days are deleted,
a batch per transaction, once an interval (`KafkaSettings.outbox_retention_days`, `inbox_retention_days`,
`retention_interval_s`). Unset, nothing is deleted.

The relay purges its outbox, the consumer its inbox, each on one replica at a time (under a transaction advisory
lock). A consumer's inbox must outlive its producers' outboxes: the settings refuse an inbox retention shorter
than the outbox's + 1 day.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.leader import holds_transaction_lock
from shared.clock import utcnow
from shared.db import no_table_scans, rowcount, transaction

log = structlog.get_logger("kaenkhun.bus.retention")

BATCH = 5_000
# Batches per turn of the relay's or the consumer's loop: the first purge of a long history is spread over
# turns, so neither stops publishing or consuming for long.
BATCHES_PER_TURN = 10


async def purge_published(session: AsyncSession, table: Table, *, before: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` published outbox rows written before `before`, oldest first; a row not yet published
    never is.

    On PostgreSQL, through the index on `created_at` whatever the statistics say (its caller's transaction runs
    nothing else): with statistics from when the outbox was empty, PostgreSQL expects `limit` old rows early in
    a scan of the whole table, and with statistics from when a bulk import's rows were all pending, few published
    rows anywhere; either way it reads the whole table, every `retention_interval_s` and for every batch."""
    await no_table_scans(session)
    old = (select(table.c.id).where(table.c.published_at.is_not(None), table.c.created_at < before)
           .order_by(table.c.created_at).limit(limit))
    return rowcount(await session.execute(delete(table).where(table.c.id.in_(old.scalar_subquery()))))


async def purge_inbox(session: AsyncSession, table: Table, *, consumer: str, before: datetime,
                      limit: int = BATCH) -> int:
    """Delete up to `limit` of `consumer`'s inbox rows taken before `before`, oldest first, through the index on
    (consumer, processed_at) whatever the statistics say (as `purge_published`)."""
    await no_table_scans(session)
    old = (select(table.c.event_id).where(table.c.consumer == consumer, table.c.processed_at < before)
           .order_by(table.c.processed_at).limit(limit))
    return rowcount(await session.execute(
        delete(table).where(table.c.consumer == consumer, table.c.event_id.in_(old.scalar_subquery()))))


# Deletes up to `limit` rows of a table older than `before` in the session's transaction: `purge(session,
# before=..., limit=...)`, e.g. `partial(purge_published, table=outbox_table)`.
Purger = Callable[..., Awaitable[int]]


class Retention:
    """Deletes one table's rows older than `days`, at most once every `interval_s`; `lock` names the advisory
    lock that keeps other replicas out meanwhile (None: the caller already runs on one replica only)."""

    def __init__(self, table: str, maker: async_sessionmaker[AsyncSession], purge: Purger, *,
                 days: float | None, interval_s: float, lock: str | None = None) -> None:
        self.table = table
        self.maker = maker
        self.purge = purge
        self.days = days
        self.interval_s = interval_s
        self.lock = lock
        self._due = -math.inf

    async def run_when_due(self) -> int:
        """Delete up to BATCHES_PER_TURN batches if the interval has passed; returns how many rows. A failure is
        logged, not raised: the caller's loop goes on, and the next interval tries again."""
        if self.days is None:
            return 0
        loop = asyncio.get_running_loop()
        if loop.time() < self._due:
            return 0
        self._due = loop.time() + self.interval_s
        before = utcnow() - timedelta(days=self.days)
        deleted = 0
        try:
            for _ in range(BATCHES_PER_TURN):
                async with transaction(self.maker) as session:
                    if self.lock is not None and not await holds_transaction_lock(session, self.lock):
                        break  # another replica is at it
                    count = await self.purge(session, before=before, limit=BATCH)
                deleted += count
                if count < BATCH:
                    break
            else:
                self._due = loop.time()  # more to delete: go on at the next turn
        except Exception as exc:
            log.warning("purge failed, trying again later", table=self.table, error=repr(exc))
        if deleted:
            log.info("purged", table=self.table, rows=deleted, before=before.isoformat())
        return deleted
