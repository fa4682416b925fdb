"""What every service checks before a request reaches its routes: body size, content type, request rate.

- A body larger than `max_body_bytes` is refused with 413, whether it declares its length or is chunked
  (it is read up to the limit, never further). Multipart uploads (the CSV imports) stream to disk under
  the import's own, larger limit (`upload_bytes`), counted here as they arrive: an endless upload stops at it.
- No text this system takes may hold NUL (U+0000) or half of a UTF-16 surrogate pair: PostgreSQL cannot
  store the one, UTF-8 cannot encode the other, and no person types either. A JSON body holding one is
  refused with 422 naming the field, a URL with 400, before any route sees it, whatever field it is in.
  (Other control characters are refused field by field, see shared.text; CSV files row by row.)
- Headers (with the request line) over `max_header_bytes` are refused with 431, whatever the HTTP server
  in front let through.
- A body of a type the API does not take (JSON, JSON merge patch, multipart uploads, the token endpoint's
  form) is refused with 415.
- Each caller has a token bucket: `rate_per_s` requests a second on average, `burst` at once. A verified
  client is limited by its client id (`limit_client`, from the auth dependency); a request without a token,
  or with one that fails verification, by its address. Over the limit: 429 with Retry-After. The buckets are
  this process's own, or, with `redis_url`, kept in Redis and shared by every replica of the service
  (`SharedRateLimiter`, which fails open to the process's own buckets while Redis is unreachable).
Health, readiness and metrics are not limited: the orchestrator and the scraper must always get through.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request

from shared.errors import (
    PROBLEM_JSON,
    BadRequest,
    PayloadTooLarge,
    Problem,
    RequestHeaderFieldsTooLarge,
    TooManyRequests,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.settings import LimitSettings

log = structlog.get_logger("kaenkhun.guards")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")
BODY_TYPES = ("application/json", "application/merge-patch+json", "multipart/form-data",
              "application/x-www-form-urlencoded")
# Sent with a 413 for a body not read to its end: the server closes the connection instead of reading (and
# throwing away) the rest of an endless upload to keep the connection alive.
CLOSE = {"Connection": "close"}
# Room for the multipart framing (boundaries, part headers) around an upload of the largest size allowed.
MULTIPART_OVERHEAD = 64 * 1024
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "holds a NUL character (U+0000) or half of a surrogate pair, which no field accepts"


def _unstorable_at(value: Any) -> str | None:
    """Where (`members.0.first_name`) a string in the decoded JSON `value`, keys included, holds NUL or a
    lone surrogate; None if none does."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return path
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else str(key)
                stack.extend(((where, key), (where, inner)))
        elif isinstance(item, list):
            stack.extend((f"{path}.{n}" if path else str(n), inner) for n, inner in enumerate(item))
    return None


def check_json_text(body: bytes) -> None:
    """Raise 422 (naming the field, as a validation error does) if the JSON `body` would decode to text
    holding NUL or a lone surrogate. Only a body with an escape (`\\u`) can: a raw NUL byte is not valid
    JSON and a raw surrogate is not valid UTF-8."""
    if b"\\u" not in body:
        return
    try:
        value = json.loads(body)
    except ValueError:
        return  # not JSON: the route's own parsing answers 422
    path = _unstorable_at(value)
    if path is not None:
        field = f"body.{path}" if path else "body"
        raise Unprocessable(f"{field}: {UNSTORABLE_MESSAGE}.", type_slug="unstorable-text",
                            errors=[{"field": field, "message": UNSTORABLE_MESSAGE, "code": "unstorable_text"}])


def check_url_text(text: bytes, where: str) -> None:
    """Raise 400 if a URL's path or query holds NUL (raw or %00)."""
    if b"\x00" in text or b"%00" in text:
        raise BadRequest(f"The {where} {UNSTORABLE_MESSAGE}.", type_slug="unstorable-text")


class UploadTooLarge(HTTPException):
    """Raised from `receive` while a multipart upload streams in: an HTTPException, because FastAPI turns
    anything else raised while it parses a form into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The upload is larger than {limit:,} bytes, the most accepted; split the file.",
                         headers=CLOSE)


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

    async def take(self, caller: str) -> float:
        """What `wait_s` says; a limiter that counts elsewhere waits for its store here."""
        return self.wait_s(caller)

    async def check(self, caller: str) -> None:
        """Raise 429 (problem+json, Retry-After) when `caller` is over its rate."""
        wait = await self.take(caller)
        if wait:
            raise TooManyRequests(f"Too many requests from {caller}: at most {self.rate:g} a second "
                                  f"({self.burst:.0f} at once). Retry after the time in Retry-After.",
                                  headers={"Retry-After": str(max(1, math.ceil(wait)))})

    async def close(self) -> None:
        """Let go of what the limiter holds (nothing, in process)."""


# The token bucket as GCRA (generic cell rate algorithm): one key per caller holding the time at which its bucket
# is full again ("theoretical arrival time"), in microseconds of Redis's own clock, so replicas whose clocks
# differ agree. A request is let through if, once it is counted, the bucket is not over `burst`; refused ones
# change nothing. The key expires when the bucket is full again. Returns the microseconds to wait (0: go on).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - burst * interval
if allowed_at > now then return allowed_at - now end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return 0
"""
# After Redis failed, how long this process counts on its own before it asks Redis again (so an unreachable Redis
# costs one timeout per this interval, not one per request).
REDIS_RETRY_S = 5.0


