"""The database layer: SQLite settings and where its statements run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from shared.db import create_engine, read_only, sessionmaker, transaction


async def test_sqlite_statements_run_on_the_event_loop_thread_in_wal_mode(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _add_thread_id(dbapi_connection: Any, _record: Any) -> None:
        # A SQL function that reports the thread SQLite calls it from.
        dbapi_connection.create_function("thread_id", 0, threading.get_ident)

    try:
        async with transaction(sessionmaker(engine)) as session:
            ran_on = (await session.execute(text("SELECT thread_id()"))).scalar_one()
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
        async with read_only(engine) as conn:
            read_on = (await conn.execute(text("SELECT thread_id()"))).scalar_one()
        assert ran_on == read_on == threading.get_ident()
        assert mode == "wal"
    finally:
        await engine.dispose()
