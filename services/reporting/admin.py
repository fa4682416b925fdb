"""Operator tasks of the reporting service: rebuild the read models, and give BI tools a read-only role.

Rebuild (`rebuild`, run with the reporting replicas stopped): the read models and the inbox are emptied, and the
events come again from where they still all are:

- from the broker, when it still holds every record of the reporting topics: on every partition its earliest
  offset is 0 (retention deleted nothing) and its end is past every offset the inbox took (the log was not lost
  since). Every partition is marked in `consumer_rewind`; the consumer reads each from offset 0 when the group
  next hands it over, so nothing is written to the producers' databases;
- otherwise (or when asked: `--from-outbox`), from the producers' outboxes: every row they hold is marked to be
  published again, as before. All of it, not only what the broker lost: a replay arrives after the records the
  broker kept, and a projection must see a payment before its reversal, an assessment before its status.

Either way the reporting consumer applies the events as they arrive and the figures come out as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.models import READ_MODELS, inbox, rewind
from services.reporting.projection import handlers
from services.reporting.views import BI_VIEWS
from shared.bus import Outbox
from shared.bus.kafka import Offsets
from shared.db import sessionmaker, transaction
from shared.settings import KafkaSettings

PRODUCERS = ("registry", "assessment", "assistance")
CONSUMER = "reporting"
__all__ = ["BI_VIEWS", "Source", "empty_read_models", "grant_bi_role", "rebuild", "replay_everything",
           "source_of_rebuild"]


@dataclass(frozen=True)
class Source:
    """Where a rebuild reads the events from, and why."""

    broker: bool
    reason: str
    partitions: tuple[tuple[str, int], ...] = ()


async def source_of_rebuild(engine: AsyncEngine, kafka: KafkaSettings) -> Source:
    """The broker if it still holds every record of the topics reporting reads — each partition from offset 0,
    and at the newest offset the inbox took there the very event it took — else the producers' outboxes."""
    async with transaction(sessionmaker(engine)) as session:
        newest = select(inbox.c.topic, inbox.c.partition, func.max(inbox.c.offset).label("offset")).where(
            inbox.c.consumer == CONSUMER).group_by(inbox.c.topic, inbox.c.partition).subquery()
        taken = {(t, p): (int(o), e) for t, p, o, e in (await session.execute(
            select(inbox.c.topic, inbox.c.partition, inbox.c.offset, inbox.c.event_id).join(newest, and_(
                inbox.c.topic == newest.c.topic, inbox.c.partition == newest.c.partition,
                inbox.c.offset == newest.c.offset)).where(inbox.c.consumer == CONSUMER))).all()}
    offsets = await Offsets.open(kafka, client_id="kaenkhun-rebuild")
    try:
        partitions = await offsets.partitions(handlers.topics())
        earliest = await offsets.beginning_offsets(partitions)
        deleted = sorted(f"{t}[{p}] from {o}" for (t, p), o in earliest.items() if o > 0)
        if deleted:
            return Source(False, f"the broker no longer holds the oldest records: {', '.join(deleted)}")
        lost = []
        for (t, p), (offset, event_id) in sorted(taken.items()):
            value = await offsets.value_at(t, p, offset)
            if value is None or json.loads(value).get("id") != event_id:
                lost.append(f"{t}[{p}] at {offset}")
    finally:
        await offsets.close()
    if lost:
        return Source(False, f"the broker lost records the inbox took: {', '.join(lost)}")
    return Source(True, "the broker holds every record of the topics from offset 0", tuple(sorted(partitions)))


async def rebuild(engine: AsyncEngine, kafka: KafkaSettings, *, from_outbox: bool = False) -> Source:
    """Empty the read models and the inbox and, when the broker holds everything (and `from_outbox` is not
    asked), mark every partition to be read again from offset 0. Otherwise the caller must replay every
    producer's outbox (`replay_everything`). Run it with the reporting replicas stopped: they rewind when they
    start and the group hands them their partitions."""
    source = Source(False, "asked for (--from-outbox)") if from_outbox else await source_of_rebuild(engine, kafka)
    await empty_read_models(engine)
    if source.broker:
        async with transaction(sessionmaker(engine)) as session:
            await session.execute(insert(rewind), [{"consumer": CONSUMER, "topic": t, "partition": p}
                                                   for t, p in source.partitions])
    return source


async def empty_read_models(engine: AsyncEngine) -> None:
    """Delete every row of the read models, of the inbox and of the rewind marks, in one transaction."""
    async with transaction(sessionmaker(engine)) as session:
        for model in READ_MODELS:
            await session.execute(delete(model))
        await session.execute(delete(inbox))
        await session.execute(delete(rewind))


async def replay_everything(engine: AsyncEngine, outbox: Outbox) -> int:
    """Mark every event a producer's outbox holds for publication again; returns how many."""
    async with transaction(sessionmaker(engine)) as session:
        return await outbox.mark_for_replay(session)


_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def grant_bi_role(engine: AsyncEngine, role: str, password: str | None = None) -> None:
    """Create (or update) a PostgreSQL login role that may read the BI views and nothing else."""
    if engine.dialect.name != "postgresql":
        raise ValueError("read-only roles are a PostgreSQL feature; SQLite files are read by file permissions")
    if not _ROLE.fullmatch(role):
        raise ValueError(f"not a plain role name: {role!r}")
    async with engine.begin() as conn:
        exists = (await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})).first()
        verb = "ALTER" if exists else "CREATE"
        if password is None:
            await conn.execute(text(f'{verb} ROLE "{role}" LOGIN NOINHERIT'))
        else:  # a literal is needed here (utility statements take no parameters); quote it as PostgreSQL does
            quoted = "'" + password.replace("'", "''") + "'"
            await conn.execute(text(f'{verb} ROLE "{role}" LOGIN NOINHERIT PASSWORD {quoted}'))
        database = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        await conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
        await conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        for view in BI_VIEWS:
            await conn.execute(text(f'GRANT SELECT ON {view} TO "{role}"'))
