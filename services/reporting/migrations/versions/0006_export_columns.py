"""TPMAP's columns (welfare cards, target poor by dimension), the areas' names, and the BI views with them

- `rpt_village` gains the open households on the welfare-card register and their members; `rpt_area_year` the
  target-poor households and persons by dimension. Both are filled here from the household and assessment rows
  the read models already hold, as the projection would have counted them.
- `rpt_area`: the official areas with names and parents (`views.sync_areas`, from `shared.areas`).
- The views of 0003 are dropped and made again with the areas' names and parents joined in, the new columns,
  and the reports' column names (`budget_allocated`, `households_helped`, …); `report_areas` is new.

The views' SQL is frozen here (a migration must make the same views whenever it runs). Their comments on
PostgreSQL and the area rows come from `services.reporting.views` (documentation and reference data, kept
current there, applied to the columns the database has): the same source as docs/data-dictionary.md.

Revision ID: reporting_0006
Revises: reporting_0005
"""
import importlib
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from services.reporting import views

# revision identifiers, used by Alembic.
revision: str = 'reporting_0006'
down_revision: str | Sequence[str] | None = 'reporting_0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMS = ("health", "living", "education", "income", "access")
OLD_VIEWS = ("report_poverty_by_area", "report_assistance_by_area", "report_budgets", "report_help_by_area")


def _place(c: str) -> tuple[str, str]:
    """The area columns of a code expression `c` of any level (2 to 8 digits): level, the area's names, and its
    province's, district's and sub-district's codes and names; and the joins they need."""
    village_th = f"s.name_th || ' หมู่ที่ ' || CAST(CAST(substr({c}, 7, 2) AS INTEGER) AS TEXT)"
    village_en = f"s.name_en || ' Moo ' || CAST(CAST(substr({c}, 7, 2) AS INTEGER) AS TEXT)"
    columns = f"""CASE length({c}) WHEN 2 THEN 'province' WHEN 4 THEN 'district' WHEN 6 THEN 'subdistrict'
            ELSE 'village' END AS level,
       {c} AS area_code,
       CASE length({c}) WHEN 2 THEN p.name_th WHEN 4 THEN d.name_th WHEN 6 THEN s.name_th ELSE {village_th}
            END AS area_name_th,
       CASE length({c}) WHEN 2 THEN p.name_en WHEN 4 THEN d.name_en WHEN 6 THEN s.name_en ELSE {village_en}
            END AS area_name_en,
       substr({c}, 1, 2) AS province_code, p.name_th AS province_name_th, p.name_en AS province_name_en,
       CASE WHEN length({c}) >= 4 THEN substr({c}, 1, 4) END AS district_code,
       d.name_th AS district_name_th, d.name_en AS district_name_en,
       CASE WHEN length({c}) >= 6 THEN substr({c}, 1, 6) END AS subdistrict_code,
       s.name_th AS subdistrict_name_th, s.name_en AS subdistrict_name_en"""
    joins = f"""LEFT JOIN rpt_area p ON p.code = substr({c}, 1, 2)
LEFT JOIN rpt_area d ON length({c}) >= 4 AND d.code = substr({c}, 1, 4)
LEFT JOIN rpt_area s ON length({c}) >= 6 AND s.code = substr({c}, 1, 6)"""
    return columns, joins


_COUNTS = ", ".join(("a.assessed_households", "a.assessed_persons", "a.target_poor_households",
                     "a.target_poor_persons", "a.poor_households", "a.poor_persons",
                     *(f"a.deprived_{d}" for d in DIMS), *(f"a.target_poor_households_{d}" for d in DIMS),
                     *(f"a.target_poor_persons_{d}" for d in DIMS)))
_POVERTY = _place("a.village_code")
_ASSISTANCE = _place("x.area_code")
_BUDGETS = _place("x.area_code")
_HELP = _place("x.village_code")

