"""`/v1/subscriptions`: a client subscribes to the events a service publishes, about its own areas.

Scope `events:subscribe`. A subscription names a URL (checked by `targets`), event types the service publishes
(short names: `referral.created`) and areas within the caller's own ("*" only for a caller of every area). A
partner agency's client (`Webhooks.partner_of` finds its partner) receives only events naming its partner.
The signing secret is shown once, at creation and at each rotation. Deliveries are listed per subscription,
and can be sent again (one, or all since a time); a redelivery makes a disabled subscription active again.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' Annotated[..., Query()] at runtime.
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.app import ReadSessionDep, SessionDep
from shared.auth import Principal, ServiceSecurity
from shared.auth.principal import is_area_claim
from shared.clock import utcnow
from shared.db import as_utc, rowcount
from shared.errors import Forbidden, NotFound, Unprocessable
from shared.events.catalogue import Catalogue
from shared.ids import ID_PATTERN, new_id
from shared.pagination import Page, PageDep, keyset, page_of
from shared.webhooks import new_secret
from shared.webhooks.models import WebhookTables
from shared.webhooks.targets import TargetRefused, check_target

SUBSCRIBE = "events:subscribe"
SUBSCRIBE_DESCRIPTION = "Subscribe to this service's events about your areas (signed webhooks)"

PartnerOf = Callable[[AsyncSession, Principal], Awaitable[str | None]]


@dataclass
class Webhooks:
    """What a service gives its subscriptions: its tables and event catalogue, and how to tell a partner agency's
    client (its partner id, or None for other callers)."""

    service: str
    tables: WebhookTables
    catalogue: Catalogue
    partner_of: PartnerOf | None = None
    # A client that `partner_of` refuses (403) but holds one of these scopes may still subscribe, to the event
    # types listed for that scope only (the ministry's disbursements reader: the payments' events).
    reader_types: dict[str, frozenset[str]] = field(default_factory=dict)
    owned: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.owned = sorted(t.name for t in self.catalogue.types.values() if t.producer == self.service)

    def types_for_reader(self, principal: Principal) -> set[str]:
        """The event types a client may subscribe to by its `reader_types` scopes (empty: none)."""
        return {t for scope, types in self.reader_types.items() if principal.has_scope(scope) for t in types}

    def partner_types(self) -> set[str]:
        return {t.name for t in self.catalogue.types.values()
                if t.producer == self.service and "partner_id" in t.payload.model_fields}


def staff_with(read_scope: str) -> PartnerOf:
    """For a service without partner clients: a subscriber must also hold the service's read scope (what it
    receives is what it could read), and is never a partner."""

    async def partner_of(_session: AsyncSession, principal: Principal) -> str | None:
        if not principal.has_scope(read_scope):
            raise Forbidden(f"Subscribing needs the scope {read_scope} too: the events tell what it reads.",
                            missing_scopes=[read_scope])
        return None

    return partner_of


# -- schemas --


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, examples=["https://partner.example.org/kaenkhun/events"])
    event_types: list[str] = Field(min_length=1, max_length=50, examples=[["referral.created"]])
    areas: list[str] = Field(min_length=1, max_length=200, examples=[["4001"]],
                             description="DOPA codes within your token's areas, or \"*\" for a caller of every area")


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    areas: list[str]
    partner_id: str | None
    status: str = Field(description="active or disabled")
    disabled_reason: str | None
    created_at: datetime
    failing_since: datetime | None


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="the signing secret (whsec_…), shown this once")


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="the new signing secret (whsec_…), shown this once")
    previous_secret_expires_at: datetime = Field(description="until then deliveries carry both signatures")


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="the CloudEvent id, sent as `webhook-id`")
    event_type: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="null once delivered")
    delivered_at: datetime | None
    created_at: datetime


class Requeued(BaseModel):
    requeued: int


# -- rules --


def present(row: Any) -> SubscriptionOut:
    return SubscriptionOut(id=row.id, url=row.url, event_types=row.event_types, areas=row.areas,
                           partner_id=row.partner_id, status=row.status, disabled_reason=row.disabled_reason,
                           created_at=as_utc(row.created_at),
                           failing_since=as_utc(row.failing_since) if row.failing_since else None)


def present_delivery(row: Any) -> DeliveryOut:
    return DeliveryOut(id=row.id, event_id=row.event_id, event_type=row.event_type, attempts=row.attempts,
                       last_status=row.last_status, last_error=row.last_error,
                       next_attempt_at=None if row.delivered_at else as_utc(row.next_attempt_at),
                       delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
                       created_at=as_utc(row.created_at))


def check_areas(principal: Principal, wanted: list[str]) -> list[str]:
    errors = []
    for i, code in enumerate(wanted):
        if not is_area_claim(code):
            errors.append({"field": f"areas[{i}]", "message": "a 2/4/6/8-digit DOPA code or \"*\"",
                           "code": "invalid"})
    if errors:
        raise Unprocessable("Invalid areas.", errors=errors)
    outside = [c for c in wanted if (c == "*" and not principal.sees_all_areas) or (c != "*" and not
                                                                                   principal.can_see(c))]
    if outside:
        raise Forbidden(f"Areas {', '.join(outside)} lie outside the areas granted to client "
                        f"{principal.client_id!r}.")
    return sorted(set(wanted))


def check_types(hooks: Webhooks, wanted: list[str], allowed: set[str]) -> list[str]:
    unknown = [t for t in wanted if t not in allowed]
    if unknown:
        raise Unprocessable(
            f"The {hooks.service} service publishes no event {', '.join(unknown)} you may subscribe to; "
            f"choose among {', '.join(sorted(allowed))}.",
            errors=[{"field": "event_types", "message": f"unknown event type {t}", "code": "unknown"}
                    for t in unknown])
    return sorted(set(wanted))


async def check_url(request: Request, url: str) -> None:
    settings = request.app.state.settings
    try:
        await check_target(url, allow_private=settings.webhooks.private_allowed(settings.env == "production"))
    except TargetRefused as exc:
        raise Unprocessable(str(exc), errors=[{"field": "url", "message": str(exc), "code": "target-refused"}]
                            ) from None


# -- routes --


def subscription_router(hooks: Webhooks, security: ServiceSecurity) -> APIRouter:
    """The `/v1/subscriptions` routes of one service."""
    router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
    can_subscribe = security.require(SUBSCRIBE)
    subs, deliveries = hooks.tables.subscriptions, hooks.tables.deliveries
    SubscriptionId = Annotated[str, Path(pattern=ID_PATTERN)]  # noqa: N806

    async def owned(session: AsyncSession, principal: Principal, subscription_id: str) -> Any:
        row = (await session.execute(select(subs).where(subs.c.id == subscription_id,
                                                        subs.c.owner == principal.client_id))).first()
        if row is None:
            raise NotFound(f"No subscription {subscription_id} of client {principal.client_id!r}.")
        return row

    @router.post("", status_code=201, summary="Subscribe to events (the signing secret is shown this once)",
                 response_model=SubscriptionCreated,
                 responses={201: {"description": "Subscribed", "headers": {"Location": {
                                "description": "the subscription", "schema": {"type": "string"}}}},
                            403: {"description": "An area outside your own"},
                            422: {"description": "Unknown event type, or a URL that may not receive webhooks"}})
    async def subscribe(principal: Annotated[Principal, can_subscribe], request: Request, body: SubscriptionIn,
                        session: SessionDep) -> JSONResponse:
        partner_id, allowed = None, set(hooks.owned)
        try:
            partner_id = await hooks.partner_of(session, principal) if hooks.partner_of is not None else None
            if partner_id is not None:
                allowed = hooks.partner_types()
        except Forbidden:
            allowed = hooks.types_for_reader(principal)
            if not allowed:
                raise
        event_types = check_types(hooks, body.event_types, allowed)
        area_codes = check_areas(principal, body.areas)
        await check_url(request, body.url)
        secret = new_secret()
        row = {"id": new_id(), "owner": principal.client_id, "url": body.url, "event_types": event_types,
               "areas": area_codes, "partner_id": partner_id, "secrets": [{"secret": secret, "expires_at": None}],
               "status": "active", "disabled_reason": None, "created_at": utcnow(), "failing_since": None}
        await session.execute(insert(subs).values(**row))
        created = SubscriptionCreated(**present(_Row(row)).model_dump(), secret=secret)
        return JSONResponse(created.model_dump(mode="json"), status_code=201,
                            headers={"Location": f"/v1/subscriptions/{row['id']}"})

    @router.get("", summary="Your subscriptions, oldest first")
    async def list_subscriptions(principal: Annotated[Principal, can_subscribe], session: ReadSessionDep,
                                 page: PageDep) -> Page[SubscriptionOut]:
        query = select(subs).where(subs.c.owner == principal.client_id)
        rows = (await session.execute(await keyset(session, query, order=[subs.c.created_at], id_column=subs.c.id,
                                                   page=page))).all()
        items, cursor = page_of(rows, page, lambda r: r.id)
        return Page(items=[present(r) for r in items], next_cursor=cursor)

    @router.get("/{subscription_id}", summary="One of your subscriptions")
    async def get_subscription(principal: Annotated[Principal, can_subscribe], subscription_id: SubscriptionId,
                               session: ReadSessionDep) -> SubscriptionOut:
        return present(await owned(session, principal, subscription_id))

    @router.delete("/{subscription_id}", status_code=204, summary="Unsubscribe (pending deliveries are dropped)")
    async def unsubscribe(principal: Annotated[Principal, can_subscribe], subscription_id: SubscriptionId,
                          session: SessionDep) -> Response:
        await owned(session, principal, subscription_id)
        await session.execute(delete(deliveries).where(deliveries.c.subscription_id == subscription_id))
        await session.execute(delete(subs).where(subs.c.id == subscription_id))
        return Response(status_code=204)

    @router.post("/{subscription_id}/secret:rotate", summary="A new signing secret; the previous one signs too "
                 "for `KAENKHUN_WEBHOOK_ROTATION_GRACE_HOURS`")
    async def rotate_secret(principal: Annotated[Principal, can_subscribe], request: Request,
                            subscription_id: SubscriptionId, session: SessionDep) -> SecretRotated:
        row = await owned(session, principal, subscription_id)
        now = utcnow()
        expires = now + timedelta(hours=request.app.state.settings.webhooks.rotation_grace_hours)
        secret = new_secret()
        await session.execute(update(subs).where(subs.c.id == subscription_id).values(secrets=[
            {"secret": secret, "expires_at": None},
            {"secret": row.secrets[0]["secret"], "expires_at": expires.isoformat()}]))
        return SecretRotated(id=subscription_id, secret=secret, previous_secret_expires_at=expires)

    @router.get("/{subscription_id}/deliveries", summary="The subscription's deliveries, newest first")
    async def list_deliveries(principal: Annotated[Principal, can_subscribe], subscription_id: SubscriptionId,
                              session: ReadSessionDep, page: PageDep) -> Page[DeliveryOut]:
        await owned(session, principal, subscription_id)
        query = select(deliveries).where(deliveries.c.subscription_id == subscription_id)
        rows = (await session.execute(await keyset(session, query, order=[], id_column=deliveries.c.id, page=page,
                                                   descending=True))).all()
        items, cursor = page_of(rows, page, lambda r: r.id)
        return Page(items=[present_delivery(r) for r in items], next_cursor=cursor)

    async def requeue(session: AsyncSession, subscription_id: str, *conditions: Any) -> int:
        count = rowcount(await session.execute(
            update(deliveries).where(deliveries.c.subscription_id == subscription_id, *conditions)
            .values(delivered_at=None, next_attempt_at=utcnow(), claimed_until=None)))
        await session.execute(update(subs).where(subs.c.id == subscription_id).values(
            status="active", disabled_reason=None, failing_since=None))
        return count

    @router.post("/{subscription_id}/deliveries/{delivery_id}:redeliver", status_code=202,
                 summary="Send one delivery again (now, with the same webhook-id)")
    async def redeliver_one(principal: Annotated[Principal, can_subscribe], request: Request,
                            subscription_id: SubscriptionId, delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                            session: SessionDep) -> Requeued:
        await owned(session, principal, subscription_id)
        count = await requeue(session, subscription_id, deliveries.c.id == delivery_id)
        if count == 0:
            raise NotFound(f"No delivery {delivery_id} of subscription {subscription_id}.")
        _wake(request)
        return Requeued(requeued=count)

    @router.post("/{subscription_id}:redeliver", status_code=202,
                 summary="Send again every delivery created since a time (and make the subscription active)")
    async def redeliver_since(principal: Annotated[Principal, can_subscribe], request: Request,
                              subscription_id: SubscriptionId, since: Annotated[AwareDatetime, Query()],
                              session: SessionDep) -> Requeued:
        await owned(session, principal, subscription_id)
        count = await requeue(session, subscription_id, deliveries.c.created_at >= since)
        _wake(request)
        return Requeued(requeued=count)


    return router


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _wake(request: Request) -> None:
    sender = getattr(request.app.state, "webhook_sender", None)
    if sender is not None:
        sender.wakeup.set()
