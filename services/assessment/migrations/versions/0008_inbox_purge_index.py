"""The inbox's index by consumer and age, which its retention reads (shared/bus/retention.py).

Revision ID: assessment_0008
Revises: assessment_0007
"""

from shared.bus.migrations import create_inbox_purge_index_v1, drop_inbox_purge_index_v1

revision = "assessment_0008"
down_revision = "assessment_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index_v1()


def downgrade() -> None:
    drop_inbox_purge_index_v1()
