"""The rules of the register: who may see and change which household, one open household per citizen ID,
exactly one head, optimistic concurrency, personal data masked and audited, and an event for every change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from services.registry import areas
from services.registry.households.schemas import (
    AddressOut,
    DuplicatePerson,
    HouseholdCreate,
    HouseholdOut,
    HouseholdPatch,
    MemberIn,
    MemberOut,
    ProbableDuplicate,
)
from services.registry.models import AuditEntry, Household, Member, Team, outbox
from services.registry.security import PII_READ
from shared.auth import Principal, area_clause
from shared.db import as_utc, rowcount
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable
from shared.etag import check_if_match
from shared.events.catalogue import EventType
from shared.events.envelope import utcnow
from shared.events.registry import (
    HOUSEHOLD_ASSIGNED,
    HOUSEHOLD_CLOSED,
    HOUSEHOLD_REGISTERED,
    HOUSEHOLD_UPDATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MEMBER_TRANSFERRED,
    Relation,
    RemovalReason,
    Sex,
    Source,
)
from shared.ids import new_id
from shared.observability import get_correlation_id
from shared.pii import CitizenIdProtector, mask_citizen_id
from shared.text import name_key

SOURCE_COLUMNS = {
    Source.tpmap: "source_tpmap",
    Source.exclusion_error: "source_exclusion_error",
    Source.vulnerable: "source_vulnerable",
    Source.other: "source_other",
}


@dataclass(frozen=True)
class Caller:
    """Who is asking, and the purpose they declared for reading personal data (X-Purpose)."""

    principal: Principal
    purpose: str | None = None


@dataclass
class HouseholdRecord:
    """A household with its current members (those not individually removed), in order."""

    household: Household
    members: list[Member]


# -- reading -----------------------------------------------------------------------------------------


def sources_of(household: Household) -> list[Source]:
    return [source for source, column in SOURCE_COLUMNS.items() if getattr(household, column)]


def _current(members: Sequence[Member]) -> list[Member]:
    return sorted((m for m in members if m.removed_at is None), key=lambda m: m.position)


async def _members_of(session: AsyncSession, household_ids: Sequence[str]) -> dict[str, list[Member]]:
    by_household: dict[str, list[Member]] = {hid: [] for hid in household_ids}
    if household_ids:
        rows = (await session.execute(
            select(Member).where(col(Member.household_id).in_(household_ids), col(Member.removed_at).is_(None))
            .order_by(col(Member.household_id), col(Member.position))
        )).scalars()
        for member in rows:
            by_household[member.household_id].append(member)
    return by_household


async def load(session: AsyncSession, *, caller: Caller, household_id: str) -> HouseholdRecord:
    """The household if the caller's areas include it; 404 otherwise, so its existence does not leak."""
    household = await session.get(Household, household_id)
    if household is None or not caller.principal.can_see(household.village_code):
        raise NotFound(f"There is no household {household_id} in your areas.")
    return HouseholdRecord(household, (await _members_of(session, [household_id]))[household_id])


def present(
    session: AsyncSession, record: HouseholdRecord, *, caller: Caller, protector: CitizenIdProtector, action: str
) -> HouseholdOut:
    """The household as the caller may see it: citizen IDs masked without pii:read, audited with it."""
    unmasked = caller.principal.has_scope(PII_READ)
    household = record.household
    if unmasked and record.members:
        audit(session, caller=caller, action=action, household_id=household.id)
    members = []
    for m in record.members:
        members.append(MemberOut(
            id=m.id, citizen_id=_shown(m, unmasked, protector), citizen_id_masked=not unmasked,
            title=m.title, first_name=m.first_name, last_name=m.last_name, sex=Sex(m.sex),
            birth_date=m.birth_date, relation=Relation(m.relation), disability=m.disability,
        ))
    return HouseholdOut(
        id=household.id, version=household.version, status=household.status,
        closed_reason=household.closed_reason,
        address=AddressOut(
            province_code=household.province_code, district_code=household.district_code,
            subdistrict_code=household.subdistrict_code, village_no=household.village_no,
            village_code=household.village_code, house_no=household.house_no, lat=household.lat, lon=household.lon,
        ),
        sources=sources_of(household), welfare_card=household.welfare_card, team_id=household.team_id,
        buddy_official=household.buddy_official, members=members,
        created_at=as_utc(household.created_at), updated_at=as_utc(household.updated_at),
    )


