"""The field logbook: visits to households (what the team found, dimension by dimension, and the household's
stage). Plans, referrals and partners' help are in `referrals`, the household's whole story in `timeline`."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from services.assistance.models import KnownHousehold, Visit, outbox
from services.assistance.security import CanRead, CanWrite
from shared import areas, clock
from shared.app import ReadSessionDep, SessionDep
from shared.auth import Principal, area_clause
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import NotFound, Unprocessable
from shared.events.assistance import VISIT_RECORDED, VisitProblem, VisitRecorded
from shared.ids import ID_PATTERN, new_id
from shared.pagination import Page, PageDep, PageRequest, fetch_page, page_request
from shared.text import Notes, Text

# -- schemas --


class Dimension(StrEnum):
    health = "health"
    living = "living"
    education = "education"
    income = "income"
    access = "access"


class Stage(StrEnum):
    survive = "survive"            # อยู่รอด
    sufficient = "sufficient"      # พอเพียง
    sustainable = "sustainable"    # ยั่งยืน


class ProblemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: Dimension
    indicator_code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    description: Annotated[Text, StringConstraints(max_length=2000)] = Field(examples=["หลังคารั่ว ฝนตกน้ำเข้าบ้าน"])


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visited_on: date
    team_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None
    buddy_official: Annotated[Text, StringConstraints(max_length=200)] | None = None
    notes: Annotated[Notes, StringConstraints(max_length=4000)] | None = None
    problems: list[ProblemIn] = Field(default_factory=list, max_length=50)
    stage: Stage


class VisitOut(BaseModel):
    id: str
    household_id: str
    village_code: str
    visited_on: date
    team_id: str | None
    buddy_official: str | None
    notes: str | None
    problems: list[ProblemIn]
    stage: Stage
    recorded_by: str
    recorded_at: datetime


# -- rules --


def present(visit: Visit) -> VisitOut:
    return VisitOut(id=visit.id, household_id=visit.household_id, village_code=visit.village_code,
                    visited_on=visit.visited_on, team_id=visit.team_id, buddy_official=visit.buddy_official,
                    notes=visit.notes, problems=[ProblemIn.model_validate(p) for p in visit.problems],
                    stage=Stage(visit.stage), recorded_by=visit.recorded_by, recorded_at=as_utc(visit.recorded_at))


async def household_in_reach(session: AsyncSession, *, principal: Principal, household_id: str) -> KnownHousehold:
    household = await session.get(KnownHousehold, household_id)
    if household is None or household.version == 0 or not principal.can_see(household.village_code):
        raise NotFound(f"There is no household {household_id} in your areas (or the registry's event has not "
                       "arrived yet).")
    return household


async def add_visit(session: AsyncSession, *, principal: Principal, household_id: str, body: VisitIn) -> VisitOut:
    """Record a visit (not in the future) to a household in the caller's areas; `visit.recorded` carries the
    dimensions and indicators of its problems, not their descriptions."""
    household = await household_in_reach(session, principal=principal, household_id=household_id)
    if body.visited_on > clock.today():
        raise Unprocessable("visited_on is in the future", errors=[{
            "field": "body.visited_on", "message": "must not be in the future", "code": "date"}])
    visit = Visit(id=new_id(), household_id=household.id, village_code=household.village_code,
                  visited_on=body.visited_on, team_id=body.team_id, buddy_official=body.buddy_official,
                  stage=body.stage.value, notes=body.notes,
                  problems=[p.model_dump(mode="json") for p in body.problems], recorded_by=principal.client_id,
                  recorded_at=utcnow())
    session.add(visit)
    await session.flush()
    await outbox.add_many(session, [PendingEvent(VISIT_RECORDED, VisitRecorded(
        visit_id=visit.id, household_id=household.id, village_code=household.village_code,
        visited_on=body.visited_on, stage=body.stage.value, team_id=body.team_id,
        problems=[VisitProblem(dimension=p.dimension.value, indicator_code=p.indicator_code)
                  for p in body.problems]), household.id)])
    return present(visit)


async def visits_of(session: AsyncSession, *, principal: Principal, household_id: str,
                    page: PageRequest) -> Page[VisitOut]:
    """A page of a household's visits, newest first."""
    await household_in_reach(session, principal=principal, household_id=household_id)
    return await _page(session, select(Visit).where(col(Visit.household_id) == household_id), page)


async def visits_in_area(session: AsyncSession, *, principal: Principal, area: str | None, since: date | None,
                         page: PageRequest) -> Page[VisitOut]:
    """A page of the visits in the caller's areas (in `area`, since a date), newest first."""
    query = select(Visit).where(area_clause(principal, col(Visit.village_code)))
    if area is not None:
        query = query.where(col(Visit.village_code).startswith(area))
    if since is not None:
        query = query.where(col(Visit.visited_on) >= since)
    return await _page(session, query, page)


async def _page(session: AsyncSession, query: SelectOfScalar[Visit], page: PageRequest) -> Page[VisitOut]:
    found, next_cursor = await fetch_page(session, query, order=[col(Visit.visited_on), col(Visit.recorded_at)],
                                          id_column=col(Visit.id), page=page, descending=True)
    return Page[VisitOut](items=[present(v) for v in found], next_cursor=next_cursor)


# -- routes --


router = APIRouter(tags=["logbook"])
HouseholdId = Annotated[str, Path(pattern=ID_PATTERN, description="the registry's household id")]


@router.post("/v1/households/{household_id}/visits", status_code=201, summary="Record a visit to a household",
             responses={404: {"description": "No such household in your areas"},
                        422: {"description": "A visit date in the future, an unknown dimension or stage"}})
async def record_visit(principal: CanWrite, household_id: HouseholdId, body: VisitIn,
                       session: SessionDep) -> JSONResponse:
    visit = await add_visit(session, principal=principal, household_id=household_id, body=body)
    return JSONResponse(visit.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/households/{household_id}/visits/{visit.id}"})


@router.get("/v1/households/{household_id}/visits", summary="A household's visits, newest first")
async def household_visits(principal: CanRead, household_id: HouseholdId, session: ReadSessionDep,
                           page: PageDep) -> Page[VisitOut]:
    return await visits_of(session, principal=principal, household_id=household_id, page=page)


@router.get("/v1/visits", summary="Visits in an area (yours by default), newest first")
async def area_visits(principal: CanRead, session: ReadSessionDep,
                      page: Annotated[PageRequest, page_request(default=200, maximum=1000)],
                      area: Annotated[str | None, Query(pattern=areas.AREA_CODE_PATTERN)] = None,
                      since: date | None = None) -> Page[VisitOut]:
    return await visits_in_area(session, principal=principal, area=area, since=since, page=page)
