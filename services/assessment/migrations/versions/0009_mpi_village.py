"""mpi_village, mpi_village_indicator: the MPI's sums per village, kept with the current assessments, filled
from the current assessments there are

Revision ID: assessment_0009
Revises: assessment_0008
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from services.assessment.aggregates import SUMS, Deltas

revision: str = 'assessment_0009'
down_revision: str | Sequence[str] | None = 'assessment_0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000


def _key_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column('survey_year', sa.Integer(), nullable=False),
            sa.Column('indicator_set', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
            sa.Column('village_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
            sa.Column('denominator', sa.Integer(), nullable=False)]


def _sum(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger(), server_default='0', nullable=False)


def upgrade() -> None:
    village = op.create_table(
        'mpi_village', *_key_columns(), *(_sum(name) for name in SUMS),
        sa.PrimaryKeyConstraint('survey_year', 'indicator_set', 'village_code', 'denominator',
                                name=op.f('pk_mpi_village')))
    indicator = op.create_table(
        'mpi_village_indicator', *_key_columns(),
        sa.Column('indicator', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        _sum('households'), _sum('censored'),
        sa.PrimaryKeyConstraint('survey_year', 'indicator_set', 'village_code', 'denominator', 'indicator',
                                name=op.f('pk_mpi_village_indicator')))
    # Backfill from the current assessments, streamed, folded per village in memory (a few rows per village).
    assessment = sa.table(
        'assessment', sa.column('survey_year', sa.Integer), sa.column('current', sa.Boolean),
        sa.column('indicator_set_id', sa.String), sa.column('village_code', sa.String),
        sa.column('member_count', sa.Integer), sa.column('score_num', sa.Integer), sa.column('score_den', sa.Integer),
        sa.column('poor', sa.Boolean), sa.column('target_poor', sa.Boolean), sa.column('indicators', sa.JSON),
        sa.column('dimensions', sa.JSON))
    bind = op.get_bind()
    deltas = Deltas()
    found = bind.execute(sa.select(*assessment.c).where(assessment.c.current.is_(True))
                         .execution_options(yield_per=CHUNK))  # on the statement: the connection's stay as they are
    for row in found:
        deltas.add(row, 1)
    villages, indicators = deltas.rows()
    for table, rows in ((village, villages), (indicator, indicators)):
        for start in range(0, len(rows), CHUNK):
            bind.execute(table.insert(), rows[start:start + CHUNK])


def downgrade() -> None:
    op.drop_table('mpi_village_indicator')
    op.drop_table('mpi_village')
