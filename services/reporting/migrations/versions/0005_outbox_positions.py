"""Outbox positions: per partition, the newest batch the broker acknowledged, to notice a broker that lost its log.

Revision ID: reporting_0005
Revises: reporting_0004
"""

from shared.bus.migrations import create_outbox_position_v1, drop_outbox_position_v1

revision = "reporting_0005"
down_revision = "reporting_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_position_v1()


def downgrade() -> None:
    drop_outbox_position_v1()
