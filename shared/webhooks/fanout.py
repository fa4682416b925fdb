"""Deliveries from a service's own events: a consumer group of its own (`<service>-webhooks`) reads the topics
the service publishes and writes one delivery per matching subscription, in the transaction of its inbox row
(so each event fans out once; the unique (subscription, event) makes it idempotent anyway).

A subscription matches an event when it lists the event's type (`referral.created`, …), the event's
area lies within one of its areas, and, for a partner agency's subscription, the event names that partner
(`partner_id`). The area of an event is the most precise DOPA code its payload carries (village, sub-district,
district, province, or the budget's area); an event with no area at all matches only subscriptions for every
area ("*"). A disabled subscription still gets its deliveries written (not sent): a redelivery since a time,
which makes it active again, sends what it missed meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.handlers import Handlers
from shared.clock import utcnow
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent
from shared.webhooks.models import WebhookTables

AREA_FIELDS = ("village_code", "subdistrict_code", "district_code", "province_code", "area_code",
               "budget_area_code")


def event_area(data: Mapping[str, Any]) -> str | None:
    for name in AREA_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def matches(subscription: Any, short_type: str, data: Mapping[str, Any]) -> bool:
    if short_type not in subscription.event_types:
        return False
    if subscription.partner_id is not None and data.get("partner_id") != subscription.partner_id:
        return False
    areas: list[str] = subscription.areas
    if "*" in areas:
        return True
    area = event_area(data)
    return area is not None and any(area.startswith(a) for a in areas)


def fanout_handlers(service: str, catalogue: Catalogue, tables: WebhookTables, wakeup: asyncio.Event) -> Handlers:
    """Handlers for every event type `service` publishes, writing their deliveries."""
    owned = [t for t in catalogue.types.values() if t.producer == service]
    short = {t.type: t.name for t in owned}
    handlers = Handlers(Catalogue())

    @handlers.on_batch(*owned)
    async def fan_out(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
        subs = tables.subscriptions
        subscribed = (await session.execute(select(subs))).all()
        if not subscribed:
            return
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for event, _payload in items:
            name = short[event.type]
            body = event.to_json().decode()
            key = event.partitionkey or event.subject or ""
            rows.extend({"subscription_id": s.id, "event_id": event.id, "event_type": name, "key": key,
                         "body": body, "attempts": 0, "next_attempt_at": now, "created_at": now}
                        for s in subscribed if matches(s, name, event.data))
        if not rows:
            return
        deliveries = tables.deliveries
        existing = {(r.subscription_id, r.event_id) for r in (await session.execute(
            select(deliveries.c.subscription_id, deliveries.c.event_id)
            .where(deliveries.c.event_id.in_({r["event_id"] for r in rows})))).all()}
        rows = [r for r in rows if (r["subscription_id"], r["event_id"]) not in existing]
        if rows:
            await session.execute(insert(deliveries), rows)
            wakeup.set()

    return handlers
