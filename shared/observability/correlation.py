"""Correlation ids: adopted from the caller's X-Correlation-ID (or X-Request-ID) or minted, bound for the request
(and for each consumed event, from its header), echoed in the response, and written on the access line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.ids import new_uuid4

CORRELATION_ID_HEADER = "X-Correlation-ID"
# Checked in order; X-Request-ID is what many proxies and clients already send.
_INCOMING_ID_HEADERS = (b"x-correlation-id", b"x-request-id")
_MAX_CORRELATION_ID_LENGTH = 128
# Visible ASCII only: the id is echoed in a response header and written to logs, so anything
# that could split a header or a log line (CR/LF, other controls) or needs encoding is refused.
_CORRELATION_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{_MAX_CORRELATION_ID_LENGTH}}}")

correlation_id_var: ContextVar[str | None] = ContextVar("kaenkhun_correlation_id", default=None)

access_log = structlog.get_logger("kaenkhun.access")


def new_correlation_id() -> str:
    """Return a fresh correlation id (a UUID4 string)."""
    return new_uuid4()


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
