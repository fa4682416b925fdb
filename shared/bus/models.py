"""The outbox and inbox tables, added to each service's own metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
OUTBOX_ID = BigInteger().with_variant(Integer(), "sqlite")


def outbox_table(metadata: MetaData) -> Table:
    """Events waiting to be (or already) published; `id` is the publication order."""
    table = Table(
        "outbox",
        metadata,
        Column("id", OUTBOX_ID, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("value", Text, nullable=False),
        Column("correlation_id", String(128), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
    )
    Index(
        "ix_outbox_pending",
        table.c.id,
        sqlite_where=table.c.published_at.is_(None),
        postgresql_where=table.c.published_at.is_(None),
    )
    Index("ix_outbox_created_at", table.c.created_at)
    return table


def inbox_table(metadata: MetaData) -> Table:
    """Events a consumer has taken into account, written in the same transaction as their effects."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("outcome", String(20), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


def outbox_position_table(metadata: MetaData) -> Table:
    """Per partition of the topics a service publishes: the first offset of the newest batch the broker
    acknowledged there. A broker whose end offset is not above it has lost its log (a restarted Tansu, a
    recreated topic): see `Relay._verify_log`."""
    if "outbox_position" in metadata.tables:
        return metadata.tables["outbox_position"]
    return Table(
        "outbox_position",
        metadata,
        Column("topic", String(200), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("batch_base", BigInteger, nullable=False),
    )


def rewind_table(metadata: MetaData) -> Table:
    """Partitions a consumer is to read again from the earliest offset the broker holds, at their next assignment
    (`kaenkhun rebuild reporting` marks them; the consumer deletes each mark once it has moved there)."""
    return Table(
        "consumer_rewind",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("topic", String(200), primary_key=True),
        Column("partition", Integer, primary_key=True),
    )
