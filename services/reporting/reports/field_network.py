"""The field network report: official districts and sub-districts, field operations teams and centres, by area.

Areas, teams and centres are the programme's own organisation, not households: published as they are."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting.models import Centre, Team
from services.reporting.reports.areas import (
    AREA_COLUMNS,
    AreaParam,
    LevelParam,
    area_names,
    depth_of,
    ensure_area_or_child,
    level_name,
    official_inside,
    visible,
)
from services.reporting.reports.publication import as_of
from services.reporting.reports.table import (
    FORMATS,
    Column,
    FormatParam,
    LangParam,
    Table,
    choose_format,
    disclose,
    respond,
)
from services.reporting.security import CanRead
from shared.app import ReadSessionDep
from shared.auth import Principal, area_clause
from shared.errors import Unprocessable

# -- schemas --

NETWORK_COLUMNS = (
    *AREA_COLUMNS,
    Column("districts", "int", "official districts (อำเภอ) in the area", exact=True, label_th="จำนวนอำเภอ"),
    Column("subdistricts", "int", "official sub-districts (ตำบล) in the area", exact=True, label_th="จำนวนตำบล"),
    Column("teams", "int", "field operations teams (ทีมปฏิบัติการ) of its districts", exact=True,
           label_th="ทีมปฏิบัติการ"),
    Column("team_members", "int", "people in those teams", exact=True, label_th="สมาชิกทีม"),
    Column("social_assistance_centres", "int", "sub-district social assistance centres (ศูนย์ช่วยเหลือสังคมตำบล)",
           exact=True, label_th="ศูนย์ช่วยเหลือสังคมตำบล"),
    Column("family_development_centres", "int", "community family development centres (ศพค.)", exact=True,
           label_th="ศูนย์พัฒนาครอบครัวในชุมชน (ศพค.)"),
)
CENTRE_KINDS = {"tambon_social_assistance_centre": "social_assistance_centres",
                "family_development_centre": "family_development_centres"}

# -- rules --


async def network_by_area(session: AsyncSession, *, principal: Principal, area: str, depth: int) -> Table:
    """A row per official area `depth` digits long (district or sub-district) inside `area` that the caller
    sees, and the total of what it sees."""
    rows = {code: _network_row(code) for code in official_inside(area, depth) if visible(principal, code)}
    total = _network_row(area)
    districts: set[str] = set()
    for code, row in rows.items():
        inside = official_inside(code, 4) if len(code) <= 4 else [code[:4]]
        row["districts"] = len(inside) if len(code) <= 4 else 0
        row["subdistricts"] = len(official_inside(code, 6))
        districts.update(inside)
        total["subdistricts"] += row["subdistricts"]
    total["districts"] = len(districts)
    teams = await session.execute(select(Team).where(col(Team.district_code).startswith(area[:4], autoescape=True),
                                                     area_clause(principal, col(Team.district_code))))
    for team in teams.scalars():
        if len(area) == 6 and area not in team.subdistrict_codes:
            continue
        # A team belongs to a district and covers some of its sub-districts: it counts once in each row.
        counted = ([rows[c] for c in team.subdistrict_codes if c in rows] if depth == 6
                   else _rows_for(rows, total, team.district_code, depth)[:-1])
        for row in [*counted, total]:
            row["teams"] += 1
            row["team_members"] += team.members
    centres = await session.execute(select(Centre).where(
        col(Centre.subdistrict_code).startswith(area, autoescape=True),
        area_clause(principal, col(Centre.subdistrict_code))))
    for centre in centres.scalars():
        for row in _rows_for(rows, total, centre.subdistrict_code, depth):
            row[CENTRE_KINDS.get(centre.kind, "social_assistance_centres")] += 1
    table = Table("field_network", NETWORK_COLUMNS, [rows[c] for c in sorted(rows)], total, await as_of(session),
                  {"area": area, "level": level_name(depth)})
    return disclose(table, principal, {})


def _rows_for(rows: dict[str, dict[str, Any]], total: dict[str, Any], code: str, depth: int,
              ) -> list[dict[str, Any]]:
    """The report rows a fact at `code` counts in: its area's row (if it lies that deep) and the total."""
    if len(code) < depth:  # a fact of a wider area than the rows: only the total has it
        return [total]
    key = code[:depth]
    if key not in rows:
        rows[key] = _network_row(key)
    return [rows[key], total]


def _network_row(code: str) -> dict[str, Any]:
    return {"_key": code} | area_names(code) | {"districts": 0, "subdistricts": 0, "teams": 0, "team_members": 0,
                                                "social_assistance_centres": 0, "family_development_centres": 0}


# -- routes --

router = APIRouter()


@router.get("/field-network", summary="Districts, sub-districts, field teams and centres, by area",
            responses=FORMATS)
async def field_network(principal: CanRead, request: Request, session: ReadSessionDep, area: AreaParam,
                        level: LevelParam = None, fmt: FormatParam = None, lang: LangParam = "en") -> Response:
    depth = depth_of(area, level or ("subdistrict" if len(area) >= 6 else None))
    if depth > 6:
        raise Unprocessable("teams and centres are counted by district and sub-district, not by village", errors=[
            {"field": "query.level", "message": "province, district or subdistrict", "code": "level"}])
    ensure_area_or_child(principal, area)
    table = await network_by_area(session, principal=principal, area=area, depth=depth)
    return respond(table, choose_format(request, fmt), lang)
