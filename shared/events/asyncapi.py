"""An AsyncAPI 3.0 document generated from the event catalogue (CloudEvents structured mode over Kafka)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.events.catalogue import Catalogue, EventType, dlq_topic
from shared.events.envelope import CORRELATION_HEADER, CloudEvent


def _message_name(event_type: EventType) -> str:
    return event_type.type.replace(".", "_")


def asyncapi_document(catalogue: Catalogue, version: str = "0.1.0") -> dict[str, Any]:
    """Channels per topic, one message per event type, send operations per producing service."""
    types = sorted(catalogue.types.values(), key=lambda t: (t.topic, t.type))
    _, defs = models_json_schema([(t.payload, "validation") for t in types] + [(CloudEvent, "validation")],
                                 ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type in types:
        name = _message_name(event_type)
        messages[name] = {
            "name": event_type.type,
            "title": event_type.name,
            "summary": event_type.description.strip().splitlines()[0] if event_type.description.strip() else "",
            "contentType": "application/cloudevents+json",
            "headers": {
                "type": "object",
                "properties": {
                    CORRELATION_HEADER: {
                        "type": "string", "description": "Correlation id of the request that caused it"
                    },
                    "ce_type": {"type": "string", "const": event_type.type},
                },
            },
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEvent"},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": event_type.type},
                            "subject": {"type": "string", "description": f"The {event_type.aggregate} id"},
                            "data": {"$ref": f"#/components/schemas/{event_type.payload.__name__}"},
                        },
                    },
                ]
            },
            "bindings": {"kafka": {"key": {"type": "string", "description": f"{event_type.aggregate} id"}}},
        }
        channel = channels.setdefault(
            event_type.topic,
            {"address": event_type.topic, "description": f"Events of the {event_type.aggregate} aggregate, "
             f"produced by {event_type.producer}; key = {event_type.aggregate} id.", "messages": {}},
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        op = operations.setdefault(
            f"{event_type.producer}_publishes_{event_type.topic.replace('.', '_')}",
            {"action": "send", "channel": {"$ref": f"#/channels/{_channel_id(event_type.topic)}"}, "messages": []},
        )
        op["messages"].append({"$ref": f"#/channels/{_channel_id(event_type.topic)}/messages/{name}"})
    for topic in list(channels):
        channels[dlq_topic(topic)] = {
            "address": dlq_topic(topic),
            "description": f"Dead letters of {topic}: the original record with dlq-* headers naming the error.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kaenkhun events",
            "version": version,
            "description": "CloudEvents 1.0 in structured mode; one topic per producing aggregate; the Kafka key is "
            "the aggregate id so one household's events stay in order. No raw citizen ID, name or address "
            "crosses the bus.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka"}},
        "channels": {_channel_id(topic): spec for topic, spec in channels.items()},
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")
