"""The registry's view of what other services say: the referrals of the assistance service (`referral.created`,
`referral.updated`), so it knows which partner's client may read which household's contact (`partners`). The
newest version of each referral wins, so a redelivered, replayed or late event changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import Table, func
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import ReferralAccess
from shared.bus import Handlers
from shared.clock import utcnow
from shared.db import newer_upsert
from shared.events.assistance import REFERRAL_CREATED, REFERRAL_UPDATED, ReferralCreated
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent

handlers = Handlers(Catalogue())
REFERRAL_ACCESS: Table = ReferralAccess.__table__  # type: ignore[attr-defined]


@handlers.on_batch(REFERRAL_CREATED, REFERRAL_UPDATED)
async def referral_changed(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
    """Keep each referral's newest version: its household, partner, partner's client and status. A redelivered
    or late event (a version already kept or older) changes nothing."""
    newest: dict[str, ReferralCreated] = {}
    for _, payload in items:
        assert isinstance(payload, ReferralCreated)
        held = newest.get(payload.referral_id)
        if held is None or payload.version > held.version:
            newest[payload.referral_id] = payload
    if not newest:
        return
    now = utcnow()
    await session.execute(newer_upsert(
        session, REFERRAL_ACCESS, ("referral_id",), ("partner_id", "status", "version", "updated_at"),
        lambda new: REFERRAL_ACCESS.c.version < new.version,
        # An update that does not name the partner's client keeps the one already known.
        partner_client_id=lambda new: func.coalesce(new.partner_client_id, REFERRAL_ACCESS.c.partner_client_id)), [
        {"referral_id": referral_id, "household_id": facts.household_id, "partner_id": facts.partner_id,
         "partner_client_id": facts.partner_client_id, "status": facts.status, "version": facts.version,
         "updated_at": now} for referral_id, facts in sorted(newest.items())])
