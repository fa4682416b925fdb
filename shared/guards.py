"""What every service checks before a request reaches its routes: body size, content type, request rate.

- A body larger than `max_body_bytes` is refused with 413, whether it declares its length or is chunked
  (it is read up to the limit, never further). Multipart uploads (the CSV imports) stream to disk under
  the import's own, larger limit.
- A body of a type the API does not take (JSON, JSON merge patch, multipart uploads, the token endpoint's
  form) is refused with 415.
- Each caller has a token bucket: `rate_per_s` requests a second on average, `burst` at once. A verified
  client is limited by its client id (`limit_client`, from the auth dependency); a request without a token,
  or with one that fails verification, by its address. Over the limit: 429 with Retry-After.
Health, readiness and metrics are not limited: the orchestrator and the scraper must always get through.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request

from shared.errors import PROBLEM_JSON, PayloadTooLarge, Problem, TooManyRequests, UnsupportedMediaType
from shared.settings import LimitSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")
BODY_TYPES = ("application/json", "application/merge-patch+json", "multipart/form-data",
              "application/x-www-form-urlencoded")


class RateLimiter:
    """Token buckets by caller, in this process (each replica counts its own)."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_callers = settings.rate_per_s, float(settings.burst), settings.max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at)

    def wait_s(self, caller: str) -> float:
        """Take a token for `caller`: 0 if it may go on, else the seconds until it may try again."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[caller] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[caller] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)  # the least recently seen
        return wait

    def check(self, caller: str) -> None:
        """Raise 429 (problem+json, Retry-After) when `caller` is over its rate."""
        wait = self.wait_s(caller)
        if wait:
            raise TooManyRequests(f"Too many requests from {caller}: at most {self.rate:g} a second "
                                  f"({self.burst:.0f} at once). Retry after the time in Retry-After.",
                                  headers={"Retry-After": str(max(1, math.ceil(wait)))})


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"address {client[0]}" if client else "address unknown"


def install_guards(app: FastAPI, settings: LimitSettings) -> None:
    """Put the guards in front of `app` (inside the observability middleware, which then logs what they refuse)."""
    app.state.rate_limiter = RateLimiter(settings)
    app.add_middleware(GuardMiddleware, settings=settings, limiter=app.state.rate_limiter)


def limit_client(request: Request, client_id: str) -> None:
    """Count a verified caller's request against its own bucket (called by the auth dependency)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(f"client {client_id}")


def limit_address(request: Request) -> None:
    """Count a request whose token failed verification against its address's bucket."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(client_address(request.scope))


class GuardMiddleware:
    """ASGI middleware: 413, 415, and the address limit for requests without a token."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], settings: LimitSettings,
                 limiter: RateLimiter) -> None:
        self.app, self.settings, self.limiter = app, settings, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if "authorization" not in headers:
                self.limiter.check(client_address(scope))
            receive = await self._body(scope, headers, receive)
        except Problem as problem:
            await _answer(scope, send, problem)
            return
        await self.app(scope, receive, send)

    async def _body(self, scope: Scope, headers: dict[str, str], receive: Receive) -> Receive:
        """Check the body's type and size; returns a `receive` that hands the app the body read here."""
        length = headers.get("content-length")
        has_body = (length is not None and length.strip() != "0") or "transfer-encoding" in headers
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and not has_body:
            return receive
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and media not in BODY_TYPES:
            raise UnsupportedMediaType(f"A body of type {media or '(none)'} is not accepted here; send "
                                       "application/json (or multipart/form-data for a file upload).",
                                       accepted=list(BODY_TYPES))
        if media == "multipart/form-data":
            return receive  # streamed to disk by the import, under its own limit
        limit = self.settings.max_body_bytes
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"The body is {int(length):,} bytes; at most {limit:,} are accepted.")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The body is larger than {limit:,} bytes, the most accepted.")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """Hand over the messages read here, then the connection's own (a later disconnect, say)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


async def _answer(scope: Scope, send: Send, problem: Problem) -> None:
    body = json.dumps(problem.body(scope.get("path")), ensure_ascii=False).encode()
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
