"""Outbox positions: per partition, the newest batch the broker acknowledged, to notice a broker that lost its log.

Revision ID: assistance_0006
Revises: assistance_0005
"""

from shared.bus.migrations import create_outbox_position_v1, drop_outbox_position_v1

revision = "assistance_0006"
down_revision = "assistance_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_position_v1()


def downgrade() -> None:
    drop_outbox_position_v1()
