"""household.household_key: the registry importer's own key of a household, from the registry's events, which
the assessment import takes in place of the household's id (filled as the registry's events bring it)

Revision ID: assessment_0010
Revises: assessment_0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = 'assessment_0010'
down_revision: str | Sequence[str] | None = 'assessment_0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('household_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_household_household_key'), ['household_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_household_key'))
        batch_op.drop_column('household_key')