def _shown(member: Member, unmasked: bool, protector: CitizenIdProtector) -> str:
    digits = protector.decrypt(member.citizen_id_enc)
    return digits if unmasked else mask_citizen_id(digits, protector.mask_shown_digits)


def present_duplicates(session: AsyncSession, groups: list[list[Member]], *, caller: Caller,
                       protector: CitizenIdProtector) -> list[ProbableDuplicate]:
    """Duplicate groups as the caller may see them: masked, or unmasked and audited per household."""
    unmasked = caller.principal.has_scope(PII_READ)
    if unmasked:
        for household_id in sorted({m.household_id for group in groups for m in group}):
            audit(session, caller=caller, action="pii_read", household_id=household_id)
    return [
        ProbableDuplicate(
            first_name=group[0].first_name, last_name=group[0].last_name, birth_date=group[0].birth_date,
            people=[DuplicatePerson(household_id=m.household_id, member_id=m.id,
                                    citizen_id=_shown(m, unmasked, protector)) for m in group],
        )
        for group in groups
    ]


def audit(session: AsyncSession, *, caller: Caller, action: str, household_id: str | None) -> None:
    """Record a read of personal data in the caller's transaction."""
    session.add(AuditEntry(
        at=utcnow(), client_id=caller.principal.client_id, action=action, household_id=household_id,
        purpose=caller.purpose, correlation_id=get_correlation_id(),
    ))


@dataclass(frozen=True)
class HouseholdFilter:
    province: str | None = None
    district: str | None = None
    subdistrict: str | None = None
    village_no: int | None = None
    source: Source | None = None
    welfare_card: bool | None = None
    team: str | None = None
    status: str | None = "open"
    q: str | None = None


def _conditions(caller: Caller, f: HouseholdFilter) -> list[ColumnElement[bool]]:
    conditions = [area_clause(caller.principal, Household.village_code)]
    equal: list[tuple[Any, object]] = [
        (Household.province_code, f.province), (Household.district_code, f.district),
        (Household.subdistrict_code, f.subdistrict), (Household.village_no, f.village_no),
        (Household.welfare_card, f.welfare_card), (Household.team_id, f.team), (Household.status, f.status),
    ]
    conditions.extend(col(column) == value for column, value in equal if value is not None)
    if f.source is not None:
        conditions.append(getattr(Household, SOURCE_COLUMNS[f.source]).is_(True))
    if f.q:
        words = name_key(f.q).split()  # compared as names are: "คำ" finds "ค\u0e4d\u0e32", and the other way
        name_match = [or_(col(Member.first_name_key).contains(w, autoescape=True),
                          col(Member.last_name_key).contains(w, autoescape=True))
                      for w in words]
        conditions.append(exists().where(
            col(Member.household_id) == col(Household.id), col(Member.removed_at).is_(None), *name_match
        ))
    return conditions


async def list_page(
    session: AsyncSession, *, caller: Caller, filters: HouseholdFilter, after: str | None, limit: int
) -> tuple[list[HouseholdRecord], str | None]:
    """One page of households in id order (UUIDv7: registration order) after the id `after`."""
    query = select(Household).where(*_conditions(caller, filters)).order_by(col(Household.id)).limit(limit + 1)
    if after is not None:
        query = query.where(col(Household.id) > after)
    households = list((await session.execute(query)).scalars())
    more = len(households) > limit
    households = households[:limit]
    members = await _members_of(session, [h.id for h in households])
    return [HouseholdRecord(h, members[h.id]) for h in households], households[-1].id if more else None


