"""Event contracts: the CloudEvents envelope and the catalogue of event types."""

from shared.events.catalogue import Catalogue, EventType, dlq_topic
from shared.events.envelope import CORRELATION_HEADER, CloudEvent, source_for

__all__ = ["CORRELATION_HEADER", "Catalogue", "CloudEvent", "EventType", "dlq_topic", "source_for"]
