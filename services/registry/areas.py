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
from shared.errors import BadRequest, NotFound
from shared.ids import decode_cursor
from shared.pagination import Page, PageRequest, page_of, page_request

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


SEARCH_DEPTH = 1000  # how far down the matches a client can page


def named(*, q: str, page: PageRequest) -> Page[AreaOut]:
    """A page of the areas whose Thai or English name matches `q`, best matches first (exact, prefix, contains);
    pages reach the first SEARCH_DEPTH matches."""
    start = 0
    if (code := decode_cursor(page.cursor)) is not None:
        found = search(q, SEARCH_DEPTH)
        start = next((i + 1 for i, a in enumerate(found) if a.code == code), -1)
        if start < 0:
            raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
    else:
        found = search(q, page.limit + 1)
    areas_, next_cursor = page_of(found[start:start + page.limit + 1], page, lambda a: a.code)
    return Page[AreaOut](items=[_out(a) for a in areas_], next_cursor=next_cursor)


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
                       page: Annotated[PageRequest, page_request(default=20, maximum=100)]) -> Page[AreaOut]:
    return named(q=q, page=page)


@router.get("/{code}", summary="An area and its children", responses={404: {"description": "No such area"}})
async def get_area(_principal: CanRead,
                   code: Annotated[str, Path(pattern=AREA_CODE_PATTERN, description="DOPA code: 2, 4, 6 or 8 digits")],
                   session: ReadSessionDep) -> AreaDetail:
    return await with_children(session, code=code)
