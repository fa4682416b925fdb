"""Programmes and budgets: money allocated per programme, Thai fiscal year and area, drawn down by payments.

A budget never goes below zero, whatever the concurrency. A batch of payments first locks the budgets of
its programme and year (`SELECT … FOR UPDATE` on PostgreSQL, in id order; SQLite has one writer at a time),
so it reads what is really left, decides every item in memory and writes each budget back once; a
concurrent batch waits for the lock and then sees the money this one took. A payment draws from the most
specific budget whose area contains the household's village (a district's before its province's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.models import Budget, outbox
from services.assistance.security import CanRead, CanWrite
from services.assistance.settings import AssistanceSettings, SettingsDep
from shared import areas
from shared.app import ReadSessionDep, SessionDep
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import rowcount
from shared.errors import Conflict, Forbidden, NotFound
from shared.events.assistance import BUDGET_SET, BudgetSet
from shared.events.registry import Source
from shared.ids import new_id
from shared.money import ZERO, Amount, FiscalYear
from shared.pagination import Page

FAMILY_GRANT = "family_grant"
CENTRE_SUBSIDY = "centre_subsidy"


# -- schemas --


class ProgrammeOut(BaseModel):
    code: str
    name_th: str
    name_en: str
    pays: str
    max_amount: Amount | None
    yearly_cap: int | None
    eligible: str


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Amount


class BudgetOut(BaseModel):
    id: str
    programme: str
    fiscal_year: int
    area_code: str
    area_name_th: str
    allocated: Amount
    disbursed: Amount
    reversed: Amount
    remaining: Amount


# -- rules --


@dataclass(frozen=True)
class Programme:
    code: str
    name_th: str
    name_en: str
    pays: str  # household or centre
    max_amount: Decimal | None = None
    yearly_cap: int | None = None
    eligible_sources: tuple[Source, ...] = field(default_factory=tuple)


def programmes(settings: AssistanceSettings) -> dict[str, Programme]:
    """The programmes, with the amounts and rules the settings give them."""
    return {p.code: p for p in (
        Programme(FAMILY_GRANT, "เงินสงเคราะห์ครอบครัว", "Family assistance grant", "household",
                  settings.family_grant_amount, settings.family_grant_yearly_cap,
                  tuple(settings.family_grant_eligible_sources)),
        Programme(CENTRE_SUBSIDY, "เงินอุดหนุนศูนย์พัฒนาครอบครัวในชุมชน (ศพค.)",
                  "Subsidy to community family development centres", "centre",
                  yearly_cap=settings.centre_subsidy_yearly_cap),
    )}


def programme_of(settings: AssistanceSettings, code: str) -> Programme:
    found = programmes(settings).get(code)
    if found is None:
        raise NotFound(f"There is no programme {code!r}; see GET /v1/programmes.")
    return found


def describe(programme: Programme) -> ProgrammeOut:
    return ProgrammeOut(
        code=programme.code, name_th=programme.name_th, name_en=programme.name_en, pays=programme.pays,
        max_amount=programme.max_amount, yearly_cap=programme.yearly_cap,
        eligible=("target poor in their latest assessment, or registered as "
                  + " or ".join(programme.eligible_sources) if programme.pays == "household" else "registered centres"))


class Ledger:
    """The budgets of a programme and fiscal year, locked for the caller's transaction, drawn in memory."""

    def __init__(self, budgets: list[Budget]) -> None:
        self._by_area = {b.area_code: b for b in budgets}
        self._left = {b.id: b.amount - b.disbursed + b.reversed for b in budgets}
        self._taken: dict[str, Decimal] = {}

    @classmethod
    async def lock(cls, session: AsyncSession, *, programme: str, fiscal_year: int) -> Ledger:
        found = await session.execute(select(Budget).where(
            col(Budget.programme) == programme, col(Budget.fiscal_year) == fiscal_year)
            .order_by(col(Budget.id)).with_for_update().execution_options(populate_existing=True))
        return cls(list(found.scalars()))

    def budget_for(self, area_code: str) -> Budget | None:
        """The most specific budget whose area contains `area_code` (village, sub-district, district, province)."""
        for n in (8, 6, 4, 2):
            if len(area_code) >= n and (budget := self._by_area.get(area_code[:n])) is not None:
                return budget
        return None

    def draw(self, budget: Budget, amount: Decimal) -> bool:
        """Take `amount` if the budget has that much left."""
        if self._left[budget.id] < amount:
            return False
        self._left[budget.id] -= amount
        self._taken[budget.id] = self._taken.get(budget.id, ZERO) + amount
        return True

    async def write(self, session: AsyncSession) -> None:
        """Write what was taken back to the (still locked) budgets."""
        for budget_id, amount in self._taken.items():
            await session.execute(
                update(Budget).where(col(Budget.id) == budget_id)
                .values(disbursed=col(Budget.disbursed) + amount, version=col(Budget.version) + 1,
                        updated_at=utcnow()).execution_options(synchronize_session=False))


