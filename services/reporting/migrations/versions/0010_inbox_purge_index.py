"""The inbox's index by consumer and age, which its retention reads (shared/bus/retention.py).

Revision ID: reporting_0010
Revises: reporting_0009
"""

from shared.bus.migrations import create_inbox_purge_index_v1, drop_inbox_purge_index_v1

revision = "reporting_0010"
down_revision = "reporting_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index_v1()


def downgrade() -> None:
    drop_inbox_purge_index_v1()
