"""field visits, for the field-work report

Revision ID: reporting_0007
Revises: reporting_0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'reporting_0007'
down_revision: str | Sequence[str] | None = 'reporting_0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rpt_visit',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('household_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('village_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('team_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('dimensions', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rpt_visit'))
    )
    with op.batch_alter_table('rpt_visit', schema=None) as batch_op:
        batch_op.create_index('ix_rpt_visit_village_date', ['village_code', 'visited_on'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rpt_visit', schema=None) as batch_op:
        batch_op.drop_index('ix_rpt_visit_village_date')
    op.drop_table('rpt_visit')
