"""The events a change publishes: a snapshot of the household with no names, no house number and no raw citizen
ID, written to the outbox in the change's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.households.queries import HouseholdRecord, sources_of
from services.registry.models import outbox
from shared.events.catalogue import EventType


def facts(h: Any, members: Sequence[Any]) -> dict[str, Any]:
    """The snapshot of household `h` and its current `members` (rows or objects with the columns as
    attributes) for events: no names, no house number, no raw citizen ID."""
    return {
        "household_id": h.id, "household_key": h.household_key, "version": h.version, "status": h.status,
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
