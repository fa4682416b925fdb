"""The import job: a background task per upload that reads the file and writes what is new in it.

`routes.accept_upload` writes the upload to `<data dir>/imports/<id>.csv` and queues a job; an `ImportJobs`
subclass runs the job as a task: a thread reads the file as a stream and prepares it `chunk` items at a time
(pure CPU: parse, validate, encrypt...), while the event loop writes the chunk before it in one transaction
(`apply`), so memory stays flat whatever the file's size. Rejected rows are stored with their row number,
column and reason (at most `max_errors` per job). A chunk that meets a concurrent writer (IntegrityError) is
retried an item at a time. Jobs left unfinished by a crash resume at start-up from the beginning, so `apply`
must count what is already there as unchanged (importing the same file twice creates nothing).

Each service has its own `ImportJobs` subclass and its own `Counts` subclass whose fields are the counters
of its `import_job` table (see `shared.imports.models`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, Protocol, TypeVar

import structlog
from fastapi import FastAPI
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Principal
from shared.clock import utcnow
from shared.db import transaction
from shared.imports.parsing import RowError

log = structlog.get_logger("kaenkhun.imports")


@dataclass
class Counts:
    """What a job has done so far; a service's subclass adds its counters (the job table's columns)."""

    rows: int = 0
    rows_rejected: int = 0
    errors_kept: int = 0

    def add(self, delta: Counts) -> None:
        """Add a committed chunk's counts (errors_kept is reserved up front, see `ImportJobs.keep_errors`)."""
        for f in fields(self):
            if f.name != "errors_kept":
                setattr(self, f.name, getattr(self, f.name) + getattr(delta, f.name))

    def values(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Item(Protocol):
    """One prepared unit of a file (a household, an assessment): written together or not at all."""

    @property
    def rows(self) -> int: ...


ItemT = TypeVar("ItemT", bound=Item)
CountsT = TypeVar("CountsT", bound=Counts)


class ImportJobs(ABC, Generic[ItemT, CountsT]):
    """Runs a service's import jobs as background tasks of its app."""

    job_model: ClassVar[Any]    # table with id, status, client_id, areas, started_at, finished_at, failure + counts
    error_model: ClassVar[Any]  # table with import_id, row, column, message
    counts_type: ClassVar[type[Counts]]
    # Tables the job looks rows up in by lists of keys while it (or a burst of events just before it)
    # grows them. PostgreSQL plans those lookups from statistics that autovacuum refreshes too late for a
    # bulk load: a table it still believes nearly empty gets a sequential scan per chunk, and the job slows
    # down as it goes (measured: 43 of 76 s for 60,000 assessments). So on PostgreSQL the job runs ANALYZE
    # on them after 1, 2, 4, 8 … chunks, as autovacuum's scale factor would.
    analyze: ClassVar[tuple[str, ...]] = ()

    def __init__(self, maker: async_sessionmaker[AsyncSession], directory: Path, *, chunk: int,
                 max_errors: int) -> None:
        self.maker = maker
        self.directory = directory
        self.chunk = chunk
        self.max_errors = max_errors
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- what a service provides ---------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, stream: IO[bytes], importer: Principal, header_errors: list[RowError]
                ) -> Generator[list[ItemT], None, None]:
        """The file's items, a chunk at a time; runs in a thread, so it must not touch the database."""

    @abstractmethod
    async def apply(self, session: AsyncSession, chunk: list[ItemT], counts: CountsT, importer: Principal
                    ) -> list[RowError]:
        """Write what is new in the chunk and count it; return the errors of what is not written."""

    @abstractmethod
    def conflict_errors(self, item: ItemT) -> list[RowError]:
        """Why an item was rejected when a concurrent writer got there first."""

    def check_ready(self) -> None:
        """Raise a Problem (e.g. 503) if a file cannot be taken now; called before an upload is stored."""

    # -- the jobs ------------------------------------------------------------------------------------------

    def path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.csv"

    def start(self, job_id: str) -> None:
        if job_id not in self._tasks:
            task = asyncio.create_task(self.run(job_id), name=f"import-{job_id}")
            self._tasks[job_id] = task
            task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def wait(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def resume(self) -> None:
        """Start again the jobs a previous run of the service left queued or running."""
        async with transaction(self.maker) as session:
            pending = (await session.execute(
                select(self.job_model.id).where(self.job_model.status.in_(["queued", "running"]))
            )).scalars().all()
        for job_id in pending:
            if self.path(job_id).exists():
                self.start(job_id)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run(self, job_id: str) -> None:
        try:
            await self._run(job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job fails, the service goes on; what was written before stays
            if isinstance(exc, UnicodeDecodeError):
                failure = "the file is not UTF-8 text (save it as CSV UTF-8)"
            elif isinstance(exc, csv.Error):
                failure = f"malformed CSV: {exc}"
            else:
                failure = f"{type(exc).__name__}: {exc}"
                log.error("import failed", import_id=job_id, error=repr(exc))
            await self._set(job_id, status="failed", failure=failure[:2000], finished_at=utcnow())

    async def _set(self, job_id: str, **values: Any) -> None:
        async with transaction(self.maker) as session:
            await session.execute(update(self.job_model).where(self.job_model.id == job_id).values(**values))

    async def _run(self, job_id: str) -> None:
        async with transaction(self.maker) as session:
            job = await session.get(self.job_model, job_id)
            if job is None:
                return
            importer = Principal(client_id=job.client_id, areas=frozenset(job.areas))
            await session.execute(delete(self.error_model).where(self.error_model.import_id == job_id))
            job.status, job.started_at = "running", utcnow()
        counts = self.counts_type()
        # On PostgreSQL two chunks are written at once on two connections: while one commits, the next
        # is already being written. SQLite has one writer, so there it is one at a time.
        writers = asyncio.Semaphore(1 if self.maker.kw["bind"].dialect.name == "sqlite" else 2)
        writing: set[asyncio.Task[None]] = set()
        header_errors: list[RowError] = []
        chunks_written = 0
        with self.path(job_id).open("rb") as stream:
            chunks = self.prepare(stream, importer, header_errors)

            async def write(chunk: list[ItemT]) -> None:
                try:
                    await self._write_chunk(job_id, chunk, counts, importer)  # type: ignore[arg-type]
                finally:
                    writers.release()

            # Prepare the next chunk in a thread while this one is written: the database (its own
            # process on PostgreSQL) works while we parse.
            parsing = asyncio.ensure_future(asyncio.to_thread(next, chunks, []))
            try:
                while chunk := await parsing:
                    parsing = asyncio.ensure_future(asyncio.to_thread(next, chunks, []))
                    await writers.acquire()
                    for done in [t for t in writing if t.done()]:
                        writing.discard(done)
                        done.result()  # a failed chunk fails the job
                    chunks_written += 1
                    if chunks_written & (chunks_written - 1) == 0:  # after 1, 2, 4, 8 … chunks
                        await self._analyze()
                    writing.add(asyncio.create_task(write(chunk)))
                await asyncio.gather(*writing)
            finally:
                for task in writing:
                    task.cancel()
                # On failure, let the thread finish with the file before it is closed.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(parsing)
                with contextlib.suppress(BaseException):
                    await asyncio.gather(*writing, return_exceptions=True)
                chunks.close()
        async with transaction(self.maker) as session:
            if header_errors:
                await self._insert_errors(session, job_id, header_errors)
            failed = bool(header_errors)
            counts.errors_kept += len(header_errors)
            await session.execute(update(self.job_model).where(self.job_model.id == job_id).values(
                status="failed" if failed else "done", finished_at=utcnow(),
                failure="the file's header is not the documented one" if failed else None, **counts.values()))
        with contextlib.suppress(OSError):
            self.path(job_id).unlink()
        log.info("import finished", import_id=job_id, **counts.values())

    async def _analyze(self) -> None:
        engine = self.maker.kw["bind"]
        if engine.dialect.name != "postgresql" or not self.analyze:
            return
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in self.analyze:
                await conn.execute(text(f'ANALYZE "{table}"'))

    async def _write_chunk(self, job_id: str, chunk: list[ItemT], counts: CountsT, importer: Principal
                           ) -> None:
        counts.rows += sum(item.rows for item in chunk)
        delta = self.counts_type()
        try:
            async with transaction(self.maker) as session:
                errors = await self.apply(session, chunk, delta, importer)  # type: ignore[arg-type]
                await self._keep(session, job_id, errors, counts, delta)
        except IntegrityError:
            counts.errors_kept -= delta.errors_kept
            # Someone wrote one of these at the same moment: go an item at a time.
            for item in chunk:
                delta = self.counts_type()
                try:
                    async with transaction(self.maker) as session:
                        errors = await self.apply(session, [item], delta, importer)  # type: ignore[arg-type]
                        await self._keep(session, job_id, errors, counts, delta)
                except IntegrityError:
                    counts.errors_kept -= delta.errors_kept
                    async with transaction(self.maker) as session:
                        delta = self.counts_type(rows_rejected=item.rows)
                        await self._keep(session, job_id, self.conflict_errors(item), counts, delta)

    async def _keep(self, session: AsyncSession, job_id: str, errors: list[RowError], counts: Counts,
                    delta: Counts) -> None:
        """Keep the chunk's errors and store the job's totals in the chunk's transaction (the last commit's
        totals are the truth)."""
        # Room is reserved before the await, so concurrent chunks never keep more than the limit; a
        # chunk that rolls back gives its reservation back (see `_write_chunk`).
        kept = errors[:max(self.max_errors - counts.errors_kept, 0)]
        counts.errors_kept += len(kept)
        delta.errors_kept += len(kept)
        if kept:
            await self._insert_errors(session, job_id, kept)
        counts.add(delta)
        await session.execute(update(self.job_model).where(self.job_model.id == job_id).values(**counts.values()))

    async def _insert_errors(self, session: AsyncSession, job_id: str, errors: list[RowError]) -> None:
        await session.execute(insert(self.error_model), [
            {"import_id": job_id, "row": e.row, "column": e.column, "message": e.message[:500]} for e in errors])

    async def resume_when_migrated(self, retry_s: float = 2.0) -> None:
        # The app may start before `kaenkhun migrate` has created the import tables: try until it can.
        while True:
            try:
                await self.resume()
                return
            except Exception as exc:
                log.info("imports not resumed yet", error=type(exc).__name__, retry_in_s=retry_s)
                await asyncio.sleep(retry_s)


@contextlib.asynccontextmanager
async def running_jobs(app: FastAPI, jobs: ImportJobs[Any, Any]) -> AsyncIterator[None]:
    """Keep `jobs` on `app.state.imports` while the app runs: resume unfinished ones, stop with the app."""
    jobs.directory.mkdir(parents=True, exist_ok=True)
    app.state.imports = jobs
    resuming = asyncio.create_task(jobs.resume_when_migrated(), name="import-resume")
    try:
        yield
    finally:
        resuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resuming
        await jobs.stop()
