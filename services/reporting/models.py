"""Tables of the reporting service: read models built only from events, and the outbox and inbox of its bus.

Household-level rows (`rpt_*`) hold the newest fact each event stream says about one thing; area rows
(`rpt_village`, `rpt_area_year`) are kept from them by difference for every village a batch of events touched,
so a report adds up a few thousand village rows instead of scanning every household. Exact fractions (the
Alkire–Foster censored scores) are stored as text ("7/12"); money as NUMERIC(14,2).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.bus import Outbox, inbox_table, outbox_table, rewind_table
from shared.db import new_metadata, timestamp_column
from shared.money import money_column

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the reporting service's tables: they go into its own metadata."""


outbox = Outbox("reporting", outbox_table(metadata))
inbox = inbox_table(metadata)
rewind = rewind_table(metadata)  # partitions to read again from the start: see admin.rebuild

DIMENSIONS = ("health", "living", "education", "income", "access")
# The count columns of `rpt_area_year` (AreaYear), which the projection keeps and the reports add up.
YEAR_COUNTS = ("assessed_households", "assessed_persons", "poor_households", "poor_persons",
               "target_poor_households", "target_poor_persons", *(f"deprived_{d}" for d in DIMENSIONS),
               "entered", "exited", *(f"target_poor_households_{d}" for d in DIMENSIONS),
               *(f"target_poor_persons_{d}" for d in DIMENSIONS))


def _money(nullable: bool = False) -> Any:
    return Field(default=None if nullable else Decimal("0.00"), sa_type=money_column(), nullable=nullable)


class Household(Base, table=True):
    """The newest snapshot the registry published of a household (highest version wins)."""

    __tablename__ = "rpt_household"

    id: str = Field(primary_key=True, max_length=36)
    version: int
    status: str = Field(max_length=10)
    village_code: str = Field(max_length=8, index=True)
    members: int
    welfare_card: bool


class Assessment(Base, table=True):
    """A household's current assessment of a survey year (newest revision wins), and how its target-poor
    status changed against the previous survey year."""

    __tablename__ = "rpt_assessment"
    __table_args__ = (Index("ix_rpt_assessment_year_village", "survey_year", "village_code"),)

    household_id: str = Field(primary_key=True, max_length=36)
    survey_year: int = Field(primary_key=True)
    revision: int
    village_code: str = Field(max_length=8)
    surveyed_on: date
    indicator_set: str = Field(max_length=64)
    persons: int
    score: str = Field(max_length=40)  # c, an exact fraction
    poor: bool
    target_poor: bool
    deprived: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # indicator code -> its weight w_j, for the failed indicators (exact fractions as text)
    failed: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    change: str | None = Field(default=None, max_length=20)  # entered, exited, unchanged, first_assessment
    change_revision: int | None = None
    recorded_at: datetime = Field(sa_column=timestamp_column())


class Village(Base, table=True):
    """Open households and their members in a village, now, and those of them on the welfare-card register."""

    __tablename__ = "rpt_village"

    village_code: str = Field(primary_key=True, max_length=8)
    households: int
    persons: int
    welfare_card_households: int = 0
    welfare_card_persons: int = 0


class AreaYear(Base, table=True):
    """The assessments of a survey year in a village, summed: what the poverty report adds up."""

    __tablename__ = "rpt_area_year"

    survey_year: int = Field(primary_key=True)
    village_code: str = Field(primary_key=True, max_length=8)
    assessed_households: int
    assessed_persons: int
    poor_households: int
    poor_persons: int
    target_poor_households: int
    target_poor_persons: int
    deprived_health: int
    deprived_living: int
    deprived_education: int
    deprived_income: int
    deprived_access: int
    entered: int
    exited: int
    # TPMAP by dimension: target-poor households deprived in the dimension, and their members (a person counts
    # in every dimension their household is deprived in).
    target_poor_households_health: int = 0
    target_poor_households_living: int = 0
    target_poor_households_education: int = 0
    target_poor_households_income: int = 0
    target_poor_households_access: int = 0
    target_poor_persons_health: int = 0
    target_poor_persons_living: int = 0
    target_poor_persons_education: int = 0
    target_poor_persons_income: int = 0
    target_poor_persons_access: int = 0
    censored_score: str = Field(max_length=80)  # Σ persons × c(k), exact
    censored_score_value: float = 0.0  # the same as a number, for BI tools that sum it across villages
    censored_by_indicator: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Payment(Base, table=True):
    """A payment the assistance service accepted: a family grant to a household or a subsidy to a centre."""

    __tablename__ = "rpt_payment"
    __table_args__ = (Index("ix_rpt_payment_year_area", "fiscal_year", "area_code"),)

    id: str = Field(primary_key=True, max_length=36)
    programme: str = Field(max_length=40)
    household_id: str | None = Field(default=None, max_length=36, index=True)
    centre_id: str | None = Field(default=None, max_length=36)
    budget_id: str | None = Field(default=None, max_length=36)
    area_code: str = Field(max_length=8)  # the household's village, the centre's sub-district
    fiscal_year: int
    paid_on: date
    amount: Decimal = _money()
    reversed: bool = False
    recorded_at: datetime = Field(sa_column=timestamp_column())


