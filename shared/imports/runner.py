"""Bulk CSV imports, one mechanism for every service: upload, background job, per-row errors.

`POST` writes the upload to `<data dir>/imports/<id>.csv` and answers 202 at once (`accept_upload`). An
`ImportJobs` subclass runs the job as a task: a thread reads the file as a stream and prepares it
`chunk` items at a time (pure CPU: parse, validate, encrypt...), while the event loop writes the chunk
before it in one transaction (`apply`), so memory stays flat whatever the file's size. Rejected rows are
stored with their row number, column and reason (at most `max_errors` per job) and paged back by
`error_page`. A chunk that meets a concurrent writer (IntegrityError) is retried an item at a time. Jobs
left unfinished by a crash resume at start-up from the beginning, so `apply` must count what is already
there as unchanged (importing the same file twice creates nothing).

Each service keeps its own job and row-error tables (an `ImportJob` with the common columns below plus its
own counters, and an `ImportRowError`), its own `Counts` subclass whose fields are those counters, and its
own routes; the routes are thin over `accept_upload` and `error_page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import pydantic
import structlog
from fastapi import APIRouter, FastAPI, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel

from shared.app import SessionDep
from shared.auth import Principal
from shared.db import as_utc, transaction
from shared.errors import BadRequest, NotFound, PayloadTooLarge
from shared.events.envelope import utcnow
from shared.ids import new_id

log = structlog.get_logger("kaenkhun.imports")

_TRUE, _FALSE = {"true", "1", "yes", "y", "ใช่"}, {"false", "0", "no", "n", "ไม่ใช่", ""}


class ImportJobColumns(SQLModel):
    """The columns every service's `import_job` table has; a service's table adds its own counters:
    `class ImportJob(ImportJobColumns, Base, table=True)` with `__tablename__ = "import_job"`."""

    id: str = Field(primary_key=True, max_length=36)
    status: str = Field(max_length=10, index=True)  # queued, running, done, failed
    filename: str = Field(max_length=255)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int
    client_id: str = Field(max_length=200)
    areas: list[str] = Field(sa_type=JSON, nullable=False)
    rows: int = 0
    rows_rejected: int = 0
    errors_kept: int = 0
    failure: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)


class ImportRowErrorColumns(SQLModel):
    """The columns of every service's `import_row_error` table: why one row (1-based, the header is row 1)
    of an import was rejected."""

    id: int | None = Field(default=None, primary_key=True)
    import_id: str = Field(foreign_key="import_job.id", max_length=36, index=True)
    row: int
    column: str | None = Field(default=None, max_length=64)
    message: str = Field(max_length=500)


@dataclass
class RowError:
    row: int  # 1-based; the header is row 1
    column: str | None
    message: str


def parse_flag(value: str) -> bool:
    """A yes/no cell: true/false, 1/0, yes/no, ใช่/ไม่ใช่; empty is false."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def csv_rows(stream: IO[bytes], header_errors: list[RowError], check_header: Callable[[list[str]], list[str]],
             ) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """The rows of a CSV byte stream (UTF-8, with or without BOM) as (row number, {column: cell}).

    Blank rows are skipped; a row the csv module cannot read (a cell over its 128 KiB limit) or whose cell
    count differs from the header's comes as a RowError, and the rows after it are read on. If
    `check_header` finds problems with the header they go to `header_errors` and no row is read.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header_errors.append(RowError(1, None, "the file is empty"))
        return
    problems = check_header(header)
    if problems:
        header_errors += [RowError(1, None, problem) for problem in problems]
        return
    row_no = 1
    while True:
        row_no += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the csv module's limit: this row only, the reader goes on
            yield row_no, RowError(row_no, None, f"malformed CSV row: {exc}")
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield row_no, RowError(row_no, None, f"{len(cells)} cells, the header has {len(header)}")
            continue
        yield row_no, dict(zip(header, cells, strict=True))


def missing_columns(required: Sequence[str]) -> Callable[[list[str]], list[str]]:
    """A header check: all of `required` are there."""
    def check(header: list[str]) -> list[str]:
        missing = [c for c in required if c not in header]
        return [f"missing columns: {', '.join(missing)}"] if missing else []
    return check


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


# -- HTTP ------------------------------------------------------------------------------------------------


_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def upload_name(given: str | None) -> str:
    """What a job keeps of an upload's file name: a label only (the file is stored under the job's id), so
    the last path component, without control characters, at most 255 characters; `upload.csv` if nothing
    is left. `../../etc/passwd` is kept as `passwd`, `C:\\data\\บ้าน.csv` as `บ้าน.csv`."""
    name = _NOT_IN_NAMES.sub("", given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] if name not in ("", ".", "..") else "upload.csv"


async def accept_upload(session: AsyncSession, jobs: ImportJobs[Any, Any], file: UploadFile, principal: Principal,
                        *, max_bytes: int, location: str) -> JSONResponse:
    """Store an uploaded file as a queued job and start it: 202 with the job's Location (`location` + id)."""
    job_id = new_id()
    path = jobs.path(job_id)
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"The file is larger than {max_bytes} bytes; split it.")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise BadRequest("The file is empty.", type_slug="empty-file")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    session.add(jobs.job_model(id=job_id, status="queued", filename=upload_name(file.filename),
                               sha256=digest.hexdigest(), size_bytes=size, client_id=principal.client_id,
                               areas=sorted(principal.areas), created_at=utcnow()))
    await session.commit()  # the job row must exist before its task looks for it
    jobs.start(job_id)
    url = f"{location}/{job_id}"
    return JSONResponse({"id": job_id, "status": "queued", "location": url}, status_code=202,
                        headers={"Location": url})


