"""The four OpenAPI documents are a contract partners generate clients from: valid OpenAPI 3.1 (checked by
`openapi-spec-validator`, an implementation independent of FastAPI), every response header with a schema, the
ministry's push headers declared, the events each service publishes as `webhooks`, and the AsyncAPI document
listing what a subscription can receive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from services import SERVICES, load
from shared.events.asyncapi import asyncapi_document
from shared.events.catalogue import Catalogue
from shared.openapi import complete_response_headers
from shared.settings import REPO_ROOT
from tests.kit.apps import make_settings
from tests.kit.env import NO_BROKER

SIGNATURE = ("webhook-id", "webhook-timestamp", "webhook-signature")
PUSHES = ("/v1/disbursement-batches", "/v1/centre-subsidies")


def document(service: str, folder: Path) -> dict[str, Any]:
    """The service's OpenAPI document as /openapi.json serves it (JSON: status codes are strings)."""
    settings = make_settings(service, f"sqlite+aiosqlite:///{folder / 'service.db'}", NO_BROKER, run_bus=False)
    loaded: dict[str, Any] = json.loads(json.dumps(load(service).create_app(settings).openapi()))
    return loaded


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def headers_of(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_document_is_valid_openapi_3_1(service: str, tmp_path: Path) -> None:
    doc = document(service, tmp_path)
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # raises OpenAPIValidationError, naming the place, on the first fault
    for item in list(doc["paths"].values()) + list(doc.get("webhooks", {}).values()):
        for operation in item.values():
            for status, response in operation["responses"].items():
                for name, header in resolve(doc, response).get("headers", {}).items():
                    assert "schema" in header or "content" in header, (status, name)


def test_a_response_header_declared_without_a_schema_gets_one() -> None:
    """The rule lives where documents are built, so a new route cannot bring the fault back: FastAPI passes a
    route's `responses` through as written, and OpenAPI 3.1 wants `schema` (or `content`) on every header."""
    app = FastAPI()

    @app.post("/things", status_code=201, responses={201: {"headers": {"Location": {"description": "URL"}}}})
    async def create() -> Response:
        return Response(status_code=201)

    raw = app.openapi()
    with pytest.raises(OpenAPIValidationError):
        validate(json.loads(json.dumps(raw)))
    completed = complete_response_headers(json.loads(json.dumps(raw)))
    validate(completed)
    header = completed["paths"]["/things"]["post"]["responses"]["201"]["headers"]["Location"]
    assert header == {"description": "URL", "schema": {"type": "string"}}


def test_the_registry_declares_its_location_and_etag_headers(tmp_path: Path) -> None:
    created = document("registry", tmp_path)["paths"]["/v1/households"]["post"]["responses"]["201"]["headers"]
    assert created["Location"]["schema"] == {"type": "string"}
    assert created["ETag"]["schema"] == {"type": "string"}


def test_pushes_declare_their_signature_and_idempotency_headers(tmp_path: Path) -> None:
    doc = document("assistance", tmp_path)
    for path in PUSHES:
        declared = headers_of(doc["paths"][path]["post"])
        assert set(declared) == {"Idempotency-Key", *SIGNATURE}, path
        for header in declared.values():
            assert header["required"] is True
            assert header["schema"]["type"] == "string"
            assert header["description"]
        assert declared["Idempotency-Key"]["schema"]["maxLength"] == 255
        replayed = doc["paths"][path]["post"]["responses"]["201"]["headers"]["Idempotent-Replayed"]
        assert replayed["schema"] == {"type": "string", "enum": ["true"]}
    help_ = doc["paths"]["/v1/referrals/{referral_id}/help"]["post"]
    assert headers_of(help_)["Idempotency-Key"]["required"] is True
    assert "Idempotent-Replayed" in help_["responses"]["200"]["headers"]


@pytest.mark.parametrize("service", SERVICES)
def test_webhooks_are_the_events_the_service_publishes(service: str, tmp_path: Path) -> None:
    doc = document(service, tmp_path)
    catalogue: Catalogue = load(service).spec.catalogue
    published = catalogue.produced_by(service)
    assert set(doc.get("webhooks", {})) == {t.name for t in published}
    for event_type in published:
        operation = doc["webhooks"][event_type.name]["post"]
        assert {name for name, header in headers_of(operation).items() if header["required"]} == set(SIGNATURE)
        assert "POST /v1/subscriptions" in operation["description"]
        assert set(operation["responses"]) >= {"200", "410"}
        body = operation["requestBody"]
        assert body["required"] is True
        envelope = resolve(doc, body["content"]["application/cloudevents+json"]["schema"])
        assert envelope["properties"]["type"]["const"] == event_type.type
        assert envelope["properties"]["specversion"]["const"] == "1.0"
        assert {"id", "source", "type", "time", "subject", "data"} <= set(envelope["properties"])
        payload = resolve(doc, envelope["properties"]["data"])
        assert payload["title"] == event_type.payload.__name__
        assert set(payload["properties"]) == set(event_type.payload.model_fields)


def test_asyncapi_lists_every_event_and_what_a_subscription_receives(tmp_path: Path) -> None:
    catalogue = Catalogue().merged(load(name).spec.catalogue for name in SERVICES)
    doc = asyncapi_document(catalogue)
    messages = doc["components"]["messages"]
    for event_type in catalogue.types.values():
        kafka = messages[event_type.type.replace(".", "_")]
        assert kafka["payload"]["allOf"][1]["properties"]["data"] == {
            "$ref": f"#/components/schemas/{event_type.payload.__name__}"}
        assert event_type.payload.__name__ in doc["components"]["schemas"]
        assert kafka["x-subscribable"] is True
    for service in SERVICES:
        published = catalogue.produced_by(service)
        if not published:
            assert f"webhooks_{service}" not in doc["channels"]
            continue
        channel = doc["channels"][f"webhooks_{service}"]
        delivered = [messages[ref["$ref"].rsplit("/", 1)[1]] for ref in channel["messages"].values()]
        assert sorted(m["name"] for m in delivered) == [t.name for t in published]
        for message in delivered:
            assert set(message["headers"]["required"]) == set(SIGNATURE)
        assert set(delivered[0]["headers"]["required"]) == set(SIGNATURE)
        # The webhooks of its OpenAPI document are the same list.
        assert set(document(service, tmp_path / service).get("webhooks", {})) == {m["name"] for m in delivered}
        operation = doc["operations"][f"{service}_delivers_webhooks"]
        assert operation["action"] == "send" and len(operation["messages"]) == len(published)


def test_every_reference_of_the_asyncapi_document_resolves() -> None:
    doc = asyncapi_document(Catalogue().merged(load(name).spec.catalogue for name in SERVICES))

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
                r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    found = refs(doc)
    assert len(found) > 100
    for ref in found:
        assert resolve(doc, {"$ref": ref}), ref  # KeyError names a reference to nothing


def test_the_committed_asyncapi_document_is_current() -> None:
    catalogue = Catalogue().merged(load(name).spec.catalogue for name in SERVICES)
    committed = json.loads((REPO_ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    assert committed == asyncapi_document(catalogue), "docs/asyncapi.json is stale: run `make asyncapi`"
