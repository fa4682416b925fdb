"""Alembic operations for the import tables shared by every service; frozen per version, called from each
service's migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Never edit these functions: migrations that ran must keep meaning the same thing.


def add_import_leases_v1() -> None:
    """Jobs claimed with a lease and checkpointed (any replica can finish one); uploads stored in the database."""
    with op.batch_alter_table("import_job") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checkpoint_row", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("checkpoint_ahead", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("resumed", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "import_chunk",
        sa.Column("import_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["import_job.id"], name=op.f("fk_import_chunk_import_id_import_job")),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_import_chunk")),
    )
    # A job that was running when this ran read its file from the replica's disk, which is no longer read:
    # it cannot be finished.
    op.execute("UPDATE import_job SET status = 'failed', failure = 'interrupted by an upgrade; upload the file "
               "again' WHERE status IN ('queued', 'running')")


def drop_import_leases_v1() -> None:
    op.drop_table("import_chunk")
    with op.batch_alter_table("import_job") as batch:
        for column in ("resumed", "checkpoint_ahead", "checkpoint_row", "heartbeat_at", "lease_until", "owner"):
            batch.drop_column(column)


def add_import_progress_v1() -> None:
    """`import_job.bytes_done`: the bytes of the file read into the committed rows (the job's progress). Jobs
    running across the upgrade count only the rows committed after it."""
    with op.batch_alter_table("import_job") as batch:
        batch.add_column(sa.Column("bytes_done", sa.Integer(), nullable=False, server_default="0"))


def drop_import_progress_v1() -> None:
    with op.batch_alter_table("import_job") as batch:
        batch.drop_column("bytes_done")
