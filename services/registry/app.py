"""The registry service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.registry.models import inbox, metadata, outbox
from services.registry.security import security
from services.registry.settings import RegistrySettings
from shared.app import ServiceSpec, create_service_app
from shared.events.catalogue import Catalogue

SPEC = ServiceSpec(
    name="registry",
    title="Kaenkhun registry",
    description="Households and their members, the Thai area hierarchy, field teams and buddy officials, bulk import.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=Catalogue(),
    security=security,
)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app from its settings (read from the environment when not given)."""
    return create_service_app(SPEC, settings or RegistrySettings())