class SharedRateLimiter(RateLimiter):
    """The same buckets in Redis, shared by every replica of a service: a caller gets `rate_per_s` and `burst`
    from the service, however many replicas its requests are spread over (per process, it would get them from
    each). One round trip a check (a Lua script: atomic, whatever the replicas do at once).

    It fails open: if Redis cannot be reached or does not answer within `redis_timeout_s`, the request is counted
    in this process's own buckets (as without Redis, so never refused for Redis's sake), a warning is logged and
    `rate_limit_store_errors_total` counts it; Redis is asked again after REDIS_RETRY_S."""

    def __init__(self, settings: LimitSettings, *, service: str, on_error: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings, clock=clock)
        # Only a deployment that shares its limits needs the package.
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        self._store_errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        assert settings.redis_url is not None
        self._redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=settings.redis_timeout_s,
                                     socket_connect_timeout=settings.redis_timeout_s)
        self._script = self._redis.register_script(_GCRA)
        self._prefix = f"{settings.redis_prefix}{service}:"
        self._interval_us = math.ceil(1_000_000 / self.rate) if self.rate > 0 else 0
        self._on_error = on_error
        self._local_until = 0.0

    async def take(self, caller: str) -> float:
        if self.rate <= 0:
            return 0.0
        if self._clock() < self._local_until:
            return self.wait_s(caller)
        try:
            wait_us = await self._script(keys=[self._prefix + caller], args=[self._interval_us, int(self.burst)])
        except self._store_errors as exc:
            self._local_until = self._clock() + REDIS_RETRY_S
            self._on_error()
            log.warning("rate-limit store unreachable: counting in this process", error=repr(exc)[:200],
                        retry_in_s=REDIS_RETRY_S)
            return self.wait_s(caller)
        return int(wait_us) / 1_000_000

    async def close(self) -> None:
        await self._redis.aclose()


def rate_limiter(settings: LimitSettings, *, service: str, on_error: Callable[[], None] = lambda: None
                 ) -> RateLimiter:
    """The limiter the settings ask for: shared through Redis if `redis_url` is set, else per process."""
    if settings.redis_url is None:
        return RateLimiter(settings)
    return SharedRateLimiter(settings, service=service, on_error=on_error)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"address {client[0]}" if client else "address unknown"


def install_guards(app: FastAPI, settings: LimitSettings, *, upload_bytes: int | None = None,
                   body_limits: Mapping[str, int] | None = None, limiter: RateLimiter | None = None) -> None:
    """Put the guards in front of `app` (inside the observability middleware, which then logs what they refuse);
    `upload_bytes` is the largest file the app takes in a multipart upload (default: `max_body_bytes`);
    `body_limits` the paths whose JSON bodies may be larger than `max_body_bytes`, and by how much; `limiter`
    counts the requests (default: per process, `RateLimiter`)."""
    app.state.rate_limiter = limiter or RateLimiter(settings)
    app.add_middleware(GuardMiddleware, settings=settings, limiter=app.state.rate_limiter,
                       upload_bytes=upload_bytes or settings.max_body_bytes, body_limits=dict(body_limits or {}))


async def limit_client(request: Request, client_id: str) -> None:
    """Count a verified caller's request against its own bucket (called by the auth dependency)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.check(f"client {client_id}")


async def limit_address(request: Request) -> None:
    """Count a request whose token failed verification against its address's bucket."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.check(client_address(request.scope))


class GuardMiddleware:
    """ASGI middleware: 431, 413, 415, 400/422 for unstorable text, and the address limit for requests without
    a token."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], settings: LimitSettings,
                 limiter: RateLimiter, upload_bytes: int, body_limits: dict[str, int] | None = None) -> None:
        self.app, self.settings, self.limiter = app, settings, limiter
        self.upload_limit = upload_bytes + MULTIPART_OVERHEAD
        self.body_limits = body_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._check_header_size(scope)
            if "authorization" not in headers:
                await self.limiter.check(client_address(scope))
            check_url_text(scope.get("raw_path") or scope["path"].encode(), "URL")
            check_url_text(scope["query_string"], "query")
            receive = await self._body(scope, headers, receive)
        except Problem as problem:
            await _answer(scope, send, problem)
            return
        await self.app(scope, receive, send)

    def _check_header_size(self, scope: Scope) -> None:
        size = len(scope.get("raw_path") or b"") + len(scope["query_string"]) + sum(
            len(k) + len(v) + 4 for k, v in scope["headers"])
        if size > self.settings.max_header_bytes:
            raise RequestHeaderFieldsTooLarge(
                f"The request's headers are {size:,} bytes; at most {self.settings.max_header_bytes:,} are accepted.",
                headers=CLOSE)

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
            return self._upload(length, receive)
        limit = max(self.body_limits.get(scope["path"], 0), self.settings.max_body_bytes)
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"The body is {int(length):,} bytes; at most {limit:,} are accepted.",
                                  headers=CLOSE)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The body is larger than {limit:,} bytes, the most accepted.", headers=CLOSE)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if media != "application/x-www-form-urlencoded":  # a form is only the token endpoint's, which stores
            check_json_text(body)                        # nothing and answers in OAuth's own error format
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)

    def _upload(self, length: str | None, receive: Receive) -> Receive:
        """Pass a multipart body through as it streams (the import writes the file to disk), refusing it
        once it grows past the upload limit: at once if it says so, else when the byte past it arrives."""
        limit = self.upload_limit
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"The upload is {int(length):,} bytes; at most {limit:,} are accepted.",
                                  headers=CLOSE)
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                raise UploadTooLarge(limit)
            return message

        return counted


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
