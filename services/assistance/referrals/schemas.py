"""The requests and answers of referrals and help: a referral's status and the kinds of help."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.assistance.logbook import Dimension
from services.assistance.partners import Sector
from shared.ids import ID_PATTERN
from shared.money import Money
from shared.pagination import Page
from shared.text import Notes


class Status(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    cancelled = "cancelled"
    declined = "declined"  # by the partner, from open, with its reason


class HelpKind(StrEnum):
    cash = "cash"
    in_kind = "in_kind"
    service = "service"
    job = "job"
    training = "training"
    housing = "housing"
    health = "health"


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: Dimension
    action: Annotated[Notes, StringConstraints(max_length=2000)] = Field(
        examples=["ซ่อมแซมหลังคาบ้านที่รั่ว"])
    partner_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    due_on: date


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    note: Annotated[Notes, StringConstraints(max_length=4000)] | None = Field(
        None, description="what happened; on `done` it is the referral's outcome", examples=["ซ่อมหลังคาเสร็จแล้ว"])
    reason: Annotated[Notes, StringConstraints(max_length=2000)] | None = Field(
        None, description="why the partner declines (required with status `declined`, which only the partner's "
                          "client may set)", examples=["อยู่นอกเขตบริการของโรงพยาบาล"])


class HelpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: HelpKind
    value: Money | None = Field(None, description="baht, when the help has a money value")
    given_on: date
    notes: Annotated[Notes, StringConstraints(max_length=4000)] | None = None


class PartnerRef(BaseModel):
    id: str
    name: str
    sector: Sector


class HelpOut(BaseModel):
    id: str
    referral_id: str
    household_id: str
    partner_id: str
    kind: HelpKind
    value: Money | None
    given_on: date
    notes: str | None
    recorded_by: str
    recorded_at: datetime


class ChangeOut(BaseModel):
    status_before: Status | None
    status: Status
    note: str | None
    changed_by: str
    changed_at: datetime


class ReferralOut(BaseModel):
    id: str
    household_id: str
    village_code: str
    village_name_th: str = Field(description="the sub-district's Thai name and the village number")
    dimension: Dimension
    action: str
    partner: PartnerRef
    due_on: date
    status: Status
    overdue: bool = Field(description="due before today (in Thailand) and not done or cancelled")
    outcome: str | None
    decline_reason: str | None = Field(None, description="why the partner declined, when it did")
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class ReferralDetail(ReferralOut):
    changes: list[ChangeOut]
    help: list[HelpOut]


ReferralPage = Page[ReferralOut]
