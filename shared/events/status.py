"""The outbox status record: what a service's relay says of its own outbox, now and then, on the topic
`OUTBOX_STATUS_TOPIC` (key = the service's name), so its consumers know what is still to come.

A snapshot, not an event: the newest one per service is all that counts, and the same one received twice changes
nothing. So it is plain JSON, sent by the relay straight to the broker (not through the outbox it describes), and
read by every replica of every consuming service without a consumer group (shared/bus/status.py). Counts and
times only: nothing about a household crosses this topic.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

OUTBOX_STATUS_TOPIC = "kaenkhun.bus.outbox-status"


class TopicPending(BaseModel):
    """One topic's events still waiting in the producer's outbox."""

    model_config = ConfigDict(extra="ignore")

    pending: int = Field(ge=0, description="events of the topic written and not yet published")
    oldest_pending_at: AwareDatetime | None = Field(description="when the oldest of them was written")


class OutboxStatus(BaseModel):
    """A service's outbox as its relay measured it: per topic it publishes, the events not yet published."""

    model_config = ConfigDict(extra="ignore")

    service: str = Field(description="the producing service (also the record's key)")
    measured_at: AwareDatetime = Field(description="when it was measured (the producer's clock)")
    interval_s: float = Field(gt=0, description=(
        "how often the producer sends it: a status older than 3 intervals is no longer believed"))
    topics: dict[str, TopicPending] = Field(description=(
        "every topic the service publishes (DLQs aside), with 0 pending when nothing waits"))
