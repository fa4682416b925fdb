"""Bulk import of households from a CSV file (one row per person), in the background, in flat memory.

The upload is written to `<data dir>/imports/<id>.csv` and answered with 202 at once; a task reads it as a
stream, a household at a time (its rows are consecutive), validates each row with the same rules as the
API, and writes `import_chunk_households` households per transaction: households, members (citizen IDs
encrypted and hashed) and one `household.registered` event each. Rejected rows are stored with their row
number, column and reason. A household whose people are all already in one open household is counted as
unchanged, so importing the same file again creates nothing. Jobs left unfinished by a crash resume at
start-up (from the beginning: what was already written is then simply unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from services.registry import areas
from services.registry.households.schemas import Address, MemberIn, one_head_and_distinct_ids
from services.registry.households.service import SOURCE_COLUMNS, facts
from services.registry.models import ImportJob, ImportRowError, Member, metadata, outbox
from services.registry.security import can_write
from shared.app import SessionDep
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.db import as_utc, bulk_insert, transaction
from shared.errors import BadRequest, NotFound, Problem
from shared.events.envelope import utcnow
from shared.events.registry import HOUSEHOLD_REGISTERED, Source
from shared.ids import new_id
from shared.pii import CitizenIdProtector

log = structlog.get_logger("kaenkhun.registry.imports")

HOUSEHOLD_COLUMNS = ("household_key", "subdistrict_code", "village_no", "house_no", "lat", "lon", "sources",
                     "welfare_card")
MEMBER_COLUMNS = ("citizen_id", "title", "first_name", "last_name", "sex", "birth_date", "relation", "disability")
COLUMNS = HOUSEHOLD_COLUMNS + MEMBER_COLUMNS
_TRUE, _FALSE = {"true", "1", "yes", "y", "ใช่"}, {"false", "0", "no", "n", "ไม่ใช่", ""}


class ImportProblem(Problem):
    status, type_slug = 413, "payload-too-large"


# -- reading the file ------------------------------------------------------------------------------------


@dataclass
class RowError:
    row: int
    column: str | None
    message: str


@dataclass
class Group:
    """The consecutive rows of one household key, validated."""

    key: str
    first_row: int
    address: Address | None = None
    sources: list[Source] = field(default_factory=list)
    welfare_card: bool = False
    members: list[tuple[int, MemberIn]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _errors(row: int, exc: ValidationError) -> list[RowError]:
    found = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        column = loc[-1] if loc else None
        found.append(RowError(row, column if column in COLUMNS else None, error["msg"].removeprefix("Value error, ")))
    return found


def _household_fields(row_no: int, row: dict[str, str]) -> tuple[Address | None, list[Source], bool,
                                                                  list[RowError]]:
    errors: list[RowError] = []
    address = None
    try:
        village = row["village_no"].strip()
        address = Address.model_validate({
            "subdistrict_code": row["subdistrict_code"].strip(),
            "village_no": int(village) if village.isdigit() else village,
            "house_no": row["house_no"],
            "lat": row["lat"].strip() or None, "lon": row["lon"].strip() or None,
        })
        if areas.find(address.subdistrict_code) is None:
            errors.append(RowError(row_no, "subdistrict_code", f"unknown sub-district {address.subdistrict_code}"))
    except ValidationError as exc:
        errors += _errors(row_no, exc)
    sources: list[Source] = []
    for part in (p.strip() for p in row["sources"].split(";") if p.strip()):
        try:
            sources.append(Source(part))
        except ValueError:
            errors.append(RowError(row_no, "sources", f"unknown source {part!r}; use {', '.join(Source)}"))
    if not sources and not any(e.column == "sources" for e in errors):
        errors.append(RowError(row_no, "sources", "at least one source (e.g. tpmap;vulnerable)"))
    try:
        welfare_card = _flag(row["welfare_card"])
    except ValueError as exc:
        errors.append(RowError(row_no, "welfare_card", str(exc)))
        welfare_card = False
    return address, sources, welfare_card, errors


def _member(row_no: int, row: dict[str, str]) -> tuple[MemberIn | None, list[RowError]]:
    try:
        disability = _flag(row["disability"])
    except ValueError as exc:
        return None, [RowError(row_no, "disability", str(exc))]
    try:
        return MemberIn.model_validate({
            "citizen_id": row["citizen_id"].strip(), "title": row["title"], "first_name": row["first_name"],
            "last_name": row["last_name"], "sex": row["sex"].strip(), "birth_date": row["birth_date"].strip(),
            "relation": row["relation"].strip(), "disability": disability,
        }), []
    except ValidationError as exc:
        return None, _errors(row_no, exc)


def read_groups(stream: IO[bytes], header_errors: list[RowError]) -> Iterator[Group]:
    """Households from a CSV byte stream, one at a time (UTF-8, with or without BOM)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header_errors.append(RowError(1, None, "the file is empty"))
        return
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        header_errors.append(RowError(1, None, f"missing columns: {', '.join(missing)}"))
        return
    index = {name: header.index(name) for name in COLUMNS}
    group: Group | None = None
    first: dict[str, str] = {}
    for row_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            bad = Group(key=f"\0row{row_no}", first_row=row_no, rows=1)
            bad.errors.append(RowError(row_no, None, f"{len(cells)} cells, the header has {len(header)}"))
            if group is not None:
                yield group
                group = None
            yield bad
            continue
        row = {name: cells[i] for name, i in index.items()}
        key = row["household_key"].strip()
        if group is None or key != group.key:
            if group is not None:
                yield group
            group = Group(key=key, first_row=row_no)
            if not key:
                group.errors.append(RowError(row_no, "household_key", "empty"))
            group.address, group.sources, group.welfare_card, errors = _household_fields(row_no, row)
            group.errors += errors
            first = {c: row[c].strip() for c in HOUSEHOLD_COLUMNS[1:]}
        else:
            differs = [c for c in HOUSEHOLD_COLUMNS[1:] if (v := row[c].strip()) and v != first[c]]
            group.errors += [RowError(row_no, c, "differs from the household's first row") for c in differs]
        group.rows += 1
        member, errors = _member(row_no, row)
        group.errors += errors
        if member is not None:
            group.members.append((row_no, member))
    if group is not None:
        yield group