async def find_job(session: AsyncSession, jobs: ImportJobs[Any, Any], job_id: str, principal: Principal) -> Any:
    """The job if the caller uploaded it, else None: a job's errors quote rows of its file (names, citizen IDs),
    which only its uploader has seen — even a client of every area does not read another's."""
    job = await session.get(jobs.job_model, job_id)
    if job is None or job.client_id != principal.client_id:
        return None
    return job


async def error_page(session: AsyncSession, jobs: ImportJobs[Any, Any], job_id: str, *, after_row: int,
                     limit: int) -> tuple[list[RowError], int | None]:
    """A page of a job's row errors in row order, and the `after_row` of the next page (None at the end)."""
    model = jobs.error_model
    found = list((await session.execute(
        select(model).where(model.import_id == job_id, model.row > after_row)
        .order_by(model.row, model.id).limit(limit + 1))).scalars())
    page = [RowError(e.row, e.column, e.message) for e in found[:limit]]
    return page, (page[-1].row if len(found) > limit else None)


class ImportErrorOut(BaseModel):
    row: int
    column: str | None
    message: str


class ImportOut(BaseModel):
    """What every service says about an import; a service's subclass adds its counters."""

    id: str
    status: str = pydantic.Field(description="queued, running, done or failed")
    filename: str
    sha256: str
    size_bytes: int
    rows: int
    rows_rejected: int
    failure: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[ImportErrorOut]
    errors_total: int = pydantic.Field(description="row errors kept (at most the service's import_max_errors)")
    errors_next_after_row: int | None = pydantic.Field(
        description="pass as errors_after_row for the next page of errors")


OutT = TypeVar("OutT", bound=ImportOut)


def present_job(out: type[OutT], job: Any, errors: list[RowError], next_after_row: int | None) -> OutT:
    """The job as `out`: its columns by name, times in UTC, and a page of its errors."""
    def at(value: datetime | None) -> datetime | None:
        return as_utc(value).astimezone(UTC) if value is not None else None

    values = {name: getattr(job, name) for name in out.model_fields if hasattr(job, name)}
    return out.model_validate(values | {
        "created_at": at(job.created_at), "started_at": at(job.started_at), "finished_at": at(job.finished_at),
        "errors": [ImportErrorOut(row=e.row, column=e.column, message=e.message) for e in errors],
        "errors_total": job.errors_kept, "errors_next_after_row": next_after_row})


def import_router(prefix: str, out: type[OutT], can_write: Any, *, summary: str) -> APIRouter:
    """`POST {prefix}` (multipart `file` → 202 + Location) and `GET {prefix}/{id}` (status, counts, a page of
    row errors) over the app's `app.state.imports`, its settings' `import_max_bytes`, and scope `can_write`."""
    router = APIRouter(prefix=prefix, tags=["bulk import"])

    @router.post("", status_code=202, summary=summary, responses={
        202: {"description": "Accepted; poll the Location"}, 413: {"description": "Too large"}})
    async def create_import(file: UploadFile, request: Request, session: SessionDep,
                            principal: Principal = can_write) -> JSONResponse:
        jobs: ImportJobs[Any, Any] = request.app.state.imports
        jobs.check_ready()
        return await accept_upload(session, jobs, file, principal,
                                   max_bytes=request.app.state.settings.import_max_bytes, location=prefix)

    @router.get("/{import_id}", response_model=out, summary="Status, counts and rejected rows of an import")
    async def get_import(
        import_id: str, request: Request, session: SessionDep,
        errors_after_row: Annotated[int, Query(ge=0, le=2**31 - 1,
                                               description="page through errors: rows after this one")] = 0,
        errors_limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        principal: Principal = can_write,
    ) -> Any:
        jobs: ImportJobs[Any, Any] = request.app.state.imports
        job = await find_job(session, jobs, import_id, principal)
        if job is None:
            raise NotFound(f"There is no import {import_id} of yours.")
        errors, next_after = await error_page(session, jobs, import_id, after_row=errors_after_row,
                                              limit=errors_limit)
        return present_job(out, job, errors, next_after)

    return router
