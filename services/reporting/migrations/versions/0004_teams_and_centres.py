"""field teams and centres, for the field-network report

Revision ID: reporting_0004
Revises: reporting_0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'reporting_0004'
down_revision: str | Sequence[str] | None = 'reporting_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rpt_team',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('district_code', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('subdistrict_codes', sa.JSON(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rpt_team'))
    )
    with op.batch_alter_table('rpt_team', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rpt_team_district_code'), ['district_code'], unique=False)
    op.create_table('rpt_centre',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subdistrict_code', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rpt_centre'))
    )
    with op.batch_alter_table('rpt_centre', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rpt_centre_subdistrict_code'), ['subdistrict_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rpt_centre', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rpt_centre_subdistrict_code'))
    op.drop_table('rpt_centre')
    with op.batch_alter_table('rpt_team', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rpt_team_district_code'))
    op.drop_table('rpt_team')
