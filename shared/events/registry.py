"""Events the registry publishes: about households (topic `registry.household`, key = household id) and
field teams (topic `registry.team`, key = team id).

Every household event carries the household's facts after the change (a snapshot), so a consumer can keep
its projection by upserting, and `version` lets it ignore a stale one. No names, no address line,
no raw citizen ID: members are identified by id and by the keyed citizen-ID hash (see shared.pii).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.events.catalogue import Catalogue

TOPIC = "registry.household"
TEAM_TOPIC = "registry.team"


class Source(StrEnum):
    """Why a household is on the register (the source document's approach 2)."""

    tpmap = "tpmap"
    exclusion_error = "exclusion_error"
    vulnerable = "vulnerable"
    other = "other"


class Sex(StrEnum):
    male = "male"
    female = "female"


class Relation(StrEnum):
    head = "head"
    spouse = "spouse"
    child = "child"
    parent = "parent"
    relative = "relative"
    other = "other"


class RemovalReason(StrEnum):
    deceased = "deceased"
    moved_out = "moved_out"
    data_error = "data_error"


class MemberFacts(BaseModel):
    """What other services may know of a member: enough to derive age bands and eligibility."""

    member_id: str
    citizen_id_hash: str = Field(description="HMAC-SHA256 of the citizen ID with the shared PII hash key (hex)")
    sex: Sex
    birth_date: date
    relation: Relation
    disability: bool


class HouseholdFacts(BaseModel):
    """A household as it stands after the change."""

    household_id: str
    household_key: str | None = Field(
        default=None, description="the importer's own key of the household (the registry import file's "
                                  "`household_key`), unique in the registry; null if registered by hand. Added "
                                  "to version 1 as an optional field: a consumer that does not know it ignores it")
    version: int
    status: str = Field(description="open or closed")
    province_code: str
    district_code: str
    subdistrict_code: str
    village_no: int
    village_code: str = Field(description="sub-district code + two-digit village number (หมู่ที่)")
    sources: list[Source]
    welfare_card: bool
    team_id: str | None = None
    members: list[MemberFacts] = Field(description="current members; removed ones are not listed")


class HouseholdRegistered(HouseholdFacts):
    """A household was registered (by hand or by a bulk import)."""


class HouseholdUpdated(HouseholdFacts):
    """Household fields changed (address, sources, welfare card)."""

    changed: list[str]


class MemberAdded(HouseholdFacts):
    """A person joined the household (newly, or transferred from another household)."""

    member_id: str
    transferred_from: str | None = None


class MemberRemoved(HouseholdFacts):
    """A person left the household."""

    member_id: str
    reason: RemovalReason


class MemberTransferred(HouseholdFacts):
    """A person moved from this household to another (which publishes `member_added`)."""

    member_id: str
    to_household_id: str


class HouseholdClosed(HouseholdFacts):
    """The household no longer exists as such (moved away, merged, data error)."""

    reason: str


class HouseholdAssigned(HouseholdFacts):
    """A field team and a buddy official now follow the household."""

    buddy_official: str | None = None


class TeamCreated(BaseModel):
    """A field operations team (ทีมปฏิบัติการ) was set up in a district. Its people's names stay in the registry."""

    team_id: str
    province_code: str
    district_code: str
    subdistrict_codes: list[str] = Field(description="the sub-districts it covers")
    member_count: int


REGISTRY_EVENTS = Catalogue()


HOUSEHOLD_REGISTERED = REGISTRY_EVENTS.define(
    "household.registered", topic=TOPIC, producer="registry", aggregate="household", payload=HouseholdRegistered)
HOUSEHOLD_UPDATED = REGISTRY_EVENTS.define(
    "household.updated", topic=TOPIC, producer="registry", aggregate="household", payload=HouseholdUpdated)
MEMBER_ADDED = REGISTRY_EVENTS.define(
    "household.member_added", topic=TOPIC, producer="registry", aggregate="household", payload=MemberAdded)
MEMBER_REMOVED = REGISTRY_EVENTS.define(
    "household.member_removed", topic=TOPIC, producer="registry", aggregate="household", payload=MemberRemoved)
MEMBER_TRANSFERRED = REGISTRY_EVENTS.define(
    "household.member_transferred", topic=TOPIC, producer="registry", aggregate="household",
    payload=MemberTransferred)
HOUSEHOLD_CLOSED = REGISTRY_EVENTS.define(
    "household.closed", topic=TOPIC, producer="registry", aggregate="household", payload=HouseholdClosed)
HOUSEHOLD_ASSIGNED = REGISTRY_EVENTS.define(
    "household.assigned", topic=TOPIC, producer="registry", aggregate="household", payload=HouseholdAssigned)
# What consumers that keep households subscribe to (every event above carries the household's snapshot).
HOUSEHOLD_EVENTS = tuple(t for t in REGISTRY_EVENTS.types.values() if t.topic == TOPIC)
TEAM_CREATED = REGISTRY_EVENTS.define(
    "team.created", topic=TEAM_TOPIC, producer="registry", aggregate="team", payload=TeamCreated)


def newest_snapshots(payloads: Iterable[BaseModel]) -> dict[str, HouseholdFacts]:
    """Fold a batch of registry events to each household's newest snapshot (highest version)."""
    newest: dict[str, HouseholdFacts] = {}
    for payload in payloads:
        assert isinstance(payload, HouseholdFacts)
        held = newest.get(payload.household_id)
        if held is None or payload.version > held.version:
            newest[payload.household_id] = payload
    return newest
