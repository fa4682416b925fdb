"""Events the assistance service publishes.

Topic `assistance.household` (key = household id): `disbursement.recorded`, `disbursement.reversed`,
`visit.recorded`, `referral.created`, `referral.updated`, `help.recorded`. Free text written in the field
(problems, actions, notes) stays in the service: it may be sensitive.
Topic `assistance.centre` (key = centre id): `centre.registered`, `centre_subsidy.recorded`.
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


class CentreSubsidyReversed(BaseModel):
    """An accepted centre subsidy was reversed: its amount went back to the budget."""

    disbursement_id: str
    centre_id: str
    programme: str
    fiscal_year: int
    amount: str
    budget_id: str
    reason: str
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


class ReferralFacts(BaseModel):
    """Which referral, of which household, in which dimension, to which partner."""

    referral_id: str
    household_id: str
    village_code: str
    dimension: str
    partner_id: str
    partner_sector: str = Field(description="government, private, academic, religious, media, civil_society, people")


class ReferralCreated(ReferralFacts):
    """An action of a household's development plan was referred to a partner agency."""

    due_on: date
    status: str = Field(description="open, in_progress, done, cancelled or declined")
    version: int
    partner_client_id: str | None = Field(
        None, description="the OAuth client acting for the partner (tokens' `sub`), if one is tied to it: how the "
                          "registry knows which client may read the household's contact while the referral is open")


class ReferralUpdated(ReferralCreated):
    """A referral moved on: open → in_progress → done, cancelled from open or in progress, or declined by the
    partner from open."""

    status_before: str


class HelpRecorded(ReferralFacts):
    """A partner agency (or the team) recorded help given to a household under a referral."""

    help_id: str
    kind: str = Field(description="cash, in_kind, service, job, training, housing or health")
    value: str | None = Field(description="baht, 2 decimals, when the help has a money value", examples=["1500.00"])
    given_on: date


class CentreRegistered(BaseModel):
    """A sub-district social assistance centre or a community family development centre (ศพค.) was registered."""

    centre_id: str
    kind: str = Field(description="tambon_social_assistance_centre or family_development_centre")
    province_code: str
    district_code: str
    subdistrict_code: str


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
REFERRAL_CREATED = ASSISTANCE_EVENTS.define(
    "referral.created", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household",
    payload=ReferralCreated)
REFERRAL_UPDATED = ASSISTANCE_EVENTS.define(
    "referral.updated", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household",
    payload=ReferralUpdated)
HELP_RECORDED = ASSISTANCE_EVENTS.define(
    "help.recorded", topic=HOUSEHOLD_TOPIC, producer="assistance", aggregate="household", payload=HelpRecorded)
CENTRE_REGISTERED = ASSISTANCE_EVENTS.define(
    "centre.registered", topic=CENTRE_TOPIC, producer="assistance", aggregate="centre", payload=CentreRegistered)
CENTRE_SUBSIDY_RECORDED = ASSISTANCE_EVENTS.define(
    "centre_subsidy.recorded", topic=CENTRE_TOPIC, producer="assistance", aggregate="centre",
    payload=CentreSubsidyRecorded)
CENTRE_SUBSIDY_REVERSED = ASSISTANCE_EVENTS.define(
    "centre_subsidy.reversed", topic=CENTRE_TOPIC, producer="assistance", aggregate="centre",
    payload=CentreSubsidyReversed)
BUDGET_SET = ASSISTANCE_EVENTS.define(
    "budget.set", topic=BUDGET_TOPIC, producer="assistance", aggregate="budget", payload=BudgetSet)
