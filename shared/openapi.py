"""Each service's OpenAPI 3.1 document as a contract partners generate clients from: the events the service
publishes declared as OpenAPI `webhooks` (generated from its event catalogue), and every response header given a
schema (OpenAPI requires one; FastAPI passes a route's `responses={...: {"headers": ...}}` through as written).

`tests/platform/test_openapi_documents.py` validates the four documents with `openapi-spec-validator`, and
`tests/platform/test_generated_client.py` runs a client generated from them by `openapi-python-client`.
"""

# No `from __future__ import annotations`: the webhook receivers are made in a loop, and FastAPI must read their
# body model from the annotation at runtime (a string naming a local variable cannot be resolved).
import functools
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model

from shared.events.catalogue import Catalogue, EventType
from shared.events.envelope import CloudEvent
from shared.webhooks import SIGNATURE_PARAMETERS

CLOUDEVENTS_JSON = "application/cloudevents+json"
SUBSCRIBE_SCOPE = "events:subscribe"
# The schema a response header gets when its route declares none.
DEFAULT_HEADER_SCHEMA: dict[str, Any] = {"type": "string"}

DELIVERY = (
    "**How it arrives.** Subscribe with `POST /v1/subscriptions` on this service (scope `" + SUBSCRIBE_SCOPE + "`) "
    "`{{\"url\": ..., \"event_types\": [\"{name}\"], \"areas\": [...]}}`: each event of this type about your areas "
    "(a partner agency's client: about the referrals addressed to it) is POSTed to your `url` as CloudEvents JSON "
    "(structured mode), `type` = `{type}`, signed as "
    "[Standard Webhooks](https://www.standardwebhooks.com) do with your subscription's secret (`whsec_…`): "
    "`webhook-id` is the event's `id` (the same on every redelivery: drop duplicates by it), `webhook-timestamp` "
    "the Unix seconds of this attempt and `webhook-signature` `v1,<base64 HMAC-SHA256 of \"id.timestamp.body\">` "
    "(one per valid secret, space-separated, while a secret is rotated). Delivery is at least once, in order per "
    "{aggregate}, retried with exponential backoff for at least 24 hours; answer any 2xx to acknowledge, "
    "410 Gone to disable the subscription."
)


@functools.cache  # one model per event type, however many apps a process builds
def envelope_model(event_type: EventType) -> type[BaseModel]:
    """The CloudEvent of one event type: the envelope with `type` fixed and `data` its payload model."""
    model: type[BaseModel] = create_model(
        f"{event_type.payload.__name__}Event",
        __base__=CloudEvent,
        __doc__=f"`{event_type.name}` as CloudEvents 1.0 JSON: {event_type.description.strip()}",
        type=(Literal[event_type.type], Field(description="The CloudEvents type: name and version")),  # type: ignore[arg-type]
        subject=(str, Field(description=f"The {event_type.aggregate} id (the Kafka key; order is kept per "
                                        f"{event_type.aggregate})")),
        data=(event_type.payload, Field(description="The payload")),
    )
    return model


def _receiver(model: type[BaseModel]) -> Callable[..., Any]:
    """A documentation-only endpoint whose body is `model`: what a subscriber's URL receives."""

    async def receive(event: Annotated[model, Body(media_type=CLOUDEVENTS_JSON)]) -> Response:  # type: ignore[valid-type]
        raise NotImplementedError  # never routed: app.webhooks only describes requests the service sends

    return receive


def declare_webhooks(app: FastAPI, catalogue: Catalogue, service: str) -> None:
    """One OpenAPI webhook per event type the service publishes, named by the event's short name."""
    for event_type in catalogue.produced_by(service):
        summary = event_type.description.strip().splitlines()[0] if event_type.description.strip() else ""
        app.webhooks.add_api_route(
            event_type.name, _receiver(envelope_model(event_type)), methods=["POST"],
            name=f"on_{event_type.name.replace('.', '_')}", operation_id=f"on_{event_type.name.replace('.', '_')}",
            summary=f"{event_type.name}: {summary}",
            description=DELIVERY.format(name=event_type.name, type=event_type.type,
                                        aggregate=event_type.aggregate),
            tags=["events"], response_class=Response, status_code=200,
            responses={200: {"description": "Any 2xx: received (the body is ignored)"},
                       410: {"description": "Gone: the subscription is disabled and gets no more deliveries"},
                       "default": {"description": "Anything else, or no answer in time: delivered again later"}},
            openapi_extra={"parameters": [dict(p) for p in SIGNATURE_PARAMETERS]},
        )


def _response_headers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every response's `headers` object: of operations, webhooks and `components.responses`."""
    responses: list[dict[str, Any]] = list(document.get("components", {}).get("responses", {}).values())
    for section in ("paths", "webhooks"):
        for item in document.get(section, {}).values():
            for operation in item.values():
                if isinstance(operation, dict):
                    responses.extend(operation.get("responses", {}).values())
    for response in responses:
        if isinstance(response, dict) and isinstance(response.get("headers"), dict):
            yield response["headers"]


def complete_response_headers(document: dict[str, Any]) -> dict[str, Any]:
    """Give every response header without `schema` or `content` (OpenAPI 3.1 requires one) a string schema."""
    for headers in _response_headers(document):
        for name, header in headers.items():
            if isinstance(header, dict) and "$ref" not in header and "schema" not in header and "content" not in header:
                headers[name] = {**header, "schema": dict(DEFAULT_HEADER_SCHEMA)}
    return document


def install_openapi(app: FastAPI, catalogue: Catalogue, service: str) -> None:
    """Declare the service's events as webhooks and complete its document each time FastAPI builds it."""
    declare_webhooks(app, catalogue, service)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_response_headers(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
