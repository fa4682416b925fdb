"""The assessment service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.assessment import figures, imports
from services.assessment.assessments import routes as assessments
from services.assessment.models import inbox, metadata, outbox, webhook
from services.assessment.projection import handlers
from services.assessment.security import READ, security
from services.assessment.sets import routes as sets
from services.assessment.sets.service import Sets, sets_extension
from services.assessment.settings import AssessmentSettings
from shared.app import ServiceSpec, create_service_app
from shared.events.assessment import ASSESSMENT_EVENTS
from shared.webhooks.routes import Webhooks, staff_with

SPEC = ServiceSpec(
    name="assessment",
    title="Kaenkhun assessment",
    description="Five-dimension assessments on versioned indicator sets, who is poor and why, Alkire–Foster MPI.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=ASSESSMENT_EVENTS,
    webhooks=Webhooks("assessment", webhook, ASSESSMENT_EVENTS, staff_with(READ)),
    security=security,
    handlers=handlers,
    routers=(sets.router, assessments.router, imports.router, figures.router),
    extensions=(sets_extension, imports.importer_extension),
)


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    """Build the assessment app from its settings (read from the environment when not given)."""
    settings = settings or AssessmentSettings()
    app = create_service_app(SPEC, settings)
    app.state.sets = Sets()
    return app