class Budget(Base, table=True):
    """A budget as last set (newest event wins); what it paid out is summed from the payments drawn on it."""

    __tablename__ = "rpt_budget"

    id: str = Field(primary_key=True, max_length=36)
    programme: str = Field(max_length=40)
    fiscal_year: int
    area_code: str = Field(max_length=8)
    amount: Decimal = _money()
    # As published when the budget was last set; what is paid since is summed from `rpt_payment`.
    disbursed: Decimal = _money()
    reversed: Decimal = _money()
    set_at: datetime = Field(sa_column=timestamp_column())


class Help(Base, table=True):
    """Help a partner agency gave a household under a referral."""

    __tablename__ = "rpt_help"

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36, index=True)
    village_code: str = Field(max_length=8)
    partner_sector: str = Field(max_length=20)
    kind: str = Field(max_length=12)
    value: Decimal | None = _money(nullable=True)
    given_on: date


class Referral(Base, table=True):
    """A referral's newest state (highest version wins)."""

    __tablename__ = "rpt_referral"

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36)
    village_code: str = Field(max_length=8)
    dimension: str = Field(max_length=12)
    partner_sector: str = Field(max_length=20)
    status: str = Field(max_length=12)
    due_on: date
    version: int
    created_on: date


class Visit(Base, table=True):
    """A team's visit to a household, as `visit.recorded` published it (written once, keyed by its id): the
    dimensions of the problems found, never their descriptions."""

    __tablename__ = "rpt_visit"
    __table_args__ = (Index("ix_rpt_visit_village_date", "village_code", "visited_on"),)

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36)
    village_code: str = Field(max_length=8)
    team_id: str | None = Field(default=None, max_length=36)
    visited_on: date
    stage: str = Field(max_length=12)  # survive, sufficient, sustainable
    dimensions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Team(Base, table=True):
    """A field operations team: the district it belongs to and the sub-districts it covers."""

    __tablename__ = "rpt_team"

    id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(max_length=4, index=True)
    subdistrict_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    members: int


class Centre(Base, table=True):
    """A sub-district social assistance centre or a family development centre, counted by sub-district."""

    __tablename__ = "rpt_centre"

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=40)
    subdistrict_code: str = Field(max_length=6, index=True)


class Area(Base, table=True):
    """The official areas (provinces, districts, sub-districts) with their names and parents, from `shared.areas`:
    reference data for the BI views (not a read model: it comes from no event; see `views.sync_areas`)."""

    __tablename__ = "rpt_area"

    code: str = Field(primary_key=True, max_length=8)
    level: str = Field(max_length=12)
    name_th: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    parent_code: str | None = Field(default=None, max_length=6)
    province_code: str = Field(max_length=2)
    district_code: str | None = Field(default=None, max_length=4)
    subdistrict_code: str | None = Field(default=None, max_length=6)


class Feed(Base, table=True):
    """Per topic and partition: the newest event time applied and how many events were, for `as_of` and
    freshness (summed per topic). By partition, because a partition is consumed by one replica at a time: a
    row per topic would be one row every replica adds to at once."""

    __tablename__ = "rpt_feed"

    topic: str = Field(primary_key=True, max_length=100)
    partition: int = Field(primary_key=True)
    newest_event_at: datetime = Field(sa_column=timestamp_column())
    events: int = 0


READ_MODELS = (Household, Assessment, Village, AreaYear, Payment, Budget, Help, Referral, Visit, Team, Centre, Feed)
