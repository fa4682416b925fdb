"""The registry's view of what other services say: the referrals of the assistance service (`referral.created`,
`referral.updated`), so it knows which partner's client may read which household's contact (`partners`). The
newest version of each referral wins, so a redelivered, replayed or late event changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry.models import ReferralAccess
from shared.bus import Handlers
from shared.clock import utcnow
from shared.events.assistance import REFERRAL_CREATED, REFERRAL_UPDATED, ReferralCreated
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent

handlers = Handlers(Catalogue())


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
    existing = {r.referral_id: r for r in (await session.execute(
        select(ReferralAccess).where(col(ReferralAccess.referral_id).in_(list(newest))))).scalars()}
    for referral_id, facts in newest.items():
        row = existing.get(referral_id)
        if row is None:
            row = ReferralAccess(referral_id=referral_id, household_id=facts.household_id,
                                 partner_id=facts.partner_id, status=facts.status, version=facts.version,
                                 updated_at=utcnow())
            session.add(row)
        elif row.version >= facts.version:
            continue
        row.status, row.version, row.updated_at = facts.status, facts.version, utcnow()
        row.partner_id = facts.partner_id
        if facts.partner_client_id is not None:
            row.partner_client_id = facts.partner_client_id
    await session.flush()
