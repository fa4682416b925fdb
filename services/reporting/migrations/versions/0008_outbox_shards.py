"""Outbox shards: each row's shard (a hash of its key), the shards' leases and the relays alive, so every replica
publishes a share of the outbox (shared/bus/shards.py).

Revision ID: reporting_0008
Revises: reporting_0007
"""

from shared.bus.migrations import create_outbox_shards_v1, drop_outbox_shards_v1

revision = "reporting_0008"
down_revision = "reporting_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_shards_v1()


def downgrade() -> None:
    drop_outbox_shards_v1()
