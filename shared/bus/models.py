"""The outbox and inbox tables, added to each service's own metadata."""

from __future__ import annotations

import zlib
from typing import Any

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

# The outbox is published by shard (`shared.bus.shards`): a row's shard is a stable hash of its key, so one key's
# events share a shard and one relay at a time publishes them, in id order. Never change it: pending rows (and
# rows a replay makes pending again) would land in other shards than the key's newer rows, and could overtake
# them. create_outbox_shards_v1 (shared/bus/migrations.py) computes the same hash for the rows it backfills.
SHARDS = 32


def shard_of(key: str) -> int:
    """The outbox shard of a message key (crc32: stable across processes and versions, unlike hash())."""
    return zlib.crc32(key.encode()) % SHARDS


def _shard_of_row(context: Any) -> int:
    # The column's default: an outbox row inserted without its shard (tests, tools) gets its key's.
    return shard_of(context.get_current_parameters()["key"])


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
        Column("shard", Integer, nullable=False, default=_shard_of_row),
        # When a replay last made the row pending again (`Outbox.mark_for_replay`): what the consistency check
        # tells a redelivery by, apart from the first publication.
        Column("replayed_at", DateTime(timezone=True), nullable=True),
    )
    # What each relay reads: its shards' pending rows in id order (one index range per shard, whatever the
    # statistics say: no other index has pending rows by shard).
    Index(
        "ix_outbox_shard_pending",
        table.c.shard,
        table.c.id,
        sqlite_where=table.c.published_at.is_(None),
        postgresql_where=table.c.published_at.is_(None),
    )
    Index("ix_outbox_created_at", table.c.created_at)
    return table


def inbox_table(metadata: MetaData) -> Table:
    """Events a consumer has taken into account, written in the same transaction as their effects."""
    table = Table(
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
    # What the retention reads: a consumer's rows by age (shared/bus/retention.py).
    Index("ix_inbox_consumer_processed_at", table.c.consumer, table.c.processed_at)
    return table


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


def outbox_shard_table(metadata: MetaData) -> Table:
    """Per outbox shard, the replica (relay member) publishing it and until when (the database's clock); `token`
    grows at every change of owner, so an owner's writes can be fenced: see `shared.bus.shards`."""
    if "outbox_shard" in metadata.tables:
        return metadata.tables["outbox_shard"]
    return Table(
        "outbox_shard",
        metadata,
        Column("shard", Integer, primary_key=True, autoincrement=False),
        Column("owner", String(100), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("token", BigInteger, nullable=False, server_default=text("0")),
    )


def outbox_member_table(metadata: MetaData) -> Table:
    """The relays alive (each heartbeats `seen_at`, the database's clock): they share the shards evenly."""
    if "outbox_member" in metadata.tables:
        return metadata.tables["outbox_member"]
    return Table(
        "outbox_member",
        metadata,
        Column("member", String(100), primary_key=True),
        Column("seen_at", DateTime(timezone=True), nullable=False),
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
