"""The tables of outgoing webhooks, added to each service's own metadata: subscriptions and their deliveries.

`webhook_subscription.secrets` holds the signing secrets as given out (a list of `{"secret", "expires_at"}`, the
current one first, the previous one during a rotation): the service must sign with them, so they are secrets at
rest like the ministry's webhook secrets in the settings; protect the database (and its backups) accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from shared.bus.models import OUTBOX_ID


def subscription_table(metadata: MetaData) -> Table:
    return Table(
        "webhook_subscription",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("owner", String(200), nullable=False, index=True),
        Column("url", String(2000), nullable=False),
        Column("event_types", JSON, nullable=False),
        Column("areas", JSON, nullable=False),
        Column("partner_id", String(36), nullable=True),
        Column("secrets", JSON, nullable=False),
        Column("status", String(10), nullable=False),
        Column("disabled_reason", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("failing_since", DateTime(timezone=True), nullable=True),
    )


def delivery_table(metadata: MetaData) -> Table:
    """One event for one subscription; `id` is the order of creation, `key` the aggregate (a household's events
    go one after the other)."""
    table = Table(
        "webhook_delivery",
        metadata,
        Column("id", OUTBOX_ID, primary_key=True, autoincrement=True),
        Column("subscription_id", String(36), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("body", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_status", Integer, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False),
        Column("claimed_until", DateTime(timezone=True), nullable=True),
        Column("delivered_at", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("subscription_id", "event_id"),
    )
    Index("ix_webhook_delivery_pending", table.c.next_attempt_at,
          sqlite_where=table.c.delivered_at.is_(None), postgresql_where=table.c.delivered_at.is_(None))
    Index("ix_webhook_delivery_key", table.c.subscription_id, table.c.key, table.c.id)
    return table


@dataclass(frozen=True)
class WebhookTables:
    subscriptions: Table
    deliveries: Table


def webhook_tables(metadata: MetaData) -> WebhookTables:
    return WebhookTables(subscription_table(metadata), delivery_table(metadata))
