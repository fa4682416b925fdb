"""household.household_key: the importer's own key of a household (the import file's `household_key`), unique
where set; households registered before are left without one (importing their file again sets it)

Revision ID: registry_0013
Revises: registry_0012
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = 'registry_0013'
down_revision: str | Sequence[str] | None = 'registry_0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('household_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_household_household_key'), ['household_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_household_key'))
        batch_op.drop_column('household_key')
