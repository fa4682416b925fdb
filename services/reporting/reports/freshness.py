"""What the read models hold and how fresh it is: the survey and fiscal years they cover, and per topic the
newest event applied, the consumer's lag and the events still waiting in the producer's outbox."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting.models import AreaYear, Budget, Feed, Payment
from services.reporting.reports.publication import as_of
from services.reporting.security import CanRead
from shared.app import ReadSessionDep
from shared.bus import Consumer
from shared.bus.status import OutboxStatusReader
from shared.db import as_utc

# -- schemas --


class Years(BaseModel):
    survey_years: list[int]
    fiscal_years: list[int]


class TopicFreshness(BaseModel):
    topic: str
    newest_event_at: datetime | None
    events_applied: int
    lag: int | None = Field(description="events of the topic the reporting consumer group has not committed yet, "
                                        "over all its partitions (the broker's figure, the same from every "
                                        "replica); null when the consumer is off or the broker cannot say")
    outbox_pending: int | None = Field(description="events of the topic still waiting in its producer's outbox, "
                                                   "not yet published, by the newest status the producer's relay "
                                                   "sent on the bus (every `outbox_status_interval_s`); null when "
                                                   "no fresh status says (older than 3 intervals, or none yet)")


class Freshness(BaseModel):
    as_of: datetime | None
    consumer_connected: bool
    caught_up: bool = Field(description="every event written so far by the producers (as of their last status) is "
                                        "applied: each topic's lag and outbox_pending are known and 0")
    topics: list[TopicFreshness]


# -- rules --


async def years_held(session: AsyncSession) -> Years:
    surveyed = await session.execute(select(col(AreaYear.survey_year)).distinct().order_by(col(AreaYear.survey_year)))
    paid = await session.execute(select(col(Payment.fiscal_year)).distinct())
    budgeted = await session.execute(select(col(Budget.fiscal_year)).distinct())
    return Years(survey_years=list(surveyed.scalars()),
                 fiscal_years=sorted(set(paid.scalars()) | set(budgeted.scalars())))


async def freshness_of(session: AsyncSession, *, consumer: Consumer | None,
                       upstream: OutboxStatusReader | None = None) -> Freshness:
    """Every topic the consumer reads or the read models have events of (`consumer`: None when it is off); the
    feed is kept per partition, summed here; `upstream` says what the producers' outboxes still hold.

    In order: the statuses, then the lag asked after they arrived (every event then waits in an outbox, or in the
    broker's log, or is applied), then the read models (a lag of 0 means applied before they are read)."""
    consumed = consumer.topics if consumer is not None else []
    pending = upstream.pending(consumed) if upstream is not None else {}
    asked_after = upstream.received_at(consumed) if upstream is not None else None
    lags = (await consumer.group_lag_by_topic(asked_after=asked_after) if consumer is not None else None) or {}
    feeds = {topic: (as_utc(newest), int(events)) for topic, newest, events in (await session.execute(
        select(col(Feed.topic), func.max(col(Feed.newest_event_at)), func.sum(col(Feed.events)))
        .group_by(col(Feed.topic)))).all()}
    topics = sorted(set(consumed) | set(feeds))
    if upstream is not None:  # topics of the read models no longer consumed (no lag: never caught up) too
        pending |= upstream.pending(set(feeds) - set(consumed))
    rows = [TopicFreshness(topic=t, newest_event_at=feeds[t][0] if t in feeds else None,
                           events_applied=feeds[t][1] if t in feeds else 0, lag=lags.get(t),
                           outbox_pending=pending.get(t))
            for t in topics]
    return Freshness(as_of=await as_of(session), consumer_connected=bool(consumer and consumer.connected),
                     caught_up=all(row.lag == 0 and row.outbox_pending == 0 for row in rows), topics=rows)


# -- routes --

router = APIRouter()


@router.get("/years", summary="The survey years and fiscal years the read models hold, oldest first")
async def years(principal: CanRead, session: ReadSessionDep) -> Years:
    return await years_held(session)


@router.get("/freshness", summary="How fresh the read models are: newest event, consumer lag and events still in "
                                  "the producer's outbox per topic; whether everything is applied")
async def freshness(principal: CanRead, request: Request, session: ReadSessionDep) -> Freshness:
    state = request.app.state
    return await freshness_of(session, consumer=state.consumer, upstream=state.upstream)
