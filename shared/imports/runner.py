"""The import job: a background task per upload that reads the file and writes what is new in it, on whichever
replica holds the job's lease.

`routes.accept_upload` stores the upload in the database (`import_chunk`, pieces of `import_stored_chunk_bytes`)
with a queued job, so that every replica can read it. A replica runs a job once it has claimed it: it sets itself
as the job's `owner` with a lease (`lease_until`, by the database's clock) by a conditional UPDATE that only a job
queued, or running under a lease that ran out, passes (on PostgreSQL after `FOR UPDATE SKIP LOCKED`, so replicas
do not even wait for each other). The replica that received the upload claims it at once; every replica also
looks every `import_poll_s` (and at start-up) for jobs to take, and renews its own jobs' leases every
`import_heartbeat_s`. A replica that dies mid-import stops renewing: after the lease another one takes the job over.
A job that loses the database mid-way (a connection refused or cut) is not failed: it stops, and is taken again
(by this replica at its next look, or by another after the lease) from its checkpoint.

Running a job: a thread reads the stored file as a stream (`StoredUpload`: its pieces are fetched on the event
loop and handed to the thread) and reads it into units (a household, a row), `chunk` at a time, prepared (pure
CPU: parse, validate, encrypt...), while the event loop writes the chunk before it in one transaction (`apply`),
so memory stays flat whatever the file's size. Rejected rows are stored with their row number, column and reason
(at most `max_errors` per job). A chunk that meets a concurrent writer (IntegrityError) is retried an item at a
time.

Each chunk's transaction also adds its counts to the job's and records the file rows it covers in the job's
checkpoint, fenced: the UPDATE applies only while this replica is the job's owner, and if it is not (the job was
taken over) the transaction rolls back and the job stops here. So the job's counts are exactly those of the
committed rows, and a replica that takes the job over skips those rows: nothing is counted or reported twice.
Among the counts is `bytes_done`, the bytes of the file that the committed units were read from (each unit's
from the end of the one before it, as `csv_rows` reads them off the `Upload`): their share of the file's size
is the job's progress, exact and the same whichever replicas committed them.
Rows are counted from 0 over the file's units; the checkpoint is the number of rows before which all are
committed (`checkpoint_row`), plus the spans beyond it (`checkpoint_ahead`) that a chunk committed before the
chunk ahead of it (on PostgreSQL two chunks are written at once).

When the job ends (done or failed) its stored upload is deleted in the transaction that says so.

Each service has its own `ImportJobs` subclass and its own `Counts` subclass whose fields are the counters
of its `import_job` table (see `shared.imports.models`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import IO, Any, ClassVar, Generic, Protocol, TypeVar

import structlog
from fastapi import FastAPI
from sqlalchemy import DateTime, Interval, and_, case, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from shared.auth import Principal
from shared.clock import utcnow
from shared.db import read_only, rowcount, sqlite_yielding, transaction
from shared.imports.parsing import RowError, Upload
from shared.imports.settings import ImportSettings

log = structlog.get_logger("kaenkhun.imports")

Span = tuple[int, int]  # [start, end) in data rows counted from 0


@dataclass
class Counts:
    """A chunk's counts; a service's subclass adds its counters (the job table's columns)."""

    rows: int = 0
    rows_rejected: int = 0
    errors_kept: int = 0
    bytes_done: int = 0

    def values(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Unit(Protocol):
    """One unit of a file as read (a household's rows, a row): prepared and written together or not at all."""

    @property
    def rows(self) -> int: ...


class Item(Protocol):
    """One prepared unit of a file (a household, an assessment)."""

    @property
    def rows(self) -> int: ...


@dataclass(frozen=True)
class Checkpoint:
    """What of a job's file is committed: every data row before `row` (counted from 0), and the spans `ahead`."""

    row: int = 0
    ahead: tuple[Span, ...] = ()

    def covers(self, start: int) -> bool:
        """Whether the unit starting at row `start` is committed (units are committed whole)."""
        return start < self.row or any(a <= start < b for a, b in self.ahead)

    def plus(self, spans: Sequence[Span]) -> Checkpoint:
        merged: list[list[int]] = []
        for a, b in sorted([(0, self.row), *self.ahead, *spans]):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return Checkpoint(merged[0][1], tuple((a, b) for a, b in merged[1:]))


class TakenOver(Exception):
    """The job is no longer this replica's (its lease ran out and another replica took it): stop, keep nothing."""


class StoredUpload(io.RawIOBase):
    """An upload stored in pieces, read as a file by the parsing thread: each piece is fetched on the event loop
    (`fetch(seq)`, None past the last), one ahead of the reader, so at most two are held."""

    def __init__(self, fetch: Callable[[int], Awaitable[bytes | None]], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._fetch, self._loop = fetch, loop
        self._seq = 0
        self._buffer = memoryview(b"")
        self._next: Future[bytes | None] | None = None
        self._eof = False

    def readable(self) -> bool:
        return True

    def _request(self, seq: int) -> Future[bytes | None]:
        async def fetch() -> bytes | None:
            return await self._fetch(seq)
        return asyncio.run_coroutine_threadsafe(fetch(), self._loop)

    def readinto(self, buffer: Any) -> int:
        while not self._buffer:
            if self._eof:
                return 0
            piece = (self._next or self._request(self._seq)).result()
            self._seq += 1
            if piece is None:
                self._eof, self._next = True, None
                return 0
            self._next = self._request(self._seq)
            self._buffer = memoryview(piece)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None
        super().close()


@dataclass
class _Job:
    """A job this replica runs: who imports, and the room left for row errors (reserved before a chunk's
    transaction commits, given back if it rolls back)."""

    id: str
    importer: Principal
    errors_kept: int


UnitT = TypeVar("UnitT", bound=Unit)
ItemT = TypeVar("ItemT", bound=Item)
CountsT = TypeVar("CountsT", bound=Counts)
Chunk = tuple[list[ItemT], list[Span], list[int]]  # the items, the rows each covers, and the bytes
# Analyzed with every job's own tables (ImportJobs.analyze): each imported unit writes its events there, in bulk.
# Statistics from when the outbox was empty are what once had an idle service's relay scan it whole.
ANALYZED_TOO = ("outbox",)


class ImportJobs(ABC, Generic[UnitT, ItemT, CountsT]):
    """Runs a service's import jobs as background tasks of its app, those whose lease this replica holds."""

    job_model: ClassVar[Any]    # table with id, status, client_id, areas, the lease, the checkpoint + counts
    error_model: ClassVar[Any]  # table with import_id, row, column, message
    chunk_model: ClassVar[Any]  # table with import_id, seq, data: the stored upload
    counts_type: ClassVar[type[Counts]]
    # Tables the job writes in bulk, looking rows up in some of them by lists of keys while it (or a burst of
    # events just before it) grows them. PostgreSQL plans from statistics that autovacuum refreshes too late
    # for a bulk load, where it runs at all: a table it still believes nearly empty gets a sequential scan per
    # chunk, and the job slows down as it goes (measured: 43 of 76 s for 60,000 assessments). So on
    # PostgreSQL the job runs ANALYZE on them, and on the outbox its events went to (ANALYZED_TOO), after 1,
    # 2, 4, 8 … chunks, as autovacuum's scale factor would, and once more at its end.
    analyze: ClassVar[tuple[str, ...]] = ()
    # False for a job whose own lookups go through their indexes whatever the statistics say (its `apply` plans
    # them so, e.g. with `shared.db.no_table_scans`): its tables are analyzed once, at its end, and not also as
    # they grow (measured on the registry's: 1.3 of 4.1 s of the database's CPU for 100,000 persons).
    analyze_as_it_grows: ClassVar[bool] = True

    def __init__(self, maker: async_sessionmaker[AsyncSession], settings: ImportSettings, *, chunk: int,
                 max_errors: int) -> None:
        self.maker = maker
        self.settings = settings
        self.chunk = chunk
        self.max_errors = max_errors
        self.engine = maker.kw["bind"]
        self.postgres = self.engine.dialect.name == "postgresql"
        # Who this replica is, as a job's owner: unique even for two apps in one process (tests).
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"[-200:]
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()  # jobs claimed here whose task has not ended: their leases are renewed
        self._loops: list[asyncio.Task[None]] = []

    # -- what a service provides ---------------------------------------------------------------------------

    @abstractmethod
    def units(self, stream: IO[bytes], header_errors: list[RowError]) -> Iterator[UnitT]:
        """The file's units in order; runs in a thread, so it must not touch the database. Reading the same file
        again must give the same units (a job taken over skips those already committed). Read with `csv_rows`,
        which moves the stream's (an `Upload`'s) position on as it yields rows: the job's progress."""

    @abstractmethod
    def prepare(self, units: list[UnitT], importer: Principal) -> list[ItemT]:
        """The units' items, one each, in order: everything that needs no database (runs in a thread)."""

    @abstractmethod
    async def apply(self, session: AsyncSession, chunk: list[ItemT], counts: CountsT, importer: Principal
                    ) -> list[RowError]:
        """Write what is new in the chunk and count it; return the errors of what is not written."""

    @abstractmethod
    def conflict_errors(self, item: ItemT) -> list[RowError]:
        """Why an item was rejected when a concurrent writer got there first."""

    def check_ready(self) -> None:
        """Raise a Problem (e.g. 503) if a file cannot be taken or run now; called before an upload is stored and
        before jobs are claimed."""

    # -- the database's clock ------------------------------------------------------------------------------

    def clock(self, plus_s: float = 0.0) -> ColumnElement[datetime]:
        """Now (plus `plus_s`) by the database's clock on PostgreSQL, so that replicas whose clocks differ agree
        on whose lease ran out; on SQLite, which one process uses, by this process's."""
        if self.postgres:
            return func.now() + literal(timedelta(seconds=plus_s), Interval()) if plus_s else func.now()
        return literal(utcnow() + timedelta(seconds=plus_s), DateTime(timezone=True))

    # -- the jobs ------------------------------------------------------------------------------------------

    def submit(self, job_id: str) -> None:
        """Run a job just uploaded here, unless another replica took it first (its task claims it first)."""
        async def claim_and_run() -> None:
            if await self.claim(job_id):
                await self.run(job_id)
        self._start(job_id, claim_and_run())

    async def claim(self, job_id: str | None = None) -> list[str]:
        """Take the jobs no live replica runs (queued, or running under a lease that ran out, or this replica's
        but not running here), or only `job_id` if given; returns their ids."""
        t = self.job_model
        claimable = and_(t.status.in_(["queued", "running"]),
                         or_(t.owner.is_(None), t.lease_until.is_(None), t.lease_until < self.clock(),
                             t.owner == self.owner))
        query = select(t.id).where(claimable).order_by(t.created_at).with_for_update(skip_locked=True)
        if job_id is not None:
            query = query.where(t.id == job_id)
        elif self._tasks:
            query = query.where(t.id.not_in(list(self._tasks)))
        async with transaction(self.maker) as session:
            ids = list((await session.execute(query)).scalars())
            if not ids:
                return []
            # The condition again: on SQLite there was no lock, and it is what makes a claim safe anywhere.
            taken = list((await session.execute(
                update(t).where(t.id.in_(ids), claimable).values(
                    owner=self.owner, status="running", lease_until=self.clock(self.settings.import_lease_s),
                    heartbeat_at=self.clock(), started_at=func.coalesce(t.started_at, self.clock()),
                    resumed=t.resumed + case((or_(t.started_at.is_(None), t.owner == self.owner), 0), else_=1))
                .returning(t.id, t.resumed))).all())
        self._held.update(job for job, _ in taken)
        for job, resumed in taken:
            if resumed:
                log.info("import taken over", import_id=job, owner=self.owner, resumed=resumed)
        return [job for job, _ in taken]

    def _start(self, job_id: str, work: Coroutine[Any, Any, None]) -> None:
        if job_id in self._tasks:
            work.close()
            return
        task = asyncio.create_task(work, name=f"import-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._ended(job_id))

    def _ended(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._held.discard(job_id)

    async def wait(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def heartbeat(self) -> None:
        """Renew the leases of the jobs this replica runs; stop those another replica has taken meanwhile."""
        running = list(self._held)
        if not running:
            return
        t = self.job_model
        async with transaction(self.maker) as session:
            renewed = set((await session.execute(
                update(t).where(t.id.in_(running), t.owner == self.owner, t.status == "running")
                .values(lease_until=self.clock(self.settings.import_lease_s), heartbeat_at=self.clock())
                .returning(t.id))).scalars())
        for job_id in running:
            task = self._tasks.get(job_id)
            if job_id not in renewed and task is not None and not task.done():
                log.warning("import lost to another replica", import_id=job_id, owner=self.owner)
                task.cancel()

    def start(self) -> None:
        """Claim jobs (now and every `import_poll_s`) and renew leases (every `import_heartbeat_s`)."""
        async def every(interval_s: float, turn: Callable[[], Awaitable[Any]], what: str) -> None:
            while True:
                try:
                    await turn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # e.g. the tables are not migrated yet, the database restarts
                    log.info(f"imports not {what}", error=type(exc).__name__, retry_in_s=interval_s)
                await asyncio.sleep(interval_s)

        async def claim_when_ready() -> None:
            self.check_ready()
            for job_id in await self.claim():
                self._start(job_id, self.run(job_id))

        self._loops = [asyncio.create_task(every(self.settings.import_poll_s, claim_when_ready, "claimed"),
                                           name="import-claim"),
                       asyncio.create_task(every(self.settings.import_heartbeat_s, self.heartbeat, "renewed"),
                                           name="import-heartbeat")]

    async def stop(self) -> None:
        """Stop the jobs and let them go at once (their lease ends now): another replica takes them at its next
        look instead of after the lease."""
        running = list(self._held)
        for task in [*self._loops, *self._tasks.values()]:
            task.cancel()
        for task in [*self._loops, *self._tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        if running:
            t = self.job_model
            with contextlib.suppress(Exception):
                async with transaction(self.maker) as session:
                    await session.execute(update(t).where(t.id.in_(running), t.owner == self.owner,
                                                          t.status == "running").values(lease_until=self.clock()))

    async def run(self, job_id: str) -> None:
        # The event loop serves requests between the job's SQLite statements (its status among them), not
        # only between its chunks.
        with sqlite_yielding():
            await self._run_here(job_id)

    async def _run_here(self, job_id: str) -> None:
        try:
            await self._run(job_id)
        except asyncio.CancelledError:
            raise
        except TakenOver:
            log.warning("import taken over by another replica; stopped here", import_id=job_id, owner=self.owner)
        except Exception as exc:
            if _database_lost(exc):
                # Not the file's fault: leave the job to its lease, and to whichever replica reaches the
                # database next (this one too), from its checkpoint.
                log.warning("import paused: the database is unreachable", import_id=job_id, error=repr(exc))
                return
            if isinstance(exc, UnicodeDecodeError):
                failure = "the file is not UTF-8 text (save it as CSV UTF-8)"
            elif isinstance(exc, csv.Error):
                failure = f"malformed CSV: {exc}"
            else:
                failure = f"{type(exc).__name__}: {exc}"
                log.error("import failed", import_id=job_id, error=repr(exc))
            try:  # the job fails, the service goes on; what was written before stays
                await self._finish(job_id, [], failure=failure[:2000])
            except TakenOver:
                pass
            except Exception as again:
                log.warning("import failure not recorded", import_id=job_id, error=repr(again))

    async def _run(self, job_id: str) -> None:
        t = self.job_model
        async with transaction(self.maker) as session:
            job = (await session.execute(select(t).where(t.id == job_id, t.owner == self.owner,
                                                         t.status == "running"))).scalar_one_or_none()
            if job is None:
                return
            state = _Job(job_id, Principal(client_id=job.client_id, areas=frozenset(job.areas)), job.errors_kept)
            done = Checkpoint(job.checkpoint_row, tuple((a, b) for a, b in job.checkpoint_ahead))
        # On PostgreSQL two chunks are written at once on two connections: while one commits, the next
        # is already being written. SQLite has one writer, so there it is one at a time.
        writers = asyncio.Semaphore(2 if self.postgres else 1)
        writing: set[asyncio.Task[None]] = set()
        header_errors: list[RowError] = []
        chunks_written = 0
        loop = asyncio.get_running_loop()
        stream = Upload(StoredUpload(lambda seq: self._piece(job_id, seq), loop))
        chunks = self._chunks(stream, state.importer, header_errors, done)

        async def write(chunk: Chunk[ItemT]) -> None:
            try:
                await self._write_chunk(state, *chunk)
            finally:
                writers.release()

        # Prepare the next chunk in a thread while this one is written: the database (its own
        # process on PostgreSQL) works while we parse. Awaited shielded: a job stopped (cancelled) while the
        # thread reads must not let go of the thread's task, whose end `finally` waits for before closing.
        parsing = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
        try:
            while (chunk := await asyncio.shield(parsing)) is not None:
                parsing = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
                await writers.acquire()
                for finished in [w for w in writing if w.done()]:
                    writing.discard(finished)
                    finished.result()  # a failed chunk fails the job
                chunks_written += 1
                if self.analyze_as_it_grows and chunks_written & (chunks_written - 1) == 0:  # 1, 2, 4, 8 …
                    await self._analyze()
                writing.add(asyncio.create_task(write(chunk)))
            await asyncio.gather(*writing)
            if chunks_written:
                await self._analyze()
        finally:
            for task in writing:
                task.cancel()
            # On failure, let the thread finish with the file before it is closed.
            with contextlib.suppress(BaseException):
                await asyncio.shield(parsing)
            with contextlib.suppress(BaseException):
                await asyncio.gather(*writing, return_exceptions=True)
            chunks.close()
            stream.close()
        failure = "the file's header is not the documented one" if header_errors else None
        await self._finish(job_id, header_errors[:max(self.max_errors - state.errors_kept, 0)], failure=failure)
        log.info("import finished", import_id=job_id, owner=self.owner)

    def _chunks(self, stream: Upload, importer: Principal, header_errors: list[RowError], done: Checkpoint,
                ) -> Generator[Chunk[ItemT], None, None]:
        """The file's items not committed yet, `chunk` at a time, with the rows each covers and its bytes (the
        file read from the end of the unit before it, header and blank lines included; in the thread)."""
        position = read = 0
        units: list[UnitT] = []
        spans: list[Span] = []
        sizes: list[int] = []
        for unit in self.units(stream, header_errors):
            start, position = position, position + unit.rows
            begin, read = read, stream.position
            if done.covers(start):
                continue
            units.append(unit)
            spans.append((start, position))
            sizes.append(read - begin)
            if len(units) == self.chunk:
                yield self.prepare(units, importer), spans, sizes
                units, spans, sizes = [], [], []
        if units:
            yield self.prepare(units, importer), spans, sizes

    async def _piece(self, job_id: str, seq: int) -> bytes | None:
        """One piece of a job's stored upload (None past the last), read without taking SQLite's write lock."""
        c = self.chunk_model
        async with read_only(self.engine) as conn:
            data = await conn.scalar(select(c.data).where(c.import_id == job_id, c.seq == seq))
        return bytes(data) if data is not None else None

    async def _analyze(self) -> None:
        if not self.postgres:
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in (*self.analyze, *ANALYZED_TOO):
                await conn.execute(text(f'ANALYZE "{table}"'))

    async def _write_chunk(self, job: _Job, chunk: list[ItemT], spans: list[Span], sizes: list[int]) -> None:
        delta = self.counts_type(rows=sum(item.rows for item in chunk), bytes_done=sum(sizes))
        try:
            async with transaction(self.maker) as session:
                errors = await self.apply(session, chunk, delta, job.importer)  # type: ignore[arg-type]
                await self._commit(session, job, errors, delta, spans)
        except IntegrityError:
            job.errors_kept -= delta.errors_kept
            # Someone wrote one of these at the same moment: go an item at a time.
            for item, span, size in zip(chunk, spans, sizes, strict=True):
                delta = self.counts_type(rows=item.rows, bytes_done=size)
                try:
                    async with transaction(self.maker) as session:
                        errors = await self.apply(session, [item], delta, job.importer)  # type: ignore[arg-type]
                        await self._commit(session, job, errors, delta, [span])
                except IntegrityError:
                    job.errors_kept -= delta.errors_kept
                    async with transaction(self.maker) as session:
                        delta = self.counts_type(rows=item.rows, rows_rejected=item.rows, bytes_done=size)
                        await self._commit(session, job, self.conflict_errors(item), delta, [span])

    async def _commit(self, session: AsyncSession, job: _Job, errors: list[RowError], delta: Counts,
                      spans: list[Span]) -> None:
        """In the chunk's transaction: keep its errors, add its counts to the job's and its rows to the job's
        checkpoint — if the job is still this replica's, else raise TakenOver (and all of it rolls back)."""
        # Room is reserved before the await, so concurrent chunks never keep more than the limit; a
        # chunk that rolls back gives its reservation back (see `_write_chunk`).
        kept = errors[:max(self.max_errors - job.errors_kept, 0)]
        job.errors_kept += len(kept)
        delta.errors_kept = len(kept)
        if kept:
            await self._insert_errors(session, job.id, kept)
        t = self.job_model
        found = (await session.execute(
            update(t).where(t.id == job.id, t.owner == self.owner)
            .values({getattr(t, name): getattr(t, name) + n for name, n in delta.values().items() if n}
                    or {t.owner: t.owner})
            .returning(t.checkpoint_row, t.checkpoint_ahead))).first()
        if found is None:
            raise TakenOver(job.id)
        # The job's row is locked by the UPDATE until this commits: the checkpoint read is the latest.
        checkpoint = Checkpoint(found.checkpoint_row, tuple((a, b) for a, b in found.checkpoint_ahead)).plus(spans)
        await session.execute(update(t).where(t.id == job.id).values(
            checkpoint_row=checkpoint.row, checkpoint_ahead=[list(s) for s in checkpoint.ahead]))

    async def _finish(self, job_id: str, header_errors: list[RowError], *, failure: str | None) -> None:
        """End the job (done, or failed with `failure`), if it is still this replica's; its upload goes."""
        t = self.job_model
        async with transaction(self.maker) as session:
            if header_errors:
                await self._insert_errors(session, job_id, header_errors)
            ended = await session.execute(update(t).where(t.id == job_id, t.owner == self.owner).values(
                status="failed" if failure else "done", failure=failure, finished_at=self.clock(),
                lease_until=None, errors_kept=t.errors_kept + len(header_errors)))
            if rowcount(ended) == 0:
                raise TakenOver(job_id)
            await session.execute(delete(self.chunk_model).where(self.chunk_model.import_id == job_id))

    async def _insert_errors(self, session: AsyncSession, job_id: str, errors: list[RowError]) -> None:
        await session.execute(insert(self.error_model), [
            {"import_id": job_id, "row": e.row, "column": e.column, "message": e.message[:500]} for e in errors])


def _database_lost(exc: Exception) -> bool:
    """Whether `exc` says the database could not be reached (a connection refused or cut), not that it refused
    what was written."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, (OperationalError, InterfaceError))
    return isinstance(exc, OSError)


@contextlib.asynccontextmanager
async def running_jobs(app: FastAPI, jobs: ImportJobs[Any, Any, Any]) -> AsyncIterator[None]:
    """Keep `jobs` on `app.state.imports` while the app runs: claim and run jobs, stop with the app."""
    app.state.imports = jobs
    jobs.start()
    try:
        yield
    finally:
        await jobs.stop()
