"""Event subscriptions (signed webhooks out) and their deliveries.

Revision ID: registry_0009
Revises: registry_0007
"""

from shared.webhooks.migrations import create_webhook_tables_v1, drop_webhook_tables_v1

revision = "registry_0009"
down_revision = "registry_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables_v1()


def downgrade() -> None:
    drop_webhook_tables_v1()