async def lookup(session: AsyncSession, *, caller: Caller, citizen_id: str, protector: CitizenIdProtector,
                 ) -> HouseholdRecord:
    """The open household holding this citizen ID, if it is in the caller's areas."""
    household_id = (await session.execute(
        select(col(Member.household_id)).where(col(Member.citizen_id_hash).in_(protector.hashes(citizen_id)),
                                               col(Member.active).is_(True))
    )).scalar_one_or_none()
    # Every lookup is a use of a citizen ID: audited whether or not it finds anything.
    audit(session, caller=caller, action="lookup", household_id=None)
    if household_id is None:
        raise NotFound("No open household in your areas has this citizen ID.")
    try:
        return await load(session, caller=caller, household_id=household_id)
    except NotFound:
        raise NotFound("No open household in your areas has this citizen ID.") from None


async def probable_duplicates(session: AsyncSession, *, caller: Caller, limit: int) -> list[list[Member]]:
    """Groups of current members sharing name and birth date but not citizen ID, in the caller's areas."""
    visible = select(col(Household.id)).where(area_clause(caller.principal, Household.village_code),
                                              col(Household.status) == "open")
    # Names are compared on their keys: the same name typed with a decomposed SARA AM or a zero-width space is
    # the same name.
    first, last, born = col(Member.first_name_key), col(Member.last_name_key), col(Member.birth_date)
    current = (col(Member.active).is_(True), col(Member.household_id).in_(visible))
    keys = (
        select(first, last, born).where(*current).group_by(first, last, born)
        .having(func.count(func.distinct(col(Member.citizen_id_hash))) > 1)
        .order_by(last, first, born).limit(limit)
    ).subquery()
    rows = (await session.execute(
        select(Member)
        .join(keys, and_(first == keys.c.first_name_key, last == keys.c.last_name_key, born == keys.c.birth_date))
        .where(*current).order_by(last, first, born, col(Member.household_id))
    )).scalars()
    groups: dict[tuple[Any, ...], list[Member]] = {}
    for member in rows:
        groups.setdefault((member.first_name_key, member.last_name_key, member.birth_date), []).append(member)
    return list(groups.values())


# -- events ------------------------------------------------------------------------------------------


def facts(h: Any, members: Sequence[Any]) -> dict[str, Any]:
    """The snapshot of household `h` and its current `members` (rows or objects with the columns as
    attributes) for events: no names, no house number, no raw citizen ID."""
    return {
        "household_id": h.id, "version": h.version, "status": h.status,
        "province_code": h.province_code, "district_code": h.district_code,
        "subdistrict_code": h.subdistrict_code, "village_no": h.village_no, "village_code": h.village_code,
        "sources": sources_of(h), "welfare_card": h.welfare_card, "team_id": h.team_id,
        "members": [
            {"member_id": m.id, "citizen_id_hash": m.citizen_id_hash, "sex": m.sex, "birth_date": m.birth_date,
             "relation": m.relation, "disability": m.disability}
            for m in members
        ],
    }


async def publish(session: AsyncSession, event_type: EventType, record: HouseholdRecord, **extra: Any) -> None:
    payload = event_type.payload.model_validate(facts(record.household, record.members) | extra)
    await outbox.add(session, event_type, payload, key=record.household.id)


# -- changing ----------------------------------------------------------------------------------------


def _address_area(caller: Caller, subdistrict_code: str, village_no: int) -> areas.Area:
    subdistrict = areas.find(subdistrict_code) if len(subdistrict_code) == 6 else None
    if subdistrict is None:
        raise Unprocessable(f"There is no sub-district {subdistrict_code}.",
                            errors=[{"field": "address.subdistrict_code", "message": "unknown sub-district code"}])
    code = areas.village_code(subdistrict_code, village_no)
    if not caller.principal.can_see(code):
        raise Forbidden(f"Area {code} is outside the areas granted to client {caller.principal.client_id!r}.")
    return subdistrict


async def _ensure_not_registered(
    session: AsyncSession, *, caller: Caller, hashes: Sequence[str], exclude_member: str | None = None
) -> None:
    query = select(col(Member.citizen_id_hash), col(Member.household_id)).where(
        col(Member.citizen_id_hash).in_(hashes), col(Member.active).is_(True)
    )
    if exclude_member is not None:
        query = query.where(col(Member.id) != exclude_member)
    found = (await session.execute(query)).first()
    if found is None:
        return
    holder = await session.get(Household, found.household_id)
    raise CitizenIdRegistered(found.household_id, holder is not None and caller.principal.can_see(holder.village_code))


