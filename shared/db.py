"""Database: async engine from a URL, one transaction per request or message, per-service metadata."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

import aiosqlite
import asyncpg
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    Select,
    String,
    Table,
    any_,
    bindparam,
    event,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from shared.settings import DatabaseSettings

# Set before any table so constraint names are stable across SQLite and PostgreSQL migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def timestamp_column(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    """A timezone-aware `*_at` column (SQLModel fields pass it as `sa_column`)."""
    return Column(DateTime(timezone=True), nullable=nullable)


def new_metadata() -> MetaData:
    """A MetaData with the house naming convention; each service owns one."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the database, timezone-aware: SQLite returns UTC values without a zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (a conditional UPDATE's way of saying whether it applied)."""
    return int(cast(CursorResult[Any], result).rowcount)


# PostgreSQL: serialization failure, deadlock detected, lock not available (lock_timeout).
CONTENTION_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a driver error, whether SQLAlchemy wrapped it (DBAPIError) or asyncpg raised it itself."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def lost_to_contention(exc: BaseException) -> bool:
    """A transaction that lost to a concurrent one (PostgreSQL's deadlock, serialization and lock-timeout errors,
    SQLite's busy timeout): nothing of it was kept, and running the same work again is the remedy."""
    return isinstance(exc, DBAPIError) and (
        "database is locked" in str(exc.orig) or sqlstate(exc) in CONTENTION_SQLSTATES)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, read_only: bool = False, pool: DatabaseSettings | None = None,
                  **kwargs: Any) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, a busy timeout and write-locking transactions.

    `pool`: the size of a PostgreSQL engine's pool, its overflow and how long a checkout waits (default: the
    KAENKHUN_DB_ settings), so that the replicas of every service together stay under the server's
    `max_connections`.

    `read_only`: an engine for reads alone, whose connections the database itself keeps from writing (SQLite:
    `PRAGMA query_only` and deferred transactions, which take no write lock; PostgreSQL: every transaction READ
    ONLY and REPEATABLE READ, so all reads of one unit of work see one snapshot) — set once per connection, so a
    read costs no statement more than the query.
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        elif read_only:
            raise ValueError("a read-only engine needs a database file: an in-memory database is per connection")
        path = database or ":memory:"
        engine = create_async_engine(url, async_creator=lambda: _connect_inline(path), **kwargs)
        _configure_sqlite(engine, read_only=read_only)
        return engine
    if pool is None:
        from shared.settings import DatabaseSettings  # settings import shared.errors, which imports this module

        pool = DatabaseSettings()
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", pool.pool_size)
    kwargs.setdefault("max_overflow", pool.max_overflow)
    kwargs.setdefault("pool_timeout", pool.pool_timeout_s)
    # No await on the database may wait for ever: a connection cut while PostgreSQL restarts can leave a
    # statement (or the pool's ping) waiting for an answer that never comes, and the relay or consumer that
    # awaits it with it. asyncpg has no statement timeout by default; the retry loops recover from an error.
    connect_args = {"timeout": 10, "command_timeout": 120} | kwargs.pop("connect_args", {})
    if read_only:
        connect_args["server_settings"] = {"default_transaction_read_only": "on",
                                           "default_transaction_isolation": "repeatable read"}
    return create_async_engine(url, connect_args=connect_args, **kwargs)


