"""The area routes of the registry: search by name, an area with its children (villages from the register)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.registry.models import Household
from services.registry.security import CanRead
from shared.app import ReadSessionDep
from shared.areas import AREA_CODE_PATTERN, Area, Level, children, find, search, village_code
from shared.errors import NotFound

# -- schemas --


class AreaOut(BaseModel):
    code: str = Field(examples=["4001"])
    level: Level
    name_th: str = Field(examples=["เมืองขอนแก่น"])
    name_en: str = Field(examples=["Mueang Khon Kaen"])
    parent_code: str | None


class AreaDetail(AreaOut):
    children: list[AreaOut] = Field(
        description="districts of a province, sub-districts of a district; villages of a sub-district are "
        "those with households on the register"
    )


# -- rules --


def _out(area: Area) -> AreaOut:
    return AreaOut(code=area.code, level=area.level, name_th=area.name_th, name_en=area.name_en,
                   parent_code=area.parent_code)


def named(*, q: str, limit: int) -> list[AreaOut]:
    """Areas whose Thai or English name contains `q`."""
    return [_out(a) for a in search(q, limit)]


async def with_children(session: AsyncSession, *, code: str) -> AreaDetail:
    """An area and its children; a sub-district's villages are those with households on the register."""
    area = find(code)
    if area is None:
        raise NotFound(f"There is no area with code {code}.")
    kids = children(area)
    if area.level == "subdistrict":
        numbers: list[int] = list((await session.execute(
            select(col(Household.village_no)).distinct().where(col(Household.subdistrict_code) == code)
            .order_by(col(Household.village_no))
        )).scalars())
        kids = [a for n in numbers if (a := find(village_code(code, n))) is not None]
    return AreaDetail(**_out(area).model_dump(), children=[_out(k) for k in kids])


# -- routes --

router = APIRouter(prefix="/v1/areas", tags=["areas"])


@router.get("", summary="Search areas by Thai or English name")
async def search_areas(_principal: CanRead,
                       q: Annotated[str, Query(min_length=1, max_length=100,
                                               description="part of a Thai or English name")],
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[AreaOut]:
    return named(q=q, limit=limit)


@router.get("/{code}", summary="An area and its children", responses={404: {"description": "No such area"}})
async def get_area(_principal: CanRead,
                   code: Annotated[str, Path(pattern=AREA_CODE_PATTERN, description="DOPA code: 2, 4, 6 or 8 digits")],
                   session: ReadSessionDep) -> AreaDetail:
    return await with_children(session, code=code)
