"""The reporting service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.reporting import web
from services.reporting.models import inbox, metadata, outbox, rewind
from services.reporting.projection import handlers
from services.reporting.reports import routes as reports
from services.reporting.security import security
from services.reporting.settings import ReportingSettings
from shared.app import ServiceSpec, create_service_app
from shared.events.catalogue import Catalogue

SPEC = ServiceSpec(
    name="reporting",
    title="Kaenkhun reporting",
    description="Read models built from every event, served to BI tools and as a dashboard.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    rewind=rewind,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=Catalogue(),
    security=security,
    handlers=handlers,
    routers=(reports.router, web.router),
)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    """Build the reporting app from its settings (read from the environment when not given)."""
    return create_service_app(SPEC, settings or ReportingSettings())