def _household_rules(group: Group) -> None:
    """The whole-household rules of the API (exactly one head, no ID twice), as row errors."""
    if group.errors or group.address is None:
        return
    try:
        one_head_and_distinct_ids([m for _, m in group.members])
    except ValueError as exc:
        group.errors.append(RowError(group.first_row, None, f"household {group.key}: {exc}"))


# -- writing ---------------------------------------------------------------------------------------------

HOUSEHOLD_TABLE = metadata.tables["household"]
MEMBER_TABLE = metadata.tables["member"]


@dataclass
class Prepared:
    """A household ready to write (rows, event, citizen-ID hashes), or the reasons it cannot be."""

    group: Group
    errors: list[RowError] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    household: dict[str, Any] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    event: PendingEvent | None = None


def prepare(group: Group, importer: Principal, protector: CitizenIdProtector, now: datetime) -> Prepared:
    """Everything about a household that does not need the database (pure CPU: runs in a thread)."""
    _household_rules(group)
    if group.errors or group.address is None:
        errors = list(group.errors)
        if group.rows > 1 or not errors:
            errors.append(RowError(group.first_row, "household_key", f"household {group.key!r} not imported: its "
                                   f"{group.rows} rows go in together once all are valid"))
        return Prepared(group, errors)
    address = group.address
    code = areas.village_code(address.subdistrict_code, address.village_no)
    if not importer.can_see(code):
        return Prepared(group, [RowError(group.first_row, "subdistrict_code",
                                         f"area {code} is outside the importing client's areas")])
    household_id = new_id()
    household = {"id": household_id, "province_code": code[:2], "district_code": code[:4],
                 "subdistrict_code": address.subdistrict_code, "village_no": address.village_no, "village_code": code,
                 "house_no": address.house_no, "lat": address.lat, "lon": address.lon,
                 "welfare_card": group.welfare_card, "status": "open", "version": 1, "created_at": now,
                 "updated_at": now, "closed_reason": None, "closed_at": None, "team_id": None,
                 "buddy_official": None, "import_id": None}
    household.update({column: source in group.sources for source, column in SOURCE_COLUMNS.items()})
    hashes = [protector.hash(m.citizen_id) for _, m in group.members]
    members = [{
        "id": new_id(), "household_id": household_id, "position": position,
        "citizen_id_enc": protector.encrypt(m.citizen_id), "citizen_id_hash": hashes[position - 1],
        "title": m.title, "first_name": m.first_name, "last_name": m.last_name, "sex": m.sex.value,
        "birth_date": m.birth_date, "relation": m.relation.value, "disability": m.disability, "active": True,
        "removed_reason": None, "removed_at": None, "transferred_to": None, "created_at": now,
    } for position, (_, m) in enumerate(group.members, start=1)]
    snapshot = facts(SimpleNamespace(**household), [SimpleNamespace(**m) for m in members])
    event = PendingEvent(HOUSEHOLD_REGISTERED, HOUSEHOLD_REGISTERED.payload.model_validate(snapshot), household_id)
    return Prepared(group, [], hashes, household, members, event)


