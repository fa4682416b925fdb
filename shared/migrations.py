"""Alembic per service: upgrade from code (the launcher and `kaenkhun migrate`) and check currency."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, read_only


def alembic_config(migrations_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, migrations_dir: Path, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction on the given engine."""
    config = alembic_config(migrations_dir, str(engine.url))

    def _run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


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
