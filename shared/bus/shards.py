"""Publishing shared among a service's replicas: the outbox is cut into `SHARDS` shards by message key, and each
relay publishes the shards it leases.

Each relay is a member (`outbox_member`) that heartbeats every `relay_heartbeat_s`: it notes itself alive, renews
the leases of its shards (`outbox_shard.lease_until`, `relay_lease_s` ahead), counts the members alive and keeps
its fair share, ceil(SHARDS / members): it gives back what is above it and claims free or expired shards up to it,
each claim a conditional UPDATE that raises the shard's `token`. Two replicas split the shards 16/16; one alone (or
SQLite, one process) takes all 32. Every time is the database's (`now()`), so the replicas' clocks do not matter;
everything is a plain row in a short transaction, so it works behind a transaction-mode pooler (PgBouncer).

A shard's rows are published by one relay at a time, in id order: one key's events keep their order. When a
relay hangs (SIGSTOP, a stalled VM) or its node is lost, its leases run out after `relay_lease_s` and the others
take its shards; on a clean stop it gives them back at once.

Fencing, so a relay that lost a shard publishes nothing stale:
- it sends a batch only while its leases are valid by its own monotonic clock: the last renewal started less
  than `relay_lease_s - relay_heartbeat_s` ago (the database's lease runs `relay_lease_s` from a moment after
  that start). A process resumed after a freeze must renew first, and the renewal tells it what it lost;
- it marks rows published (or failed) only for the shards it still holds with the token it sent them under,
  checked in the marking transaction with the shards' rows locked FOR SHARE (a claim waits for the mark).
What remains: a relay frozen after its last check and before its send reaches the broker, for longer than the
lease, sends that one batch late, after the new owner may have published the same rows and newer ones of the
same keys. Its marks are refused (the rows stay as the new owner leaves them); what reaches the consumers is a
duplicate of events they had, which each consumer's inbox drops by event id, and the projections keep the
highest version of an aggregate, so an old event arriving late never overwrites a newer one.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, MetaData, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.models import SHARDS, outbox_member_table, outbox_shard_table
from shared.bus.tasks import cancel
from shared.db import transaction

log = structlog.get_logger("kaenkhun.bus.shards")


def upsert(session: AsyncSession) -> Any:
    """The dialect's INSERT, with ON CONFLICT (SQLite and PostgreSQL both have it)."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)


def db_time(session: AsyncSession, seconds: float = 0.0) -> ColumnElement[Any]:
    """The database's clock now, plus `seconds`. SQLite: text in the format SQLAlchemy stores timestamps in, so
    it compares with stored ones."""
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{seconds:+.3f} seconds")
    return func.now() + timedelta(seconds=seconds) if seconds else func.now()


