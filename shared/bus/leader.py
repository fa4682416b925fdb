"""Leader election among the replicas of a service that share one PostgreSQL database, by advisory locks.

`Leadership` holds a session lock on a connection of its own for as long as it lives (the relay: one per
service, so replicas cannot reorder a key's events); `holds_transaction_lock` takes one for a single
transaction (a chore that one replica at a time should do). On SQLite there is one process: always granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import is_sqlite

# How often a leader makes sure its connection (and with it its lock) is still alive.
CHECK_INTERVAL_S = 2.0


def advisory_lock_id(name: str) -> int:
    # A stable 63-bit number per name (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class Leadership:
    """The lock `name` among the processes sharing the engine's database, held while this process leads."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self.engine = engine
        self.lock_id = advisory_lock_id(name)
        self._sqlite = is_sqlite(str(engine.url))
        self._conn: Any = None
        self._checked = 0.0

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def hold(self) -> bool:
        """Whether this process leads now: take the lock if it is free, keep it if it is ours. Raises (having
        let go) if the connection holding it died."""
        if self._sqlite:
            return True
        if self._conn is not None:
            now = asyncio.get_running_loop().time()
            if now - self._checked < CHECK_INTERVAL_S:
                return True
            self._checked = now
            try:
                # The lock lives as long as this connection; if it died, so did our leadership.
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception:
                await self.release()
                raise
        conn = await self.engine.connect()
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": self.lock_id})).scalar()
        await conn.commit()
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
                await conn.commit()
            with contextlib.suppress(Exception):
                await conn.close()


async def holds_transaction_lock(session: AsyncSession, name: str) -> bool:
    """Take the lock `name` until the session's transaction ends, if no other process holds it (PostgreSQL);
    always True on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                                 {"id": advisory_lock_id(name)})).scalar()
    return bool(got)
