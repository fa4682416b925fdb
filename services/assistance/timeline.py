"""A household's whole story in one list: what the registry and the assessment service said of it (kept from
their events), and this service's own records — payments and their reversals, visits, referrals and each of
their steps, help given.

Entries are in the order they were recorded (`at`); `on` is the day it happened in the field where that is
known and may be earlier (a survey entered later, a visit written up the next day).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.logbook import HouseholdId, household_in_reach
from services.assistance.models import Disbursement, Help, HistoryEntry, Partner, Referral, ReferralChange, Visit
from services.assistance.referrals.service import partner_ref
from services.assistance.security import CanRead
from shared.app import ReadSessionDep
from shared.auth import Principal
from shared.db import as_utc

# -- schemas --


class TimelineEntry(BaseModel):
    at: datetime = Field(description="when it was recorded (UTC)")
    on: date | None = Field(description="the day it happened in the field, where known")
    type: str = Field(examples=["household.registered", "assessment.recorded", "visit.recorded"])
    source: Literal["registry", "assessment", "assistance"]
    id: str = Field(description="the event's id (registry, assessment) or the record's (assistance)")
    details: dict[str, Any]


class Timeline(BaseModel):
    household_id: str
    village_code: str
    target_poor: bool | None = Field(description="in the household's latest assessment")
    entries: list[TimelineEntry]


# -- rules --


def _entry(at: datetime, on: date | None, type_: str, id_: str, details: dict[str, Any],
           source: Literal["registry", "assessment", "assistance"] = "assistance") -> TimelineEntry:
    return TimelineEntry(at=as_utc(at), on=on, type=type_, source=source, id=id_, details=details)


# Published in the same instant as the assessment it follows from: listed after it.
_AFTER_ITS_CAUSE = {"household.poverty_status_changed": 1}


async def story(session: AsyncSession, *, principal: Principal, household_id: str) -> Timeline:
    """The timeline of a household in the caller's areas."""
    household = await household_in_reach(session, principal=principal, household_id=household_id)
    entries: list[TimelineEntry] = []

    history = await session.execute(select(HistoryEntry).where(col(HistoryEntry.household_id) == household_id))
    entries += [_entry(h.occurred_at, h.happened_on, h.type, h.event_id, h.details,
                       "registry" if h.source == "registry" else "assessment") for h in history.scalars()]

    paid = await session.execute(select(Disbursement).where(col(Disbursement.household_id) == household_id,
                                                            col(Disbursement.status) != "rejected"))
    for d in paid.scalars():
        money = {"disbursement_id": d.id, "programme": d.programme, "fiscal_year": d.fiscal_year,
                 "amount": f"{d.amount:.2f}"}
        entries.append(_entry(d.created_at, d.paid_on, "disbursement.recorded", d.id, money))
        if d.reversed_at is not None:
            entries.append(_entry(d.reversed_at, None, "disbursement.reversed", d.id,
                                  money | {"reason": d.reversal_reason}))

    visits = await session.execute(select(Visit).where(col(Visit.household_id) == household_id))
    entries += [_entry(v.recorded_at, v.visited_on, "visit.recorded", v.id, {
        "visit_id": v.id, "stage": v.stage, "team_id": v.team_id, "buddy_official": v.buddy_official,
        "problems": v.problems, "notes": v.notes}) for v in visits.scalars()]

    steps = await session.execute(select(ReferralChange, Referral, Partner)
                                  .join(Referral, col(Referral.id) == col(ReferralChange.referral_id))
                                  .join(Partner, col(Partner.id) == col(Referral.partner_id))
                                  .where(col(ReferralChange.household_id) == household_id))
    entries += [_entry(c.changed_at, None, "referral.created" if c.status_before is None else "referral.updated",
                       c.id, {"referral_id": r.id, "dimension": r.dimension, "action": r.action,
                              "partner": partner_ref(p).model_dump(mode="json"), "due_on": r.due_on.isoformat(),
                              "status_before": c.status_before, "status": c.status, "note": c.note,
                              "by": c.changed_by})
                for c, r, p in steps.all()]

    given = await session.execute(select(Help, Referral, Partner)
                                  .join(Referral, col(Referral.id) == col(Help.referral_id))
                                  .join(Partner, col(Partner.id) == col(Help.partner_id))
                                  .where(col(Help.household_id) == household_id))
    entries += [_entry(h.recorded_at, h.given_on, "help.recorded", h.id, {
        "help_id": h.id, "referral_id": h.referral_id, "dimension": r.dimension,
        "partner": partner_ref(p).model_dump(mode="json"), "kind": h.kind,
        "value": None if h.value is None else f"{h.value:.2f}", "notes": h.notes, "by": h.recorded_by})
        for h, r, p in given.all()]

    entries.sort(key=lambda e: (e.at, _AFTER_ITS_CAUSE.get(e.type, 0), e.id))
    return Timeline(household_id=household.id, village_code=household.village_code,
                    target_poor=household.target_poor, entries=entries)


# -- routes --


router = APIRouter(tags=["logbook"])


@router.get("/v1/households/{household_id}/timeline", response_model=Timeline,
            summary="Everything that happened to a household, in the order it was recorded",
            responses={404: {"description": "No such household in your areas"}})
async def timeline(principal: CanRead, household_id: HouseholdId, session: ReadSessionDep) -> Timeline:
    return await story(session, principal=principal, household_id=household_id)
