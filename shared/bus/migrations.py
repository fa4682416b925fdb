"""Alembic operations creating the bus tables; frozen per version, called from each service's migrations."""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

# Never edit these functions: migrations that ran must keep meaning the same thing.
# A later change to the bus tables is a new function (create_bus_tables_v2 …) and a new migration.


def create_bus_tables_v1() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(
        "ix_outbox_pending", "outbox", ["id"],
        sqlite_where=sa.text("published_at IS NULL"), postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )


def drop_bus_tables_v1() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_created_at", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")


def create_outbox_position_v1() -> None:
    op.create_table(
        "outbox_position",
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("batch_base", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name=op.f("pk_outbox_position")),
    )


def drop_outbox_position_v1() -> None:
    op.drop_table("outbox_position")


def create_outbox_shards_v1() -> None:
    """Publishing by shard (`shared.bus.shards`): the outbox's `shard` column (crc32 of the key % 32, as
    `shared.bus.models.shard_of`; written here for every row, published ones too, since a replay makes them
    pending again), the index the relays read, and the lease and member tables."""
    op.add_column("outbox", sa.Column("shard", sa.Integer(), server_default=sa.text("0"), nullable=False))
    bind = op.get_bind()
    keys = [key for (key,) in bind.execute(sa.text("SELECT DISTINCT key FROM outbox"))]
    if keys:
        # The hash is computed here (neither database has crc32), once per key; one UPDATE applies it.
        shard_of_key = op.create_table(
            "outbox_shard_backfill",
            sa.Column("key", sa.String(200), nullable=False),
            sa.Column("shard", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("key", name=op.f("pk_outbox_shard_backfill")),
        )
        for start in range(0, len(keys), 10_000):
            op.bulk_insert(shard_of_key, [{"key": key, "shard": zlib.crc32(key.encode()) % 32}
                                          for key in keys[start:start + 10_000]])
        op.execute("UPDATE outbox SET shard = "
                   "(SELECT b.shard FROM outbox_shard_backfill b WHERE b.key = outbox.key)")
        op.drop_table("outbox_shard_backfill")
    if bind.dialect.name != "sqlite":
        # Every writer gives the shard; SQLite cannot drop a column's default without copying the table.
        op.alter_column("outbox", "shard", server_default=None)
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index(
        "ix_outbox_shard_pending", "outbox", ["shard", "id"],
        sqlite_where=sa.text("published_at IS NULL"), postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "outbox_shard",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_outbox_shard")),
    )
    op.create_table(
        "outbox_member",
        sa.Column("member", sa.String(100), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("member", name=op.f("pk_outbox_member")),
    )


def drop_outbox_shards_v1() -> None:
    op.drop_table("outbox_member")
    op.drop_table("outbox_shard")
    op.drop_index("ix_outbox_shard_pending", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("shard")
    op.create_index(
        "ix_outbox_pending", "outbox", ["id"],
        sqlite_where=sa.text("published_at IS NULL"), postgresql_where=sa.text("published_at IS NULL"),
    )


def create_inbox_purge_index_v1() -> None:
    """What the inbox's retention reads (`shared.bus.retention.purge_inbox`): a consumer's rows by age; without it,
    each purge reads the whole inbox."""
    op.create_index("ix_inbox_consumer_processed_at", "inbox", ["consumer", "processed_at"])


def drop_inbox_purge_index_v1() -> None:
    op.drop_index("ix_inbox_consumer_processed_at", table_name="inbox")


def add_outbox_replayed_at_v1() -> None:
    """When a replay last made an outbox row pending again (`Outbox.mark_for_replay`)."""
    op.add_column("outbox", sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True))


def drop_outbox_replayed_at_v1() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("replayed_at")
