"""GET /v1/mpi: the Alkire–Foster MPI (H, A, M0) of an area by sub-area, with each indicator's contribution."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import aggregates
from services.assessment.mpi import Summary
from services.assessment.security import CanRead
from services.assessment.sets.routes import SetsDep
from services.assessment.sets.service import Sets
from shared.app import ReadSessionDep
from shared.areas import AREA_CODE_PATTERN, find
from shared.auth import Principal
from shared.errors import NotFound, Unprocessable

LEVELS = {"province": 2, "district": 4, "subdistrict": 6, "village": 8}
Level = Literal["province", "district", "subdistrict", "village"]


# -- schemas --


class MpiRow(BaseModel):
    area_code: str
    area_name_th: str
    area_name_en: str
    households: int
    persons: int = Field(description="n: persons in assessed households")
    poor_households: int
    poor_persons: int = Field(description="q: persons in households with c ≥ k")
    target_poor_households: int
    target_poor_persons: int
    headcount: float = Field(description="H = q / n")
    intensity: float = Field(description="A: average score of the poor")
    mpi: float = Field(description="M0 = H × A")
    mpi_exact: str = Field(description="M0 as an exact fraction")
    indicator_contributions: dict[str, float] = Field(
        description="indicator → its part of M0 (censored weighted headcount); they add up to M0")


class MpiReport(BaseModel):
    survey_year: int
    indicator_set: str
    poverty_cutoff: str
    area: str
    level: str
    rows: list[MpiRow]
    total: MpiRow


# -- rules --


def mpi_row(code: str, summary: Summary, target: tuple[int, int]) -> MpiRow:
    """One row of the report: the area's sums, the ratios derived from them, and its target poor."""
    area = find(code)
    return MpiRow(
        area_code=code, area_name_th=area.name_th if area else "", area_name_en=area.name_en if area else "",
        households=summary.households, persons=summary.persons, poor_households=summary.poor_households,
        poor_persons=summary.poor_persons, target_poor_households=target[0], target_poor_persons=target[1],
        headcount=round(float(summary.headcount), 6), intensity=round(float(summary.intensity), 6),
        mpi=round(float(summary.m0), 6), mpi_exact=str(summary.m0),
        indicator_contributions={k: round(float(v), 6) for k, v in summary.indicator_contributions().items()},
    )


async def area_report(session: AsyncSession, *, sets: Sets, principal: Principal, area: str, survey_year: int,
                      level: Level | None, indicator_set: str) -> MpiReport:
    """The MPI of `area` by its sub-areas of `level`, from the current assessments the caller may see, as the
    village sums kept with them give it (`aggregates`): work in the number of villages, not of households."""
    definition = sets.get(indicator_set)
    if definition is None:
        raise NotFound(f"There is no indicator set {indicator_set}.")
    if find(area) is None:
        raise NotFound(f"There is no area with code {area}.")
    depth = LEVELS[level] if level else min(len(area) + 2, 8)
    if depth < len(area):
        raise Unprocessable(f"level {level} is above area {area}", errors=[
            {"field": "query.level", "message": "must be the area's level or below", "code": "level"}])
    sums = await aggregates.area_sums(session, survey_year=survey_year, indicator_set=indicator_set, area=area,
                                      depth=depth, principal=principal)
    # Thousands of sub-areas (a province by village) are a few hundred ms of Fractions: off the event loop.
    return await asyncio.to_thread(_report, sums, survey_year=survey_year, indicator_set=indicator_set,
                                   poverty_cutoff=definition.poverty_cutoff, area=area, depth=depth)


def _report(sums: aggregates.AreaSums, *, survey_year: int, indicator_set: str, poverty_cutoff: str, area: str,
            depth: int) -> MpiReport:
    parts, targets = aggregates.by_area(sums)
    total = Summary()
    for part in parts.values():
        total.merge(part)
    total_target = (sum(t[0] for t in targets.values()), sum(t[1] for t in targets.values()))
    return MpiReport(
        survey_year=survey_year, indicator_set=indicator_set, poverty_cutoff=poverty_cutoff, area=area,
        level=next(name for name, n in LEVELS.items() if n == depth),
        rows=[mpi_row(code, parts[code], targets[code]) for code in sorted(parts)],
        total=mpi_row(area, total, total_target),
    )


def as_json(report: MpiReport) -> JSONResponse:
    """The report as FastAPI would render it, so that a large one can be rendered off the event loop."""
    return JSONResponse(report.model_dump(mode="json"))


# -- routes --

router = APIRouter(prefix="/v1/mpi", tags=["poverty figures"])


@router.get("", response_model=MpiReport,
            summary="Multidimensional poverty (Alkire–Foster) of an area, by sub-area, from the current assessments "
            "of a survey year", responses={404: {"description": "No such area or indicator set"}})
async def mpi_report(principal: CanRead, sets: SetsDep, session: ReadSessionDep,
                     area: Annotated[str, Query(pattern=AREA_CODE_PATTERN, description="DOPA code, e.g. 40")],
                     survey_year: Annotated[int, Query(ge=2500, le=2700)],
                     level: Annotated[Level | None, Query(
                         description="one row per area of this level (default: one below `area`)")] = None,
                     indicator_set: Annotated[str, Query(max_length=64)] = "tpmap-2560") -> JSONResponse:
    report = await area_report(session, sets=sets, principal=principal, area=area,
                               survey_year=survey_year, level=level, indicator_set=indicator_set)
    return await asyncio.to_thread(as_json, report)