class _InlineSQLiteConnection(aiosqlite.Connection):
    """An aiosqlite connection whose SQLite calls run on the event-loop thread, not its worker thread.

    A SQLite statement on a local file takes microseconds; handing it to aiosqlite's thread and
    back costs about 100 µs per call here, and SQLAlchemy makes three calls per statement (cursor,
    execute, close), so the hand-overs cost far more than the work (`make bench-bus` measured a 5x
    gain per statement). Blocking the loop is safe because our own writers queue on an asyncio lock
    (see `transaction`) before SQLite's busy handler could make them wait; only another process
    holding the write lock (a CLI command) can stall the loop, for at most the busy timeout.
    PostgreSQL (asyncpg) is truly asynchronous and unaffected.

    Within `sqlite_yielding()` the loop runs its other ready tasks before each call, and a commit runs on
    the worker thread: a long unit of work (an import's chunk) then holds the loop for one statement at a
    time, not for the whole transaction, and not while its pages are written out.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _yielding.get():
            if getattr(fn, "__name__", None) == "commit":  # writes the transaction's pages: the worker thread's
                committing = asyncio.ensure_future(super()._execute(fn, *args, **kwargs))  # type: ignore[no-untyped-call]
                try:
                    return await asyncio.shield(committing)
                except asyncio.CancelledError:
                    try:  # the thread commits anyway: the unit of work ends as it does
                        return await committing
                    finally:
                        _cancel_later()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                _cancel_later()
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


_yielding: ContextVar[bool] = ContextVar("kaenkhun_sqlite_yielding", default=False)


def _cancel_later() -> None:
    """A task cancelled at one of `sqlite_yielding`'s suspensions, inside a unit of work: the unit goes on as it
    would without them (inline, no more suspensions: SQLAlchemy takes a cancellation in mid-statement for a
    broken connection, whose transaction may then keep SQLite's write lock), and the task is cancelled at its
    next suspension after it."""
    _yielding.set(False)
    task = asyncio.current_task()
    if task is not None:
        task.cancel()


@contextmanager
def sqlite_yielding() -> Iterator[None]:
    """Within (this task and the tasks it starts), each SQLite call first lets the event loop run its other
    ready tasks. For long bulk work such as an import's chunks: their statements run inline (see
    `_InlineSQLiteConnection`) and awaiting them never suspends, so a chunk's transaction would hold the loop,
    and every request the process serves, for its whole time (measured: ~160 ms a chunk of 500 households).
    Its commit (tens of ms of writing pages) goes to aiosqlite's thread. Every statement there would free the
    loop altogether but made the import three times slower: a statement that lets go of the interpreter lock
    takes it back behind any busy thread (the import's parsing), for up to the switch interval (5 ms) each
    time — an `executemany` after every row. No effect on PostgreSQL, whose driver suspends at each
    statement anyway."""
    token = _yielding.set(True)
    try:
        yield
    finally:
        _yielding.reset(token)


async def read_in_pages(session: AsyncSession, statement: Any, page: int = 500) -> list[Any]:
    """Every row of a long read (a province's villages), `page` rows at a time, the event loop running its other
    tasks between pages: one fetch of thousands of rows (SQLite's inline, `_InlineSQLiteConnection`; or
    decoding a PostgreSQL result) would hold it, and every request the process serves, for tens of ms."""
    rows: list[Any] = []
    with sqlite_yielding():
        result = await session.stream(statement.execution_options(yield_per=page))
        async for part in result.partitions():
            rows.extend(part)
            await asyncio.sleep(0)
    return rows


async def _connect_inline(path: str) -> aiosqlite.Connection:
    def connector() -> sqlite3.Connection:
        # Opened on aiosqlite's thread, then used on the loop's: hence check_same_thread=False.
        return sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)

    return await _InlineSQLiteConnection(connector, 64)


SQLITE_BUSY_TIMEOUT_S = 30


def _configure_sqlite(engine: AsyncEngine, *, read_only: bool = False) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take the write lock up front.
    # We emit BEGIN IMMEDIATE ourselves: writers queue on the busy timeout instead of failing
    # with "database is locked" when a read transaction later tries to write (WAL snapshot upgrade).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        deferred = read_only or conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


READ_ONLY = "kaenkhun_read_only"


@asynccontextmanager
async def read_only(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only unit of work: a deferred transaction that takes no write lock (WAL readers never block)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{READ_ONLY: True})
        async with conn.begin():
            yield conn


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


# SQLite has one writer at a time. When two of our own tasks race for it, the loser sleeps in
# SQLite's busy handler (1, 2, 5 … 100 ms steps) long after the lock is free; queueing them on an
# asyncio lock instead hands the database over at once. Other processes still meet the busy timeout.
_sqlite_write_locks: WeakKeyDictionary[Any, asyncio.Lock] = WeakKeyDictionary()


def _write_lock(maker: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    engine = maker.kw.get("bind")
    if engine is None or engine.dialect.name != "sqlite":
        return None
    lock = _sqlite_write_locks.get(engine.sync_engine)
    if lock is None:
        lock = _sqlite_write_locks[engine.sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error. Service code only flushes."""
    async with _write_lock(maker) or contextlib.nullcontext():
        async with maker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise


@asynccontextmanager
async def read_transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work that only reads, on a read-only engine's sessions (`create_engine(read_only=True)`): it never
    takes the writer lock, the database refuses its writes, and all its reads see one snapshot (a list and its
    count agree; a report's parts add up). It ends in a rollback: there is nothing to keep — and a session given
    changes to write fails loudly rather than dropping them."""
    async with maker() as session:
        yield session
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("a read session was given changes to write; use a transaction")
        await session.rollback()


async def no_table_scans(session: AsyncSession) -> None:
    """On PostgreSQL, plan the rest of the session's transaction with sequential scans off: through the indexes,
    whatever the statistics say (statistics from when a table was empty, or small, before a bulk write grew it)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL enable_seqscan = off"))


def _dialect_insert(session: AsyncSession, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL; SQLite since 3.24 — the two constructs are alike
    but share no type)."""
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)


def adding_upsert(session: AsyncSession, table: Table, key: Sequence[str], added: Sequence[str], *,
                  only_if: Callable[[Any], Any] | None = None, **also: Any) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE that adds the `added` columns in SQL (`x = x + excluded.x`) and sets
    `also`, each built from the statement's `excluded`; with `only_if` (built from `excluded` too), an existing
    row is changed only where that holds (a conditional update: with RETURNING, the rows not returned are those
    it refused). Executed with its rows sorted by key, a statement the driver sends in multi-row pages, in that
    order: concurrent transactions lock the rows in the same order."""
    stmt = _dialect_insert(session, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: table.c[name] + stmt.excluded[name] for name in added}
        | {name: make(stmt.excluded) for name, make in also.items()},
        where=only_if(stmt.excluded) if only_if is not None else None)


def insert_new(session: AsyncSession, table: Table, key: Sequence[str]) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING: rows recorded once, whoever inserts them first."""
    return _dialect_insert(session, table).on_conflict_do_nothing(index_elements=[table.c[name] for name in key])


def newer_upsert(session: AsyncSession, table: Table, key: Sequence[str], replaced: Sequence[str],
                 newer: Callable[[Any], Any], **also: Any) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE SET the `replaced` columns to the new row's (and `also`, each built
    from the statement's `excluded`), only WHERE `newer` (built from `excluded` too) holds: a projection's "never
    write an older fact over a newer one" as one statement for a whole batch, safe against another transaction
    inserting the row first."""
    stmt = _dialect_insert(session, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: stmt.excluded[name] for name in replaced}
        | {name: make(stmt.excluded) for name, make in also.items()},
        where=newer(stmt.excluded))


def among(session: AsyncSession, column: Any, values: Collection[Any]) -> Any:
    """`column IN values`. On PostgreSQL `column = ANY(:array)`: one parameter however many values, where an IN
    list is expanded, cast and sent value by value (thousands per chunk of an import, 500 per consumer poll)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def listed(session: AsyncSession, values: Collection[str], *also: Any) -> Select[Any]:
    """The strings `values` as the rows of a SELECT (column `value`, then the columns `also`), bound as one
    parameter however many there are: PostgreSQL unnests an array, SQLite reads a JSON array (json_each). For
    `column.in_(listed(…))` and INSERT … SELECT over a whole batch's keys: SQLAlchemy's own IN binds and renders a
    parameter per value, which for a batch of 10,000 costs more than the query does. Rows come in the order given
    (pass them sorted to insert or lock in key order)."""
    if session.get_bind().dialect.name == "postgresql":
        return select(func.unnest(literal(list(values), ARRAY(String))).label("value"), *also)
    # WHERE true: as an INSERT's source, a SELECT without WHERE would read the upsert's ON CONFLICT as a join's ON.
    return (select(literal_column("value", String), *also)
            .select_from(func.json_each(literal(json.dumps(list(values))))).where(true()))


async def update_many(session: AsyncSession, table: Table, key: Sequence[str],
                      rows: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE each row, found by its `key` columns, to its other columns' values: one statement executed for
    every row (a driver's executemany), in key order so that concurrent transactions lock rows in the same
    order. Every row must have the same keys."""
    if not rows:
        return
    values = [name for name in rows[0] if name not in key]
    stmt = update(table).where(*(table.c[name] == bindparam(f"key_{name}", type_=table.c[name].type) for name in key)
                               ).values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in values})
    ordered = sorted(rows, key=lambda row: tuple(row[name] for name in key))
    await session.execute(stmt, [{f"key_{name}": row[name] for name in key}
                                 | {f"new_{name}": row[name] for name in values} for row in ordered])


