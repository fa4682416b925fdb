"""rpt_feed by topic and partition: a row per partition, which one replica at a time writes; consumer_rewind

The counts held so far become partition 0's: freshness sums a topic's partitions, so its totals are unchanged.
consumer_rewind: the partitions `kaenkhun rebuild reporting` has the consumer read again from the start.

Revision ID: reporting_0009
Revises: reporting_0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'reporting_0009'
down_revision: str | Sequence[str] | None = 'reporting_0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('consumer_rewind',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'topic', 'partition', name=op.f('pk_consumer_rewind'))
    )
    with op.batch_alter_table('rpt_feed', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partition', sa.Integer(), nullable=False, server_default='0'))
        batch_op.drop_constraint('pk_rpt_feed', type_='primary')
        batch_op.create_primary_key('pk_rpt_feed', ['topic', 'partition'])
    with op.batch_alter_table('rpt_feed', schema=None) as batch_op:
        batch_op.alter_column('partition', server_default=None)


def downgrade() -> None:
    # Back to a row per topic: the partitions' counts added up, the newest time of any.
    op.execute("CREATE TABLE rpt_feed_total AS SELECT topic, max(newest_event_at) AS newest_event_at, "
               "sum(events) AS events FROM rpt_feed GROUP BY topic")
    op.execute("DELETE FROM rpt_feed")
    with op.batch_alter_table('rpt_feed', schema=None) as batch_op:
        batch_op.drop_constraint('pk_rpt_feed', type_='primary')
        batch_op.drop_column('partition')
        batch_op.create_primary_key('pk_rpt_feed', ['topic'])
    op.execute("INSERT INTO rpt_feed (topic, newest_event_at, events) "
               "SELECT topic, newest_event_at, events FROM rpt_feed_total")
    op.drop_table('rpt_feed_total')
    op.drop_table('consumer_rewind')
