"""A household's development plan: actions referred to partner agencies, their progress and the help given.

Each action is a referral to one partner: open → in_progress → done, or cancelled from open or in_progress, or
declined by the partner from open (with its reason); any other change is 409. Staff refer households in their areas
and see every referral there; a partner's client sees and moves on only the referrals addressed to its partner, and
records the help it gave. Every step is kept (`referral_change`) and published (`referral.created`,
`referral.updated`, `help.recorded`); free text (the action, notes, outcomes) stays in the service.
"""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.logbook import Dimension, household_in_reach
from services.assistance.models import Help, Partner, Referral, ReferralChange, outbox
from services.assistance.partners import Sector, StaffOrPartner, serves
from services.assistance.referrals.schemas import (
    ChangeOut,
    HelpIn,
    HelpKind,
    HelpOut,
    PartnerRef,
    ReferralDetail,
    ReferralIn,
    ReferralOut,
    ReferralPage,
    Status,
    StatusChangeIn,
)
from shared import areas, clock
from shared.auth import Principal, area_clause
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import as_utc, rowcount
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.etag import check_if_match
from shared.events.assistance import (
    HELP_RECORDED,
    REFERRAL_CREATED,
    REFERRAL_UPDATED,
    HelpRecorded,
    ReferralCreated,
    ReferralUpdated,
)
from shared.ids import decode_cursor, encode_cursor, new_id
from shared.pagination import PageRequest, keyset, page_of

# The only moves a referral can make; done and cancelled are final.
NEXT: dict[Status, frozenset[Status]] = {
    Status.open: frozenset({Status.in_progress, Status.cancelled, Status.declined}),
    Status.in_progress: frozenset({Status.done, Status.cancelled}),
    Status.done: frozenset(),
    Status.cancelled: frozenset(),
    Status.declined: frozenset(),
}
UNDER_WAY = (Status.open.value, Status.in_progress.value)


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
        decline_reason=referral.decline_reason,
        version=referral.version, created_by=referral.created_by, created_at=as_utc(referral.created_at),
        updated_at=as_utc(referral.updated_at))


def present_help(help_: Help) -> HelpOut:
    return HelpOut(id=help_.id, referral_id=help_.referral_id, household_id=help_.household_id,
                   partner_id=help_.partner_id, kind=HelpKind(help_.kind), value=help_.value, given_on=help_.given_on,
                   notes=help_.notes, recorded_by=help_.recorded_by, recorded_at=as_utc(help_.recorded_at))


def _facts(referral: Referral, partner: Partner) -> dict[str, object]:
    return {"referral_id": referral.id, "household_id": referral.household_id,
            "village_code": referral.village_code, "dimension": referral.dimension, "partner_id": partner.id,
            "partner_sector": partner.sector}


def _referral_facts(referral: Referral, partner: Partner) -> dict[str, object]:
    """What `referral.created` and `referral.updated` say: the facts, the partner's client (so the registry knows
    who may read the household's contact while the referral is open), status and version."""
    return _facts(referral, partner) | {"partner_client_id": partner.client_id, "due_on": referral.due_on,
                                        "status": referral.status, "version": referral.version}


async def _referral_in_reach(session: AsyncSession, who: StaffOrPartner, referral_id: str
                             ) -> tuple[Referral, Partner]:
    """The referral and its partner, if the caller may see it: staff in its area, or its own partner."""
    found = (await session.execute(select(Referral, Partner).join(Partner).where(col(Referral.id) == referral_id))
             ).one_or_none()
    if found is not None:
        referral, partner = found
        if (who.principal.can_see(referral.village_code)
                and (who.partner is None or who.partner.id == partner.id)):
            return referral, partner
    raise NotFound(f"There is no referral {referral_id} addressed to you or in your areas.")


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


async def refer(session: AsyncSession, *, principal: Principal, household_id: str, body: ReferralIn) -> ReferralOut:
    """Refer an open household in the caller's areas to a partner that serves it."""
    household = await household_in_reach(session, principal=principal, household_id=household_id)
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
        _referral_facts(referral, partner)), household.id)])
    return present(referral, partner, clock.today())


async def household_plan(session: AsyncSession, *, principal: Principal, household_id: str,
                         page: PageRequest) -> ReferralPage:
    """A page of a household's referrals, oldest first."""
    await household_in_reach(session, principal=principal, household_id=household_id)
    query = await keyset(session, select(Referral, Partner).join(Partner)
                         .where(col(Referral.household_id) == household_id), order=[], id_column=col(Referral.id),
                         page=page)
    found, next_cursor = page_of((await session.execute(query)).all(), page, lambda row: row[0].id)
    today = clock.today()
    return ReferralPage(items=[present(r, p, today) for r, p in found], next_cursor=next_cursor)


