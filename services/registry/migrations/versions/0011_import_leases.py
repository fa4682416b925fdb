"""Imports any replica can finish: uploads stored in the database, jobs claimed with a lease and checkpointed.

Revision ID: registry_0011
Revises: registry_0009
"""

from shared.imports.migrations import add_import_leases_v1, drop_import_leases_v1

revision = "registry_0011"
down_revision = "registry_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_import_leases_v1()


def downgrade() -> None:
    drop_import_leases_v1()
