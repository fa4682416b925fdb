"""CloudEvents 1.0 envelope (structured mode over Kafka) and its Kafka record form."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.clock import utcnow
from shared.ids import new_uuid4

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
CORRELATION_HEADER = "correlation-id"
SOURCE_PREFIX = "urn:kaenkhun:"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; `data` is the JSON payload of a catalogued event type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_uuid4)
    source: str
    type: str
    time: AwareDatetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    # Extension attributes (lower-case alphanumerics per the spec).
    correlationid: str | None = None
    partitionkey: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise as a structured-mode CloudEvent (UTF-8 JSON, Thai text unescaped)."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)


def encode_event(
    *,
    source: str,
    type: str,
    time: datetime,
    subject: str | None,
    data: dict[str, Any],
    correlationid: str | None = None,
    partitionkey: str | None = None,
) -> tuple[str, bytes]:
    """A new event's id and its structured-mode JSON, byte for byte what `CloudEvent(...).to_json()` gives.

    The outbox writes thousands of events per bulk import; building the JSON directly skips
    validating fields it has just set itself (a test checks both paths agree).
    """
    event_id = new_uuid4()
    envelope: dict[str, Any] = {
        "specversion": "1.0", "id": event_id, "source": source, "type": type, "time": time,
    }
    if subject is not None:
        envelope["subject"] = subject
    envelope["datacontenttype"] = "application/json"
    if correlationid is not None:
        envelope["correlationid"] = correlationid
    if partitionkey is not None:
        envelope["partitionkey"] = partitionkey
    envelope["data"] = data
    return event_id, orjson.dumps(envelope, option=orjson.OPT_UTC_Z)


def source_for(service: str) -> str:
    return f"{SOURCE_PREFIX}{service}"
