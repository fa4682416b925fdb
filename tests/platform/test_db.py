"""The database layer: SQLite settings and where its statements run."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase

from ops.scratchdb import ScratchDatabases
from shared.db import (
    as_utc,
    bulk_insert,
    create_engine,
    new_metadata,
    read_in_pages,
    read_only,
    read_transaction,
    sessionmaker,
    transaction,
)


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


async def test_bulk_insert_stores_what_the_orm_would_and_rolls_back_with_the_transaction(
    databases: ScratchDatabases,
) -> None:
    metadata = new_metadata()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)),
                  Column("born", Date), Column("at", DateTime(timezone=True)), Column("flag", Boolean),
                  Column("amount", Numeric(14, 2)))
    engine = create_engine(await databases.new("bulk"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        maker = sessionmaker(engine)
        at = datetime(2026, 11, 29, 4, 5, 6, 789, tzinfo=UTC)
        rows = [{"id": i, "name": "ขอนแก่น", "born": date(1970, 5, 1), "at": at, "flag": i % 2 == 0,
                 "amount": Decimal("3000.00")} for i in range(1, 4)]
        async with transaction(maker) as session:
            await bulk_insert(session, table, rows)
        with pytest.raises(RuntimeError):
            async with transaction(maker) as session:
                await bulk_insert(session, table, [rows[0] | {"id": 99}])
                raise RuntimeError("roll back")
        async with transaction(maker) as session:
            await session.execute(insert(table).values(id=4, name="ขอนแก่น", born=date(1970, 5, 1), at=at,
                                                       flag=False, amount=Decimal("3000.00")))
            stored = (await session.execute(select(table).order_by(table.c.id))).all()
            # Stored in the same form: a time bound in a query finds the rows of either path (on SQLite, the
            # driver's own str() of a time, "…+00:00", would equal no bound time).
            same_time = (await session.execute(select(table.c.id).where(table.c.at == at)
                                               .order_by(table.c.id))).scalars().all()
        assert [r.id for r in stored] == [1, 2, 3, 4]  # 99 rolled back
        assert same_time == [1, 2, 3, 4]
        assert {(r.name, r.born, as_utc(r.at), r.amount) for r in stored} == {
            ("ขอนแก่น", date(1970, 5, 1), at, Decimal("3000.00"))}
        assert [r.flag for r in stored] == [False, True, False, False]
    finally:
        await engine.dispose()


async def test_a_read_session_takes_no_writer_lock_and_cannot_write(databases: ScratchDatabases) -> None:
    """GET requests read in a read session on a read-only engine: it does not queue behind a writer (SQLite's one
    writer lock), sees one snapshot of committed rows, and the database itself refuses its writes."""
    metadata = new_metadata()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __table__ = table

    url = await databases.new("reads")
    engine = create_engine(url)
    read_engine = create_engine(url, read_only=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        maker, readers = sessionmaker(engine), sessionmaker(read_engine)
        count = select(func.count()).select_from(table)
        async with transaction(maker) as session:
            await session.execute(insert(table).values(id=1, name="ขอนแก่น"))
        async with read_transaction(readers) as reader:
            assert (await reader.execute(count)).scalar_one() == 1
            async with transaction(maker) as writer:  # commits while the reader is in its snapshot
                await writer.execute(insert(table).values(id=2, name="later"))
            assert (await reader.execute(count)).scalar_one() == 1  # still its snapshot
        async with transaction(maker) as writer:  # holds the writer lock until the end of the block
            await writer.execute(insert(table).values(id=3, name="uncommitted"))
            async with asyncio.timeout(10):  # were the reader to wait for the writer, this would never end
                async with read_transaction(readers) as reader:
                    assert (await reader.execute(count)).scalar_one() == 2
        with pytest.raises(DBAPIError):
            async with read_transaction(readers) as reader:
                await reader.execute(insert(table).values(id=4, name="refused"))
        with pytest.raises(RuntimeError, match="read session"):  # an ORM change is refused, never dropped
            async with read_transaction(readers) as reader:
                reader.add(Row(id=5, name="dropped?"))
        async with read_transaction(readers) as reader:
            assert (await reader.execute(count)).scalar_one() == 3
    finally:
        await read_engine.dispose()
        await engine.dispose()


async def test_bulk_insert_reports_a_taken_key_as_sqlalchemy_does(databases: ScratchDatabases) -> None:
    """A chunk that meets a row another writer stored raises IntegrityError on both paths (COPY, executemany), so
    the importer's retry of that chunk one item at a time runs (it caught nothing while the driver's own error
    went through)."""
    metadata = new_metadata()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))
    engine = create_engine(await databases.new("taken"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        maker = sessionmaker(engine)
        async with transaction(maker) as session:
            await bulk_insert(session, table, [{"id": 1, "name": "first"}])
        with pytest.raises(IntegrityError):
            async with transaction(maker) as session:
                await bulk_insert(session, table, [{"id": 2, "name": "new"}, {"id": 1, "name": "taken"}])
        async with transaction(maker) as session:
            assert (await session.execute(select(table.c.name))).scalars().all() == ["first"]
    finally:
        await engine.dispose()


async def test_a_long_read_in_pages_lets_the_loop_serve_others_between_pages(databases: ScratchDatabases) -> None:
    """`read_in_pages` returns every row in order, and between its pages the event loop runs other tasks (with one
    fetch, a SQLite read on the loop's thread holds it throughout)."""
    metadata = new_metadata()
    table = Table("numbers", metadata, Column("n", Integer, primary_key=True))
    url = await databases.new("pages")
    engine, read_engine = create_engine(url), create_engine(url, read_only=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(table), [{"n": n} for n in range(2_000)])
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        async with read_transaction(sessionmaker(read_engine)) as s:
            beside = asyncio.create_task(other())
            await asyncio.sleep(0)
            before = turns
            rows = await read_in_pages(s, select(table.c.n).order_by(table.c.n), page=100)
            during = turns - before
            beside.cancel()
        assert [n for (n,) in rows] == list(range(2_000))
        assert during >= 20  # at least once a page
    finally:
        await read_engine.dispose()
        await engine.dispose()
