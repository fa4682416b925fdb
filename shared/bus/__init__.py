"""The event backbone: transactional outbox + relay, idempotent consumer (inbox) + dead-letter topics."""

from shared.bus.consumer import Consumer
from shared.bus.handlers import Delivery, Handlers, PoisonMessage
from shared.bus.kafka import ensure_topics, new_producer, with_dlqs
from shared.bus.models import inbox_table, outbox_table, rewind_table
from shared.bus.outbox import Outbox, PendingEvent
from shared.bus.relay import Relay

__all__ = [
    "Consumer", "Delivery", "Handlers", "Outbox", "PendingEvent", "PoisonMessage", "Relay",
    "ensure_topics", "inbox_table", "new_producer", "outbox_table", "rewind_table", "with_dlqs",
]
