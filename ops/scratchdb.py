"""Throwaway databases for tests and benchmarks: SQLite files in a folder, or new PostgreSQL databases."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.engine import make_url


class ScratchDatabases:
    """Makes fresh, empty databases of one kind and drops the PostgreSQL ones afterwards."""

    def __init__(self, kind: str, folder: Path, admin_url: str | None = None, prefix: str = "kk") -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"unknown database kind {kind!r}")
        if kind == "postgres" and not admin_url:
            raise ValueError("PostgreSQL scratch databases need an admin URL")
        self.kind, self.folder, self.admin_url, self.prefix = kind, folder, admin_url or "", prefix
        self.created: list[str] = []

    def _admin_dsn(self) -> str:
        # asyncpg takes a plain postgresql:// DSN, not SQLAlchemy's driver-qualified URL.
        return make_url(self.admin_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def new(self, name: str = "db") -> str:
        """The SQLAlchemy URL of a new, empty database."""
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.folder / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
        import asyncpg

        database = f"{self.prefix}_{name}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self._admin_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
        self.created.append(database)
        url = make_url(self.admin_url).set(database=database, drivername="postgresql+asyncpg")
        return url.render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        """Drop the PostgreSQL databases made here (SQLite files go with their folder)."""
        if not self.created:
            return
        import asyncpg

        conn = await asyncpg.connect(self._admin_dsn())
        try:
            for database in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.clear()
