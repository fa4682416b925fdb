"""The assessment service app: `create_app(settings)`."""

from pathlib import Path

from fastapi import FastAPI

from services.assessment.models import inbox, metadata, outbox
from services.assessment.security import security
from services.assessment.settings import AssessmentSettings
from shared.app import ServiceSpec, create_service_app
from shared.events.catalogue import Catalogue

SPEC = ServiceSpec(
    name="assessment",
    title="Kaenkhun assessment",
    description="Five-dimension assessments on versioned indicator sets, who is poor and why, Alkire–Foster MPI.",
    metadata=metadata,
    outbox=outbox,
    inbox=inbox,
    migrations_dir=Path(__file__).parent / "migrations",
    catalogue=Catalogue(),
    security=security,
)


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    """Build the assessment app from its settings (read from the environment when not given)."""
    return create_service_app(SPEC, settings or AssessmentSettings())
