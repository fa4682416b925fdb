"""The columns every service's import tables share. Each service keeps its own tables: an `import_job` with these
columns plus its own counters, an `import_row_error`, and an `import_chunk` holding the uploaded file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, LargeBinary
from sqlmodel import Field, SQLModel


class ImportJobColumns(SQLModel):
    """The columns every service's `import_job` table has; a service's table adds its own counters:
    `class ImportJob(ImportJobColumns, Base, table=True)` with `__tablename__ = "import_job"`.

    A job is run by the replica that holds its lease (`owner`, until `lease_until` by the database's clock;
    `shared.imports.runner`). The counts are those of the rows committed so far, and `checkpoint_row` says how
    many of the file's rows that is: every row before it, plus the spans in `checkpoint_ahead` (`[start, end)`,
    data rows counted from 0) that a second writer committed before the one ahead of it. A replica that takes
    the job over skips them, so nothing is counted twice; `bytes_done`, the bytes of the file those rows were
    read from, is counted with them."""

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
    bytes_done: int = 0  # of `size_bytes`, read into the committed rows: the job's progress
    failure: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    checkpoint_row: int = 0
    checkpoint_ahead: list[list[int]] = Field(default_factory=list, sa_type=JSON, nullable=False)
    resumed: int = 0


class ImportRowErrorColumns(SQLModel):
    """The columns of every service's `import_row_error` table: why one row (1-based, the header is row 1)
    of an import was rejected."""

    id: int | None = Field(default=None, primary_key=True)
    import_id: str = Field(foreign_key="import_job.id", max_length=36, index=True)
    row: int
    column: str | None = Field(default=None, max_length=64)
    message: str = Field(max_length=500)


class ImportChunkColumns(SQLModel):
    """The columns of every service's `import_chunk` table: the uploaded file, in pieces of the service's
    `import_stored_chunk_bytes` numbered from 0, in the database so that every replica can read it. Written
    with the job, deleted when the job ends."""

    import_id: str = Field(foreign_key="import_job.id", max_length=36, primary_key=True)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=LargeBinary, nullable=False)
