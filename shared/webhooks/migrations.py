"""Alembic operations creating the webhook tables; frozen per version, called from each service's migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Never edit these functions: migrations that ran must keep meaning the same thing.


def create_webhook_tables_v1() -> None:
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("areas", sa.JSON(), nullable=False),
        sa.Column("partner_id", sa.String(36), nullable=True),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscription")),
    )
    op.create_index("ix_webhook_subscription_owner", "webhook_subscription", ["owner"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("subscription_id", "event_id", name=op.f("uq_webhook_delivery_subscription_id")),
    )
    op.create_index(
        "ix_webhook_delivery_pending", "webhook_delivery", ["next_attempt_at"],
        sqlite_where=sa.text("delivered_at IS NULL"), postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index("ix_webhook_delivery_key", "webhook_delivery", ["subscription_id", "key", "id"])


def drop_webhook_tables_v1() -> None:
    op.drop_index("ix_webhook_delivery_key", table_name="webhook_delivery")
    op.drop_index("ix_webhook_delivery_pending", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_webhook_subscription_owner", table_name="webhook_subscription")
    op.drop_table("webhook_subscription")