class CitizenIdRegistered(Conflict):
    """A person being registered is already in an open household. Registering is a citizen-ID lookup (it needs
    `registry:lookup`, and the router writes it to the audit log); the answer is the same wherever the holder
    lies, naming the household only when it is in the caller's areas (as a lookup there would)."""

    def __init__(self, holder_id: str, visible: bool) -> None:
        super().__init__("This citizen ID already belongs to an open household.", type_slug="citizen-id-registered")
        if visible:
            self.extensions["household_id"] = holder_id
        self.holder_id = holder_id


def conflict_message(holder_id: str, visible: bool) -> str:
    """What an import says of a row whose person is already registered: the same rule as `CitizenIdRegistered`."""
    return f"already in open household {holder_id}" if visible else "already in an open household"


def _new_member(household_id: str, position: int, body: MemberIn, protector: CitizenIdProtector,
                now: datetime, relation: Relation | None = None) -> Member:
    return Member(
        id=new_id(), household_id=household_id, position=position,
        citizen_id_enc=protector.encrypt(body.citizen_id), citizen_id_hash=protector.hash(body.citizen_id),
        title=body.title, first_name=body.first_name, last_name=body.last_name,
        first_name_key=name_key(body.first_name), last_name_key=name_key(body.last_name), sex=body.sex.value,
        birth_date=body.birth_date, relation=(relation or body.relation).value, disability=body.disability,
        active=True, created_at=now,
    )