async def list_referrals(session: AsyncSession, *, who: StaffOrPartner, status: Status | None,
                         overdue: bool | None, partner_id: str | None, area: str | None,
                         dimension: Dimension | None, cursor: str | None, limit: int) -> ReferralPage:
    """Staff's referrals in their areas, or a partner's own; oldest first, a page at a time."""
    query = select(Referral, Partner).join(Partner).where(area_clause(who.principal, col(Referral.village_code)))
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


async def get_referral(session: AsyncSession, *, who: StaffOrPartner, referral_id: str) -> ReferralDetail:
    referral, partner = await _referral_in_reach(session, who, referral_id)
    return await _detail(session, referral, partner)


async def change_status(session: AsyncSession, *, who: StaffOrPartner, referral_id: str, body: StatusChangeIn,
                        if_match: str | None) -> ReferralDetail:
    """Move a referral on, if its status allows the move; the step is kept and published."""
    referral, partner = await _referral_in_reach(session, who, referral_id)
    check_if_match(if_match, referral.version, required=False)
    before = Status(referral.status)
    if body.status not in NEXT[before]:
        allowed = ", ".join(sorted(NEXT[before])) or "none: it is final"
        raise Conflict(f"A referral that is {before.value} cannot become {body.status.value} (allowed: {allowed}).",
                       status_now=before.value)
    if body.status is Status.declined:
        _check_decline(who, body)
    now = utcnow()
    values: dict[str, object] = {"status": body.status.value, "version": referral.version + 1, "updated_at": now}
    if body.status is Status.done:
        values["outcome"] = body.note
    if body.status is Status.declined:
        values["decline_reason"] = body.reason
    # Only from the version read above: a concurrent change makes this one a 409, never a lost update.
    moved = await session.execute(update(Referral).where(col(Referral.id) == referral.id,
                                                         col(Referral.version) == referral.version).values(values))
    if rowcount(moved) != 1:
        raise Conflict("The referral changed while you were changing it: read it again and retry.")
    await session.refresh(referral)
    session.add(ReferralChange(id=new_id(), referral_id=referral.id, household_id=referral.household_id,
                               status_before=before.value, status=referral.status,
                               note=body.reason if body.status is Status.declined else body.note,
                               changed_by=who.principal.client_id, changed_at=now))
    await outbox.add_many(session, [PendingEvent(REFERRAL_UPDATED, ReferralUpdated.model_validate(
        _referral_facts(referral, partner) | {"status_before": before.value}), referral.household_id)])
    await session.flush()
    return await _detail(session, referral, partner)


def _check_decline(who: StaffOrPartner, body: StatusChangeIn) -> None:
    """Declining is the partner's answer to what was referred to it, with its reason; staff cancel instead."""
    if who.partner is None:
        raise Forbidden("Only the partner a referral is addressed to declines it; staff cancel it "
                        "(status cancelled).", type_slug="partner-only")
    if not body.reason:
        raise Unprocessable("Say why the partner declines: reason is required with status declined.", errors=[
            {"field": "body.reason", "message": "required with status declined", "code": "required"}])


async def record_help(session: AsyncSession, *, who: StaffOrPartner, referral_id: str, body: HelpIn, key: str
                      ) -> tuple[HelpOut, bool]:
    """Record help given under a referral, once per Idempotency-Key: (the help, True if it is the first
    request's answer replayed)."""
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    referral, partner = await _referral_in_reach(session, who, referral_id)
    earlier = (await session.execute(select(Help).where(col(Help.referral_id) == referral.id,
                                                        col(Help.idempotency_key) == key))).scalar_one_or_none()
    if earlier is not None:
        if earlier.request_hash != digest:
            raise Unprocessable("This Idempotency-Key was used for different help under this referral; use a new "
                                "key for new help.", type_slug="idempotency-key-reused")
        return present_help(earlier), True
    if referral.status in (Status.cancelled.value, Status.declined.value):
        raise Conflict(f"Referral {referral_id} was {referral.status}: no help can be recorded under it.")
    if body.given_on > clock.today():
        raise Unprocessable("given_on is in the future", errors=[
            {"field": "body.given_on", "message": "must not be in the future", "code": "date"}])
    referred_on = clock.thai_date(as_utc(referral.created_at))
    if body.given_on < referred_on:
        raise Unprocessable(f"given_on is before the referral was made ({referred_on.isoformat()})", errors=[
            {"field": "body.given_on", "message": f"must not be before {referred_on.isoformat()}", "code": "date"}])
    help_ = Help(id=new_id(), referral_id=referral.id, household_id=referral.household_id, partner_id=partner.id,
                 kind=body.kind.value, value=body.value, given_on=body.given_on, notes=body.notes,
                 recorded_by=who.principal.client_id, recorded_at=utcnow(), idempotency_key=key, request_hash=digest)
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
    return present_help(help_), False
