"""The outbox's `replayed_at`: when a replay last made a row pending again (shared/bus/outbox.py).

Revision ID: registry_0015
Revises: registry_0014
"""

from shared.bus.migrations import add_outbox_replayed_at_v1, drop_outbox_replayed_at_v1

revision = "registry_0015"
down_revision = "registry_0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_replayed_at_v1()


def downgrade() -> None:
    drop_outbox_replayed_at_v1()