async def give_back(session: AsyncSession, *, budget_id: str, amount: Decimal) -> None:
    """Return a reversed payment's amount to its budget."""
    await session.execute(
        update(Budget).where(col(Budget.id) == budget_id)
        .values(reversed=col(Budget.reversed) + amount, version=col(Budget.version) + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))


def present(budget: Budget) -> BudgetOut:
    area = areas.find(budget.area_code)
    return BudgetOut(id=budget.id, programme=budget.programme, fiscal_year=budget.fiscal_year,
                     area_code=budget.area_code, area_name_th=area.name_th if area else "",
                     allocated=budget.amount, disbursed=budget.disbursed, reversed=budget.reversed,
                     remaining=budget.amount - budget.disbursed + budget.reversed)


async def _find(session: AsyncSession, programme: str, fiscal_year: int, area_code: str) -> Budget | None:
    return (await session.execute(select(Budget).where(
        col(Budget.programme) == programme, col(Budget.fiscal_year) == fiscal_year,
        col(Budget.area_code) == area_code))).scalar_one_or_none()


async def allocate(session: AsyncSession, *, settings: AssistanceSettings, principal: Principal, programme: str,
                   fiscal_year: int, area_code: str, amount: Decimal) -> BudgetOut:
    """Allocate a budget, or change its amount (never below what is disbursed); `budget.set` tells the others."""
    programme_of(settings, programme)
    if areas.find(area_code) is None:
        raise NotFound(f"There is no area {area_code}.")
    if not principal.can_see(area_code):
        raise Forbidden(f"Area {area_code} is outside your areas.")
    budget = await _find(session, programme, fiscal_year, area_code)
    if budget is None:
        budget = Budget(id=new_id(), programme=programme, fiscal_year=fiscal_year, area_code=area_code,
                        amount=amount, disbursed=ZERO, reversed=ZERO, updated_at=utcnow())
        session.add(budget)
        await session.flush()
    else:
        # Conditional, like a payment: never below what is disbursed, even if one lands meanwhile.
        changed = await session.execute(
            update(Budget).where(col(Budget.id) == budget.id,
                                 col(Budget.disbursed) - col(Budget.reversed) <= amount)
            .values(amount=amount, version=col(Budget.version) + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False))
        await session.refresh(budget)
        if rowcount(changed) != 1:
            raise Conflict(f"{budget.disbursed - budget.reversed:.2f} baht of this budget is already disbursed; "
                           "it cannot be set lower.", type_slug="budget-below-disbursed")
    await outbox.add_many(session, [PendingEvent(BUDGET_SET, BudgetSet(
        budget_id=budget.id, programme=programme, fiscal_year=fiscal_year, area_code=area_code,
        amount=f"{budget.amount:.2f}", disbursed=f"{budget.disbursed:.2f}", reversed=f"{budget.reversed:.2f}"),
        budget.id)])
    return present(budget)


async def budget_in_reach(session: AsyncSession, *, settings: AssistanceSettings, principal: Principal,
                          programme: str, fiscal_year: int, area_code: str) -> BudgetOut:
    """A budget in the caller's areas: allocated, disbursed, reversed, remaining."""
    programme_of(settings, programme)
    budget = await _find(session, programme, fiscal_year, area_code)
    if budget is None or not principal.can_see(area_code):
        raise NotFound(f"There is no {programme} budget for FY {fiscal_year} in area {area_code}.")
    return present(budget)


# -- routes --


router = APIRouter(tags=["programmes and budgets"])
AreaCode = Annotated[str, Path(pattern=areas.AREA_CODE_PATTERN, description="province, district, sub-district or "
                                                                            "village code")]


@router.get("/v1/programmes", summary="The programmes and their rules")
async def list_programmes(principal: CanRead, settings: SettingsDep) -> Page[ProgrammeOut]:
    """All of them at once (the service's own configuration), in the envelope every list has."""
    return Page[ProgrammeOut](items=[describe(p) for p in programmes(settings).values()], next_cursor=None)


@router.put("/v1/budgets/{programme}/{fiscal_year}/{area_code}", summary="Allocate (or change) a budget",
            responses={409: {"description": "Below what is already disbursed"}})
async def put_budget(principal: CanWrite, programme: str, fiscal_year: FiscalYear, area_code: AreaCode, body: BudgetIn,
                     settings: SettingsDep, session: SessionDep) -> BudgetOut:
    return await allocate(session, settings=settings, principal=principal, programme=programme,
                          fiscal_year=fiscal_year, area_code=area_code, amount=body.amount)


@router.get("/v1/budgets/{programme}/{fiscal_year}/{area_code}", summary="A budget: allocated, disbursed, "
            "reversed, remaining")
async def get_budget(principal: CanRead, programme: str, fiscal_year: FiscalYear, area_code: AreaCode,
                     settings: SettingsDep, session: ReadSessionDep) -> BudgetOut:
    return await budget_in_reach(session, settings=settings, principal=principal,
                                 programme=programme, fiscal_year=fiscal_year, area_code=area_code)
