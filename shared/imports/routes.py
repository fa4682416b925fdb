"""The HTTP side of a bulk import: `POST {prefix}` stores the upload as a queued job and answers 202 at once,
`GET {prefix}/{id}` tells the job's status, counts and a page of its rejected rows. A service mounts
`import_router(...)` with its own `ImportOut` subclass (its counters) and scope."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.app import ReadSessionDep, SessionDep
from shared.auth import Principal
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import BadRequest, NotFound, PayloadTooLarge
from shared.ids import new_id
from shared.imports.parsing import RowError
from shared.imports.runner import ImportJobs
from shared.pagination import CURSOR_DESCRIPTION, PageRequest, fetch_page

# -- schemas --


class ImportErrorOut(BaseModel):
    row: int
    column: str | None
    message: str


class ImportProgress(BaseModel):
    """How far a job is through its file, and how long the rest should take at its rate so far."""

    percent: float = pydantic.Field(description=(
        "of the file's bytes whose rows are committed (counts included), to 0.1; 0 while queued, 100 once done"))
    bytes_done: int = pydantic.Field(description="those bytes, of `size_bytes`")
    eta_s: int | None = pydantic.Field(description=(
        "seconds left at the rate since the job started (`started_at`), while it runs; null while queued, "
        "before its first rows are committed, while orphaned and once failed; 0 once done"))


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
    errors_next_cursor: str | None = pydantic.Field(
        description="pass as `errors_cursor` for the next page of errors; null on the last page")
    owner: str | None = pydantic.Field(
        default=None, description="the replica (host/process/instance) that runs the job, or last ran it")
    lease_until: datetime | None = pydantic.Field(
        default=None, description="the job is its owner's until then, unless renewed (null once it has ended)")
    heartbeat_at: datetime | None = pydantic.Field(default=None, description="when its owner last renewed it")
    checkpoint_row: int = pydantic.Field(
        default=0, description="data rows of the file before which every row is committed, counts included")
    resumed: int = pydantic.Field(
        default=0, description="how many times a replica took the job over from one that had stopped running it")
    orphaned_since: datetime | None = pydantic.Field(default=None, description=(
        "while running: when its owner's lease ran out, if no replica has taken it over yet (one will, "
        "from its checkpoint)"))
    progress: ImportProgress


OutT = TypeVar("OutT", bound=ImportOut)


# -- rules --


_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def upload_name(given: str | None) -> str:
    """What a job keeps of an upload's file name: a label only (the file is stored in the database under the
    job's id), so the last path component, without control characters, at most 255 characters; `upload.csv` if
    nothing is left. `../../etc/passwd` is kept as `passwd`, `C:\\data\\บ้าน.csv` as `บ้าน.csv`."""
    name = _NOT_IN_NAMES.sub("", given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] if name not in ("", ".", "..") else "upload.csv"


async def accept_upload(session: AsyncSession, *, jobs: ImportJobs[Any, Any, Any], file: UploadFile,
                        principal: Principal, max_bytes: int) -> str:
    """Store an uploaded file with a queued job, in the database (so that any replica can run it), and start it
    here; returns the job's id. The file goes in pieces as it is read: memory stays flat, and a file refused
    half-way leaves nothing (one transaction)."""
    job = jobs.job_model(id=new_id(), status="queued", filename=upload_name(file.filename), sha256="",
                         size_bytes=0, client_id=principal.client_id, areas=sorted(principal.areas),
                         created_at=utcnow())
    session.add(job)
    await session.flush()  # the pieces refer to it
    digest, size, seq = hashlib.sha256(), 0, 0
    pieces = jobs.chunk_model.__table__
    while piece := await file.read(jobs.settings.import_stored_chunk_bytes):
        size += len(piece)
        if size > max_bytes:
            raise PayloadTooLarge(f"The file is larger than {max_bytes} bytes; split it.")
        digest.update(piece)
        await session.execute(insert(pieces).values(import_id=job.id, seq=seq, data=piece))
        seq += 1
    if size == 0:
        raise BadRequest("The file is empty.", type_slug="empty-file")
    job.sha256, job.size_bytes = digest.hexdigest(), size
    await session.commit()  # the job must be there for its claim
    jobs.submit(job.id)
    return str(job.id)


async def find_job(session: AsyncSession, *, jobs: ImportJobs[Any, Any, Any], job_id: str, principal: Principal,
                   ) -> tuple[Any, datetime] | None:
    """The job if the caller uploaded it, with now by the database's clock (one query), else None: a job's
    errors quote rows of its file (names, citizen IDs), which only its uploader has seen — even a client of
    every area does not read another's."""
    t = jobs.job_model
    found = (await session.execute(select(t, jobs.clock()).where(t.id == job_id))).first()
    if found is None or found[0].client_id != principal.client_id:
        return None
    return found[0], found[1]