@dataclass
class Counts:
    rows: int = 0
    households_created: int = 0
    persons_created: int = 0
    households_unchanged: int = 0
    rows_rejected: int = 0
    errors_kept: int = 0

    def add(self, delta: Counts) -> None:
        """Add a committed chunk's counts (errors_kept is reserved up front, see `_keep_errors`)."""
        for name, value in delta.__dict__.items():
            if name != "errors_kept":
                setattr(self, name, getattr(self, name) + value)


class Importer:
    """Runs import jobs of one registry app as background tasks."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], protector: CitizenIdProtector, directory: Path,
                 *, chunk_households: int, max_errors: int) -> None:
        self.maker = maker
        self.protector = protector
        self.directory = directory
        self.chunk_households = chunk_households
        self.max_errors = max_errors
        self._tasks: dict[str, asyncio.Task[None]] = {}

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
        async with transaction(self.maker) as session:
            pending = (await session.execute(
                select(col(ImportJob.id)).where(col(ImportJob.status).in_(["queued", "running"]))
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
            async with transaction(self.maker) as session:
                await session.execute(update(ImportJob).where(col(ImportJob.id) == job_id).values(
                    status="failed", failure=failure[:2000], finished_at=utcnow()))

    async def _run(self, job_id: str) -> None:
        async with transaction(self.maker) as session:
            job = await session.get(ImportJob, job_id)
            if job is None:
                return
            importer = Principal(client_id=job.client_id, areas=frozenset(job.areas))
            await session.execute(delete(ImportRowError).where(col(ImportRowError.import_id) == job_id))
            job.status, job.started_at = "running", utcnow()
        counts = Counts()
        # On PostgreSQL two chunks are written at once on two connections: while one commits, the next
        # is already being copied in. SQLite has one writer, so there it is one at a time.
        writers = asyncio.Semaphore(1 if self.maker.kw["bind"].dialect.name == "sqlite" else 2)
        writing: set[asyncio.Task[None]] = set()
        header_errors: list[RowError] = []
        with self.path(job_id).open("rb") as stream:
            groups = read_groups(stream, header_errors)

            def next_chunk() -> list[Prepared]:
                chunk = [g for _, g in zip(range(self.chunk_households), groups, strict=False)]
                now = utcnow()
                return [prepare(g, importer, self.protector, now) for g in chunk]

            async def write(chunk: list[Prepared]) -> None:
                try:
                    await self._write_chunk(job_id, chunk, counts)
                finally:
                    writers.release()

            # Parse, validate, encrypt and hash the next chunk in a thread while this one is written:
            # the database (its own process on PostgreSQL) works while we parse.
            parsing = asyncio.ensure_future(asyncio.to_thread(next_chunk))
            try:
                while chunk := await parsing:
                    parsing = asyncio.ensure_future(asyncio.to_thread(next_chunk))
                    await writers.acquire()
                    for done in [t for t in writing if t.done()]:
                        writing.discard(done)
                        done.result()  # a failed chunk fails the job
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
        async with transaction(self.maker) as session:
            if header_errors:
                session.add_all(ImportRowError(import_id=job_id, row=e.row, column=e.column, message=e.message)
                                for e in header_errors)
            failed = bool(header_errors)
            await session.execute(update(ImportJob).where(col(ImportJob.id) == job_id).values(
                status="failed" if failed else "done", finished_at=utcnow(),
                failure="the file's header is not the documented one" if failed else None,
                **(counts.__dict__ | {"errors_kept": counts.errors_kept + len(header_errors)})))
        with contextlib.suppress(OSError):
            self.path(job_id).unlink()
        log.info("import finished", import_id=job_id, **counts.__dict__)

    async def _write_chunk(self, job_id: str, chunk: list[Prepared], counts: Counts) -> None:
        counts.rows += sum(p.group.rows for p in chunk)
        delta = Counts()
        try:
            async with transaction(self.maker) as session:
                errors = await self._apply(session, chunk, delta)
                await self._keep_errors(session, job_id, errors, counts, delta)
                await self._progress(session, job_id, counts, delta)
        except IntegrityError:
            counts.errors_kept -= delta.errors_kept
            # Someone registered one of these people at the same moment: go a household at a time.
            for prepared in chunk:
                delta = Counts()
                try:
                    async with transaction(self.maker) as session:
                        errors = await self._apply(session, [prepared], delta)
                        await self._keep_errors(session, job_id, errors, counts, delta)
                        await self._progress(session, job_id, counts, delta)
                except IntegrityError:
                    counts.errors_kept -= delta.errors_kept
                    rejected = [RowError(r, "citizen_id", "registered elsewhere while this file was imported")
                                for r, _ in prepared.group.members]
                    async with transaction(self.maker) as session:
                        delta = Counts(rows_rejected=prepared.group.rows)
                        await self._keep_errors(session, job_id, rejected, counts, delta)
                        await self._progress(session, job_id, counts, delta)

    @staticmethod
    async def _progress(session: AsyncSession, job_id: str, counts: Counts, delta: Counts) -> None:
        """Count the chunk in, and store the totals in its transaction (the last commit's are the truth)."""
        counts.add(delta)
        await session.execute(update(ImportJob).where(col(ImportJob.id) == job_id).values(**counts.__dict__))

    async def _keep_errors(self, session: AsyncSession, job_id: str, errors: list[RowError], counts: Counts,
                           delta: Counts) -> None:
        # Room is reserved before the await, so concurrent chunks never keep more than the limit; a
        # chunk that rolls back gives its reservation back (see `_write_chunk`).
        kept = errors[:max(self.max_errors - counts.errors_kept, 0)]
        counts.errors_kept += len(kept)
        delta.errors_kept += len(kept)
        if kept:
            await session.execute(insert(ImportRowError), [
                {"import_id": job_id, "row": e.row, "column": e.column, "message": e.message[:500]} for e in kept])

    @staticmethod
    async def _apply(session: AsyncSession, chunk: list[Prepared], counts: Counts) -> list[RowError]:
        """Write the chunk's new households; report the rest. One statement per table."""
        errors: list[RowError] = []
        wanted = {h for p in chunk for h in p.hashes}
        holders: dict[str, str] = {}
        if wanted:
            found = await session.execute(select(col(Member.citizen_id_hash), col(Member.household_id)).where(
                col(Member.citizen_id_hash).in_(wanted), col(Member.active).is_(True)))
            holders = {hash_: household_id for hash_, household_id in found.all()}
        households: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        events: list[PendingEvent] = []
        for p in chunk:
            if p.errors or p.event is None:
                errors += p.errors
                counts.rows_rejected += p.group.rows
                continue
            owners = {holders.get(h) for h in p.hashes}
            if owners != {None}:
                if len(owners) == 1:  # everyone already in the same open household: imported before
                    counts.households_unchanged += 1
                    continue
                errors += [RowError(row_no, "citizen_id", f"already in open household {holders[h]}")
                           for (row_no, _), h in zip(p.group.members, p.hashes, strict=True) if h in holders]
                counts.rows_rejected += p.group.rows
                continue
            households.append(p.household)
            members += p.members
            events.append(p.event)
            counts.households_created += 1
            counts.persons_created += len(p.members)
        if households:
            await bulk_insert(session, HOUSEHOLD_TABLE, households)
            await bulk_insert(session, MEMBER_TABLE, members)
            await outbox.add_many(session, events)
        return errors


@contextlib.asynccontextmanager
async def importer_extension(app: FastAPI) -> AsyncIterator[None]:
    """The registry's background importer: resumes unfinished jobs at start, stops with the app."""
    settings = app.state.settings
    directory = settings.data_dir / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    importer = Importer(app.state.sessionmaker, app.state.protector, directory,
                        chunk_households=settings.import_chunk_households, max_errors=settings.import_max_errors)
    app.state.importer = importer
    resuming = asyncio.create_task(_resume_when_migrated(importer), name="import-resume")
    try:
        yield
    finally:
        resuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resuming
        await importer.stop()


async def _resume_when_migrated(importer: Importer, retry_s: float = 2.0) -> None:
    # The app may start before `kaenkhun migrate` has created the import tables: try until it can.
    while True:
        try:
            await importer.resume()
            return
        except Exception as exc:
            log.info("imports not resumed yet", error=type(exc).__name__, retry_in_s=retry_s)
            await asyncio.sleep(retry_s)


# -- HTTP ------------------------------------------------------------------------------------------------


class ImportErrorOut(BaseModel):
    row: int
    column: str | None
    message: str


class ImportOut(BaseModel):
    id: str
    status: str
    filename: str
    sha256: str
    size_bytes: int
    rows: int
    households_created: int
    persons_created: int
    households_unchanged: int
    rows_rejected: int
    failure: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[ImportErrorOut]
    errors_total: int
    errors_next_after_row: int | None


router = APIRouter(prefix="/v1/imports", tags=["bulk import"])


@router.post("", status_code=202, summary="Import households from a CSV file (one row per person)",
             responses={202: {"description": "Accepted; poll the Location"}, 413: {"description": "Too large"}})
async def create_import(file: UploadFile, request: Request, session: SessionDep,
                        principal: Principal = can_write) -> JSONResponse:
    settings = request.app.state.settings
    importer: Importer = request.app.state.importer
    job_id = new_id()
    path = importer.path(job_id)
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > settings.import_max_bytes:
                    raise ImportProblem(f"The file is larger than {settings.import_max_bytes} bytes; split it.")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise BadRequest("The file is empty.", type_slug="empty-file")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job = ImportJob(id=job_id, status="queued", filename=(file.filename or "upload.csv")[:255],
                    sha256=digest.hexdigest(), size_bytes=size, client_id=principal.client_id,
                    areas=sorted(principal.areas), created_at=utcnow())
    session.add(job)
    await session.commit()  # the job row must exist before its task looks for it
    importer.start(job_id)
    body = {"id": job_id, "status": "queued", "location": f"/v1/imports/{job_id}"}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/imports/{job_id}"})


@router.get("/{import_id}", summary="Status, counts and rejected rows of an import")
async def get_import(
    import_id: str, session: SessionDep,
    errors_after_row: Annotated[int, Query(ge=0, le=2**31 - 1,
                                           description="page through errors: rows after this one")] = 0,
    errors_limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    principal: Principal = can_write,
) -> ImportOut:
    job = await session.get(ImportJob, import_id)
    if job is None or not (principal.sees_all_areas or job.client_id == principal.client_id):
        raise NotFound(f"There is no import {import_id} of yours.")
    errors = list((await session.execute(
        select(ImportRowError).where(col(ImportRowError.import_id) == import_id,
                                     col(ImportRowError.row) > errors_after_row)
        .order_by(col(ImportRowError.row), col(ImportRowError.id)).limit(errors_limit + 1)
    )).scalars())
    more = len(errors) > errors_limit
    errors = errors[:errors_limit]

    def at(value: datetime | None) -> datetime | None:
        return as_utc(value).astimezone(UTC) if value is not None else None

    return ImportOut(
        id=job.id, status=job.status, filename=job.filename, sha256=job.sha256, size_bytes=job.size_bytes,
        rows=job.rows, households_created=job.households_created, persons_created=job.persons_created,
        households_unchanged=job.households_unchanged, rows_rejected=job.rows_rejected, failure=job.failure,
        created_at=as_utc(job.created_at), started_at=at(job.started_at), finished_at=at(job.finished_at),
        errors=[ImportErrorOut(row=e.row, column=e.column, message=e.message) for e in errors],
        errors_total=job.errors_kept, errors_next_after_row=errors[-1].row if more else None,
    )
