"""Centres and their subsidies, and the reconciliation of every budget with its payments.

The ministry pushes subsidies to community family development centres (ศพค.) with the same signature and
Idempotency-Key semantics as family grants; each item names a registered centre and draws from the most
specific `centre_subsidy` budget whose area contains the centre's sub-district.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.budgets import CENTRE_SUBSIDY, Ledger
from services.assistance.centres.schemas import (
    CentreIn,
    CentreKind,
    CentreOut,
    Reconciliation,
    ReconciliationRow,
    SubsidyBatchIn,
)
from services.assistance.disbursements.schemas import BatchOut, Reason
from services.assistance.disbursements.service import Allowances, check_batch, new_batch, write_batch
from services.assistance.models import Budget, Centre, Disbursement, outbox
from services.assistance.pushes import Push
from services.assistance.settings import AssistanceSettings
from shared import areas
from shared.auth import Principal, area_clause
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import Forbidden, NotFound, Unprocessable
from shared.events.assistance import (
    CENTRE_REGISTERED,
    CENTRE_SUBSIDY_RECORDED,
    CentreRegistered,
    CentreSubsidyRecorded,
)
from shared.ids import new_id
from shared.money import ZERO
from shared.pagination import Page, PageRequest, fetch_page

SUBSIDISED = {CentreKind.family_development_centre.value}


def present(centre: Centre) -> CentreOut:
    area = areas.find(centre.subdistrict_code)
    return CentreOut(id=centre.id, kind=centre.kind, name=centre.name, subdistrict_code=centre.subdistrict_code,
                     subdistrict_name_th=area.name_th if area else "", district_code=centre.district_code,
                     province_code=centre.province_code, local_government=centre.local_government,
                     created_at=as_utc(centre.created_at))


async def register(session: AsyncSession, *, principal: Principal, body: CentreIn) -> CentreOut:
    """Register a centre in a known sub-district of the caller's areas; `centre.registered` tells the others."""
    area = areas.find(body.subdistrict_code)
    if area is None:
        raise Unprocessable(f"There is no sub-district {body.subdistrict_code}.", errors=[{
            "field": "body.subdistrict_code", "message": "unknown sub-district", "code": "area"}])
    if not principal.can_see(body.subdistrict_code):
        raise Forbidden(f"Sub-district {body.subdistrict_code} is outside your areas.")
    centre = Centre(id=new_id(), kind=body.kind.value, name=body.name, local_government=body.local_government,
                    province_code=body.subdistrict_code[:2], district_code=body.subdistrict_code[:4],
                    subdistrict_code=body.subdistrict_code, created_at=utcnow())
    session.add(centre)
    await session.flush()
    await outbox.add(session, CENTRE_REGISTERED, CentreRegistered(
        centre_id=centre.id, kind=centre.kind, province_code=centre.province_code,
        district_code=centre.district_code, subdistrict_code=centre.subdistrict_code), key=centre.id)
    return present(centre)


async def list_centres(session: AsyncSession, *, principal: Principal, area: str | None, kind: CentreKind | None,
                       page: PageRequest) -> Page[CentreOut]:
    """A page of the centres of the caller's areas, by sub-district and name."""
    query = select(Centre).where(area_clause(principal, col(Centre.subdistrict_code)))
    if area is not None:
        query = query.where(col(Centre.subdistrict_code).startswith(area))
    if kind is not None:
        query = query.where(col(Centre.kind) == kind.value)
    found, next_cursor = await fetch_page(session, query, order=[col(Centre.subdistrict_code), col(Centre.name)],
                                          id_column=col(Centre.id), page=page)
    return Page[CentreOut](items=[present(c) for c in found], next_cursor=next_cursor)


async def get_centre(session: AsyncSession, *, principal: Principal, centre_id: str) -> CentreOut:
    centre = await session.get(Centre, centre_id)
    if centre is None or not principal.can_see(centre.subdistrict_code):
        raise NotFound(f"There is no centre {centre_id} in your areas.")
    return present(centre)


