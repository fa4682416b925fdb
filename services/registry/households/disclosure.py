"""Revealing personal data: a household as the caller may see it (citizen IDs masked without `pii:read`), probable
duplicates, the household of a citizen ID, and the audit row every unmasked read and every lookup writes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.registry.households.queries import CallerWithPurpose, HouseholdRecord, load, sources_of
from services.registry.households.schemas import (
    AddressOut,
    DuplicatePerson,
    HouseholdOut,
    MemberOut,
    ProbableDuplicate,
)
from services.registry.models import AuditEntry, Member
from services.registry.security import PII_READ
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import NotFound
from shared.events.registry import Relation, Sex
from shared.observability import get_correlation_id
from shared.pii import CitizenIdProtector, format_phone, mask_citizen_id, mask_phone


def audit_reads(session: AsyncSession, *, caller: CallerWithPurpose, household_ids: Iterable[str],
                action: str = "pii_read") -> bool:
    """Whether the caller sees citizen IDs whole (pii:read); if so, the audit row of each household whose people
    it is about to see, in the caller's transaction. The routes call it before they present."""
    unmasked = caller.principal.has_scope(PII_READ)
    if unmasked:
        for household_id in household_ids:
            audit(session, caller=caller, action=action, household_id=household_id)
    return unmasked


def present(record: HouseholdRecord, *, unmasked: bool, protector: CitizenIdProtector) -> HouseholdOut:
    """The household with its citizen IDs whole or masked (no side effect: the route writes the audit row)."""
    household = record.household
    members = []
    for m in record.members:
        members.append(MemberOut(
            id=m.id, citizen_id=_shown(m, unmasked, protector, record.citizen_ids.get(m.id)),
            citizen_id_masked=not unmasked,
            title=m.title, first_name=m.first_name, last_name=m.last_name, sex=Sex(m.sex),
            birth_date=m.birth_date, relation=Relation(m.relation), disability=m.disability,
            phone=_phone_shown(m.phone, unmasked, protector),
        ))
    return HouseholdOut(
        id=household.id, household_key=household.household_key, version=household.version, status=household.status,
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


def _shown(member: Member, unmasked: bool, protector: CitizenIdProtector, known: str | None = None) -> str:
    digits = known or protector.decrypt(member.citizen_id_enc)
    return digits if unmasked else mask_citizen_id(digits, protector.mask_shown_digits)


def _phone_shown(digits: str | None, unmasked: bool, protector: CitizenIdProtector) -> str | None:
    if digits is None:
        return None
    return format_phone(digits) if unmasked else mask_phone(digits, protector.mask_shown_digits)


def present_duplicates(groups: list[list[Member]], *, unmasked: bool, protector: CitizenIdProtector,
                       ) -> list[ProbableDuplicate]:
    """Duplicate groups with their citizen IDs whole or masked (the route audits each household shown whole)."""
    return [
        ProbableDuplicate(
            first_name=group[0].first_name, last_name=group[0].last_name, birth_date=group[0].birth_date,
            people=[DuplicatePerson(household_id=m.household_id, member_id=m.id,
                                    citizen_id=_shown(m, unmasked, protector)) for m in group],
        )
        for group in groups
    ]


def audit(session: AsyncSession, *, caller: CallerWithPurpose, action: str, household_id: str | None) -> None:
    """Record a read of personal data in the caller's transaction."""
    session.add(AuditEntry(
        at=utcnow(), client_id=caller.principal.client_id, action=action, household_id=household_id,
        purpose=caller.purpose, correlation_id=get_correlation_id(),
    ))


async def lookup(session: AsyncSession, *, caller: CallerWithPurpose, citizen_id: str, protector: CitizenIdProtector,
                 ) -> HouseholdRecord:
    """The open household holding this citizen ID, if it is in the caller's areas."""
    household_id = await holder(session, citizen_id=citizen_id, protector=protector)
    # Every lookup is a use of a citizen ID: audited whether or not it finds anything.
    audit(session, caller=caller, action="lookup", household_id=None)
    if household_id is None:
        raise NotFound("No open household in your areas has this citizen ID.")
    try:
        return await load(session, caller=caller, household_id=household_id)
    except NotFound:
        raise NotFound("No open household in your areas has this citizen ID.") from None


async def holder(session: AsyncSession, *, citizen_id: str, protector: CitizenIdProtector) -> str | None:
    """The id of the open household holding this citizen ID, wherever it is (the caller decides what to tell)."""
    found: str | None = (await session.execute(
        select(col(Member.household_id)).where(col(Member.citizen_id_hash).in_(protector.hashes(citizen_id)),
                                               col(Member.active).is_(True))
    )).scalar_one_or_none()
    return found
