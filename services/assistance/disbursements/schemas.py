"""The requests and answers of pushed batches and reversals, and the codes of an item's rejection."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.assistance.budgets import FAMILY_GRANT
from shared.ids import ID_PATTERN
from shared.money import Amount, FiscalYear, Money

REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"


class Reason(StrEnum):
    invalid_citizen_id = "invalid_citizen_id"
    unknown_household = "unknown_household"
    household_closed = "household_closed"
    amount_above_maximum = "amount_above_maximum"
    not_eligible = "not_eligible"
    yearly_cap_reached = "yearly_cap_reached"
    no_budget = "no_budget"
    budget_exhausted = "budget_exhausted"
    unknown_centre = "unknown_centre"
    centre_not_eligible = "centre_not_eligible"
    centre_twice_in_batch = "centre_twice_in_batch"
    centre_yearly_cap_reached = "centre_yearly_cap_reached"


REASONS = {
    Reason.invalid_citizen_id: "the citizen ID is not 13 digits with a valid check digit",
    Reason.unknown_household: "no household of the registry matches (not registered, or not yet announced)",
    Reason.household_closed: "the household is closed",
    Reason.amount_above_maximum: "the amount is above the programme's maximum per payment",
    Reason.not_eligible: "not target poor in the latest assessment, nor registered from an eligible source",
    Reason.yearly_cap_reached: "the household already has the programme's payments for this fiscal year",
    Reason.no_budget: "no budget of the programme for this fiscal year covers the household's or centre's area",
    Reason.budget_exhausted: "the budget for the household's or centre's area has not enough left",
    Reason.unknown_centre: "no registered centre has this id",
    Reason.centre_not_eligible: "the programme subsidises community family development centres only",
    Reason.centre_twice_in_batch: "the centre is named by an earlier item of this batch: one subsidy a batch",
    Reason.centre_yearly_cap_reached: "the centre already has the programme's subsidies for this fiscal year",
}


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ref: str = Field(pattern=REF_PATTERN, description="the ministry's id of the payment, unique in the batch")
    citizen_id: str | None = Field(None, max_length=20, description="13 digits (dashes allowed)")
    household_id: str | None = Field(None, pattern=ID_PATTERN)
    amount: Money
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _one_way_to_the_household(self) -> ItemIn:
        if (self.citizen_id is None) == (self.household_id is None):
            raise ValueError("give either citizen_id or household_id")
        return self


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_ref: str = Field(pattern=REF_PATTERN)
    programme: str = Field(examples=[FAMILY_GRANT])
    fiscal_year: FiscalYear
    paid_on: date
    items: list[ItemIn] = Field(min_length=1)


class PaymentStatus(StrEnum):
    accepted = "accepted"
    rejected = "rejected"
    reversed = "reversed"


class ItemOut(BaseModel):
    item_ref: str
    status: PaymentStatus = Field(description="accepted, rejected or reversed (an accepted payment reversed since)")
    reason: str | None = Field(description="why it was rejected (a code)")
    reason_text: str | None
    disbursement_id: str
    household_id: str | None = Field(description="null for an item that matched no household")
    centre_id: str | None = None
    amount: Money
    reversed_at: datetime | None = Field(None, description="when a reversed payment was reversed")
    reversal_reason: str | None = Field(None, description="why it was reversed, as the reverser wrote it")


class PaymentOut(ItemOut):
    """A payment of the feed: an item, with its batch and when its state last moved."""

    batch_ref: str
    programme: str
    fiscal_year: int
    paid_on: date
    updated_at: datetime = Field(description="when it was recorded, or reversed (the feed's order)")


class Totals(BaseModel):
    """The whole batch's totals, whoever reads it: `items` and `amount` never change; a reversal moves a payment
    from `accepted` to `reversed` (and its money from `accepted_amount` to `reversed_amount`)."""

    items: int
    amount: Amount = Field(description="baht of every item, accepted or not")
    accepted: int
    rejected: int
    reversed: int
    accepted_amount: Amount = Field(description="baht accepted and not reversed")
    rejected_amount: Amount
    reversed_amount: Amount = Field(description="baht accepted, then reversed")


class OutsideView(BaseModel):
    items: int = Field(description="items of the batch not listed to this reader: outside its token's areas, or "
                                   "matched to no household (only a reader of every area sees those)")


class BatchOut(BaseModel):
    batch_ref: str
    programme: str
    fiscal_year: int
    paid_on: date
    received_at: datetime = Field(description="when the push was recorded")
    items: list[ItemOut] = Field(description="the items in the reader's areas (every item for the ministry)")
    totals: Totals
    outside_view: OutsideView = Field(default_factory=lambda: OutsideView(items=0))


class BatchSummary(BaseModel):
    """A batch in the list: what it is and its totals now, without its items."""

    batch_ref: str
    programme: str
    fiscal_year: int
    paid_on: date
    received_at: datetime
    totals: Totals
    outside_view: OutsideView


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)
