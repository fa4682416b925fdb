"""Observability for every service: JSON logs, correlation ids and per-app Prometheus metrics."""

from __future__ import annotations

import json as _stdlib_json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CORRELATION_ID_HEADER",
    "ConsumeOutcome",
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

CORRELATION_ID_HEADER = "X-Correlation-ID"
# Checked in order; X-Request-ID is what many proxies and clients already send.
_INCOMING_ID_HEADERS = (b"x-correlation-id", b"x-request-id")
_MAX_CORRELATION_ID_LENGTH = 128
# Visible ASCII only: the id is echoed in a response header and written to logs, so anything
# that could split a header or a log line (CR/LF, other controls) or needs encoding is refused.
_CORRELATION_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{_MAX_CORRELATION_ID_LENGTH}}}")

correlation_id_var: ContextVar[str | None] = ContextVar("kaenkhun_correlation_id", default=None)

log = structlog.get_logger("kaenkhun.observability")
access_log = structlog.get_logger("kaenkhun.access")


# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------

_default_service: str | None = None


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that looks up sys.stderr on every write."""

    # Resolving late means pytest's capsys, or anything else that swaps sys.stderr after
    # configuration, still receives the log lines.
    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _dumps(obj: Any, default: Any = None, **_: Any) -> str:
    """Serialise a log event to JSON, keeping Thai and other non-ASCII text as-is."""
    try:
        return orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # orjson refuses a few things json accepts (e.g. ints beyond 64 bits); never lose a line.
        return _stdlib_json.dumps(obj, default=default or str, ensure_ascii=False)


def _add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Fill in the service name unless the request context already bound one."""
    if _default_service is not None:
        event_dict.setdefault("service", _default_service)
    return event_dict


def _drop_unset_correlation_id(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Omit correlation_id when no id is bound, instead of writing null on every line."""
    if event_dict.get("correlation_id", ...) is None:
        del event_dict["correlation_id"]
    return event_dict


def configure_logging(
    level: str = "INFO", json: bool = True, service: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to one line per event on stderr (JSON by default)."""
    global _default_service
    _default_service = service

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _drop_unset_correlation_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service,
    ]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        # ConsoleRenderer prints tracebacks itself; the JSON renderer needs them as a string.
        final_processors = [structlog.processors.format_exc_info, renderer]
    else:
        final_processors = [structlog.dev.ConsoleRenderer(colors=False)]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging may run again (tests, reconfigured level) and module-level
        # loggers must pick up the new processors.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final_processors],
    )
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler._kaenkhun = True  # type: ignore[attr-defined]  # marks ours, for idempotent reconfiguration

    root = logging.getLogger()
    # Replace only our own handler: others (pytest's capture, an embedding app's) are left alone.
    for existing in list(root.handlers):
        if getattr(existing, "_kaenkhun", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # Libraries that install their own handlers would otherwise print a second, non-JSON line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "sqlalchemy", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # CorrelationIdMiddleware writes the access line (with the correlation id); uvicorn's is a duplicate.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # SQLAlchemy logs every statement at INFO when echo is on; keep only its warnings.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # Python warnings (SAWarning and friends) become log records, so they are JSON too.
    logging.captureWarnings(True)


# ---------------------------------------------------------------------------
# Correlation id
# ---------------------------------------------------------------------------


def new_correlation_id() -> str:
    """Return a fresh correlation id (a UUID4 string)."""
    return str(uuid.uuid4())


def is_valid_correlation_id(value: object) -> bool:
    """Tell whether a caller-supplied id is safe to adopt (visible ASCII, 1-128 chars)."""
    return isinstance(value, str) and _CORRELATION_ID_RE.fullmatch(value) is not None


def get_correlation_id() -> str | None:
    """Return the correlation id bound to the current context, if any."""
    return correlation_id_var.get()


@contextmanager
def bind_correlation_id(value: str | bytes | None = None) -> Iterator[str]:
    """Bind a correlation id (a fresh one if None or invalid) for the block, then restore the previous."""
    if isinstance(value, bytes):
        # Kafka headers arrive as bytes.
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            value = None
    correlation_id = value if is_valid_correlation_id(value) else new_correlation_id()
    assert correlation_id is not None
    token = correlation_id_var.set(correlation_id)
    structlog_tokens = structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
    try:
        yield correlation_id
    finally:
        structlog.contextvars.reset_contextvars(**structlog_tokens)
        correlation_id_var.reset(token)


def _incoming_correlation_id(scope: Scope) -> str | None:
    """Return the first valid id among the request's correlation headers."""
    headers = scope.get("headers") or []
    for wanted in _INCOMING_ID_HEADERS:
        for name, raw in headers:
            if name.lower() == wanted:
                candidate: str = bytes(raw).decode("latin-1")
                if is_valid_correlation_id(candidate):
                    return candidate
    return None


class CorrelationIdMiddleware:
    """Pure ASGI middleware: adopt or mint a correlation id, echo it, and log one access line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str | None = None,
        quiet_paths: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app = app
        self.service = service
        # Scrapes every few seconds would drown the access log, so these go at DEBUG.
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        with bind_correlation_id(_incoming_correlation_id(scope)) as correlation_id:
            # request.state.correlation_id: lets exception handlers that run outside this middleware
            # (Starlette's ServerErrorMiddleware) still find the id.
            scope.setdefault("state", {})["correlation_id"] = correlation_id
            service_tokens = (
                structlog.contextvars.bind_contextvars(service=self.service) if self.service else {}
            )
            try:
                await self._handle(scope, receive, send, correlation_id)
            finally:
                if service_tokens:
                    structlog.contextvars.reset_contextvars(**service_tokens)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, correlation_id: str) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        status_code = 500
        header_value = correlation_id.encode("latin-1")

        async def send_with_header(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"x-correlation-id"
                ]
                headers.append((b"x-correlation-id", header_value))
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_header)
        finally:
            # If the app raised before responding, status_code is still 500: the error response
            # is rendered further out (ServerErrorMiddleware), but the access line is not lost.
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            path = scope.get("path", "")
            level = logging.DEBUG if path in self.quiet_paths else logging.INFO
            access_log.log(
                level,
                "request",
                method=scope.get("method"),
                path=path,
                status=status_code,
                duration_ms=duration_ms,
            )


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

ConsumeOutcome = Literal["processed", "duplicate", "dead_lettered"]
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

    def record_consumed(self, topic: str, outcome: ConsumeOutcome) -> None:
        """Count one consumed event with its outcome."""
        self.events_consumed_total.labels(topic=topic, outcome=outcome).inc()


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


def install_observability(app: FastAPI, *, service: str, metrics: Metrics) -> None:
    """Add correlation-id and metrics middlewares and GET /metrics to an app."""
    app.state.metrics = metrics
    app.state.service = service
    app.include_router(metrics_router(metrics))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Added last, so it is outermost: the id is bound before metrics and handlers run.
    app.add_middleware(CorrelationIdMiddleware, service=service)
