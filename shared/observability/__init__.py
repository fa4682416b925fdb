"""Observability for every service: JSON logs (`logs`), correlation ids (`correlation`), per-app Prometheus
metrics (`metrics`), installed on an app by `install_observability`."""

from shared.observability.correlation import (
    CORRELATION_ID_HEADER,
    CorrelationIdMiddleware,
    bind_correlation_id,
    correlation_id_var,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)
from shared.observability.install import install_observability
from shared.observability.logs import configure_logging
from shared.observability.metrics import Metrics, MetricsMiddleware, metrics_router

__all__ = [
    "CORRELATION_ID_HEADER",
    "CorrelationIdMiddleware",
    "Metrics",
    "MetricsMiddleware",
    "bind_correlation_id",
    "configure_logging",
    "correlation_id_var",
    "get_correlation_id",
    "install_observability",
    "is_valid_correlation_id",
    "metrics_router",
    "new_correlation_id",
]
