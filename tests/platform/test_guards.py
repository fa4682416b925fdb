"""Request guards on a real service (the registry, in-process): 413 for bodies over the limit (declared or
chunked), 415 for bodies of a type the API does not take, 429 with Retry-After per verified client and per
address for requests without a valid token, counted per process or shared by the replicas in Redis (failing
open while Redis is unreachable); health and metrics are never limited."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from shared.app import uvicorn_options
from shared.guards import GuardMiddleware, RateLimiter, SharedRateLimiter
from shared.settings import LimitSettings
from tests.kit.apps import bearer, make_settings, problem, running, serving
from tests.kit.env import NO_BROKER, redis_url
from tests.kit.registry import citizen_id, household, person

SQLITE = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


@pytest.fixture
async def guarded(databases: ScratchDatabases) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False,
                             limits={"rate_per_s": 1, "burst": 3, "max_body_bytes": 4096})
    app = load("registry").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield client, {"a": bearer(settings.auth, "registry:read", "registry:write", "registry:lookup",
                                   client_id="agency-a"),
                       "b": bearer(settings.auth, "registry:read", client_id="agency-b")}


@SQLITE
async def test_bodies_over_the_limit_or_of_the_wrong_type_are_refused(
        guarded: tuple[httpx.AsyncClient, dict]) -> None:
    client, tokens = guarded
    rng = random.Random(1)
    big = household(*(person(citizen_id(rng), "head" if i == 0 else "child", first_name="ก" * 100)
                      for i in range(20)))
    body = problem(await client.post("/v1/households", json=big, headers=tokens["a"]), 413)
    assert "4,096" in body["detail"]

    wrong = problem(await client.post("/v1/households", content=b"subdistrict_code=400101",
                                      headers=tokens["a"] | {"Content-Type": "text/plain"}), 415)
    assert "application/json" in wrong["accepted"]
    problem(await client.post("/v1/households", content=b"<household/>",
                              headers=tokens["a"] | {"Content-Type": "application/xml"}), 415)
    malformed = problem(await client.post("/v1/households", content=b'{"address": ',
                                          headers=tokens["a"] | {"Content-Type": "application/json"}), 422)
    assert malformed["errors"]


@SQLITE
async def test_each_client_has_its_own_rate_and_health_is_never_limited(
        guarded: tuple[httpx.AsyncClient, dict]) -> None:
    client, tokens = guarded
    statuses = [(await client.get("/v1/households", headers=tokens["b"])).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # the burst
    refused = await client.get("/v1/households", headers=tokens["b"])
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "client agency-b" in refused.json()["detail"]
    assert (await client.get("/v1/households", headers=tokens["a"])).status_code == 200  # another client
    health = [(await client.get(path)).status_code for path in ("/healthz", "/readyz") * 5]
    assert set(health) <= {200, 503} and 429 not in health


@SQLITE
async def test_requests_without_a_valid_token_are_limited_by_address(
        guarded: tuple[httpx.AsyncClient, dict]) -> None:
    client, _ = guarded
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}
    statuses = [(await client.get("/v1/households", headers=forged)).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert (await client.get("/v1/households", headers=forged)).status_code == 429
    assert (await client.get("/v1/households")).status_code == 429  # the same address, no token at all


def test_the_bucket_refills_at_the_rate_and_forgets_the_idlest_callers() -> None:
    now = [0.0]
    limiter = RateLimiter(LimitSettings(rate_per_s=2, burst=2, max_callers=100), clock=lambda: now[0])
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] += 0.5
    assert limiter.wait_s("a") == 0.0
    for n in range(150):
        limiter.wait_s(f"caller {n}")
    assert len(limiter._buckets) == 100
    assert LimitSettings(rate_per_s=0).rate_per_s == 0 and RateLimiter(LimitSettings(rate_per_s=0)).wait_s("x") == 0


async def test_a_chunked_body_is_read_up_to_the_limit_and_no_further() -> None:
    """No Content-Length: the guard reads the chunks, refuses at the first byte over the limit, and the app
    is never called; a body within the limit reaches the app whole."""
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])

    guard = GuardMiddleware(app, LimitSettings(max_body_bytes=1024), RateLimiter(LimitSettings(rate_per_s=0)),
                            upload_bytes=1024)
    scope = {"type": "http", "path": "/v1/households", "method": "POST", "client": ("192.0.2.1", 5000),
             "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]}
    for parts, status in (([b"a" * 600] * 5, 413), ([b"a" * 500, b"b" * 500], None)):
        chunks = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
        sent: list[dict[str, Any]] = []

        async def receive(chunks: list[dict[str, Any]] = chunks) -> dict[str, Any]:
            return chunks.pop(0)

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await guard(scope, receive, send)
        if status:
            assert sent[0]["status"] == 413 and len(chunks) == 3 and not seen  # two chunks read, three never
        else:
            assert seen == [b"a" * 500 + b"b" * 500]


@SQLITE
@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]])
async def test_forwarded_addresses_count_only_from_trusted_proxies(
        databases: ScratchDatabases, trusted: list[str]) -> None:
    """Over real HTTP, as `kaenkhun serve` runs it: a client that rotates X-Forwarded-For does not get a fresh
    rate-limit bucket per request unless the peer is a configured proxy (none by default)."""
    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False,
                             limits={"rate_per_s": 2, "burst": 2, "trusted_proxies": trusted})
    async with serving(load("registry").create_app(settings), **uvicorn_options(settings)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            answers = [(await client.get("/v1/households", headers={
                "Authorization": "Bearer forged", "X-Forwarded-For": f"203.0.113.{n}"})).status_code
                for n in range(30)]
    if trusted:  # the proxy is believed: thirty addresses, thirty buckets
        assert answers == [401] * 30
    else:
        assert answers.count(429) >= 20, answers


@SQLITE
async def test_an_idle_keep_alive_connection_is_closed(databases: ScratchDatabases) -> None:
    """The HTTP server's own limits come from settings (`uvicorn_options`): an idle connection is let go after
    KAENKHUN_LIMITS_KEEP_ALIVE_S instead of staying open for ever (timeouts on slow headers and bodies are the
    reverse proxy's: README, "Behind a reverse proxy")."""
    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False,
                             limits={"keep_alive_s": 1})
    options = uvicorn_options(settings)
    assert (options["timeout_keep_alive"], options["limit_concurrency"], options["h11_max_incomplete_event_size"]) == (
        1, 1_000, 16_384)
    async with serving(load("registry").create_app(settings), **options) as base:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.read(100)  # the body
        closed = await asyncio.wait_for(reader.read(), timeout=30)  # EOF: the server hung up on the idle socket
        assert closed == b""
        writer.close()


