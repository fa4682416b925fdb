"""The service app factory: one lifespan opening the engine, the relay and the consumer, closing them in reverse."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import migrations
from shared.auth import Principal, ServiceSecurity, install_auth, make_security
from shared.bus import Consumer, Handlers, Outbox, Relay
from shared.bus.models import SHARDS
from shared.bus.status import OutboxStatusReader
from shared.db import as_utc, create_engine, read_only, read_transaction, sessionmaker, transaction
from shared.docs import install_docs
from shared.errors import PROBLEM_JSON, Forbidden, install_problem_handlers
from shared.events.catalogue import Catalogue
from shared.guards import install_guards, rate_limiter
from shared.observability import Metrics, configure_logging, install_observability
from shared.openapi import install_openapi
from shared.query import refuse_unknown_query_parameters
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from shared.webhooks.routes import Webhooks

log = structlog.get_logger("kaenkhun.app")


@dataclass
class ServiceSpec:
    """What makes one service: its tables, events, handlers, routes and scopes."""

    name: str
    title: str
    description: str
    metadata: MetaData
    outbox: Outbox
    inbox: Table
    migrations_dir: Path
    catalogue: Catalogue
    security: ServiceSecurity
    handlers: Handlers | None = None
    # Partitions its consumer is to read again from the start (`shared.bus.rewind_table`): reporting's rebuild.
    rewind: Table | None = None
    routers: Sequence[APIRouter] = ()
    # Background work of the service (e.g. bulk imports): entered after the bus starts, left before it stops.
    extensions: Sequence[Callable[[FastAPI], AbstractAsyncContextManager[None]]] = ()
    # Event subscriptions (signed webhooks out) for the events the service publishes: shared/webhooks.
    webhooks: Webhooks | None = None
    version: str = "0.1.0"

    @property
    def admin_scope(self) -> str:
        return admin_scope(self.name)


def admin_scope(service: str) -> str:
    return f"{service}:admin"


def service_security(service: str, scopes: dict[str, str]) -> ServiceSecurity:
    """The one security scheme of a service: its scopes plus the admin scope of its event bus."""
    admin = {admin_scope(service): f"Operate the {service} service's event bus (status, replay)"}
    return make_security(admin | scopes)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime
    topic: str | None = None


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one transaction per request, committed on success, rolled back on error."""
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


async def db_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency for requests that write nothing: no writer lock, and the database refuses writes."""
    async with read_transaction(request.app.state.read_sessionmaker) as session:
        yield session


async def service_settings(request: Request) -> ServiceSettings:
    """FastAPI dependency: the settings the app was built with; each service's settings.py gives it its type
    (`SettingsDep = Annotated[RegistrySettings, Depends(service_settings)]`)."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def session_by_caller(caller: Any, writes: Callable[[Principal], bool]) -> Any:
    """A session dependency for a GET that writes for some callers only (an unmasked read writes its audit row):
    a transaction when `writes(principal)`, else a read session. `caller` is the route's own Security()
    dependency, so FastAPI checks the token once, before the session opens."""

    async def session(request: Request, principal: Principal = caller) -> AsyncIterator[AsyncSession]:
        state = request.app.state
        async with (transaction(state.sessionmaker) if writes(principal) else
                    read_transaction(state.read_sessionmaker)) as opened:
            yield opened

    session.chosen_by_caller = True  # type: ignore[attr-defined]  # for tests/platform/test_request_path.py
    return Depends(session, scope="function")


# scope="function": the transaction commits before the response is sent. FastAPI's default ("request") runs
# the code after `yield` once the response is out, so a client could be told 201 before the commit (and read
# nothing right after it, or keep a 201 for a commit that then failed).
SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(db_read_session, scope="function")]


_heap_settled = False


