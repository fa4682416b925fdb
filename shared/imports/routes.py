"""The HTTP side of a bulk import: `POST {prefix}` stores the upload as a queued job and answers 202 at once,
`GET {prefix}/{id}` tells the job's status, counts and a page of its rejected rows. A service mounts
`import_router(...)` with its own `ImportOut` subclass (its counters) and scope."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
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


OutT = TypeVar("OutT", bound=ImportOut)


# -- rules --


_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def upload_name(given: str | None) -> str:
    """What a job keeps of an upload's file name: a label only (the file is stored under the job's id), so
    the last path component, without control characters, at most 255 characters; `upload.csv` if nothing
    is left. `../../etc/passwd` is kept as `passwd`, `C:\\data\\บ้าน.csv` as `บ้าน.csv`."""
    name = _NOT_IN_NAMES.sub("", given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] if name not in ("", ".", "..") else "upload.csv"


async def accept_upload(session: AsyncSession, *, jobs: ImportJobs[Any, Any], file: UploadFile,
                        principal: Principal, max_bytes: int) -> str:
    """Store an uploaded file as a queued job and start it; returns the job's id."""
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
    return job_id


async def find_job(session: AsyncSession, *, jobs: ImportJobs[Any, Any], job_id: str, principal: Principal) -> Any:
    """The job if the caller uploaded it, else None: a job's errors quote rows of its file (names, citizen IDs),
    which only its uploader has seen — even a client of every area does not read another's."""
    job = await session.get(jobs.job_model, job_id)
    if job is None or job.client_id != principal.client_id:
        return None
    return job


async def error_page(session: AsyncSession, *, jobs: ImportJobs[Any, Any], job_id: str, page: PageRequest,
                     ) -> tuple[list[RowError], str | None]:
    """A page of a job's row errors in row order, and the cursor of the next page (None at the end)."""
    model = jobs.error_model
    found, next_cursor = await fetch_page(session, select(model).where(model.import_id == job_id),
                                          order=[model.row], id_column=model.id, page=page)
    return [RowError(e.row, e.column, e.message) for e in found], next_cursor


def present_job(out: type[OutT], job: Any, errors: list[RowError], next_cursor: str | None) -> OutT:
    """The job as `out`: its columns by name, times in UTC, and a page of its errors."""
    def at(value: datetime | None) -> datetime | None:
        return as_utc(value).astimezone(UTC) if value is not None else None

    values = {name: getattr(job, name) for name in out.model_fields if hasattr(job, name)}
    return out.model_validate(values | {
        "created_at": at(job.created_at), "started_at": at(job.started_at), "finished_at": at(job.finished_at),
        "errors": [ImportErrorOut(row=e.row, column=e.column, message=e.message) for e in errors],
        "errors_total": job.errors_kept, "errors_next_cursor": next_cursor})


# -- routes --


def import_router(prefix: str, out: type[OutT], can_write: Any, *, summary: str) -> APIRouter:
    """`POST {prefix}` (multipart `file` → 202 + Location) and `GET {prefix}/{id}` (status, counts, a page of
    row errors) over the app's `app.state.imports`, its settings' `import_max_bytes`, and scope `can_write`."""
    router = APIRouter(prefix=prefix, tags=["bulk import"])

    @router.post("", status_code=202, summary=summary, responses={
        202: {"description": "Accepted; poll the Location"}, 413: {"description": "Too large"}})
    async def create_import(principal: Principal = can_write, *, file: UploadFile, request: Request,
                            session: SessionDep) -> JSONResponse:
        jobs: ImportJobs[Any, Any] = request.app.state.imports
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
        jobs: ImportJobs[Any, Any] = request.app.state.imports
        job = await find_job(session, jobs=jobs, job_id=import_id, principal=principal)
        if job is None:
            raise NotFound(f"There is no import {import_id} of yours.")
        errors, next_cursor = await error_page(session, jobs=jobs, job_id=import_id,
                                               page=PageRequest(cursor=errors_cursor, limit=errors_limit))
        return present_job(out, job, errors, next_cursor)

    return router
