"""Outbox positions: per partition, the newest batch the broker acknowledged, to notice a broker that lost its log.

Revision ID: assessment_0004
Revises: assessment_0003
"""

from shared.bus.migrations import create_outbox_position_v1, drop_outbox_position_v1

revision = "assessment_0004"
down_revision = "assessment_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_position_v1()


def downgrade() -> None:
    drop_outbox_position_v1()
