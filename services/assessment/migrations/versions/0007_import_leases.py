"""Imports any replica can finish: uploads stored in the database, jobs claimed with a lease and checkpointed.

Revision ID: assessment_0007
Revises: assessment_0005
"""

from shared.imports.migrations import add_import_leases_v1, drop_import_leases_v1

revision = "assessment_0007"
down_revision = "assessment_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_import_leases_v1()


def downgrade() -> None:
    drop_import_leases_v1()
