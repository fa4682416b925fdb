"""An AsyncAPI 3.0 document generated from the event catalogue: CloudEvents structured mode over Kafka between
the services, and the same events delivered to subscribers' URLs as signed webhooks (`POST /v1/subscriptions` on
the producing service: every event type a service publishes can be subscribed to); besides them, the relays'
outbox status snapshots (shared/events/status.py)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.events.catalogue import Catalogue, EventType, dlq_topic
from shared.events.envelope import CORRELATION_HEADER, CloudEvent
from shared.events.status import OUTBOX_STATUS_TOPIC, OutboxStatus
from shared.webhooks import SIGNATURE_PARAMETERS

WEBHOOK_SERVER = "subscriber"


def _message_name(event_type: EventType) -> str:
    return event_type.type.replace(".", "_")


def asyncapi_document(catalogue: Catalogue, version: str = "0.1.0") -> dict[str, Any]:
    """Channels per topic, one message per event type, send operations per producing service."""
    types = sorted(catalogue.types.values(), key=lambda t: (t.topic, t.type))
    _, defs = models_json_schema([(t.payload, "validation") for t in types]
                                 + [(CloudEvent, "validation"), (OutboxStatus, "validation")],
                                 ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type in types:
        name = _message_name(event_type)
        payload = _payload(event_type)
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
            "payload": payload,
            "bindings": {"kafka": {"key": {"type": "string", "description": f"{event_type.aggregate} id"}}},
            "x-subscribable": True,
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
    webhook_channels, webhook_operations = _webhooks(types, messages)
    for topic in list(channels):
        channels[dlq_topic(topic)] = {
            "address": dlq_topic(topic),
            "description": f"Dead letters of {topic}: the original record with dlq-* headers naming the error.",
        }
    status_channel, status_operation = _outbox_status(messages)
    channels[OUTBOX_STATUS_TOPIC] = status_channel
    operations["relays_send_outbox_status"] = status_operation
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kaenkhun events",
            "version": version,
            "description": "CloudEvents 1.0 in structured mode; one topic per producing aggregate; the Kafka key is "
            "the aggregate id so one household's events stay in order. No raw citizen ID, name or address "
            "crosses the bus. Every event type a service publishes can also be received over HTTP: subscribe with "
            "`POST /v1/subscriptions` on that service (scope `events:subscribe`, `{url, event_types, areas}`); "
            "the channels `webhooks_<service>` list what each service delivers, signed as Standard Webhooks do "
            "(`webhook-id` = the event id), at least once.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka"},
            WEBHOOK_SERVER: {
                "host": "{host}", "protocol": "https",
                "description": "A subscriber's receiver: the `url` its subscription names (http is allowed in "
                               "development only).",
                "variables": {"host": {"description": "host (and port) of the subscription's url"}},
            },
        },
        "channels": {_channel_id(topic): spec for topic, spec in channels.items()} | webhook_channels,
        "operations": operations | webhook_operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _payload(event_type: EventType) -> dict[str, Any]:
    """A message's payload: the CloudEvent with this type's `type` and `data`."""
    return {
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
    }


def _outbox_status(messages: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The channel of the relays' outbox status snapshots and their send operation; adds its message."""
    messages["outbox_status"] = {
        "name": "outbox-status",
        "title": "Outbox status",
        "summary": (OutboxStatus.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{OutboxStatus.__name__}"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the producing service"}}},
    }
    channel_ref = f"#/channels/{_channel_id(OUTBOX_STATUS_TOPIC)}"
    channel = {
        "address": OUTBOX_STATUS_TOPIC,
        "description": "Every service's relay (the replica holding outbox shard 0) sends, every "
                       "`KAENKHUN_KAFKA_OUTBOX_STATUS_INTERVAL_S` (5 s), how many events of each topic it publishes "
                       "are still waiting in its outbox, keyed by the service. Snapshots, not events: plain JSON, "
                       "not through the outbox, the newest per service is all that counts. Each consuming replica "
                       "reads the topic's tail in no consumer group, for reporting's freshness and `/v1/bus` "
                       "(caught up = lag 0 and nothing pending). Counts and times only; kept an hour.",
        "messages": {"outbox_status": {"$ref": "#/components/messages/outbox_status"}},
    }
    operation = {"action": "send", "channel": {"$ref": channel_ref},
                 "messages": [{"$ref": f"{channel_ref}/messages/outbox_status"}]}
    return channel, operation


def _webhooks(types: list[EventType], messages: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per producing service, the channel of its webhook deliveries (every type it publishes) and its send
    operation; adds a `webhook_…` message per type (the same payload, the Standard Webhooks headers)."""
    headers = {
        "type": "object",
        "required": [p["name"] for p in SIGNATURE_PARAMETERS],
        "properties": {p["name"]: {**p["schema"], "description": p["description"]} for p in SIGNATURE_PARAMETERS},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for producer in sorted({t.producer for t in types}):
        channel_id = f"webhooks_{producer}"
        channel: dict[str, Any] = {
            "address": None,
            "title": f"Webhooks of {producer}",
            "description": f"What a subscription to the {producer} service (`POST /v1/subscriptions`) can receive: "
                           "each event as CloudEvents JSON POSTed to the subscription's url, signed as Standard "
                           "Webhooks do with the subscription's secret; `webhook-id` is the event id (the same on "
                           "every redelivery). At least once, in order per aggregate, retried with backoff for at "
                           "least 24 h; a 2xx acknowledges, 410 disables the subscription. A subscriber receives "
                           "only events of its areas (a partner agency's client: only those of referrals "
                           "addressed to it).",
            "servers": [{"$ref": f"#/servers/{WEBHOOK_SERVER}"}],
            "messages": {},
        }
        for event_type in (t for t in types if t.producer == producer):
            name = f"webhook_{_message_name(event_type)}"
            messages[name] = {
                "name": event_type.name,
                "title": f"{event_type.name} (webhook)",
                "summary": messages[_message_name(event_type)]["summary"],
                "contentType": "application/cloudevents+json",
                "headers": headers,
                "payload": _payload(event_type),
                "bindings": {"http": {"headers": headers}},
            }
            channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        channels[channel_id] = channel
        operations[f"{producer}_delivers_webhooks"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "bindings": {"http": {"method": "POST"}},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel["messages"]],
        }
    return channels, operations


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")
