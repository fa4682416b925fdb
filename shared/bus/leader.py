"""One replica at a time for a chore, among the replicas of a service that share one PostgreSQL database.

`holds_transaction_lock` takes a transaction advisory lock: held until the transaction ends, so nothing outlives
a hung or lost process and it works behind a transaction-mode pooler (publishing is shared differently: by
leased outbox shards, shared/bus/shards.py). On SQLite there is one process: always granted.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def advisory_lock_id(name: str) -> int:
    # A stable 63-bit number per name (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


async def holds_transaction_lock(session: AsyncSession, name: str) -> bool:
    """Take the lock `name` until the session's transaction ends, if no other process holds it (PostgreSQL);
    always True on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                                 {"id": advisory_lock_id(name)})).scalar()
    return bool(got)
