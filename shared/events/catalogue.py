"""The catalogue of event types: type → payload model, topic, aggregate. One topic per producing aggregate.

Besides the catalogue's topics, the bus has a dead-letter topic per topic (`dlq_topic`) and one topic of outbox
status snapshots that every relay sends to (`shared.events.status.OUTBOX_STATUS_TOPIC`: counts, not events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

TYPE_PREFIX = "th.kaenkhun."
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class EventType:
    """One catalogued event type. `name` is short (e.g. `household.registered`), versioned by `version`."""

    name: str
    version: int
    topic: str
    producer: str
    aggregate: str
    payload: type[BaseModel]
    description: str = ""

    @property
    def type(self) -> str:
        """The CloudEvents `type`: reverse-DNS prefix, name and version."""
        return f"{TYPE_PREFIX}{self.name}.v{self.version}"


@dataclass
class Catalogue:
    """A set of event types, looked up by CloudEvents type; topics derive from it."""

    types: dict[str, EventType] = field(default_factory=dict)

    def register(self, event_type: EventType) -> EventType:
        existing = self.types.get(event_type.type)
        if existing is not None and existing != event_type:
            raise ValueError(f"event type {event_type.type} registered twice with different definitions")
        self.types[event_type.type] = event_type
        return event_type

    def define(
        self,
        name: str,
        *,
        topic: str,
        producer: str,
        aggregate: str,
        payload: type[BaseModel],
        version: int = 1,
        description: str = "",
    ) -> EventType:
        return self.register(
            EventType(name, version, topic, producer, aggregate, payload, description or (payload.__doc__ or ""))
        )

    def get(self, type_: str) -> EventType | None:
        return self.types.get(type_)

    def topics(self, producer: str | None = None) -> list[str]:
        """Topics of the catalogue (of one producing service when given), sorted."""
        return sorted({t.topic for t in self.types.values() if producer is None or t.producer == producer})

    def produced_by(self, producer: str) -> list[EventType]:
        """The types one service publishes, by name: also what a subscription to that service can receive."""
        return sorted((t for t in self.types.values() if t.producer == producer), key=lambda t: t.name)

    def on_topic(self, topic: str) -> list[EventType]:
        return [t for t in self.types.values() if t.topic == topic]

    def merged(self, others: Iterable[Catalogue]) -> Catalogue:
        merged = Catalogue(dict(self.types))
        for other in others:
            for event_type in other.types.values():
                merged.register(event_type)
        return merged


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX
