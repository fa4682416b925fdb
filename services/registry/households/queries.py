"""Reading the register: who asks, a household with its current members, in the caller's areas only (a household
elsewhere answers as one that does not exist), lists with filters and a cursor, probable duplicate people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.registry.models import Household, Member
from shared.auth import Principal, area_clause
from shared.errors import BadRequest, NotFound
from shared.events.registry import Source
from shared.pagination import PageRequest, decode_key, encode_key
from shared.text import name_key

SOURCE_COLUMNS = {
    Source.tpmap: "source_tpmap",
    Source.exclusion_error: "source_exclusion_error",
    Source.vulnerable: "source_vulnerable",
    Source.other: "source_other",
}


@dataclass(frozen=True)
class CallerWithPurpose:
    """Who is asking, and the purpose they declared for reading personal data (X-Purpose)."""

    principal: Principal
    purpose: str | None = None


@dataclass
class HouseholdRecord:
    """A household with its current members (those not individually removed), in order."""

    household: Household
    members: list[Member]
    # Citizen IDs this request brought (member id -> digits): shown from here rather than decrypted again.
    citizen_ids: dict[str, str] = field(default_factory=dict)


def sources_of(household: Household) -> list[Source]:
    return [source for source, column in SOURCE_COLUMNS.items() if getattr(household, column)]


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


async def load(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str) -> HouseholdRecord:
    """The household if the caller's areas include it; 404 otherwise, so its existence does not leak."""
    household = await session.get(Household, household_id)
    if household is None or not caller.principal.can_see(household.village_code):
        raise NotFound(f"There is no household {household_id} in your areas.")
    return HouseholdRecord(household, (await _members_of(session, [household_id]))[household_id])


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


def _conditions(caller: CallerWithPurpose, f: HouseholdFilter) -> list[ColumnElement[bool]]:
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
    session: AsyncSession, *, caller: CallerWithPurpose, filters: HouseholdFilter, after: str | None, limit: int
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


async def probable_duplicates(session: AsyncSession, *, caller: CallerWithPurpose, page: PageRequest,
                              ) -> tuple[list[list[Member]], str | None]:
    """A page of the groups of current members sharing name and birth date but not citizen ID, in the caller's
    areas, by last name, first name and birth date; and the next cursor (the last group's key)."""
    visible = select(col(Household.id)).where(area_clause(caller.principal, Household.village_code),
                                              col(Household.status) == "open")
    # Names are compared on their keys: the same name typed with a decomposed SARA AM or a zero-width space is
    # the same name.
    first, last, born = col(Member.first_name_key), col(Member.last_name_key), col(Member.birth_date)
    current = (col(Member.active).is_(True), col(Member.household_id).in_(visible))
    groups_query = (select(first, last, born).where(*current).group_by(first, last, born)
                    .having(func.count(func.distinct(col(Member.citizen_id_hash))) > 1))
    if (after := decode_key(page.cursor, 3)) is not None:
        a_last, a_first, a_born = after[0], after[1], _cursor_date(after[2])
        groups_query = groups_query.where(or_(last > a_last, and_(last == a_last, first > a_first),
                                              and_(last == a_last, first == a_first, born > a_born)))
    keys = groups_query.order_by(last, first, born).limit(page.limit + 1).subquery()
    rows = (await session.execute(
        select(Member)
        .join(keys, and_(first == keys.c.first_name_key, last == keys.c.last_name_key, born == keys.c.birth_date))
        .where(*current).order_by(last, first, born, col(Member.household_id))
    )).scalars()
    groups: dict[tuple[Any, ...], list[Member]] = {}
    for member in rows:
        groups.setdefault((member.last_name_key, member.first_name_key, member.birth_date), []).append(member)
    found = list(groups.values())[:page.limit]
    if len(groups) <= page.limit:
        return found, None
    tail = found[-1][0]
    return found, encode_key([tail.last_name_key, tail.first_name_key, tail.birth_date.isoformat()])


def _cursor_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor") from None


