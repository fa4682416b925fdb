"""The assessment service's own view of households, kept from the registry's events.

Each registry event carries the household as it stands after the change, with its version: a batch is
folded to the newest snapshot per household and written only over an older one, so redelivery and
reordering change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from types import SimpleNamespace

from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import KnownHousehold
from services.assessment.scoring import Person
from shared.bus import Handlers
from shared.clock import utcnow
from shared.db import newer_upsert
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent
from shared.events.registry import HOUSEHOLD_EVENTS, newest_snapshots

handlers = Handlers(Catalogue())
HOUSEHOLD: Table = KnownHousehold.__table__  # type: ignore[attr-defined]

# A household as this service knows it: the ORM row, or (in a bulk import) its column values as attributes.
Known = KnownHousehold | SimpleNamespace


@handlers.on_batch(*HOUSEHOLD_EVENTS)
async def household_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Upsert the newest snapshot of each household in the batch over an older one (never over a newer one):
    one statement for the batch."""
    newest = newest_snapshots(payload for _, payload in items)
    if not newest:
        return
    now = utcnow()
    rows = [{"id": household_id, "household_key": facts.household_key, "version": facts.version,
             "status": facts.status, "province_code": facts.province_code, "district_code": facts.district_code,
             "subdistrict_code": facts.subdistrict_code, "village_code": facts.village_code,
             "welfare_card": facts.welfare_card, "sources": [s.value for s in facts.sources],
             "members": [{"member_id": m.member_id, "birth_date": m.birth_date.isoformat(),
                          "disability": m.disability} for m in facts.members],
             "updated_at": now} for household_id, facts in sorted(newest.items())]
    await session.execute(newer_upsert(session, HOUSEHOLD, ("id",), [name for name in rows[0] if name != "id"],
                                       lambda new: HOUSEHOLD.c.version < new.version), rows)


def persons(household: Known) -> list[Person]:
    """The household's current members, as scoring needs them."""
    return [Person(date.fromisoformat(m["birth_date"]), bool(m["disability"])) for m in household.members]