def settle_heap() -> None:
    """Hide what start-up left alive (modules, schemas, routes) from the garbage collector.

    It lives as long as the process anyway, and without this every full collection walks all of it again:
    freezing it made a 100,000-person bulk import 26-39 % faster (bench/registry.py). Call once, when the
    service is ready; later calls (more apps in one process, as in tests) do nothing.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """Build a service's FastAPI app; nothing touches the database or broker until the lifespan starts."""
    settings.check_production()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json, service=spec.name)
        engine = create_engine(settings.db_url, pool=settings.db)
        maker = sessionmaker(engine)
        app.state.engine, app.state.sessionmaker = engine, maker
        # GETs read on connections of their own that cannot write (ReadSessionDep).
        read_engine = create_engine(settings.db_url, read_only=True, pool=settings.db)
        app.state.read_sessionmaker = sessionmaker(read_engine)
        relay = Relay(spec.outbox, maker, settings.kafka, topics=spec.catalogue.topics(spec.name),
                      metrics=app.state.metrics)
        consumer = (
            Consumer(spec.name, spec.handlers, maker, spec.inbox, settings.kafka, metrics=app.state.metrics,
                     rewind=spec.rewind)
            if spec.handlers is not None
            else None
        )
        app.state.relay, app.state.consumer = relay, consumer
        # What the producers of the topics it consumes still hold in their outboxes, as they say on the bus.
        upstream = OutboxStatusReader(spec.name, settings.kafka) if consumer is not None else None
        app.state.upstream = upstream
        hooks_consumer, sender = _webhook_workers(spec, settings, maker, app)
        if settings.run_bus:
            relay.start()
            if consumer is not None:
                consumer.start()
            if upstream is not None:
                upstream.start()
            if hooks_consumer is not None and sender is not None:
                hooks_consumer.start()
                sender.start()
        log.info("service started", service=spec.name, port=settings.port)
        try:
            async with AsyncExitStack() as stack:
                for extension in spec.extensions:
                    await stack.enter_async_context(extension(app))
                settle_heap()
                yield
        finally:
            if hooks_consumer is not None and sender is not None:
                await hooks_consumer.stop()
                await sender.stop()
            if upstream is not None:
                await upstream.stop()
            if consumer is not None:
                await consumer.stop()
            await relay.stop()
            await read_engine.dispose()
            await engine.dispose()
            await app.state.rate_limiter.close()
            log.info("service stopped", service=spec.name)

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        # /docs and /redoc are served with their assets by the service itself (install_docs), not from a CDN.
        docs_url=None,
        redoc_url=None,
        # A query parameter the route does not declare is refused (shared/query.py), in every service.
        dependencies=[Depends(refuse_unknown_query_parameters)],
        responses={"default": {"description": "Problem details (RFC 9457)",
                               "content": {PROBLEM_JSON: {}}}},
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.migrations_current = False
    install_problem_handlers(app)
    metrics = Metrics()
    limiter = rate_limiter(settings.limits, service=spec.name, on_error=metrics.rate_limit_store_errors_total.inc)
    install_guards(app, settings.limits, upload_bytes=getattr(settings, "import_max_bytes", None),
                   body_limits=settings.body_limits(), limiter=limiter)
    install_observability(app, service=spec.name, metrics=metrics)
    install_auth(app, settings.auth)
    install_docs(app)
    install_openapi(app, spec.catalogue, spec.name)
    app.include_router(_health_router(spec))
    app.include_router(_bus_router(spec))
    for router in spec.routers:
        app.include_router(router)
    if spec.webhooks is not None:
        from shared.webhooks.routes import subscription_router

        app.include_router(subscription_router(spec.webhooks, spec.security))
    return app


def _webhook_workers(spec: ServiceSpec, settings: ServiceSettings, maker: Any, app: FastAPI) -> tuple[Any, Any]:
    """The consumer group `<service>-webhooks` that turns the service's own events into deliveries, and the sender
    that POSTs them (app.state.webhook_consumer / webhook_sender; started with the bus)."""
    if spec.webhooks is None:
        app.state.webhook_consumer = app.state.webhook_sender = None
        return None, None
    from shared.webhooks.fanout import fanout_handlers
    from shared.webhooks.sender import Sender

    sender = Sender(spec.webhooks.tables, maker, settings.webhooks, production=settings.env == "production")
    handlers = fanout_handlers(spec.name, spec.catalogue, spec.webhooks.tables, sender.wakeup)
    name = f"{spec.name}-webhooks"
    consumer = Consumer(name, handlers, maker, spec.inbox, settings.kafka, metrics=app.state.metrics)
    app.state.webhook_consumer, app.state.webhook_sender = consumer, sender
    return consumer, sender