async def record_subsidies(session: AsyncSession, *, settings: AssistanceSettings, push: Push) -> tuple[int, BatchOut]:
    """Record a pushed batch of centre subsidies, every item accepted or rejected with its reason."""
    body: SubsidyBatchIn = push.body
    await check_batch(session, settings=settings, batch_ref=body.batch_ref, year=body.fiscal_year,
                      paid_on=body.paid_on, refs=[i.item_ref for i in body.items])
    wanted = {i.centre_id for i in body.items}
    centres = {c.id: c for c in (await session.execute(
        select(Centre).where(col(Centre.id).in_(wanted)))).scalars()}
    ledger = await Ledger.lock(session, programme=CENTRE_SUBSIDY, fiscal_year=body.fiscal_year)
    # The same yearly count as a household's grants: one per recipient.
    allowances = await Allowances.read(session, set(centres), programme=CENTRE_SUBSIDY, fiscal_year=body.fiscal_year,
                                       cap=settings.centre_subsidy_yearly_cap)
    batch = new_batch(push, body.batch_ref, CENTRE_SUBSIDY, body.fiscal_year, body.paid_on, len(body.items))
    now = utcnow()
    rows: list[dict[str, Any]] = []
    events: list[PendingEvent] = []
    named: set[str] = set()
    for item in body.items:
        centre = centres.get(item.centre_id)
        reason: Reason | None = None
        budget: Budget | None = None
        if centre is None:
            reason = Reason.unknown_centre
        elif centre.kind not in SUBSIDISED:
            reason = Reason.centre_not_eligible
        elif centre.id in named:
            reason = Reason.centre_twice_in_batch
        elif not allowances.take(centre.id):
            reason = Reason.centre_yearly_cap_reached
        else:
            budget = ledger.budget_for(centre.subdistrict_code)
            if budget is None:
                reason = Reason.no_budget
            elif not ledger.draw(budget, item.amount):
                reason = Reason.budget_exhausted
            if reason is not None:
                allowances.give_back(centre.id)
        if centre is not None:
            named.add(centre.id)
        row: dict[str, Any] = {
               "id": new_id(), "batch_id": batch.id, "item_ref": item.item_ref, "programme": CENTRE_SUBSIDY,
               "fiscal_year": body.fiscal_year, "paid_on": body.paid_on, "household_id": None,
               "centre_id": centre.id if centre else None, "village_code": centre.subdistrict_code if centre else None,
               "budget_id": budget.id if budget and not reason else None, "amount": item.amount,
               "status": "rejected" if reason else "accepted", "reason": reason.value if reason else None,
               "note": item.note, "reversed_at": None, "reversal_reason": None, "created_at": now}
        rows.append(row)
        if reason is None:
            assert centre is not None and budget is not None
            events.append(PendingEvent(CENTRE_SUBSIDY_RECORDED, CentreSubsidyRecorded(
                disbursement_id=row["id"], centre_id=centre.id, centre_kind=centre.kind, batch_ref=body.batch_ref,
                item_ref=item.item_ref, programme=CENTRE_SUBSIDY, fiscal_year=body.fiscal_year,
                paid_on=body.paid_on, amount=f"{item.amount:.2f}", budget_id=budget.id,
                budget_area_code=budget.area_code, province_code=centre.province_code,
                district_code=centre.district_code, subdistrict_code=centre.subdistrict_code), centre.id))
    return await write_batch(session, batch=batch, ledger=ledger, allowances=allowances, rows=rows, events=events)


def _row(programme: str, area_code: str, allocated: Decimal, disbursed: Decimal, reversed_: Decimal,
         sums: dict[str, tuple[int, Decimal]]) -> ReconciliationRow:
    payments, paid = sums.get("accepted", (0, ZERO))
    undone, undone_amount = sums.get("reversed", (0, ZERO))
    remaining = allocated - disbursed + reversed_
    area = areas.find(area_code) if area_code != "*" else None
    return ReconciliationRow(
        programme=programme, area_code=area_code, area_name_th=area.name_th if area else "", allocated=allocated,
        disbursed=disbursed, reversed=reversed_, remaining=remaining, payments=payments, paid_amount=paid,
        reversed_payments=undone, reversed_amount=undone_amount,
        balanced=(disbursed == paid + undone_amount and reversed_ == undone_amount and remaining == allocated - paid))


async def reconcile(session: AsyncSession, *, principal: Principal, fiscal_year: int, area: str | None
                    ) -> Reconciliation:
    """Every budget of a fiscal year in an area (the caller's by default) beside the sum of its payments."""
    if area is not None and not principal.can_see(area):
        raise NotFound(f"Area {area} is outside your areas.")
    query = select(Budget).where(col(Budget.fiscal_year) == fiscal_year,
                                 area_clause(principal, col(Budget.area_code)))
    if area is not None:
        query = query.where(col(Budget.area_code).startswith(area))
    budgets = list((await session.execute(query.order_by(col(Budget.programme), col(Budget.area_code)))).scalars())
    sums: dict[str, dict[str, tuple[int, Decimal]]] = {}
    if budgets:
        found = await session.execute(
            select(Disbursement.budget_id, Disbursement.status, func.count(), func.sum(Disbursement.amount))
            .where(col(Disbursement.budget_id).in_([b.id for b in budgets]))
            .group_by(col(Disbursement.budget_id), col(Disbursement.status)))
        for budget_id, status, count, amount in found.all():
            sums.setdefault(budget_id, {})[status] = (int(count), Decimal(amount).quantize(Decimal("0.01")))
    rows = [_row(b.programme, b.area_code, b.amount, b.disbursed, b.reversed, sums.get(b.id, {})) for b in budgets]
    totals: dict[str, ReconciliationRow] = {}
    for programme in sorted({r.programme for r in rows}):
        mine = [r for r in rows if r.programme == programme]
        totals[programme] = _row(
            programme, area or "*", sum((r.allocated for r in mine), ZERO), sum((r.disbursed for r in mine), ZERO),
            sum((r.reversed for r in mine), ZERO), {
                "accepted": (sum(r.payments for r in mine), sum((r.paid_amount for r in mine), ZERO)),
                "reversed": (sum(r.reversed_payments for r in mine), sum((r.reversed_amount for r in mine), ZERO))})
    return Reconciliation(fiscal_year=fiscal_year, area=area or "*", budgets=rows, totals=totals)
