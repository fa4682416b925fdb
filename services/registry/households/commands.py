"""Changing registered households: their address, sources and welfare card, adding, removing and transferring
members, closing and assigning them. The rules: who may change which household, one open household per citizen ID
(`registration`), exactly one head, optimistic concurrency (If-Match, and a conditional UPDATE of the version), and
an event for every change."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from services.registry.households.events import publish
from services.registry.households.queries import SOURCE_COLUMNS, CallerWithPurpose, HouseholdRecord, load, sources_of
from services.registry.households.registration import ensure_not_registered, flush, member_row, village_in_areas
from services.registry.households.schemas import HouseholdPatch, MemberIn, MemberPatch
from services.registry.models import Household, Member, Team
from shared.clock import utcnow
from shared.db import rowcount
from shared.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from shared.etag import check_if_match
from shared.events.registry import (
    HOUSEHOLD_ASSIGNED,
    HOUSEHOLD_CLOSED,
    HOUSEHOLD_UPDATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MEMBER_TRANSFERRED,
    Relation,
    RemovalReason,
)
from shared.ids import new_id
from shared.pii import CitizenIdProtector


async def claim(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, if_match: str | None,
                required: bool = True) -> HouseholdRecord:
    """Load an open household for a change and take its next version, if If-Match names the current one."""
    record = await _open_for_change(session, caller=caller, household_id=household_id, if_match=if_match,
                                    required=required)
    await take_next_version(session, record.household)
    return record


async def _open_for_change(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, if_match: str | None,
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


async def change(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, body: HouseholdPatch,
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
            household.village_code = village_in_areas(caller.principal, code, number)
            household.province_code, household.district_code = code[:2], code[:4]
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
    await flush(session)
    await publish(session, HOUSEHOLD_UPDATED, record, changed=changed)
    return record


async def set_key(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, household_key: str,
                  ) -> HouseholdRecord | None:
    """Give an open household registered before keys were kept its importer's key (importing its file again):
    `household.updated` says `household_key` changed. None if it has a key already or is closed; 412
    (PreconditionFailed) if it changed at the same moment."""
    record = await load(session, caller=caller, household_id=household_id)
    if record.household.household_key is not None or record.household.status != "open":
        return None
    await take_next_version(session, record.household)
    record.household.household_key = household_key
    await flush(session)
    await publish(session, HOUSEHOLD_UPDATED, record, changed=["household_key"])
    return record


async def add_member(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, body: MemberIn,
                     if_match: str | None, protector: CitizenIdProtector) -> tuple[HouseholdRecord, Member]:
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    if body.relation is Relation.head:
        raise Unprocessable("The household already has a head; add the person with another relation.",
                            errors=[{"field": "relation", "message": "the household already has a head"}])
    await ensure_not_registered(session, principal=caller.principal, lookups=[protector.hashes(body.citizen_id)])
    position = await _next_position(session, household_id)
    member = Member(**member_row(household_id, position, body, protector, utcnow()))
    session.add(member)
    await flush(session)
    record.members.append(member)
    await publish(session, MEMBER_ADDED, record, member_id=member.id)
    return record, member


async def _next_position(session: AsyncSession, household_id: str) -> int:
    highest = (await session.execute(
        select(func.max(col(Member.position))).where(col(Member.household_id) == household_id)
    )).scalar_one_or_none()
    return (highest or 0) + 1


async def change_member(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, member_id: str,
                        body: MemberPatch, if_match: str | None) -> HouseholdRecord:
    """Change a current member's contact phone. `household.updated` says `members.phone` changed, never the
    number; a patch that changes nothing keeps the version and publishes nothing."""
    record = await _open_for_change(session, caller=caller, household_id=household_id, if_match=if_match)
    member = next((m for m in record.members if m.id == member_id), None)
    if member is None:
        raise NotFound(f"Household {household_id} has no current member {member_id}.")
    if member.phone == body.phone:
        return record
    await take_next_version(session, record.household)
    member.phone = body.phone
    await flush(session)
    await publish(session, HOUSEHOLD_UPDATED, record, changed=["members.phone"])
    return record


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


async def remove_member(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, member_id: str,
                        reason: RemovalReason, new_head_member_id: str | None, if_match: str | None,
                        ) -> HouseholdRecord:
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    member = _take_out(record, member_id, new_head_member_id)
    member.active, member.removed_reason, member.removed_at = False, reason.value, utcnow()
    await flush(session)
    await publish(session, MEMBER_REMOVED, record, member_id=member.id, reason=reason)
    return record


async def transfer_member(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, member_id: str,
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
    await flush(session)  # free the citizen ID before it joins the other household
    moved = Member(
        id=new_id(), household_id=to_household_id, position=await _next_position(session, to_household_id),
        citizen_id_enc=member.citizen_id_enc, citizen_id_hash=member.citizen_id_hash, title=member.title,
        first_name=member.first_name, last_name=member.last_name, first_name_key=member.first_name_key,
        last_name_key=member.last_name_key, sex=member.sex, birth_date=member.birth_date,
        relation=relation.value, disability=member.disability, phone=member.phone, active=True, created_at=now,
    )
    session.add(moved)
    await flush(session)
    target.members.append(moved)
    await publish(session, MEMBER_TRANSFERRED, source, member_id=member.id, to_household_id=to_household_id)
    await publish(session, MEMBER_ADDED, target, member_id=moved.id, transferred_from=household_id)
    return source, target


async def close(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, reason: str,
                if_match: str | None) -> HouseholdRecord:
    """Close the household; its members' citizen IDs are free to join another household."""
    record = await claim(session, caller=caller, household_id=household_id, if_match=if_match)
    household = record.household
    household.status, household.closed_reason, household.closed_at = "closed", reason, utcnow()
    for member in record.members:
        member.active = False
    await flush(session)
    await publish(session, HOUSEHOLD_CLOSED, record, reason=reason)
    return record


async def assign(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str, team_id: str,
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
    await flush(session)
    await publish(session, HOUSEHOLD_ASSIGNED, record, buddy_official=buddy_official)
    return record