VIEWS = {
    "report_areas": """
SELECT code AS area_code, level, name_th AS area_name_th, name_en AS area_name_en, parent_code, province_code,
       district_code, subdistrict_code
FROM rpt_area
UNION ALL
SELECT v.village_code, 'village', s.name_th || ' หมู่ที่ ' || CAST(CAST(substr(v.village_code, 7, 2) AS INTEGER) AS TEXT),
       s.name_en || ' Moo ' || CAST(CAST(substr(v.village_code, 7, 2) AS INTEGER) AS TEXT),
       substr(v.village_code, 1, 6), substr(v.village_code, 1, 2), substr(v.village_code, 1, 4),
       substr(v.village_code, 1, 6)
FROM rpt_village v LEFT JOIN rpt_area s ON s.code = substr(v.village_code, 1, 6)""",
    # One row per survey year and village with assessments.
    "report_poverty_by_area": f"""
SELECT a.survey_year, {_POVERTY[0]}, a.village_code,
       COALESCE(v.households, 0) AS households, COALESCE(v.persons, 0) AS persons,
       COALESCE(v.welfare_card_households, 0) AS welfare_card_households,
       COALESCE(v.welfare_card_persons, 0) AS welfare_card_persons,
       {_COUNTS}, a.exited, a.entered, a.censored_score_value
FROM rpt_area_year a LEFT JOIN rpt_village v ON v.village_code = a.village_code
{_POVERTY[1]}""",
    # One row per fiscal year, programme and area paid (a household's village, a centre's sub-district).
    "report_assistance_by_area": f"""
SELECT x.fiscal_year, x.programme, {_ASSISTANCE[0]},
       x.payments, x.payments_standing, x.payments_reversed, x.recipients, x.amount
FROM (SELECT fiscal_year, programme, area_code, count(*) AS payments,
             sum(CASE WHEN reversed THEN 0 ELSE 1 END) AS payments_standing,
             sum(CASE WHEN reversed THEN 1 ELSE 0 END) AS payments_reversed,
             count(DISTINCT CASE WHEN reversed THEN NULL ELSE COALESCE(household_id, centre_id) END) AS recipients,
             sum(CASE WHEN reversed THEN 0 ELSE amount END) AS amount
      FROM rpt_payment GROUP BY fiscal_year, programme, area_code) x
{_ASSISTANCE[1]}""",
    # One row per budget: allocated, and the standing payments drawn on it.
    "report_budgets": f"""
SELECT x.fiscal_year, x.programme, {_BUDGETS[0]},
       x.budget_allocated, x.budget_used, x.budget_allocated - x.budget_used AS budget_remaining
FROM (SELECT b.id, b.fiscal_year, b.programme, b.area_code, b.amount AS budget_allocated,
             COALESCE(sum(CASE WHEN p.reversed THEN 0 ELSE p.amount END), 0) AS budget_used
      FROM rpt_budget b LEFT JOIN rpt_payment p ON p.budget_id = b.id
      GROUP BY b.id, b.fiscal_year, b.programme, b.area_code, b.amount) x
{_BUDGETS[1]}""",
    # One row per day, village, partner sector and kind of help.
    "report_help_by_area": f"""
SELECT x.given_on, {_HELP[0]}, x.partner_sector, x.kind, x.help_records, x.households_helped, x.help_value
FROM (SELECT given_on, village_code, partner_sector, kind, count(*) AS help_records,
             count(DISTINCT household_id) AS households_helped, sum(value) AS help_value
      FROM rpt_help GROUP BY given_on, village_code, partner_sector, kind) x
{_HELP[1]}""",
}


def _backfill() -> None:
    """The new counts of the rows already held, as the projection counts them (`projection._village_part`,
    `YearSums.add`)."""
    bind = op.get_bind()
    household = sa.table("rpt_household", sa.column("village_code"), sa.column("members"),
                         sa.column("status"), sa.column("welfare_card"))
    cards: dict[str, list[int]] = {}
    for village, members in bind.execute(sa.select(household.c.village_code, household.c.members).where(
            household.c.status == "open", household.c.welfare_card.is_(True))):
        card = cards.setdefault(village, [0, 0])
        card[0], card[1] = card[0] + 1, card[1] + members
    village = sa.table("rpt_village", sa.column("village_code"), sa.column("welfare_card_households"),
                       sa.column("welfare_card_persons"))
    for code, (households, persons) in cards.items():
        bind.execute(village.update().where(village.c.village_code == code).values(
            welfare_card_households=households, welfare_card_persons=persons))
    assessment = sa.table("rpt_assessment", sa.column("survey_year"), sa.column("village_code"),
                          sa.column("persons"), sa.column("target_poor"), sa.column("deprived", sa.JSON))
    by_dim: dict[tuple[int, str], dict[str, int]] = {}
    for year, code, persons, deprived in bind.execute(sa.select(
            assessment.c.survey_year, assessment.c.village_code, assessment.c.persons, assessment.c.deprived,
    ).where(assessment.c.target_poor.is_(True))):
        sums = by_dim.setdefault((year, code), {})
        for d in deprived or ():
            if d in DIMS:
                sums[f"target_poor_households_{d}"] = sums.get(f"target_poor_households_{d}", 0) + 1
                sums[f"target_poor_persons_{d}"] = sums.get(f"target_poor_persons_{d}", 0) + persons
    names = [f"target_poor_{unit}_{d}" for unit in ("households", "persons") for d in DIMS]
    area_year = sa.table("rpt_area_year", sa.column("survey_year"), sa.column("village_code"),
                         *(sa.column(n) for n in names))
    for (year, code), sums in by_dim.items():
        if sums:
            bind.execute(area_year.update().where(area_year.c.survey_year == year,
                                                  area_year.c.village_code == code).values(**sums))


def upgrade() -> None:
    for name in OLD_VIEWS:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table('rpt_village', schema=None) as batch_op:
        batch_op.add_column(sa.Column('welfare_card_households', sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column('welfare_card_persons', sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table('rpt_area_year', schema=None) as batch_op:
        for unit in ("households", "persons"):
            for d in DIMS:
                batch_op.add_column(sa.Column(f'target_poor_{unit}_{d}', sa.Integer(), nullable=False,
                                              server_default="0"))
    op.create_table(
        'rpt_area',
        sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('name_th', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('parent_code', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True),
        sa.Column('province_code', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column('district_code', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
        sa.Column('subdistrict_code', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True),
        sa.PrimaryKeyConstraint('code', name=op.f('pk_rpt_area')),
    )
    views.sync_areas(op.get_bind())
    _backfill()
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
    views.apply_comments(op.get_bind())


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.drop_table('rpt_area')
    with op.batch_alter_table('rpt_area_year', schema=None) as batch_op:
        for unit in ("households", "persons"):
            for d in DIMS:
                batch_op.drop_column(f'target_poor_{unit}_{d}')
    with op.batch_alter_table('rpt_village', schema=None) as batch_op:
        batch_op.drop_column('welfare_card_persons')
        batch_op.drop_column('welfare_card_households')
    before = importlib.import_module("services.reporting.migrations.versions.0003_bi_views")
    for name, query in before.VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
