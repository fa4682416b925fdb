"""CloudEvents 1.0 envelope (structured mode over Kafka) and its Kafka record form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
CORRELATION_HEADER = "correlation-id"
SOURCE_PREFIX = "urn:kaenkhun:"


def utcnow() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; `data` is the JSON payload of a catalogued event type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
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


def source_for(service: str) -> str:
    return f"{SOURCE_PREFIX}{service}"
