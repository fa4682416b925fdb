"""The assistance service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.assistance.models import inbox, metadata, outbox
from services.assistance.security import security
from services.assistance.settings import AssistanceSettings
from shared.app import ServiceSpec, create_service_app
from shared.events.catalogue import Catalogue

SPEC = ServiceSpec(
    name="assistance",
    title="Kaenkhun assistance",
    description="Family grants, centre subsidies, budgets, the ministry's disbursement push, "
    "help from partner agencies.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=Catalogue(),
    security=security,
)


def create_app(settings: AssistanceSettings | None = None) -> FastAPI:
    """Build the assistance app from its settings (read from the environment when not given)."""
    return create_service_app(SPEC, settings or AssistanceSettings())
