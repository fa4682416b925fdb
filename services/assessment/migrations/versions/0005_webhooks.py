"""Event subscriptions (signed webhooks out) and their deliveries.

Revision ID: assessment_0005
Revises: assessment_0004
"""

from shared.webhooks.migrations import create_webhook_tables_v1, drop_webhook_tables_v1

revision = "assessment_0005"
down_revision = "assessment_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables_v1()


def downgrade() -> None:
    drop_webhook_tables_v1()
