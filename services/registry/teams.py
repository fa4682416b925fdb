"""Field operations teams (ทีมปฏิบัติการ): a district's team, the sub-districts it covers, and its people.

Creating a team publishes `team.created` (no names: the reporting service counts teams by area)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry.models import Team, outbox
from services.registry.security import CanRead, CanWrite
from shared import areas
from shared.app import ReadSessionDep, SessionDep
from shared.auth import Principal, area_clause
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import NotFound, Unprocessable
from shared.events.registry import TEAM_CREATED, TeamCreated
from shared.ids import new_id
from shared.pagination import Page, PageDep, PageRequest, fetch_page
from shared.text import Text

# -- schemas --

Short = Annotated[Text, StringConstraints(max_length=200)]


class TeamMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Short = Field(examples=["นางสาวมาลี ใจงาม"])
    position: Short = Field(examples=["พัฒนาการอำเภอ"])
    agency: Short = Field(examples=["สำนักงานพัฒนาชุมชนอำเภอเมืองขอนแก่น"])


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Short = Field(examples=["ทีมปฏิบัติการตำบลในเมือง"])
    district_code: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] = Field(examples=["4001"])
    subdistrict_codes: list[Annotated[str, StringConstraints(pattern=r"^\d{6}$")]] = Field(
        min_length=1, max_length=50, examples=[["400101"]])
    members: list[TeamMember] = Field(default_factory=list, max_length=100)


class TeamOut(BaseModel):
    id: str
    name: str
    province_code: str
    district_code: str
    subdistrict_codes: list[str]
    members: list[TeamMember]
    created_at: datetime


# -- rules --


def _out(team: Team) -> TeamOut:
    return TeamOut(id=team.id, name=team.name, province_code=team.province_code, district_code=team.district_code,
                   subdistrict_codes=team.subdistrict_codes,
                   members=[TeamMember.model_validate(m) for m in team.members], created_at=as_utc(team.created_at))


async def create(session: AsyncSession, *, principal: Principal, body: TeamCreate) -> TeamOut:
    """Create a team of a district in the caller's areas, covering sub-districts of that district; `team.created`
    leaves with it."""
    district = areas.find(body.district_code)
    if district is None:
        raise Unprocessable(f"There is no district {body.district_code}.",
                            errors=[{"field": "district_code", "message": "unknown district code"}])
    if not principal.can_see(body.district_code):
        raise NotFound(f"District {body.district_code} is not in your areas.")
    wrong = [c for c in body.subdistrict_codes if c[:4] != body.district_code or areas.find(c) is None]
    if wrong:
        raise Unprocessable(f"Not sub-districts of district {body.district_code}: {', '.join(wrong)}.",
                            errors=[{"field": "subdistrict_codes", "message": f"not in the district: {c}"}
                                    for c in wrong])
    team = Team(id=new_id(), name=body.name, province_code=body.district_code[:2], district_code=body.district_code,
                subdistrict_codes=sorted(set(body.subdistrict_codes)),
                members=[m.model_dump() for m in body.members], created_at=utcnow())
    session.add(team)
    await session.flush()
    await outbox.add(session, TEAM_CREATED, TeamCreated(
        team_id=team.id, province_code=team.province_code, district_code=team.district_code,
        subdistrict_codes=team.subdistrict_codes, member_count=len(team.members)), key=team.id)
    return _out(team)


async def in_areas(session: AsyncSession, *, principal: Principal, district: str | None, province: str | None,
                   page: PageRequest) -> Page[TeamOut]:
    """A page of the teams of the caller's areas, by district and name."""
    query = select(Team).where(area_clause(principal, Team.district_code))
    if district is not None:
        query = query.where(col(Team.district_code) == district)
    if province is not None:
        query = query.where(col(Team.province_code) == province)
    teams, next_cursor = await fetch_page(session, query, order=[col(Team.district_code), col(Team.name)],
                                          id_column=col(Team.id), page=page)
    return Page[TeamOut](items=[_out(t) for t in teams], next_cursor=next_cursor)


async def one(session: AsyncSession, *, principal: Principal, team_id: str) -> TeamOut:
    """A team of the caller's areas; 404 otherwise, so its existence does not leak."""
    team = await session.get(Team, team_id)
    if team is None or not principal.can_see(team.district_code):
        raise NotFound(f"There is no team {team_id} in your areas.")
    return _out(team)


# -- routes --

router = APIRouter(prefix="/v1/teams", tags=["field teams"])


@router.post("", status_code=201, response_model=TeamOut, summary="Create a field team of a district")
async def create_team(principal: CanWrite, body: TeamCreate, session: SessionDep) -> JSONResponse:
    team = await create(session, principal=principal, body=body)
    return JSONResponse(team.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/teams/{team.id}"})


@router.get("", summary="Teams in your areas")
async def list_teams(principal: CanRead, session: ReadSessionDep, page: PageDep,
                     district: Annotated[str | None, Query(pattern=r"^\d{4}$")] = None,
                     province: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None) -> Page[TeamOut]:
    return await in_areas(session, principal=principal, district=district, province=province, page=page)


@router.get("/{team_id}", summary="One team", responses={404: {"description": "No such team in your areas"}})
async def get_team(principal: CanRead, team_id: str, session: ReadSessionDep) -> TeamOut:
    return await one(session, principal=principal, team_id=team_id)
