"""The assistance service's own view of households, kept from the registry's and the assessment's events.

From the registry: area, status, sources and the citizen-ID hashes of the current members (how a payment
by citizen ID finds its household); the newest snapshot version wins. From the assessment service: whether
the household is target poor in its latest assessment (newest survey year, then newest revision). Both
fold a batch first and never write an older fact over a newer one, so redelivery and reordering change
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.models import KnownHousehold, MemberHash
from shared.bus import Handlers
from shared.events.assessment import ASSESSMENT_RECORDED, AssessmentRecorded
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent, utcnow
from shared.events.registry import REGISTRY_EVENTS, HouseholdFacts, newest_snapshots

handlers = Handlers(Catalogue())


async def _rows(session: AsyncSession, ids: Sequence[str]) -> dict[str, KnownHousehold]:
    found = await session.execute(select(KnownHousehold).where(col(KnownHousehold.id).in_(list(ids))))
    return {h.id: h for h in found.scalars()}


@handlers.on_batch(*REGISTRY_EVENTS.types.values())
async def household_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep the newest snapshot of each household and its members' citizen-ID hashes."""
    newest = newest_snapshots(payload for _, payload in items)
    existing = await _rows(session, list(newest))
    changed: list[HouseholdFacts] = []
    for household_id, facts in newest.items():
        row = existing.get(household_id)
        if row is None:
            row = KnownHousehold(id=household_id, updated_at=utcnow())
            session.add(row)
        elif row.version >= facts.version:
            continue
        row.version, row.status = facts.version, facts.status
        row.province_code, row.district_code = facts.province_code, facts.district_code
        row.subdistrict_code, row.village_code = facts.subdistrict_code, facts.village_code
        row.sources = [s.value for s in facts.sources]
        row.updated_at = utcnow()
        changed.append(facts)
    if changed:
        await session.execute(delete(MemberHash).where(col(MemberHash.household_id).in_(
            [f.household_id for f in changed])))
        hashes = [{"citizen_id_hash": m.citizen_id_hash, "household_id": f.household_id}
                  for f in changed if f.status == "open" for m in f.members]
        if hashes:
            await session.execute(insert(MemberHash), hashes)
    await session.flush()


@handlers.on_batch(ASSESSMENT_RECORDED)
async def assessment_recorded(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep whether each household is target poor in its latest assessment."""
    latest: dict[str, AssessmentRecorded] = {}
    for _, payload in items:
        assert isinstance(payload, AssessmentRecorded)
        held = latest.get(payload.household_id)
        if held is None or (payload.survey_year, payload.revision) > (held.survey_year, held.revision):
            latest[payload.household_id] = payload
    existing = await _rows(session, list(latest))
    for household_id, recorded in latest.items():
        row = existing.get(household_id)
        if row is None:  # the registry's event has not arrived yet: keep the assessment for when it does
            row = KnownHousehold(id=household_id, updated_at=utcnow())
            session.add(row)
        elif row.assessed_year is not None and (
                (recorded.survey_year, recorded.revision) <= (row.assessed_year, row.assessed_revision or 0)):
            continue
        row.target_poor = recorded.target_poor
        row.assessed_year, row.assessed_revision = recorded.survey_year, recorded.revision
        row.updated_at = utcnow()
    await session.flush()
