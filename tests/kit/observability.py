"""A tiny app with shared.observability installed and a few routes to exercise it, and a client on it: for the
correlation, log, metrics and error tests in tests/platform/."""

from __future__ import annotations

import httpx
import structlog
from fastapi import FastAPI

from shared.observability import Metrics, get_correlation_id, install_observability

THAI_NAME = "สมชาย ใจดี"


def make_app(service: str = "registry", metrics: Metrics | None = None) -> FastAPI:
    """A tiny app with observability installed and a few routes to exercise it."""
    app = FastAPI()
    install_observability(app, service=service, metrics=metrics or Metrics())
    handler_log = structlog.get_logger("kaenkhun.test")

    @app.get("/v1/households/{household_id}")
    async def read_household(household_id: str) -> dict[str, str | None]:
        handler_log.info("household read", head_name=THAI_NAME, household_id=household_id)
        return {"household_id": household_id, "correlation_id": get_correlation_id()}

    @app.get("/sync-echo")
    def sync_echo() -> dict[str, str | None]:
        # Sync endpoints run in a worker thread; the context must follow them there.
        return {"correlation_id": get_correlation_id()}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
