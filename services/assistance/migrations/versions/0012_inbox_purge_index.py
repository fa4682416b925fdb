"""The inbox's index by consumer and age, which its retention reads (shared/bus/retention.py).

Revision ID: assistance_0012
Revises: assistance_0011
"""

from shared.bus.migrations import create_inbox_purge_index_v1, drop_inbox_purge_index_v1

revision = "assistance_0012"
down_revision = "assistance_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index_v1()


def downgrade() -> None:
    drop_inbox_purge_index_v1()
