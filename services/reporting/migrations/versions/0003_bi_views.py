"""BI views, the censored score as a number, the budget a payment drew on

The views are the contract with BI tools (Superset, Metabase, Power BI, Excel): their names and columns stay
stable while the tables behind them may change. The SQL is the same on SQLite and PostgreSQL.

Revision ID: reporting_0003
Revises: reporting_0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'reporting_0003'
down_revision: str | Sequence[str] | None = 'reporting_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AREA = """substr({c}, 1, 2) AS province_code, substr({c}, 1, 4) AS district_code,
       substr({c}, 1, 6) AS subdistrict_code"""

VIEWS = {
    # One row per survey year and village with assessments.
    "report_poverty_by_area": f"""
SELECT a.survey_year, {AREA.format(c="a.village_code")}, a.village_code,
       COALESCE(v.households, 0) AS households, COALESCE(v.persons, 0) AS persons,
       a.assessed_households, a.assessed_persons, a.target_poor_households, a.target_poor_persons,
       a.poor_households, a.poor_persons,
       a.deprived_health AS deprived_health, a.deprived_living AS deprived_living,
       a.deprived_education AS deprived_education, a.deprived_income AS deprived_income,
       a.deprived_access AS deprived_access, a.exited, a.entered, a.censored_score_value
FROM rpt_area_year a LEFT JOIN rpt_village v ON v.village_code = a.village_code""",
    # One row per fiscal year, programme and area paid (a household's village, a centre's sub-district).
    "report_assistance_by_area": f"""
SELECT fiscal_year, programme, {AREA.format(c="area_code")}, area_code,
       count(*) AS payments,
       sum(CASE WHEN reversed THEN 0 ELSE 1 END) AS payments_standing,
       sum(CASE WHEN reversed THEN 1 ELSE 0 END) AS payments_reversed,
       count(DISTINCT CASE WHEN reversed THEN NULL ELSE COALESCE(household_id, centre_id) END) AS recipients,
       sum(CASE WHEN reversed THEN 0 ELSE amount END) AS amount
FROM rpt_payment GROUP BY fiscal_year, programme, area_code""",
    # One row per budget: allocated, and the standing payments drawn on it.
    "report_budgets": """
SELECT b.fiscal_year, b.programme, b.area_code, b.amount AS allocated,
       COALESCE(sum(CASE WHEN p.reversed THEN 0 ELSE p.amount END), 0) AS used,
       b.amount - COALESCE(sum(CASE WHEN p.reversed THEN 0 ELSE p.amount END), 0) AS remaining
FROM rpt_budget b LEFT JOIN rpt_payment p ON p.budget_id = b.id
GROUP BY b.id, b.fiscal_year, b.programme, b.area_code, b.amount""",
    # One row per day, village, partner sector and kind of help.
    "report_help_by_area": f"""
SELECT given_on, {AREA.format(c="village_code")}, village_code, partner_sector, kind,
       count(*) AS help_records, count(DISTINCT household_id) AS households, sum(value) AS value
FROM rpt_help GROUP BY given_on, village_code, partner_sector, kind""",
}


def upgrade() -> None:
    with op.batch_alter_table('rpt_area_year', schema=None) as batch_op:
        batch_op.add_column(sa.Column('censored_score_value', sa.Float(), nullable=False, server_default="0"))
    with op.batch_alter_table('rpt_payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_id', sa.String(length=36), nullable=True))
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table('rpt_payment', schema=None) as batch_op:
        batch_op.drop_column('budget_id')
    with op.batch_alter_table('rpt_area_year', schema=None) as batch_op:
        batch_op.drop_column('censored_score_value')
