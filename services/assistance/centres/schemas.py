"""The requests and answers of centres, their pushed subsidies and the reconciliation."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.assistance.disbursements.schemas import REF_PATTERN
from shared.ids import ID_PATTERN
from shared.money import Amount, FiscalYear, Money
from shared.text import Text


class CentreKind(StrEnum):
    tambon_social_assistance_centre = "tambon_social_assistance_centre"    # ศูนย์ช่วยเหลือสังคมตำบล
    family_development_centre = "family_development_centre"                # ศูนย์พัฒนาครอบครัวในชุมชน (ศพค.)


class CentreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: CentreKind
    name: Annotated[Text, StringConstraints(max_length=300)] = Field(examples=["ศูนย์พัฒนาครอบครัวในชุมชนตำบลในเมือง"])
    subdistrict_code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")] = Field(examples=["400101"])
    local_government: Annotated[Text, StringConstraints(max_length=300)] = Field(examples=["เทศบาลนครขอนแก่น"])


class CentreOut(BaseModel):
    id: str
    kind: str
    name: str
    subdistrict_code: str
    subdistrict_name_th: str
    district_code: str
    province_code: str
    local_government: str
    created_at: datetime


class SubsidyItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ref: str = Field(pattern=REF_PATTERN)
    centre_id: str = Field(pattern=ID_PATTERN)
    amount: Money
    note: str | None = Field(None, max_length=500)


class SubsidyBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_ref: str = Field(pattern=REF_PATTERN)
    fiscal_year: FiscalYear
    paid_on: date
    items: list[SubsidyItemIn] = Field(min_length=1)


class ReconciliationRow(BaseModel):
    programme: str
    area_code: str
    area_name_th: str
    allocated: Amount
    disbursed: Amount = Field(description="the budget's running total of payments drawn from it")
    reversed: Amount
    remaining: Amount
    payments: int = Field(description="accepted payments now standing (not reversed)")
    paid_amount: Amount = Field(description="sum of those payments")
    reversed_payments: int
    reversed_amount: Amount
    balanced: bool = Field(description="disbursed = paid + reversed amounts, reversed = reversed amounts, "
                                       "remaining = allocated - paid")


class Reconciliation(BaseModel):
    fiscal_year: int
    area: str
    budgets: list[ReconciliationRow]
    totals: dict[str, ReconciliationRow] = Field(description="per programme, over the budgets listed")
