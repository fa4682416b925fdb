"""Observability installed on a service's app: the correlation-id and metrics middlewares and GET /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from shared.observability.correlation import CorrelationIdMiddleware
from shared.observability.metrics import Metrics, MetricsMiddleware, metrics_router


def install_observability(app: FastAPI, *, service: str, metrics: Metrics) -> None:
    """Add correlation-id and metrics middlewares and GET /metrics to an app."""
    app.state.metrics = metrics
    app.state.service = service
    app.include_router(metrics_router(metrics))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Added last, so it is outermost: the id is bound before metrics and handlers run.
    app.add_middleware(CorrelationIdMiddleware, service=service)
