"""Alembic per service: upgrade from code (the launcher and `kaenkhun migrate`) and check currency.

On PostgreSQL an upgrade holds an advisory lock for its whole transaction, so `kaenkhun migrate` run by several
replicas or jobs at once is safe: the first migrates, the others wait for it, then find nothing to do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus.leader import advisory_lock_id
from shared.db import create_engine, read_only

log = structlog.get_logger("kaenkhun.migrations")


def alembic_config(migrations_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# One lock per database (PostgreSQL scopes advisory locks to the database they are taken in).
MIGRATION_LOCK = advisory_lock_id("kaenkhun:migrate")
# How often a waiting upgrade asks for the lock again. It polls rather than blocks in pg_advisory_xact_lock: a
# statement that waited for a long migration would run into the driver's command timeout (shared.db).
LOCK_POLL_S = 0.5


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did: the revisions the database was at before and is at after (equal: nothing to do),
    and whether it waited for another process's upgrade first."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    waited: bool = False

    @property
    def applied(self) -> bool:
        return self.before != self.after


async def upgrade(engine: AsyncEngine, migrations_dir: Path, revision: str = "head") -> Upgrade:
    """Apply migrations up to `revision` in one transaction on the given engine, under the migration lock on
    PostgreSQL (taken first, released by the commit)."""
    config = alembic_config(migrations_dir, str(engine.url))

    def _run(connection: Connection) -> tuple[tuple[str, ...], tuple[str, ...]]:
        before = _heads(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        return before, _heads(connection)

    async with engine.begin() as conn:
        waited = await _lock(conn)
        before, after = await conn.run_sync(_run)
    return Upgrade(before, after, waited)


async def _lock(conn: AsyncConnection) -> bool:
    """Take the migration lock for this transaction (PostgreSQL; SQLite's write transaction is a lock already);
    whether another upgrade held it first. Each try is a statement of its own in READ COMMITTED, so once granted,
    the upgrade reads the revision the other one committed."""
    if conn.dialect.name != "postgresql":
        return False
    waited = False
    while not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})).scalar():
        if not waited:
            log.info("waiting for another migration of this database to finish")
        waited = True
        await asyncio.sleep(LOCK_POLL_S)
    return waited


def _heads(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def is_current(engine: AsyncEngine, migrations_dir: Path) -> bool:
    """True when the database is at the newest revision of the service's migrations."""
    script = ScriptDirectory.from_config(alembic_config(migrations_dir, str(engine.url)))
    heads = set(script.get_heads())

    def _current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with read_only(engine) as conn:
        current = await conn.run_sync(_current)
    return current == heads


def run_env(target_metadata: MetaData) -> None:
    """Body of each service's migrations/env.py: online with the given connection, or from the URL."""
    config = context.config

    def _migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return

    async def _from_url() -> None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        async with engine.begin() as conn:
            await conn.run_sync(_migrate)
        await engine.dispose()

    asyncio.run(_from_url())
