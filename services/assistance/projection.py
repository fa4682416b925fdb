"""The assistance service's own view of households, kept from the registry's and the assessment's events.

From the registry: area, status, sources and the citizen-ID hashes of the current members (how a payment
by citizen ID finds its household); the newest snapshot version wins. From the assessment service: whether
the household is target poor in its latest assessment (newest survey year, then newest revision). Both
fold a batch first and never write an older fact over a newer one, so redelivery and reordering change
nothing. Every event about a household is also kept as a line of its history (`household_history`, keyed by
the event id), for the household's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.models import HistoryEntry, KnownHousehold, MemberHash
from shared.bus import Handlers
from shared.clock import utcnow
from shared.events.assessment import (
    ASSESSMENT_RECORDED,
    POVERTY_STATUS_CHANGED,
    AssessmentRecorded,
    PovertyStatusChanged,
)
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent
from shared.events.registry import HOUSEHOLD_EVENTS, HouseholdFacts, newest_snapshots

handlers = Handlers(Catalogue())

# What the timeline keeps of a registry event besides its own fields: no member details, only their number.
_REGISTRY_KEPT = ("version", "status", "village_code", "sources", "welfare_card", "team_id")


# -- rules --


def _details(payload: BaseModel) -> tuple[str, dict[str, object], date | None]:
    """(source, details, the day it happened in the field if the event says) of one event for the history;
    every event kept names its household in `household_id`."""
    if isinstance(payload, HouseholdFacts):
        own = payload.model_dump(mode="json", exclude=set(HouseholdFacts.model_fields))
        return "registry", payload.model_dump(mode="json", include=set(_REGISTRY_KEPT)) | {
            "members": len(payload.members)} | own, None
    if isinstance(payload, AssessmentRecorded):
        return "assessment", {
            "assessment_id": payload.assessment_id, "survey_year": payload.survey_year, "revision": payload.revision,
            "indicator_set": payload.indicator_set, "target_poor": payload.target_poor, "poor": payload.poor,
            "severity": payload.severity, "score": payload.score,
            "deprived": sorted(d for d, deprived in payload.dimensions.items() if deprived)}, payload.surveyed_on
    assert isinstance(payload, PovertyStatusChanged)
    return "assessment", payload.model_dump(mode="json", exclude={"household_id", "village_code"}), None


async def _keep_history(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    rows = []
    for event, payload in items:
        source, details, happened_on = _details(payload)
        household_id = payload.household_id  # type: ignore[attr-defined]
        short = handlers.catalogue.types[event.type].name  # household.registered, not its CloudEvents type
        rows.append({"event_id": event.id, "household_id": household_id, "type": short, "source": source,
                     "occurred_at": event.time, "happened_on": happened_on, "details": details})
    if rows:
        await session.execute(insert(HistoryEntry), rows)


async def _rows(session: AsyncSession, ids: Sequence[str]) -> dict[str, KnownHousehold]:
    found = await session.execute(select(KnownHousehold).where(col(KnownHousehold.id).in_(list(ids))))
    return {h.id: h for h in found.scalars()}


@handlers.on_batch(*HOUSEHOLD_EVENTS)
async def household_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep the newest snapshot of each household and its members' citizen-ID hashes."""
    await _keep_history(session, items)
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
    await _keep_history(session, items)
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


@handlers.on_batch(POVERTY_STATUS_CHANGED)
async def poverty_status_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep entries into and exits from poverty on the households' timelines."""
    await _keep_history(session, items)
    await session.flush()