def _health_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": spec.name}

    # Every replica is ready alike: its relay keeps a producer connected to the broker whether or not it owns
    # outbox shards at the moment (shared/bus/shards.py), so readiness never depends on which replica publishes.
    @router.get("/readyz", summary="Ready: database reachable, migrations current, broker connected",
                responses={200: {"description": "Ready"},
                           503: {"description": "Not ready: see `checks`", "content": {"application/json": {}}}})
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        checks: dict[str, str] = {}
        try:
            async with read_only(state.engine) as conn:  # no write lock: SQLite's would block the loop
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            checks["database"] = "ok"
            if not state.migrations_current:
                state.migrations_current = await migrations.is_current(state.engine, spec.migrations_dir)
            checks["migrations"] = "ok" if state.migrations_current else "pending: run `kaenkhun migrate`"
        except Exception as exc:  # readiness reports, it does not fail
            checks["database"] = f"unreachable: {type(exc).__name__}"
            checks.setdefault("migrations", "unknown")
        relay_ok = state.relay.connected  # every replica's relay keeps its producer connected, shards or none
        consumer_ok = state.consumer is None or state.consumer.connected
        checks["broker"] = "ok" if relay_ok and consumer_ok else "not connected"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "service": spec.name,
                             "checks": checks}, status_code=200 if ready else 503)

    return router


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """How `kaenkhun serve` runs a service: its address, forwarded headers believed only from the configured
    proxies, and the HTTP server's own limits on idle, slow and too many connections."""
    limits = settings.limits
    return {"host": settings.host, "port": settings.port, "log_config": None, "timeout_graceful_shutdown": 15,
            "proxy_headers": bool(limits.trusted_proxies), "forwarded_allow_ips": limits.trusted_proxies or None,
            "timeout_keep_alive": limits.keep_alive_s, "limit_concurrency": limits.max_concurrency,
            "h11_max_incomplete_event_size": limits.max_incomplete_event_bytes}


def _every_area(principal: Principal) -> None:
    """An operation that acts on every area (the whole outbox, every inbox) needs a caller of every area."""
    if not principal.sees_all_areas:
        raise Forbidden(f"This operation acts on every area; client {principal.client_id!r} is limited to "
                        f"{', '.join(sorted(principal.areas)) or 'no area'} and needs a token for every area (\"*\").")


def _bus_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(prefix="/v1/bus", tags=["event bus"])
    admin = spec.security.require(spec.admin_scope)

    @router.get("", summary="Outbox, inbox and broker status of this service")
    async def bus_status(
        principal: Principal = admin,  # first (see SessionDep): the caller is known before a session opens
        *,
        request: Request,
        session: ReadSessionDep,
    ) -> dict[str, Any]:
        _every_area(principal)
        pending, oldest = await spec.outbox.pending_stats(session)
        inbox = (await session.execute(
            select(spec.inbox.c.outcome, func.count()).group_by(spec.inbox.c.outcome)
        )).all()
        state = request.app.state
        consumes = state.consumer.topics if state.consumer is not None else []
        return {
            "service": spec.name,
            "produces": spec.catalogue.topics(spec.name),
            "consumes": consumes,
            "outbox_pending": pending,
            "oldest_pending_at": as_utc(oldest).isoformat() if oldest else None,
            # Per topic consumed, the events its producer's outbox still holds, by the newest status the producer
            # sent (null: none fresh); with the consumer group's lag 0 and these 0, everything is applied.
            "upstream_pending": (state.upstream.pending(consumes) if state.upstream is not None
                                 else dict.fromkeys(consumes)),
            "inbox": {outcome: count for outcome, count in inbox},
            "relay_connected": state.relay.connected,
            # Publishing is shared among the replicas by outbox shard: this one's relay and what it publishes.
            "relay_member": state.relay.leases.member,
            "outbox_shards": state.relay.leases.owned,
            "outbox_shards_total": SHARDS,
            "relay_members_alive": state.relay.leases.live_members,
            "sends_outbox_status": state.relay.sends_status,
            "consumer_connected": state.consumer.connected if state.consumer is not None else None,
        }

    @router.post("/replay", summary="Publish again the outbox events written since a time")
    async def replay(
        principal: Principal = admin,
        *,
        body: ReplayRequest,
        session: SessionDep,
    ) -> dict[str, Any]:
        _every_area(principal)
        count = await spec.outbox.mark_for_replay(session, since=body.since.astimezone(UTC), topic=body.topic)
        return {"service": spec.name, "requeued": count, "since": body.since.isoformat(),
                "at": datetime.now(UTC).isoformat()}

    return router
