"""mpi_subdistrict, mpi_subdistrict_indicator: the MPI's village sums added up per sub-district, filled from the
village sums there are

Revision ID: assessment_0011
Revises: assessment_0010
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = 'assessment_0011'
down_revision: str | Sequence[str] | None = 'assessment_0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in assessment_0009: frozen here, so that a later change of the code does not change this migration.
SUMS = ('households', 'persons', 'poor_households', 'poor_persons', 'target_poor_households', 'target_poor_persons',
        'censored_score')


def _key_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column('survey_year', sa.Integer(), nullable=False),
            sa.Column('indicator_set', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
            sa.Column('subdistrict_code', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
            sa.Column('denominator', sa.Integer(), nullable=False)]


def _sum(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger(), server_default='0', nullable=False)


def upgrade() -> None:
    op.create_table(
        'mpi_subdistrict', *_key_columns(), *(_sum(name) for name in SUMS),
        sa.PrimaryKeyConstraint('survey_year', 'indicator_set', 'subdistrict_code', 'denominator',
                                name=op.f('pk_mpi_subdistrict')))
    op.create_table(
        'mpi_subdistrict_indicator', *_key_columns(),
        sa.Column('indicator', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        _sum('households'), _sum('censored'),
        sa.PrimaryKeyConstraint('survey_year', 'indicator_set', 'subdistrict_code', 'denominator', 'indicator',
                                name=op.f('pk_mpi_subdistrict_indicator')))
    key = 'survey_year, indicator_set, substr(village_code, 1, 6), denominator'
    op.execute(f"INSERT INTO mpi_subdistrict (survey_year, indicator_set, subdistrict_code, denominator, "
               f"{', '.join(SUMS)}) SELECT {key}, {', '.join(f'sum({name})' for name in SUMS)} FROM mpi_village "
               f"GROUP BY {key}")
    op.execute(f"INSERT INTO mpi_subdistrict_indicator (survey_year, indicator_set, subdistrict_code, denominator, "
               f"indicator, households, censored) SELECT {key}, indicator, sum(households), sum(censored) "
               f"FROM mpi_village_indicator GROUP BY {key}, indicator")


def downgrade() -> None:
    op.drop_table('mpi_subdistrict_indicator')
    op.drop_table('mpi_subdistrict')
