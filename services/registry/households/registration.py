"""Putting people on the register: one rule for `POST /v1/households`, for adding a member and for the bulk importer.

A citizen ID belongs to at most one open household. `prepare` checks a new household's address against the
caller's areas and builds everything that is written (the household's row, its members' rows with the citizen
IDs encrypted and hashed, the `household.registered` event) without the database, so the importer runs it in a
thread. `find_holders` finds the open households already holding some people, in one query for a whole chunk
of an import. Then `register` writes one household (the API) and `write_many` many at once by the driver's bulk
path (the importer). Registering is a citizen-ID lookup: a refusal names the holder only inside the caller's
areas, and `audit_conflicts` writes it to the audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry.households.disclosure import audit
from services.registry.households.events import facts
from services.registry.households.queries import SOURCE_COLUMNS, CallerWithPurpose, HouseholdRecord
from services.registry.households.schemas import HouseholdCreate, MemberIn
from services.registry.models import Household, Member, metadata, outbox
from shared import areas
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import among, bulk_insert
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.pii import CitizenIdProtector
from shared.text import name_key

HOUSEHOLD_TABLE = metadata.tables["household"]
MEMBER_TABLE = metadata.tables["member"]



class UnknownSubdistrict(Unprocessable):
    """An address in a sub-district that does not exist."""

    def __init__(self, code: str) -> None:
        super().__init__(f"There is no sub-district {code}.",
                         errors=[{"field": "address.subdistrict_code", "message": "unknown sub-district code"}])
        self.code = code


class OutsideAreas(Forbidden):
    """An address outside the areas granted to the caller."""

    def __init__(self, code: str, principal: Principal) -> None:
        super().__init__(f"Area {code} is outside the areas granted to client {principal.client_id!r}.")
        self.code = code


def subdistrict(code: str) -> areas.Area:
    """The sub-district of a DOPA code (`UnknownSubdistrict` if there is none)."""
    found = areas.find(code) if len(code) == 6 else None
    if found is None:
        raise UnknownSubdistrict(code)
    return found


def village_in_areas(principal: Principal, subdistrict_code: str, village_no: int) -> str:
    """The village code of an address a household may be registered at or moved to by this caller: a known
    sub-district (`UnknownSubdistrict`), inside the caller's areas (`OutsideAreas`)."""
    subdistrict(subdistrict_code)
    code = areas.village_code(subdistrict_code, village_no)
    if not principal.can_see(code):
        raise OutsideAreas(code, principal)
    return code



class CitizenIdRegistered(Conflict):
    """A person being registered is already in an open household. Registering is a citizen-ID lookup (it needs
    `registry:lookup`, and the routes write it to the audit log); the answer is the same wherever the holder
    lies, naming the household only when it is in the caller's areas (as a lookup there would)."""

    def __init__(self, holder_id: str, visible: bool) -> None:
        super().__init__("This citizen ID already belongs to an open household.", type_slug="citizen-id-registered")
        if visible:
            self.extensions["household_id"] = holder_id
        self.holder_id = holder_id


def conflict_message(holder_id: str, visible: bool) -> str:
    """What an import says of a row whose person is already registered: the same rule as `CitizenIdRegistered`."""
    return f"already in open household {holder_id}" if visible else "already in an open household"


@dataclass
class Holders:
    """The open households holding some citizen IDs, and where those households are."""

    by_hash: dict[str, str]  # citizen-ID hash → household id
    villages: dict[str, str]  # household id → village code
    keys: dict[str, str | None] = field(default_factory=dict)  # household id → its importer's key

    def of(self, lookups: Sequence[Sequence[str]]) -> list[str | None]:
        """Each person's open household, or None; a person is their citizen ID's hashes under every key."""
        return [next((self.by_hash[h] for h in hashes if h in self.by_hash), None) for hashes in lookups]

    def visible(self, holder_id: str, principal: Principal) -> bool:
        """Whether the caller may be told which household holds the person (it is in the caller's areas)."""
        village = self.villages.get(holder_id)
        return village is not None and principal.can_see(village)


async def find_holders(session: AsyncSession, hashes: Collection[str]) -> Holders:
    """The open households holding any of these citizen-ID hashes (two queries, however many)."""
    holders = Holders({}, {})
    if hashes:
        found = await session.execute(select(col(Member.citizen_id_hash), col(Member.household_id)).where(
            among(session, col(Member.citizen_id_hash), hashes), col(Member.active).is_(True)))
        holders.by_hash = {hash_: household_id for hash_, household_id in found.all()}
    if holders.by_hash:
        found = await session.execute(select(col(Household.id), col(Household.village_code),
                                             col(Household.household_key)).where(
            among(session, col(Household.id), set(holders.by_hash.values()))))
        rows: Sequence[Any] = found.all()
        for household_id, village, key in rows:
            holders.villages[household_id], holders.keys[household_id] = village, key
    return holders


async def find_keys(session: AsyncSession, keys: Collection[str]) -> dict[str, tuple[str, str]]:
    """The households already holding some importer's keys: key → (household id, village code)."""
    if not keys:
        return {}
    found = await session.execute(select(col(Household.household_key), col(Household.id),
                                         col(Household.village_code)).where(
        among(session, col(Household.household_key), keys)))
    return {row[0]: (row[1], row[2]) for row in found.all() if row[0] is not None}


