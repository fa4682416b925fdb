"""The columns every service's import tables share. Each service keeps its own tables: an `import_job` with these
columns plus its own counters, and an `import_row_error`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime
from sqlmodel import Field, SQLModel


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