async def _flush(session: AsyncSession) -> None:
    """Flush; the database's own uniqueness check catches a citizen ID registered concurrently."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if "citizen" in str(exc.orig).lower() or "uq_member_active_citizen" in str(exc.orig):
            raise Conflict("This citizen ID was just registered in another open household.",
                           type_slug="citizen-id-registered") from None
        raise


async def register(session: AsyncSession, *, caller: Caller, body: HouseholdCreate,
                   protector: CitizenIdProtector, import_id: str | None = None) -> HouseholdRecord:
    """Register a household with its members; `household.registered` leaves with it."""
    address = body.address
    subdistrict = _address_area(caller, address.subdistrict_code, address.village_no)
    await _ensure_not_registered(session, caller=caller,
                                 hashes=[h for m in body.members for h in protector.hashes(m.citizen_id)])
    now = utcnow()
    household = Household(
        id=new_id(), province_code=subdistrict.code[:2], district_code=subdistrict.code[:4],
        subdistrict_code=subdistrict.code, village_no=address.village_no,
        village_code=areas.village_code(subdistrict.code, address.village_no), house_no=address.house_no,
        lat=address.lat, lon=address.lon, welfare_card=body.welfare_card, import_id=import_id,
        created_at=now, updated_at=now,
    )
    for source, column in SOURCE_COLUMNS.items():
        setattr(household, column, source in body.sources)
    members = [_new_member(household.id, i, m, protector, now) for i, m in enumerate(body.members, start=1)]
    session.add(household)
    session.add_all(members)
    await _flush(session)
    record = HouseholdRecord(household, members)
    await publish(session, HOUSEHOLD_REGISTERED, record)
    return record


async def claim(session: AsyncSession, *, caller: Caller, household_id: str, if_match: str | None,
                required: bool = True) -> HouseholdRecord:
    """Load an open household for a change and take its next version, if If-Match names the current one."""
    record = await _open_for_change(session, caller=caller, household_id=household_id, if_match=if_match,
                                    required=required)
    await take_next_version(session, record.household)
    return record


async def _open_for_change(session: AsyncSession, *, caller: Caller, household_id: str, if_match: str | None,
                           required: bool = True) -> HouseholdRecord:
    record = await load(session, caller=caller, household_id=household_id)
    check_if_match(if_match, record.household.version, required=required)
    if record.household.status != "open":
        raise Conflict(f"Household {household_id} is closed and can no longer change.", type_slug="household-closed")
    return record


async def take_next_version(session: AsyncSession, household: Household) -> None:
    """Move the version on by one. The conditional UPDATE is the real check: two writers that both read
    version n cannot both move it to n + 1 (on PostgreSQL the second waits for the first's row lock, then
    matches nothing → 412)."""
    now, current = utcnow(), household.version
    result = await session.execute(
        update(Household).where(col(Household.id) == household.id, col(Household.version) == current)
        .values(version=current + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise PreconditionFailed("Someone else changed this household at the same moment: read it again and retry.")
    set_committed_value(household, "version", current + 1)
    set_committed_value(household, "updated_at", now)


async def change(session: AsyncSession, *, caller: Caller, household_id: str, body: HouseholdPatch,
                 if_match: str | None) -> HouseholdRecord:
    """Apply a merge patch to address, sources and welfare card; `household.updated` names what changed.

    A patch that changes nothing keeps the version and publishes nothing (sync jobs resend unchanged data).
    """
    record = await _open_for_change(session, caller=caller, household_id=household_id, if_match=if_match)
    household = record.household
    changed: list[str] = []
    if body.address is not None:
        patch = body.address.model_dump(exclude_unset=True)
        cleared = [f for f in ("subdistrict_code", "village_no", "house_no") if f in patch and patch[f] is None]
        if cleared:
            raise Unprocessable("These address fields cannot be removed, only changed.",
                                errors=[{"field": f"address.{f}", "message": "may not be null"} for f in cleared])
        if "subdistrict_code" in patch or "village_no" in patch:
            code = patch.get("subdistrict_code", household.subdistrict_code)
            number = patch.get("village_no", household.village_no)
            _address_area(caller, code, number)
            household.province_code, household.district_code = code[:2], code[:4]
            household.village_code = areas.village_code(code, number)
        for field, value in patch.items():
            if getattr(household, field) != value:
                setattr(household, field, value)
                changed.append(f"address.{field}")
    if body.sources is not None and set(body.sources) != set(sources_of(household)):
        for source, column in SOURCE_COLUMNS.items():
            setattr(household, column, source in body.sources)
        changed.append("sources")
    if body.welfare_card is not None and body.welfare_card != household.welfare_card:
        household.welfare_card = body.welfare_card
        changed.append("welfare_card")
    if not changed:
        return record
    await take_next_version(session, household)
    await _flush(session)
    await publish(session, HOUSEHOLD_UPDATED, record, changed=changed)
    return record


async def add_member(session: AsyncSession, *, caller: Caller, household_id: str, body: MemberIn,
                     if_match: str | None, protector: CitizenIdProtector) -> tuple[HouseholdRecord, Member]:
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    if body.relation is Relation.head:
        raise Unprocessable("The household already has a head; add the person with another relation.",
                            errors=[{"field": "relation", "message": "the household already has a head"}])
    await _ensure_not_registered(session, caller=caller, hashes=protector.hashes(body.citizen_id))
    position = await _next_position(session, household_id)
    member = _new_member(household_id, position, body, protector, utcnow())
    session.add(member)
    await _flush(session)
    record.members.append(member)
    await publish(session, MEMBER_ADDED, record, member_id=member.id)
    return record, member


async def _next_position(session: AsyncSession, household_id: str) -> int:
    highest = (await session.execute(
        select(func.max(col(Member.position))).where(col(Member.household_id) == household_id)
    )).scalar_one_or_none()
    return (highest or 0) + 1


def _take_out(record: HouseholdRecord, member_id: str, new_head_member_id: str | None) -> Member:
    """Remove a member from the record's current members, handing the head role on if needed."""
    member = next((m for m in record.members if m.id == member_id), None)
    if member is None:
        raise NotFound(f"Household {record.household.id} has no current member {member_id}.")
    others = [m for m in record.members if m.id != member_id]
    if not others:
        raise Conflict("The last member cannot leave: close the household instead.", type_slug="last-member")
    if member.relation == Relation.head.value:
        successor = next((m for m in others if m.id == new_head_member_id), None)
        if successor is None:
            raise Unprocessable(
                "The head is leaving: name the member who becomes head in new_head_member_id.",
                errors=[{"field": "new_head_member_id", "message": "required: a current member of this household"}],
            )
        successor.relation = Relation.head.value
    elif new_head_member_id is not None:
        raise Unprocessable("new_head_member_id is only for when the head leaves.",
                            errors=[{"field": "new_head_member_id", "message": "the leaving member is not the head"}])
    record.members = others
    return member


