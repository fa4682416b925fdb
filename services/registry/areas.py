"""The official area hierarchy (DOPA codes from `geothai`): province → district → sub-district → village."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import geothai
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from services.registry.models import Household
from services.registry.security import can_read
from shared.app import SessionDep
from shared.auth import Principal
from shared.errors import NotFound

Level = Literal["province", "district", "subdistrict", "village"]
_LEVEL_BY_LENGTH: dict[int, Level] = {2: "province", 4: "district", 6: "subdistrict", 8: "village"}
AREA_CODE_PATTERN = r"^(\d{2}|\d{4}|\d{6}|\d{8})$"


@dataclass(frozen=True)
class Area:
    """One area: its code, level, names and parent."""

    code: str
    level: Level
    name_th: str
    name_en: str
    parent_code: str | None


def village_code(subdistrict_code: str, village_no: int) -> str:
    """A village's code: the sub-district code and the village number (หมู่ที่) in two digits."""
    return f"{subdistrict_code}{village_no:02d}"


def find(code: str) -> Area | None:
    """The area with this DOPA code (a village only needs its sub-district to exist), or None."""
    if not re.fullmatch(r"\d+", code):
        return None
    level = _LEVEL_BY_LENGTH.get(len(code))
    if level == "province":
        p = geothai.province(code)
        return Area(p.code, level, p.name_th, p.name_en, None) if p else None
    if level == "district":
        d = geothai.district(code)
        return Area(d.code, level, d.name_th, d.name_en, d.province_code) if d else None
    if level == "subdistrict":
        s = geothai.subdistrict(code)
        return Area(s.code, level, s.name_th, s.name_en, s.district_code) if s else None
    if level == "village":
        s = geothai.subdistrict(code[:6])
        number = int(code[6:])
        if s is None or number < 1:
            return None
        return Area(code, level, f"หมู่ที่ {number} {s.name_th}", f"Village {number}, {s.name_en}", s.code)
    return None


def children(area: Area) -> list[Area]:
    """The official children of a province or district (villages come from the register, see the route)."""
    if area.level == "province":
        return [Area(d.code, "district", d.name_th, d.name_en, area.code) for d in geothai.districts(area.code)]
    if area.level == "district":
        return [Area(s.code, "subdistrict", s.name_th, s.name_en, area.code) for s in geothai.subdistricts(area.code)]
    return []


def search(query: str, limit: int) -> list[Area]:
    """Areas whose Thai or English name matches `query` (geothai's search: exact, prefix, then contains)."""
    found: list[Area] = []
    for result in geothai.search(query, limit=limit):
        area = find(result.area.code)
        if area is not None:
            found.append(area)
    return found


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


def _out(area: Area) -> AreaOut:
    return AreaOut(code=area.code, level=area.level, name_th=area.name_th, name_en=area.name_en,
                   parent_code=area.parent_code)


router = APIRouter(prefix="/v1/areas", tags=["areas"])


@router.get("", summary="Search areas by Thai or English name")
async def search_areas(
    q: Annotated[str, Query(min_length=1, max_length=100, description="part of a Thai or English name")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    _principal: Principal = can_read,
) -> list[AreaOut]:
    return [_out(a) for a in search(q, limit)]


@router.get("/{code}", summary="An area and its children", responses={404: {"description": "No such area"}})
async def get_area(
    code: Annotated[str, Path(pattern=AREA_CODE_PATTERN, description="DOPA code: 2, 4, 6 or 8 digits")],
    session: SessionDep,
    _principal: Principal = can_read,
) -> AreaDetail:
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
