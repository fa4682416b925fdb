"""The outbox's `replayed_at`: when a replay last made a row pending again (shared/bus/outbox.py).

Revision ID: assistance_0013
Revises: assistance_0012
"""

from shared.bus.migrations import add_outbox_replayed_at_v1, drop_outbox_replayed_at_v1

revision = "assistance_0013"
down_revision = "assistance_0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_replayed_at_v1()


def downgrade() -> None:
    drop_outbox_replayed_at_v1()