async def remove_member(session: AsyncSession, *, caller: Caller, household_id: str, member_id: str,
                        reason: RemovalReason, new_head_member_id: str | None, if_match: str | None,
                        ) -> HouseholdRecord:
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    member = _take_out(record, member_id, new_head_member_id)
    member.active, member.removed_reason, member.removed_at = False, reason.value, utcnow()
    await _flush(session)
    await publish(session, MEMBER_REMOVED, record, member_id=member.id, reason=reason)
    return record


async def transfer_member(session: AsyncSession, *, caller: Caller, household_id: str, member_id: str,
                          to_household_id: str, relation: Relation, new_head_member_id: str | None,
                          if_match: str | None) -> tuple[HouseholdRecord, HouseholdRecord]:
    """Move a person to another open household: `member_transferred` here, `member_added` there."""
    if to_household_id == household_id:
        raise Unprocessable("A member cannot be transferred to the same household.",
                            errors=[{"field": "to_household_id", "message": "same household"}])
    source = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    target = await claim(session, caller=caller, household_id=to_household_id, if_match=None, required=False)
    if relation is Relation.head:
        raise Unprocessable("The receiving household already has a head.",
                            errors=[{"field": "relation", "message": "the receiving household already has a head"}])
    member = _take_out(source, member_id, new_head_member_id)
    now = utcnow()
    member.active, member.removed_reason, member.removed_at = False, "transferred", now
    member.transferred_to = to_household_id
    await _flush(session)  # free the citizen ID before it joins the other household
    moved = Member(
        id=new_id(), household_id=to_household_id, position=await _next_position(session, to_household_id),
        citizen_id_enc=member.citizen_id_enc, citizen_id_hash=member.citizen_id_hash, title=member.title,
        first_name=member.first_name, last_name=member.last_name, first_name_key=member.first_name_key,
        last_name_key=member.last_name_key, sex=member.sex, birth_date=member.birth_date,
        relation=relation.value, disability=member.disability, active=True, created_at=now,
    )
    session.add(moved)
    await _flush(session)
    target.members.append(moved)
    await publish(session, MEMBER_TRANSFERRED, source, member_id=member.id, to_household_id=to_household_id)
    await publish(session, MEMBER_ADDED, target, member_id=moved.id, transferred_from=household_id)
    return source, target


async def close(session: AsyncSession, *, caller: Caller, household_id: str, reason: str,
                if_match: str | None) -> HouseholdRecord:
    """Close the household; its members' citizen IDs are free to join another household."""
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    household = record.household
    household.status, household.closed_reason, household.closed_at = "closed", reason, utcnow()
    for member in record.members:
        member.active = False
    await _flush(session)
    await publish(session, HOUSEHOLD_CLOSED, record, reason=reason)
    return record


async def assign(session: AsyncSession, *, caller: Caller, household_id: str, team_id: str,
                 buddy_official: str | None, if_match: str | None) -> HouseholdRecord:
    """Put the household in a field team's care, with the buddy official who follows it."""
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match, required=False)
    household = record.household
    team = await session.get(Team, team_id)
    if team is None or not caller.principal.can_see(team.district_code):
        raise Unprocessable(f"There is no team {team_id} in your areas.",
                            errors=[{"field": "team_id", "message": "unknown team"}])
    if household.subdistrict_code not in team.subdistrict_codes:
        raise Unprocessable(
            f"Team {team.name} does not cover sub-district {household.subdistrict_code}.",
            errors=[{"field": "team_id", "message": "the team does not cover the household's sub-district"}],
        )
    household.team_id, household.buddy_official = team.id, buddy_official
    await _flush(session)
    await publish(session, HOUSEHOLD_ASSIGNED, record, buddy_official=buddy_official)
    return record
