"""Event subscriptions (signed webhooks out) and their deliveries.

Revision ID: assistance_0010
Revises: assistance_0009
"""

from shared.webhooks.migrations import create_webhook_tables_v1, drop_webhook_tables_v1

revision = "assistance_0010"
down_revision = "assistance_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables_v1()


def downgrade() -> None:
    drop_webhook_tables_v1()