SQLITE_BULK_SLICE_ROWS = 200  # rows per statement: a few ms each of inserting members (indexes included)
SQLITE_MAX_VARIABLES = 32766  # SQLite's default limit of a statement's parameters since 3.32


@functools.lru_cache(maxsize=512)
def _bind_processors(table: Table, columns: tuple[str, ...], dialect: Any) -> list[tuple[int, Callable[[Any], Any]]]:
    """The columns whose values need converting before the driver takes them, with the conversion: on SQLite, each
    type's dialect implementation (as SQLAlchemy's own statements use it: a timestamp stored as "YYYY-MM-DD
    HH:MM:SS.ffffff", not the driver's str() of it, so stored times compare with bound ones); COPY takes each value
    as the generic type gives it. Worked out once per table, columns and dialect (a registration writes a row or
    two, and asking every column's type for its processor cost more than writing them)."""
    return [(i, process) for i, c in enumerate(columns)
            if (process := (table.c[c].type if dialect.name == "postgresql" else
                            table.c[c].type.dialect_impl(dialect)).bind_processor(dialect)) is not None]


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows in the session's transaction by the driver's fastest path.

    PostgreSQL: COPY (asyncpg `copy_records_to_table`); SQLite: multi-row INSERTs of `SQLITE_BULK_SLICE_ROWS`. Both
    bypass SQLAlchemy's per-row parameter handling, which costs more than the database for big batches;
    values go through each column type's own bind processor, so they are stored exactly as SQLAlchemy
    would store them. Every row must have the same keys.
    """
    if not rows:
        return
    columns = list(rows[0])
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    dialect = connection.dialect
    row_tuple = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    records: list[Sequence[Any]] = list(map(row_tuple, rows))
    converted = _bind_processors(table, tuple(columns), dialect)
    if converted:  # e.g. JSON columns: serialised as SQLAlchemy would
        for n, record in enumerate(records):
            if n % 500 == 499:  # many rows (an import's members): let the loop serve others meanwhile
                await asyncio.sleep(0)
            values = list(record)
            for i, process in converted:
                if values[i] is not None:
                    values[i] = process(values[i])
            records[n] = values
    assert driver is not None
    into, marks = f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ', f"({', '.join('?' for _ in columns)})"
    sql = into + marks
    try:
        if dialect.name == "postgresql":
            # SQLAlchemy opens the driver's transaction at its first statement: make sure that has happened,
            # so the COPY belongs to the session's transaction (and rolls back with it).
            await connection.execute(text("SELECT 1"))
            await driver.copy_records_to_table(table.name, records=records, columns=columns,
                                               schema_name=table.schema)
        else:
            # Slices of rows, each one multi-row INSERT: SQLite lets go of the interpreter lock once a statement
            # (an executemany takes it back after every row, each time behind any busy thread: the import's
            # parsing), and within `sqlite_yielding` the loop serves others between the slices.
            per = max(1, min(SQLITE_BULK_SLICE_ROWS, SQLITE_MAX_VARIABLES // len(columns)))
            for start in range(0, len(records), per):
                piece = records[start:start + per]
                cursor = await driver.execute(into + ", ".join([marks] * len(piece)),
                                              [value for record in piece for value in record])
                await cursor.close()
    except (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError) as exc:
        # The driver's own error, as SQLAlchemy would have raised it: callers catch IntegrityError (a
        # concurrent writer took a key) whichever path wrote the rows.
        raise IntegrityError(sql, None, exc) from exc
