"""Operator tasks of the reporting service: rebuild the read models, and give BI tools a read-only role.

Rebuild: the read models and the inbox are emptied, and every producer's outbox is marked to publish all it
ever wrote again. The reporting consumer applies the replay as it arrives (the other consumers' inboxes drop
what they already had), and the figures come out as before. The same works on Apache Kafka, which still
holds the log, and on a local broker that has forgotten everything.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.models import READ_MODELS, inbox
from services.reporting.views import BI_VIEWS
from shared.bus import Outbox
from shared.db import sessionmaker, transaction

PRODUCERS = ("registry", "assessment", "assistance")
__all__ = ["BI_VIEWS", "empty_read_models", "grant_bi_role", "replay_everything"]



async def empty_read_models(engine: AsyncEngine) -> None:
    """Delete every row of the read models and of the inbox, in one transaction."""
    async with transaction(sessionmaker(engine)) as session:
        for model in READ_MODELS:
            await session.execute(delete(model))
        await session.execute(delete(inbox))


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
