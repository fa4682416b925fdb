"""What a consumer does with each event type: `Handlers` maps event types to handlers and decodes a Kafka
record into a `Delivery` (its CloudEvent, typed payload and handler), or a poison message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.catalogue import Catalogue, EventType
from shared.events.envelope import CloudEvent

Handler = Callable[[AsyncSession, CloudEvent, BaseModel], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, Sequence[tuple[CloudEvent, BaseModel]]], Awaitable[None]]
# Called once per transaction after every handler, with the deliveries they applied (see `Handlers.finally_`).
Finisher = Callable[[AsyncSession, Sequence["Delivery"]], Awaitable[None]]


class PoisonMessage(Exception):
    """A message that can never be handled (not a CloudEvent, payload invalid): no retry."""


@dataclass(frozen=True)
class Delivery:
    """One Kafka record decoded into its CloudEvent and typed payload."""

    record: ConsumerRecord[bytes, bytes]
    event: CloudEvent | None
    payload: BaseModel | None
    handler: BatchHandler | None
    error: PoisonMessage | None = None

    @property
    def event_id(self) -> str | None:
        return self.event.id if self.event is not None else None


# The inbox outcome of an event of a subscribed topic whose type this consumer has no handler for: recorded
# like any other, so every event of its topics is accounted for (the history checker counts on it).
NOT_NEEDED = "not_needed"


class Handlers:
    """Event type → handler, for one consumer. Types the consumer has no handler for are recorded as not
    needed (`NOT_NEEDED`) and change nothing else.

    `on` registers a handler called once per event; `on_batch` one called with consecutive events of
    its types together (in order, in the same transaction), so a projection can write them in one
    statement. Either way each event takes effect once, with its inbox row.

    `finally_` registers a function called once per transaction, after the handlers, with every delivery they
    applied (their Kafka records too): where a projection writes what many events share (sums over an area),
    in one fixed order whatever the order the events came in, so replicas writing at once never deadlock.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._handlers: dict[str, BatchHandler] = {}
        self.finishers: list[Finisher] = []

    def on(self, *event_types: EventType) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self._register(event_types, _one_at_a_time(func))
            return func

        return register

    def on_batch(self, *event_types: EventType) -> Callable[[BatchHandler], BatchHandler]:
        def register(func: BatchHandler) -> BatchHandler:
            self._register(event_types, func)
            return func

        return register

    def finally_(self, func: Finisher) -> Finisher:
        self.finishers.append(func)
        return func

    def _register(self, event_types: Sequence[EventType], handler: BatchHandler) -> None:
        for event_type in event_types:
            self.catalogue.register(event_type)
            self._handlers[event_type.type] = handler

    def topics(self) -> list[str]:
        return sorted({self.catalogue.types[t].topic for t in self._handlers})

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Delivery:
        """Parse the record; malformed ones are returned with a PoisonMessage error, never raised."""
        try:
            event = CloudEvent.from_json(record.value or b"")
        except ValidationError as exc:
            return Delivery(record, None, None, None, PoisonMessage(f"not a CloudEvent: {exc}"))
        handler = self._handlers.get(event.type)
        if handler is None:
            return Delivery(record, event, None, None)
        event_type = self.catalogue.types[event.type]
        try:
            payload = event_type.payload.model_validate(event.data)
        except ValidationError as exc:
            return Delivery(record, event, None, None, PoisonMessage(f"invalid {event.type} payload: {exc}"))
        return Delivery(record, event, payload, handler)


def _one_at_a_time(func: Handler) -> BatchHandler:
    async def handle(session: AsyncSession, items: Sequence[tuple[CloudEvent, BaseModel]]) -> None:
        from shared.observability import bind_correlation_id

        for event, payload in items:
            with bind_correlation_id(event.correlationid):
                await func(session, event, payload)

    handle.__name__ = getattr(func, "__name__", "handle")
    return handle
