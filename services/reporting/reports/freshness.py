"""What the read models hold and how fresh it is: the survey and fiscal years they cover, and per topic the
newest event applied and the consumer's lag."""

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


class Freshness(BaseModel):
    as_of: datetime | None
    consumer_connected: bool
    topics: list[TopicFreshness]


# -- rules --


async def years_held(session: AsyncSession) -> Years:
    surveyed = await session.execute(select(col(AreaYear.survey_year)).distinct().order_by(col(AreaYear.survey_year)))
    paid = await session.execute(select(col(Payment.fiscal_year)).distinct())
    budgeted = await session.execute(select(col(Budget.fiscal_year)).distinct())
    return Years(survey_years=list(surveyed.scalars()),
                 fiscal_years=sorted(set(paid.scalars()) | set(budgeted.scalars())))


async def freshness_of(session: AsyncSession, *, consumer: Consumer | None) -> Freshness:
    """Every topic the consumer reads or the read models have events of (`consumer`: None when it is off); the
    feed is kept per partition, summed here."""
    feeds = {topic: (as_utc(newest), int(events)) for topic, newest, events in (await session.execute(
        select(col(Feed.topic), func.max(col(Feed.newest_event_at)), func.sum(col(Feed.events)))
        .group_by(col(Feed.topic)))).all()}
    lags = (await consumer.group_lag_by_topic() if consumer is not None else None) or {}
    topics = sorted(set(consumer.topics if consumer is not None else []) | set(feeds))
    return Freshness(as_of=await as_of(session), consumer_connected=bool(consumer and consumer.connected),
                     topics=[TopicFreshness(topic=t, newest_event_at=feeds[t][0] if t in feeds else None,
                                            events_applied=feeds[t][1] if t in feeds else 0, lag=lags.get(t))
                             for t in topics])


# -- routes --

router = APIRouter()


@router.get("/years", summary="The survey years and fiscal years the read models hold, oldest first")
async def years(principal: CanRead, session: ReadSessionDep) -> Years:
    return await years_held(session)


@router.get("/freshness", summary="How fresh the read models are: newest event and consumer lag per topic")
async def freshness(principal: CanRead, request: Request, session: ReadSessionDep) -> Freshness:
    return await freshness_of(session, consumer=request.app.state.consumer)
