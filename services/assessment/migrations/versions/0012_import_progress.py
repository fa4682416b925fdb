"""import_job.bytes_done: how much of an import's file its committed rows were read from, its progress

Revision ID: assessment_0012
Revises: assessment_0011
"""

from shared.imports.migrations import add_import_progress_v1, drop_import_progress_v1

revision = "assessment_0012"
down_revision = "assessment_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_import_progress_v1()


def downgrade() -> None:
    drop_import_progress_v1()
