"""Events the assistance service publishes.

Topic `assistance.household` (key = household id): `disbursement.recorded`, `disbursement.reversed`,
`visit.recorded`.
Topic `assistance.centre` (key = centre id): `centre_subsidy.recorded`.
Topic `assistance.budget` (key = budget id): `budget.set`. Amounts are decimal strings with 2 places.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from shared.events.catalogue import Catalogue

HOUSEHOLD_TOPIC = "assistance.household"
CENTRE_TOPIC = "assistance.centre"
BUDGET_TOPIC = "assistance.budget"


class DisbursementRecorded(BaseModel):
    """A payment to a household was accepted: it counts against the budget and the household's yearly cap."""

    disbursement_id: str
    household_id: str
    batch_ref: str
    item_ref: str
    programme: str
    fiscal_year: int = Field(description="Thai fiscal year, B.E.")
    paid_on: date
    amount: str = Field(description="baht, 2 decimals", examples=["3000.00"])
    budget_id: str
    budget_area_code: str
    province_code: str
    district_code: str
    subdistrict_code: str
    village_code: str


class DisbursementReversed(BaseModel):
    """An accepted payment was reversed: its amount went back to the budget."""

    disbursement_id: str
    household_id: str
    programme: str
    fiscal_year: int
    amount: str
    budget_id: str
    reason: str
    village_code: str


class CentreSubsidyRecorded(BaseModel):
    """A subsidy to a centre was accepted: it counts against the budget of the centre's area."""

    disbursement_id: str
    centre_id: str
    centre_kind: str
    batch_ref: str
    item_ref: str
    programme: str
    fiscal_year: int
    paid_on: date
    amount: str
    budget_id: str
    budget_area_code: str
    province_code: str
    district_code: str
    subdistrict_code: str


class VisitProblem(BaseModel):
    dimension: str
    indicator_code: str | None = None


class VisitRecorded(BaseModel):
    """A team visited a household (the problems' descriptions stay in the service: they may be sensitive)."""

    visit_id: str
    household_id: str
    village_code: str
    visited_on: date
    stage: str = Field(description="survive, sufficient or sustainable (อยู่รอด / พอเพียง / ยั่งยืน)")
    team_id: str | None
    problems: list[VisitProblem]


class BudgetSet(BaseModel):
    """A budget was allocated or changed."""

    budget_id: str
    programme: str
    fiscal_year: int
    area_code: str
    amount: str
    disbursed: str
    reversed: str


ASSISTANCE_EVENTS = Catalogue()

DISBURSEMENT_RECORDED = ASSISTANCE_EVENTS.define(
    "disbursement.recorded", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household",
    payload=DisbursementRecorded)
DISBURSEMENT_REVERSED = ASSISTANCE_EVENTS.define(
    "disbursement.reversed", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household",
    payload=DisbursementReversed)
VISIT_RECORDED = ASSISTANCE_EVENTS.define(
    "visit.recorded", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household", payload=VisitRecorded)
CENTRE_SUBSIDY_RECORDED = ASSISTANCE_EVENTS.define(
    "centre_subsidy.recorded", topic=CENTRE_TOPIC, producer="assistance", aggregate="centre",
    payload=CentreSubsidyRecorded)
BUDGET_SET = ASSISTANCE_EVENTS.define(
    "budget.set", topic=BUDGET_TOPIC, producer="assistance", aggregate="budget", payload=BudgetSet)