async def ensure_not_registered(session: AsyncSession, *, principal: Principal,
                                lookups: Sequence[Sequence[str]]) -> None:
    """`CitizenIdRegistered` if any of these people is already in an open household."""
    holders = await find_holders(session, {h for hashes in lookups for h in hashes})
    holder = next((h for h in holders.of(lookups) if h is not None), None)
    if holder is not None:
        raise CitizenIdRegistered(holder, holders.visible(holder, principal))


def audit_conflicts(session: AsyncSession, *, caller: CallerWithPurpose, holder_ids: Iterable[str]) -> None:
    """A refused registration was a lookup of the citizen IDs it named: one audit row per household found."""
    for holder_id in sorted(set(holder_ids)):
        audit(session, caller=caller, action="registration_conflict", household_id=holder_id)



@dataclass
class Registration:
    """A household ready to write: its row, its members' rows, its event, and each member's citizen-ID hashes
    under every key (to find the person however their household was hashed)."""

    household: dict[str, Any]
    members: list[dict[str, Any]]
    event: PendingEvent
    lookups: list[tuple[str, ...]]


def member_row(household_id: str, position: int, person: MemberIn, protector: CitizenIdProtector,
               now: datetime, citizen_id_hash: str | None = None) -> dict[str, Any]:
    """A member's row: the citizen ID encrypted and hashed (`citizen_id_hash` if the caller has it already), the
    names kept as typed with their search keys."""
    return {
        "id": new_id(), "household_id": household_id, "position": position,
        "citizen_id_enc": protector.encrypt(person.citizen_id),
        "citizen_id_hash": citizen_id_hash or protector.hash(person.citizen_id),
        "title": person.title, "first_name": person.first_name, "last_name": person.last_name,
        "first_name_key": name_key(person.first_name), "last_name_key": name_key(person.last_name),
        "sex": person.sex.value, "birth_date": person.birth_date, "relation": person.relation.value,
        "disability": person.disability, "phone": person.phone, "active": True, "removed_reason": None,
        "removed_at": None, "transferred_to": None, "created_at": now,
    }


def prepare(principal: Principal, body: HouseholdCreate, protector: CitizenIdProtector, now: datetime, *,
            household_key: str | None = None) -> Registration:
    """All of registering `body` that needs no database (pure CPU): the address checked against the caller's
    areas, the rows and the event; `household_key` is the importer's own key of the household, if any."""
    address = body.address
    code = village_in_areas(principal, address.subdistrict_code, address.village_no)
    household_id = new_id()
    household = {"id": household_id, "province_code": code[:2], "district_code": code[:4],
                 "subdistrict_code": address.subdistrict_code, "village_no": address.village_no, "village_code": code,
                 "house_no": address.house_no, "lat": address.lat, "lon": address.lon,
                 "welfare_card": body.welfare_card, "status": "open", "version": 1, "created_at": now,
                 "updated_at": now, "closed_reason": None, "closed_at": None, "team_id": None,
                 "buddy_official": None, "import_id": None, "household_key": household_key}
    household.update({column: source in body.sources for source, column in SOURCE_COLUMNS.items()})
    lookups = [protector.hashes(m.citizen_id) for m in body.members]
    members = [member_row(household_id, position, m, protector, now, hashes[0])
               for position, (m, hashes) in enumerate(zip(body.members, lookups, strict=True), 1)]
    snapshot = facts(SimpleNamespace(**household), [SimpleNamespace(**m) for m in members])
    event = PendingEvent(HOUSEHOLD_REGISTERED, HOUSEHOLD_REGISTERED.payload.model_validate(snapshot), household_id)
    return Registration(household, members, event, lookups)


@asynccontextmanager
async def concurrent_registration() -> AsyncIterator[None]:
    """The database's own uniqueness check, within, catches a citizen ID registered concurrently: a 409."""
    try:
        yield
    except IntegrityError as exc:
        if "citizen" in str(exc.orig).lower() or "uq_member_active_citizen" in str(exc.orig):
            raise Conflict("This citizen ID was just registered in another open household.",
                           type_slug="citizen-id-registered") from None
        raise


async def flush(session: AsyncSession) -> None:
    """Flush; a citizen ID registered concurrently is a 409 (`concurrent_registration`)."""
    async with concurrent_registration():
        await session.flush()


async def register(session: AsyncSession, *, caller: CallerWithPurpose, body: HouseholdCreate,
                   protector: CitizenIdProtector) -> HouseholdRecord:
    """Register a household with its members; `household.registered` leaves with it."""
    registration = prepare(caller.principal, body, protector, utcnow())
    await ensure_not_registered(session, principal=caller.principal, lookups=registration.lookups)
    # Written as the importer writes its chunks (the ORM's unit of work was a quarter of the request's time); the
    # objects are the answer's.
    async with concurrent_registration():
        await write_many(session, [registration])
    members = [Member(**m) for m in registration.members]
    return HouseholdRecord(Household(**registration.household), members,
                           {m.id: person.citizen_id for m, person in zip(members, body.members, strict=True)})


async def write_many(session: AsyncSession, registrations: Sequence[Registration]) -> None:
    """Write households already checked (`prepare`, `find_holders`) by the driver's bulk path: the importer's
    chunks. A citizen ID registered meanwhile fails the whole write at the database's uniqueness check."""
    if registrations:
        await bulk_insert(session, HOUSEHOLD_TABLE, [r.household for r in registrations])
        await bulk_insert(session, MEMBER_TABLE, [m for r in registrations for m in r.members])
        await outbox.add_many(session, [r.event for r in registrations])
