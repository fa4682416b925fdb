"""The registry service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.registry import areas, audit, partners, teams
from services.registry.households.routes import router as households
from services.registry.imports.routes import router as imports
from services.registry.imports.service import importer_extension
from services.registry.models import inbox, metadata, outbox, webhook
from services.registry.projection import handlers
from services.registry.security import READ, security
from services.registry.settings import RegistrySettings
from shared.app import ServiceSpec, create_service_app
from shared.events.registry import REGISTRY_EVENTS
from shared.pii import CitizenIdProtector
from shared.webhooks.routes import Webhooks, staff_with

SPEC = ServiceSpec(
    name="registry",
    title="Kaenkhun registry",
    description="Households and their members, the Thai area hierarchy, field teams and buddy officials, bulk import.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=REGISTRY_EVENTS,
    webhooks=Webhooks("registry", webhook, REGISTRY_EVENTS, staff_with(READ)),
    security=security,
    handlers=handlers,
    routers=(areas.router, households, teams.router, imports, audit.router, partners.router),
    extensions=(importer_extension,),
)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app from its settings (read from the environment when not given)."""
    settings = settings or RegistrySettings()
    app = create_service_app(SPEC, settings)
    app.state.protector = CitizenIdProtector(settings.pii)
    return app
