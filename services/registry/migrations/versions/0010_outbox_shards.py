"""Outbox shards: each row's shard (a hash of its key), the shards' leases and the relays alive, so every replica
publishes a share of the outbox (shared/bus/shards.py).

Revision ID: registry_0010
Revises: registry_0009
"""

from shared.bus.migrations import create_outbox_shards_v1, drop_outbox_shards_v1

revision = "registry_0010"
down_revision = "registry_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_shards_v1()


def downgrade() -> None:
    drop_outbox_shards_v1()