@asynccontextmanager
async def _replica(databases: ScratchDatabases, limits: dict[str, Any]) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A registry replica (its own app and database), its rate limits as given."""
    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False, limits=limits)
    app = load("registry").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield app, client


@SQLITE
async def test_replicas_share_one_bucket_per_caller_in_redis(databases: ScratchDatabases) -> None:
    """With KAENKHUN_LIMITS_REDIS_URL two replicas count a client's requests together, against the real Redis:
    a burst of 4 is 4 requests in all, however they are spread (per process it would be 4 on each); the 429 says
    how long to wait; another client has its own bucket; without Redis each replica counts its own."""
    prefix = f"kaenkhun-test:{uuid.uuid4().hex}:"
    shared = {"rate_per_s": 0.05, "burst": 4, "redis_url": redis_url(), "redis_prefix": prefix}
    async with _replica(databases, shared) as (app, one), _replica(databases, shared) as (_, two):
        assert isinstance(app.state.rate_limiter, SharedRateLimiter)
        token = bearer(app.state.settings.auth, "registry:read", client_id="agency-a")
        other = bearer(app.state.settings.auth, "registry:read", client_id="agency-b")
        statuses = [(await client.get("/v1/households", headers=token)).status_code for client in (one, two) * 2]
        assert statuses == [200, 200, 200, 200]
        for client in (one, two):
            refused = problem(await client.get("/v1/households", headers=token), 429)
            assert "client agency-a" in refused["detail"]
        refused_answer = await two.get("/v1/households", headers=token)
        assert 1 <= int(refused_answer.headers["retry-after"]) <= 20  # one request's worth at 0.05 a second
        assert (await one.get("/v1/households", headers=other)).status_code == 200
        keys = await _redis_keys(prefix)
        assert keys == {f"{prefix}registry:client agency-a", f"{prefix}registry:client agency-b"}
    local = {"rate_per_s": 0.05, "burst": 4}
    async with _replica(databases, local) as (app, one), _replica(databases, local) as (_, two):
        assert type(app.state.rate_limiter) is RateLimiter
        token = bearer(app.state.settings.auth, "registry:read", client_id="agency-a")
        statuses = [(await client.get("/v1/households", headers=token)).status_code for client in (one, two) * 4]
        assert statuses == [200] * 8  # 4 on each
    await _redis_delete(prefix)


@SQLITE
async def test_an_unreachable_redis_fails_open_to_the_process_own_buckets(databases: ScratchDatabases) -> None:
    """Redis down (nothing listens at the URL): no request is refused for it; the process counts on its own
    (its burst still holds), says so in a warning and counts it in rate_limit_store_errors_total."""
    redis_url()  # the package, and a server to tell apart from the one that is not there
    limits = {"rate_per_s": 0.05, "burst": 3, "redis_url": "redis://127.0.0.1:1/0", "redis_timeout_s": 0.5}
    async with _replica(databases, limits) as (app, client):
        token = bearer(app.state.settings.auth, "registry:read", client_id="agency-a")
        statuses = [(await client.get("/v1/households", headers=token)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        metrics = (await client.get("/metrics")).text
        errors = [line for line in metrics.splitlines() if line.startswith("rate_limit_store_errors_total ")]
        assert errors and float(errors[0].split()[1]) >= 1


async def _redis_keys(prefix: str) -> set[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url(), decode_responses=True)
    try:
        return {key async for key in client.scan_iter(match=prefix + "*")}
    finally:
        await client.aclose()


async def _redis_delete(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url())
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
