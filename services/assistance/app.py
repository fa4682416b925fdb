"""The assistance service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.assistance import budgets, logbook, partners, timeline
from services.assistance.centres.routes import router as centres
from services.assistance.disbursements.routes import router as disbursements
from services.assistance.models import inbox, metadata, outbox
from services.assistance.projection import handlers
from services.assistance.referrals.routes import router as referrals
from services.assistance.security import security
from services.assistance.settings import AssistanceSettings
from shared.app import ServiceSpec, create_service_app
from shared.events.assistance import ASSISTANCE_EVENTS
from shared.pii import CitizenIdProtector

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
    routers=(budgets.router, disbursements, centres, logbook.router, partners.router, referrals, timeline.router),
)


def create_app(settings: AssistanceSettings | None = None) -> FastAPI:
    """Build the assistance app from its settings (read from the environment when not given)."""
    settings = settings or AssistanceSettings()
    app = create_service_app(SPEC, settings)
    app.state.protector = CitizenIdProtector(settings.pii)
    return app
