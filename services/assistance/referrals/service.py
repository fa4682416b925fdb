"""A household's development plan: actions referred to partner agencies, their progress and the help given.

Each action is a referral to one partner: open → in_progress → done, or cancelled from open or in_progress;
any other change is 409. Staff refer households in their areas and see every referral there; a partner's
client sees and moves on only the referrals addressed to its partner, and records the help it gave. Every
step is kept (`referral_change`) and published (`referral.created`, `referral.updated`, `help.recorded`);
free text (the action, notes, outcomes) stays in the service.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.logbook import Dimension, HouseholdId, household_in_reach
from services.assistance.models import Help, Partner, Referral, ReferralChange, outbox
from services.assistance.partners import Caller, Sector, caller, serves
from services.assistance.pushes import idempotency_key
from services.assistance.security import READ, WRITE, can_read, can_write, signed_in
from shared import areas, clock
from shared.app import SessionDep
from shared.auth import Principal, area_clause
from shared.bus import PendingEvent
from shared.db import as_utc, rowcount
from shared.errors import Conflict, NotFound, Unprocessable
from shared.etag import check_if_match, etag
from shared.events.assistance import (
    HELP_RECORDED,
    REFERRAL_CREATED,
    REFERRAL_UPDATED,
    HelpRecorded,
    ReferralCreated,
    ReferralUpdated,
)
from shared.events.envelope import utcnow
from shared.ids import ID_PATTERN, decode_cursor, encode_cursor, new_id
from shared.money import Money
from shared.text import Notes


class Status(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    cancelled = "cancelled"


# The only moves a referral can make; done and cancelled are final.
NEXT: dict[Status, frozenset[Status]] = {
    Status.open: frozenset({Status.in_progress, Status.cancelled}),
    Status.in_progress: frozenset({Status.done, Status.cancelled}),
    Status.done: frozenset(),
    Status.cancelled: frozenset(),
}
UNDER_WAY = (Status.open.value, Status.in_progress.value)


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
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class ReferralDetail(ReferralOut):
    changes: list[ChangeOut]
    help: list[HelpOut]


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


def _village_name(village_code: str) -> str:
    subdistrict = areas.find(village_code[:6])
    return f"{subdistrict.name_th} หมู่ที่ {int(village_code[6:])}" if subdistrict else village_code


def partner_ref(partner: Partner) -> PartnerRef:
    return PartnerRef(id=partner.id, name=partner.name, sector=Sector(partner.sector))


def present(referral: Referral, partner: Partner, today: date) -> ReferralOut:
    return ReferralOut(
        id=referral.id, household_id=referral.household_id, village_code=referral.village_code,
        village_name_th=_village_name(referral.village_code), dimension=Dimension(referral.dimension),
        action=referral.action, partner=partner_ref(partner),
        due_on=referral.due_on, status=Status(referral.status),
        overdue=referral.status in UNDER_WAY and referral.due_on < today, outcome=referral.outcome,
        version=referral.version, created_by=referral.created_by, created_at=as_utc(referral.created_at),
        updated_at=as_utc(referral.updated_at))


def present_help(help_: Help) -> HelpOut:
    return HelpOut(id=help_.id, referral_id=help_.referral_id, household_id=help_.household_id,
                   partner_id=help_.partner_id, kind=HelpKind(help_.kind), value=help_.value, given_on=help_.given_on,
                   notes=help_.notes, recorded_by=help_.recorded_by, recorded_at=as_utc(help_.recorded_at))


def _answer(body: BaseModel, referral: Referral, status_code: int = 200) -> JSONResponse:
    headers = {"ETag": etag(referral.version)}
    if status_code == 201:
        headers["Location"] = f"/v1/referrals/{referral.id}"
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def _facts(referral: Referral, partner: Partner) -> dict[str, object]:
    return {"referral_id": referral.id, "household_id": referral.household_id,
            "village_code": referral.village_code, "dimension": referral.dimension, "partner_id": partner.id,
            "partner_sector": partner.sector}


async def _referral_in_reach(session: AsyncSession, who: Caller, referral_id: str) -> tuple[Referral, Partner]:
    """The referral and its partner, if the caller may see it: staff in its area, or its own partner."""
    found = (await session.execute(select(Referral, Partner).join(Partner).where(col(Referral.id) == referral_id))
             ).one_or_none()
    if found is not None:
        referral, partner = found
        if (who.principal.can_see(referral.village_code)
                and (who.partner is None or who.partner.id == partner.id)):
            return referral, partner
    raise NotFound(f"There is no referral {referral_id} addressed to you or in your areas.")


router = APIRouter(tags=["logbook"])
ReferralId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post("/v1/households/{household_id}/referrals", status_code=201,
             summary="Add an action to a household's plan, referred to a partner",
             responses={404: {"description": "No such household in your areas"},
                        409: {"description": "The household is closed"},
                        422: {"description": "An unknown partner, or one that does not serve the household's area"}})
async def refer(household_id: HouseholdId, body: ReferralIn, session: SessionDep,
                principal: Principal = can_write) -> JSONResponse:
    household = await household_in_reach(session, principal, household_id)
    if household.status != "open":
        raise Conflict(f"Household {household_id} is {household.status}: it cannot be referred.")
    partner = await session.get(Partner, body.partner_id)
    if partner is None or not serves(partner, household.village_code):
        message = ("no such partner" if partner is None
                   else f"{partner.name} does not serve {household.village_code}")
        raise Unprocessable(f"Partner {body.partner_id}: {message}.", errors=[
            {"field": "body.partner_id", "message": message, "code": "partner"}])
    now = utcnow()
    referral = Referral(id=new_id(), household_id=household.id, village_code=household.village_code,
                        dimension=body.dimension.value, action=body.action, partner_id=partner.id, due_on=body.due_on,
                        status=Status.open.value, created_by=principal.client_id, created_at=now, updated_at=now)
    session.add(referral)
    await session.flush()
    session.add(ReferralChange(id=new_id(), referral_id=referral.id, household_id=household.id, status_before=None,
                               status=referral.status, changed_by=principal.client_id, changed_at=now))
    await outbox.add_many(session, [PendingEvent(REFERRAL_CREATED, ReferralCreated.model_validate(
        _facts(referral, partner) | {"due_on": referral.due_on, "status": referral.status, "version": 1}),
        household.id)])
    return _answer(present(referral, partner, clock.today()), referral, 201)


@router.get("/v1/households/{household_id}/referrals", summary="A household's development plan: its referrals")
async def household_plan(household_id: HouseholdId, session: SessionDep,
                         principal: Principal = can_read) -> list[ReferralOut]:
    await household_in_reach(session, principal, household_id)
    found = await session.execute(select(Referral, Partner).join(Partner)
                                  .where(col(Referral.household_id) == household_id).order_by(col(Referral.id)))
    today = clock.today()
    return [present(r, p, today) for r, p in found.all()]


@router.get("/v1/referrals", summary="Referrals: a partner's own, or those in your areas",
            description=f"Staff ({READ}) see the referrals in their token's areas; a partner's client "
                        "(`assistance:partner`) sees only those addressed to its partner. Oldest first.")
async def list_referrals(
    session: SessionDep,
    status: Status | None = None,
    overdue: Annotated[bool | None, Query(description="only those due before today and not finished")] = None,
    partner_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    area: Annotated[str | None, Query(pattern=areas.AREA_CODE_PATTERN)] = None,
    dimension: Dimension | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Principal = signed_in,
) -> ReferralPage:
    who = await caller(session, principal, READ)
    query = select(Referral, Partner).join(Partner).where(area_clause(principal, col(Referral.village_code)))
    if who.partner is not None:
        query = query.where(col(Referral.partner_id) == who.partner.id)
    if partner_id is not None:
        query = query.where(col(Referral.partner_id) == partner_id)
    if status is not None:
        query = query.where(col(Referral.status) == status.value)
    today = clock.today()
    if overdue is not None:
        late = col(Referral.status).in_(UNDER_WAY) & (col(Referral.due_on) < today)
        query = query.where(late if overdue else ~late)
    if area is not None:
        query = query.where(col(Referral.village_code).startswith(area, autoescape=True))
    if dimension is not None:
        query = query.where(col(Referral.dimension) == dimension.value)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Referral.id) > after)
    rows = list((await session.execute(query.order_by(col(Referral.id)).limit(limit + 1))).all())
    items = [present(r, p, today) for r, p in rows[:limit]]
    return ReferralPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/v1/referrals/{referral_id}", summary="A referral, with its steps and the help given",
            response_model=ReferralDetail)
async def get_referral(referral_id: ReferralId, session: SessionDep,
                       principal: Principal = signed_in) -> JSONResponse:
    referral, partner = await _referral_in_reach(session, await caller(session, principal, READ), referral_id)
    return _answer(await _detail(session, referral, partner), referral)


async def _detail(session: AsyncSession, referral: Referral, partner: Partner) -> ReferralDetail:
    changes = (await session.execute(select(ReferralChange).where(col(ReferralChange.referral_id) == referral.id)
                                     .order_by(col(ReferralChange.changed_at), col(ReferralChange.id)))).scalars()
    given = (await session.execute(select(Help).where(col(Help.referral_id) == referral.id)
                                   .order_by(col(Help.given_on), col(Help.id)))).scalars()
    return ReferralDetail(
        **present(referral, partner, clock.today()).model_dump(),
        changes=[ChangeOut(status_before=Status(c.status_before) if c.status_before else None, status=Status(c.status),
                           note=c.note, changed_by=c.changed_by, changed_at=as_utc(c.changed_at)) for c in changes],
        help=[present_help(h) for h in given])


@router.patch("/v1/referrals/{referral_id}", summary="Move a referral on: open → in_progress → done, or cancelled",
              response_model=ReferralDetail,
              responses={409: {"description": "Not a move this referral can make from its status"},
                         412: {"description": "If-Match names an older version"}})
async def change_status(referral_id: ReferralId, body: StatusChangeIn, session: SessionDep,
                        if_match: Annotated[str | None, Header()] = None,
                        principal: Principal = signed_in) -> JSONResponse:
    referral, partner = await _referral_in_reach(session, await caller(session, principal, WRITE), referral_id)
    check_if_match(if_match, referral.version, required=False)
    before = Status(referral.status)
    if body.status not in NEXT[before]:
        allowed = ", ".join(sorted(NEXT[before])) or "none: it is final"
        raise Conflict(f"A referral that is {before.value} cannot become {body.status.value} (allowed: {allowed}).",
                       status_now=before.value)
    now = utcnow()
    values: dict[str, object] = {"status": body.status.value, "version": referral.version + 1, "updated_at": now}
    if body.status is Status.done:
        values["outcome"] = body.note
    # Only from the version read above: a concurrent change makes this one a 409, never a lost update.
    moved = await session.execute(update(Referral).where(col(Referral.id) == referral.id,
                                                         col(Referral.version) == referral.version).values(values))
    if rowcount(moved) != 1:
        raise Conflict("The referral changed while you were changing it: read it again and retry.")
    await session.refresh(referral)
    session.add(ReferralChange(id=new_id(), referral_id=referral.id, household_id=referral.household_id,
                               status_before=before.value, status=referral.status, note=body.note,
                               changed_by=principal.client_id, changed_at=now))
    await outbox.add_many(session, [PendingEvent(REFERRAL_UPDATED, ReferralUpdated.model_validate(
        _facts(referral, partner) | {"due_on": referral.due_on, "status_before": before.value,
                                     "status": referral.status, "version": referral.version}),
        referral.household_id)])
    await session.flush()
    return _answer(await _detail(session, referral, partner), referral)


@router.post("/v1/referrals/{referral_id}/help", status_code=201, summary="Record help given under a referral",
             description="Send an `Idempotency-Key` header, the same on every retry: a retry with the same body "
                         "answers what the first did (`Idempotent-Replayed: true`), never a second record.",
             responses={200: {"description": "A retry: the help recorded by the first request with this key"},
                        400: {"description": "No Idempotency-Key"},
                        409: {"description": "The referral was cancelled, or the first request with this key is "
                                             "still being recorded"},
                        422: {"description": "A date in the future or before the referral, a zero or negative "
                                             "value, or a key used before with another body"}})
async def record_help(referral_id: ReferralId, body: HelpIn, request: Request, session: SessionDep,
                      principal: Principal = signed_in) -> JSONResponse:
    key = idempotency_key(request)
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    referral, partner = await _referral_in_reach(session, await caller(session, principal, WRITE), referral_id)
    earlier = (await session.execute(select(Help).where(col(Help.referral_id) == referral.id,
                                                        col(Help.idempotency_key) == key))).scalar_one_or_none()
    if earlier is not None:
        if earlier.request_hash != digest:
            raise Unprocessable("This Idempotency-Key was used for different help under this referral; use a new "
                                "key for new help.", type_slug="idempotency-key-reused")
        return JSONResponse(present_help(earlier).model_dump(mode="json"), status_code=200,
                            headers={"Idempotent-Replayed": "true"})
    if referral.status == Status.cancelled.value:
        raise Conflict(f"Referral {referral_id} was cancelled: no help can be recorded under it.")
    if body.given_on > clock.today():
        raise Unprocessable("given_on is in the future", errors=[
            {"field": "body.given_on", "message": "must not be in the future", "code": "date"}])
    referred_on = clock.thai_date(as_utc(referral.created_at))
    if body.given_on < referred_on:
        raise Unprocessable(f"given_on is before the referral was made ({referred_on.isoformat()})", errors=[
            {"field": "body.given_on", "message": f"must not be before {referred_on.isoformat()}", "code": "date"}])
    help_ = Help(id=new_id(), referral_id=referral.id, household_id=referral.household_id, partner_id=partner.id,
                 kind=body.kind.value, value=body.value, given_on=body.given_on, notes=body.notes,
                 recorded_by=principal.client_id, recorded_at=utcnow(), idempotency_key=key, request_hash=digest)
    session.add(help_)
    try:
        await session.flush()
    except IntegrityError:  # the same key, at the same moment, from another request: it is being recorded
        raise Conflict("A request with this Idempotency-Key is being recorded; retry shortly.",
                       type_slug="idempotency-key-in-flight", headers={"Retry-After": "1"}) from None
    await outbox.add_many(session, [PendingEvent(HELP_RECORDED, HelpRecorded.model_validate(
        _facts(referral, partner) | {"help_id": help_.id, "kind": help_.kind, "given_on": help_.given_on,
                                     "value": None if help_.value is None else f"{help_.value:.2f}"}),
        referral.household_id)])
    return JSONResponse(present_help(help_).model_dump(mode="json"), status_code=201)
