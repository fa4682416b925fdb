"""Event contracts: the CloudEvents envelope, the catalogue and the AsyncAPI document made from it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel

from shared.events import Catalogue, CloudEvent
from shared.events.asyncapi import asyncapi_document
from shared.settings import REPO_ROOT


class MemberAdded(BaseModel):
    """A member joined a household."""

    household_id: str
    citizen_id_hash: str


def test_envelope_round_trips_thai_text_exactly() -> None:
    event = CloudEvent(source="urn:kaenkhun:registry", type="th.kaenkhun.x.v1", subject="h1",
                       data={"name_th": "นางสาว สมหญิง ใจดี"})
    raw = event.to_json()
    assert "นางสาว สมหญิง ใจดี".encode() in raw  # not \u-escaped
    again = CloudEvent.from_json(raw)
    assert again == event
    assert json.loads(raw)["specversion"] == "1.0"
    for attribute in ("id", "source", "type", "time", "subject", "datacontenttype", "data"):
        assert attribute in json.loads(raw)


def test_catalogue_refuses_conflicting_definitions() -> None:
    catalogue = Catalogue()
    catalogue.define("member.added", topic="kaenkhun.registry.household", producer="registry",
                     aggregate="household", payload=MemberAdded)
    with pytest.raises(ValueError, match="registered twice"):
        catalogue.define("member.added", topic="elsewhere", producer="registry", aggregate="household",
                         payload=MemberAdded)
    assert catalogue.topics("registry") == ["kaenkhun.registry.household"]
    assert catalogue.topics("assessment") == []


def test_asyncapi_document_describes_each_event_type() -> None:
    catalogue = Catalogue()
    event_type = catalogue.define("member.added", topic="kaenkhun.registry.household", producer="registry",
                                  aggregate="household", payload=MemberAdded)
    document = asyncapi_document(catalogue)
    assert document["asyncapi"] == "3.0.0"
    channel = document["channels"]["kaenkhun_registry_household"]
    assert channel["address"] == "kaenkhun.registry.household"
    assert "kaenkhun_registry_household_dlq" in document["channels"]
    message = document["components"]["messages"][event_type.type.replace(".", "_")]
    assert message["name"] == "th.kaenkhun.member.added.v1"
    assert message["payload"]["allOf"][1]["properties"]["data"] == {"$ref": "#/components/schemas/MemberAdded"}
    schema = document["components"]["schemas"]["MemberAdded"]
    assert set(schema["required"]) == {"household_id", "citizen_id_hash"}
    assert document["operations"]["registry_publishes_kaenkhun_registry_household"]["action"] == "send"


def test_cli_prints_the_asyncapi_document() -> None:
    result = subprocess.run([sys.executable, "-m", "ops.cli", "asyncapi"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    document = json.loads(result.stdout)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Kaenkhun events"


def test_outbox_encoding_is_byte_for_byte_the_envelope_model() -> None:
    from shared.clock import utcnow
    from shared.events.envelope import encode_event

    now = utcnow()
    for optional in ({}, {"correlationid": "c-1", "partitionkey": "h1"}):
        event_id, raw = encode_event(source="urn:kaenkhun:registry", type="th.kaenkhun.x.v1", time=now,
                                     subject="h1" if optional else None,
                                     data={"name_th": "นางสาว สมหญิง ใจดี", "n": 1}, **optional)
        model = CloudEvent(id=event_id, source="urn:kaenkhun:registry", type="th.kaenkhun.x.v1", time=now,
                           subject="h1" if optional else None, data={"name_th": "นางสาว สมหญิง ใจดี", "n": 1},
                           **optional)
        assert raw == model.to_json()
        assert CloudEvent.from_json(raw) == model
