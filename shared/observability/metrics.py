"""Per-app Prometheus metrics: HTTP requests by route template, the outbox, consumed events and consumer lag,
each app in its own registry, served at GET /metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"


class Metrics:
    """One app instance's metrics, in its own registry so several apps can share a process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.http_requests_total = Counter(
            "http_requests_total", "HTTP requests handled.", ["method", "route", "status"], registry=r
        )
        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request.",
            ["method", "route"],
            registry=r,
        )
        self.outbox_pending = Gauge("outbox_pending", "Outbox rows not yet published.", registry=r)
        self.outbox_publish_lag_seconds = Gauge(
            "outbox_publish_lag_seconds", "Age of the oldest unpublished outbox row.", registry=r
        )
        self.outbox_shards_owned = Gauge(
            "outbox_shards_owned", "Outbox shards this replica's relay publishes (member: its id).", ["member"],
            registry=r,
        )
        self.outbox_shard_owned = Gauge(
            "outbox_shard_owned", "1 for each outbox shard this replica's relay publishes, else 0.", ["shard"],
            registry=r,
        )
        self.events_published_total = Counter(
            "events_published_total", "Events published to Kafka.", ["topic"], registry=r
        )
        self.events_consumed_total = Counter(
            "events_consumed_total",
            "Events consumed, by outcome (processed, duplicate, dead_lettered).",
            ["topic", "outcome"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "consumer_lag", "Messages behind the partition's end offset.", ["topic", "partition"], registry=r
        )
        self.handler_failures_total = Counter(
            "handler_failures_total", "Event handler attempts that raised.", ["topic"], registry=r
        )
        self.rate_limit_store_errors_total = Counter(
            "rate_limit_store_errors_total",
            "Rate-limit checks that could not reach the shared store (Redis) and counted in this process instead.",
            registry=r,
        )


def _route_template(scope: Scope, base_root_path: str) -> str:
    """Return the matched route's template (mount prefix included), or 'unmatched'."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return UNMATCHED_ROUTE
    # A mounted sub-app's routes are relative to the mount; its prefix is what root_path grew by.
    mount_prefix = str(scope.get("root_path", ""))[len(base_root_path) :]
    return f"{mount_prefix}{template}"


class MetricsMiddleware:
    """Pure ASGI middleware recording request count and duration by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status_code = 500
        base_root_path = str(scope.get("root_path", ""))

        async def send_recording_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            # An app that raised before responding leaves status_code at 500, as its client will see.
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            route = _route_template(scope, base_root_path)
            self.metrics.http_requests_total.labels(method=method, route=route, status=str(status_code)).inc()
            self.metrics.http_request_duration_seconds.labels(method=method, route=route).observe(elapsed)


def metrics_router(metrics: Metrics) -> APIRouter:
    """Return a router serving GET /metrics from this Metrics' registry."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        # Honour the scraper's Accept header (OpenMetrics or classic text format).
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(metrics.registry), media_type=content_type)

    return router
