"""The outbox's `replayed_at`: when a replay last made a row pending again (shared/bus/outbox.py).

Revision ID: reporting_0011
Revises: reporting_0010
"""

from shared.bus.migrations import add_outbox_replayed_at_v1, drop_outbox_replayed_at_v1

revision = "reporting_0011"
down_revision = "reporting_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_replayed_at_v1()


def downgrade() -> None:
    drop_outbox_replayed_at_v1()
