"""help: the partner's Idempotency-Key and a hash of its request, one record per key and referral

Revision ID: assistance_0007
Revises: assistance_0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = 'assistance_0007'
down_revision: str | Sequence[str] | None = 'assistance_0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('help', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_help_referral_id'),
                                          ['referral_id', 'idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('help', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_help_referral_id'), type_='unique')
        batch_op.drop_column('request_hash')
        batch_op.drop_column('idempotency_key')
