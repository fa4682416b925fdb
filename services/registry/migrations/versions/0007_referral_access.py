"""partners: the referrals the registry learns from the assistance service's events (referral_access), and an
optional contact phone on members

Revision ID: registry_0007
Revises: registry_0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = 'registry_0007'
down_revision: str | Sequence[str] | None = 'registry_0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'referral_access',
        sa.Column('referral_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('household_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('partner_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('partner_client_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('referral_id', name=op.f('pk_referral_access')),
    )
    with op.batch_alter_table('referral_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_access_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referral_access_partner_client_id'), ['partner_client_id'],
                              unique=False)
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('phone')
    with op.batch_alter_table('referral_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_access_partner_client_id'))
        batch_op.drop_index(batch_op.f('ix_referral_access_household_id'))
    op.drop_table('referral_access')
