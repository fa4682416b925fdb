"""The assistance service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance import budgets, logbook, partners, timeline
from services.assistance.centres.routes import router as centres
from services.assistance.disbursements.routes import router as disbursements
from services.assistance.models import inbox, metadata, outbox, webhook
from services.assistance.partners import staff_or_partner
from services.assistance.projection import handlers
from services.assistance.referrals.routes import router as referrals
from services.assistance.security import DISBURSEMENTS_READ, READ, security
from services.assistance.settings import AssistanceSettings
from shared.app import ServiceSpec, create_service_app
from shared.auth import Principal
from shared.events.assistance import (
    ASSISTANCE_EVENTS,
    CENTRE_SUBSIDY_RECORDED,
    CENTRE_SUBSIDY_REVERSED,
    DISBURSEMENT_RECORDED,
    DISBURSEMENT_REVERSED,
)
from shared.pii import CitizenIdProtector
from shared.webhooks.routes import Webhooks


async def partner_of(session: AsyncSession, principal: Principal) -> str | None:
    """A subscriber with the read scope is staff (its areas bound it); a partner agency's client subscribes for
    its partner, and receives only the events naming it (referrals addressed to it, help under them)."""
    partner = (await staff_or_partner(session, principal=principal, staff_scope=READ)).partner
    return partner.id if partner is not None else None


SPEC = ServiceSpec(
    name="assistance",
    title="Kaenkhun assistance",
    description="Family grants, centre subsidies, budgets, the ministry's disbursement push, "
    "help from partner agencies.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=ASSISTANCE_EVENTS,
    security=security,
    handlers=handlers,
    # The ministry's reader (every area, no staff scope) hears of the payments it pushed: recorded and reversed.
    webhooks=Webhooks("assistance", webhook, ASSISTANCE_EVENTS, partner_of, reader_types={DISBURSEMENTS_READ: frozenset(
        t.name for t in (DISBURSEMENT_RECORDED, DISBURSEMENT_REVERSED, CENTRE_SUBSIDY_RECORDED,
                         CENTRE_SUBSIDY_REVERSED))}),
    routers=(budgets.router, disbursements, centres, logbook.router, partners.router, referrals, timeline.router),
)


def create_app(settings: AssistanceSettings | None = None) -> FastAPI:
    """Build the assistance app from its settings (read from the environment when not given)."""
    settings = settings or AssistanceSettings()
    app = create_service_app(SPEC, settings)
    app.state.protector = CitizenIdProtector(settings.pii)
    return app