async def error_page(session: AsyncSession, *, jobs: ImportJobs[Any, Any, Any], job_id: str, page: PageRequest,
                     ) -> tuple[list[RowError], str | None]:
    """A page of a job's row errors in row order, and the cursor of the next page (None at the end)."""
    model = jobs.error_model
    found, next_cursor = await fetch_page(session, select(model).where(model.import_id == job_id),
                                          order=[model.row], id_column=model.id, page=page)
    return [RowError(e.row, e.column, e.message) for e in found], next_cursor


def present_job(out: type[OutT], job: Any, errors: list[RowError], next_cursor: str | None, now: datetime,
                ) -> OutT:
    """The job as `out`: its columns by name, times in UTC, whether it is orphaned at `now` (the database's
    clock), and a page of its errors."""
    def at(value: datetime | None) -> datetime | None:
        return as_utc(value).astimezone(UTC) if value is not None else None

    lease_until = at(job.lease_until)
    orphaned = job.status == "running" and (lease_until is None or lease_until < as_utc(now))
    values = {name: getattr(job, name) for name in out.model_fields if hasattr(job, name)}
    return out.model_validate(values | {
        "created_at": at(job.created_at), "started_at": at(job.started_at), "finished_at": at(job.finished_at),
        "lease_until": lease_until, "heartbeat_at": at(job.heartbeat_at),
        "orphaned_since": (lease_until or at(job.started_at)) if orphaned else None,
        "progress": progress(job, now, orphaned=orphaned),
        "errors": [ImportErrorOut(row=e.row, column=e.column, message=e.message) for e in errors],
        "errors_total": job.errors_kept, "errors_next_cursor": next_cursor})


def progress(job: Any, now: datetime, *, orphaned: bool) -> ImportProgress:
    """The job's progress at `now` (the database's clock, as `started_at`): its committed bytes of the file, and
    the time the rest takes at the rate of those since it started, while a replica runs it."""
    if job.status == "done":
        return ImportProgress(percent=100.0, bytes_done=job.size_bytes, eta_s=0)
    done = min(job.bytes_done, job.size_bytes)
    eta_s = None
    if job.status == "running" and not orphaned and done and job.started_at is not None:
        elapsed_s = (as_utc(now) - as_utc(job.started_at)).total_seconds()
        if elapsed_s > 0:
            eta_s = math.ceil((job.size_bytes - done) * elapsed_s / done)
    return ImportProgress(percent=math.floor(1000 * done / job.size_bytes) / 10 if job.size_bytes else 0.0,
                          bytes_done=done, eta_s=eta_s)


# -- routes --


def import_router(prefix: str, out: type[OutT], can_write: Any, *, summary: str) -> APIRouter:
    """`POST {prefix}` (multipart `file` → 202 + Location) and `GET {prefix}/{id}` (status, counts, a page of
    row errors) over the app's `app.state.imports`, its settings' `import_max_bytes`, and scope `can_write`."""
    router = APIRouter(prefix=prefix, tags=["bulk import"])

    @router.post("", status_code=202, summary=summary, responses={
        202: {"description": "Accepted; poll the Location"}, 413: {"description": "Too large"}})
    async def create_import(principal: Principal = can_write, *, file: UploadFile, request: Request,
                            session: SessionDep) -> JSONResponse:
        jobs: ImportJobs[Any, Any, Any] = request.app.state.imports
        jobs.check_ready()
        job_id = await accept_upload(session, jobs=jobs, file=file, principal=principal,
                                     max_bytes=request.app.state.settings.import_max_bytes)
        url = f"{prefix}/{job_id}"
        return JSONResponse({"id": job_id, "status": "queued", "location": url}, status_code=202,
                            headers={"Location": url})

    @router.get("/{import_id}", response_model=out, summary="Status, counts and rejected rows of an import")
    async def get_import(
        principal: Principal = can_write,  # first: the caller is known before a session opens
        *,
        import_id: str, request: Request, session: ReadSessionDep,
        errors_cursor: Annotated[str | None, Query(max_length=200, description=CURSOR_DESCRIPTION)] = None,
        errors_limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> Any:
        jobs: ImportJobs[Any, Any, Any] = request.app.state.imports
        found = await find_job(session, jobs=jobs, job_id=import_id, principal=principal)
        if found is None:
            raise NotFound(f"There is no import {import_id} of yours.")
        job, now = found
        # Polled while the job runs: a job with no errors kept is one query.
        errors, next_cursor = await error_page(session, jobs=jobs, job_id=import_id,
                                               page=PageRequest(cursor=errors_cursor, limit=errors_limit),
                                               ) if job.errors_kept or errors_cursor else ([], None)
        return present_job(out, job, errors, next_cursor, now)

    return router
