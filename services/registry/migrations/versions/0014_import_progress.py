"""import_job.bytes_done: how much of an import's file its committed rows were read from, its progress

Revision ID: registry_0014
Revises: registry_0013
"""

from shared.imports.migrations import add_import_progress_v1, drop_import_progress_v1

revision = "registry_0014"
down_revision = "registry_0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_import_progress_v1()


def downgrade() -> None:
    drop_import_progress_v1()