def new_member_id() -> str:
    """Which process a relay is, for the operator (host and pid) and unique (a restarted pid is a new member)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ShardLeases:
    """The shards one relay holds, kept by a heartbeat task; `held()` is what it may publish now."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], metadata: MetaData, *, lease_s: float,
                 heartbeat_s: float, on_change: Callable[[], None] | None = None) -> None:
        self.maker = maker
        self.shards = outbox_shard_table(metadata)
        self.members = outbox_member_table(metadata)
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.on_change = on_change  # called after every change of the shards held
        self.member = new_member_id()
        self.live_members = 0
        # Shard -> the token this member holds it under; replaced (never changed in place) at every change, so
        # a batch keeps the tokens it was sent under.
        self._owned: Mapping[int, int] = {}
        self._valid_until = -math.inf  # monotonic: when our leases may have run out, for all we know
        self._joined = False  # a heartbeat went through: the shard rows exist, this member is known
        self._task: asyncio.Task[None] | None = None

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    def held(self) -> Mapping[int, int]:
        """The shards (-> tokens) this relay may publish now: none once its leases may have run out."""
        return self._owned if asyncio.get_running_loop().time() < self._valid_until else {}

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-leases-{self.member}")

    async def stop(self) -> None:
        """Stop heartbeating and give every shard back, so the other replicas take them at once."""
        task, self._task = self._task, None
        await cancel(task)
        self._set_owned({})
        if not self._joined:
            return  # never joined: nothing to give back
        try:
            async with transaction(self.maker) as session:
                await session.execute(self._give_back(self.shards.c.owner == self.member))
                await session.execute(delete(self.members).where(self.members.c.member == self.member))
        except Exception as exc:  # the leases run out by themselves
            log.warning("could not give the outbox shards back", member=self.member, error=repr(exc))

    async def _run(self) -> None:
        while True:
            try:
                await self.turn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down or busy: the leases lapse, publishing pauses
                log.warning("outbox shard heartbeat failed", member=self.member, error=repr(exc))
            await asyncio.sleep(self.heartbeat_s)

    # -- one heartbeat -------------------------------------------------------------------------------

    async def turn(self) -> None:
        """Note this member alive, renew its leases, then give back or claim shards towards its fair share."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        s, m = self.shards, self.members
        async with transaction(self.maker) as session:
            if not self._joined:
                await session.execute(upsert(session)(s).on_conflict_do_nothing(),
                                      [{"shard": n, "token": 0} for n in range(SHARDS)])
            seen = upsert(session)(m).values(member=self.member, seen_at=db_time(session))
            await session.execute(seen.on_conflict_do_update(index_elements=[m.c.member],
                                                             set_={"seen_at": seen.excluded.seen_at}))
            await session.execute(delete(m).where(m.c.seen_at < db_time(session, -self.lease_s)))
            live = int((await session.execute(select(func.count()).select_from(m))).scalar_one())
            await session.execute(update(s).where(s.c.owner == self.member)
                                  .values(lease_until=db_time(session, self.lease_s)))
            mine = await self._mine(session)
        self._joined = True
        self.live_members = live
        self._valid_until = started + self.lease_s - self.heartbeat_s
        lost = sorted(set(self._owned) - set(mine))
        if lost:
            log.warning("outbox shards taken over by another replica", member=self.member, shards=lost)
        self._set_owned(mine)
        fair = math.ceil(SHARDS / max(live, 1))
        if len(mine) > fair:
            extra = sorted(mine)[fair:]
            self._set_owned({n: t for n, t in mine.items() if n < extra[0]})  # stop publishing them first
            async with transaction(self.maker) as session:
                await session.execute(self._give_back(s.c.owner == self.member, s.c.shard.in_(extra)))
        elif len(mine) < fair:
            async with transaction(self.maker) as session:
                claimable = or_(s.c.owner.is_(None), s.c.lease_until < db_time(session))
                free = list((await session.execute(select(s.c.shard).where(claimable).order_by(s.c.shard)
                                                   .limit(fair - len(mine)))).scalars())
                if free:  # taken only if still free or expired: another replica may have been quicker
                    await session.execute(update(s).where(s.c.shard.in_(free), claimable).values(
                        owner=self.member, lease_until=db_time(session, self.lease_s), token=s.c.token + 1))
                    mine = await self._mine(session)
            self._set_owned(mine)  # the claims' leases run from later than `started`: `_valid_until` holds

    async def _mine(self, session: AsyncSession) -> dict[int, int]:
        s = self.shards
        rows = await session.execute(select(s.c.shard, s.c.token).where(s.c.owner == self.member))
        return {row.shard: row.token for row in rows}

    def _give_back(self, *where: ColumnElement[bool]) -> Any:
        s = self.shards
        return update(s).where(*where).values(owner=None, lease_until=None, token=s.c.token + 1)

    def _set_owned(self, owned: Mapping[int, int]) -> None:
        if dict(owned) == dict(self._owned):
            return
        self._owned = dict(owned)
        log.info("outbox shards", member=self.member, shards=self.owned, members=self.live_members)
        if self.on_change is not None:
            self.on_change()

    # -- fencing -------------------------------------------------------------------------------------

    async def still_held(self, session: AsyncSession, tokens: Mapping[int, int]) -> set[int]:
        """Of the shards a batch was sent under (shard -> token), those this member still holds with the same
        token; their rows are locked FOR SHARE until the session's transaction ends, so no other replica
        claims them before what this transaction marks is committed."""
        if not tokens:
            return set()
        s = self.shards
        query = (select(s.c.shard)
                 .where(s.c.owner == self.member, tuple_(s.c.shard, s.c.token).in_(list(tokens.items())))
                 .with_for_update(read=True))
        return set((await session.execute(query)).scalars())
