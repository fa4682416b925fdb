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
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.models import HistoryEntry, KnownHousehold, MemberHash
from shared.bus import Handlers
from shared.clock import utcnow
from shared.db import bulk_insert, newer_upsert
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
HOUSEHOLD: Table = KnownHousehold.__table__  # type: ignore[attr-defined]
MEMBER_HASH: Table = MemberHash.__table__  # type: ignore[attr-defined]
HISTORY: Table = HistoryEntry.__table__  # type: ignore[attr-defined]
# What each side's events replace in a household's row; neither touches the other's.
_SNAPSHOT = ("version", "status", "province_code", "district_code", "subdistrict_code", "village_code", "sources",
             "updated_at")
_ASSESSED = ("target_poor", "assessed_year", "assessed_revision", "updated_at")


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
    await bulk_insert(session, HISTORY, rows)


def _unknown(household_id: str, now: datetime) -> dict[str, Any]:
    """A household row before either service has said anything of it."""
    return {"id": household_id, "version": 0, "status": "unknown", "province_code": "", "district_code": "",
            "subdistrict_code": "", "village_code": "", "sources": [], "target_poor": None, "assessed_year": None,
            "assessed_revision": None, "updated_at": now}


@handlers.on_batch(*HOUSEHOLD_EVENTS)
async def household_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep the newest snapshot of each household and its members' citizen-ID hashes: one statement per table
    for the batch."""
    await _keep_history(session, items)
    newest = newest_snapshots(payload for _, payload in items)
    held = dict((await session.execute(select(HOUSEHOLD.c.id, HOUSEHOLD.c.version).where(
        HOUSEHOLD.c.id.in_(list(newest))))).all())
    changed = sorted((f for f in newest.values() if held.get(f.household_id, -1) < f.version),
                     key=lambda f: f.household_id)  # sorted: replicas lock rows in the same order
    if not changed:
        return
    now = utcnow()
    await session.execute(newer_upsert(session, HOUSEHOLD, ("id",), _SNAPSHOT,
                                       lambda new: HOUSEHOLD.c.version < new.version), [
        _unknown(f.household_id, now) | {
            "version": f.version, "status": f.status, "province_code": f.province_code,
            "district_code": f.district_code, "subdistrict_code": f.subdistrict_code, "village_code": f.village_code,
            "sources": [s.value for s in f.sources]} for f in changed])
    await session.execute(delete(MEMBER_HASH).where(MEMBER_HASH.c.household_id.in_(
        [f.household_id for f in changed])))
    await bulk_insert(session, MEMBER_HASH, [{"citizen_id_hash": m.citizen_id_hash, "household_id": f.household_id}
                                             for f in changed if f.status == "open" for m in f.members])


@handlers.on_batch(ASSESSMENT_RECORDED, POVERTY_STATUS_CHANGED)
async def assessment_events(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep whether each household is target poor in its latest assessment (newest survey year, then newest
    revision), and every assessment and every entry into or exit from poverty on the households' timelines.
    One handler for the topic's two types, as they come interleaved: one statement per table for the batch."""
    await _keep_history(session, items)
    latest: dict[str, AssessmentRecorded] = {}
    for _, payload in items:
        if not isinstance(payload, AssessmentRecorded):
            continue
        held = latest.get(payload.household_id)
        if held is None or (payload.survey_year, payload.revision) > (held.survey_year, held.revision):
            latest[payload.household_id] = payload
    if not latest:
        return
    now = utcnow()
    # A household the registry's event has not reached yet gets a row of its own, for when it does.
    await session.execute(newer_upsert(
        session, HOUSEHOLD, ("id",), _ASSESSED, lambda new: or_(
            HOUSEHOLD.c.assessed_year.is_(None),
            tuple_(HOUSEHOLD.c.assessed_year, func.coalesce(HOUSEHOLD.c.assessed_revision, 0))
            < tuple_(new.assessed_year, new.assessed_revision))), [
        _unknown(household_id, now) | {"target_poor": r.target_poor, "assessed_year": r.survey_year,
                                       "assessed_revision": r.revision}
        for household_id, r in sorted(latest.items())])
