"""The areas a report is cut by: the level asked for, the official areas inside an area (one walk of the
hierarchy, for the rows of a report and the nodes of a province's tree), their names, and which of them a
caller sees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Query

from services.reporting.reports.table import Column
from shared import areas
from shared.areas import AREA_CODE_PATTERN, Level
from shared.auth import Principal, ensure_area
from shared.errors import NotFound, Unprocessable

LEVELS = {"province": 2, "district": 4, "subdistrict": 6, "village": 8}

AreaParam = Annotated[str, Query(pattern=AREA_CODE_PATTERN, description="DOPA code, e.g. 40")]
LevelParam = Annotated[Level | None, Query(description="one row per area of this level (default: one below)")]

AREA_COLUMNS = (Column("area_code", "str", "DOPA code", label_th="รหัสพื้นที่"),
                Column("area_name_th", "str", "Thai name", label_th="ชื่อพื้นที่"),
                Column("area_name_en", "str", "English name", label_th="ชื่อพื้นที่ (อังกฤษ)"))


def area_names(code: str) -> dict[str, str]:
    """A report row's area columns: the code and its Thai and English names (a village by its number)."""
    if len(code) == 8:
        subdistrict = areas.find(code[:6])
        if subdistrict is None:
            return {"area_code": code, "area_name_th": "", "area_name_en": ""}
        number = int(code[6:])
        return {"area_code": code, "area_name_th": f"{subdistrict.name_th} หมู่ที่ {number}",
                "area_name_en": f"{subdistrict.name_en} Moo {number}"}
    found = areas.find(code)
    return {"area_code": code, "area_name_th": found.name_th if found else "",
            "area_name_en": found.name_en if found else ""}


def _official_levels(code: str) -> Iterator[list[str]]:
    """The official areas inside `code`, a level at a time: the area itself, then its children, down to the
    sub-districts (villages come from the data)."""
    found = areas.find(code)
    level = [found] if found else []
    while level and len(level[0].code) <= 6:
        yield [a.code for a in level]
        level = [child for a in level for child in areas.children(a)]


def official_areas(code: str) -> list[str]:
    """The area and every official area inside it: for a province, its districts and its sub-districts."""
    return [found for level in _official_levels(code) for found in level]


def official_inside(code: str, depth: int) -> list[str]:
    """The official areas `depth` digits long inside `code` (none for villages: they come from the data)."""
    return next((level for level in _official_levels(code) if len(level[0]) >= depth), [])


def visible(principal: Principal, code: str) -> bool:
    """True if the caller may see some of the area: it lies inside a claim, or a claim lies inside it."""
    return principal.can_see(code) or any(claim.startswith(code) for claim in principal.areas)


def ensure_area_or_child(principal: Principal, area: str) -> None:
    """A caller may ask for its own area or a wider one (rows and totals then hold only what it may see)."""
    if not visible(principal, area):
        ensure_area(principal, area)


def ensure_known(area: str) -> None:
    if areas.find(area) is None:
        raise NotFound(f"There is no area with code {area}.")


def depth_of(area: str, level: Level | None) -> int:
    """The length of the codes of a report's rows: those of `level`, or by default one level below `area`."""
    ensure_known(area)
    depth = LEVELS[level] if level else min(len(area) + 2, 8)
    if depth < len(area):
        raise Unprocessable(f"level {level} is above area {area}", errors=[
            {"field": "query.level", "message": "must be the area's level or below", "code": "level"}])
    return depth


def level_name(depth: int) -> str:
    return next(name for name, n in LEVELS.items() if n == depth)
