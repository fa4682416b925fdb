"""The poverty report: households, the target poor, deprivation by dimension, H, A, MPI and exits, by area, cut
from the province's survey tree (`publication.Survey`)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import DIMENSIONS
from services.reporting.reports.areas import (
    AREA_COLUMNS,
    AreaParam,
    LevelParam,
    area_names,
    depth_of,
    ensure_area_or_child,
    level_name,
    visible,
)
from services.reporting.reports.publication import POVERTY_COUNTS, Cache, CacheDep, as_of, cached_survey
from services.reporting.reports.table import (
    FORMATS,
    Column,
    FormatParam,
    Table,
    choose_format,
    count_column,
    disclose,
    ratio,
    respond,
)
from services.reporting.security import CanRead
from services.reporting.settings import SettingsDep
from shared.app import ReadSessionDep
from shared.auth import Principal

# -- schemas --

SurveyYear = Annotated[int, Query(ge=2500, le=2700, description="B.E., e.g. 2565")]

POVERTY_COLUMNS = (
    *AREA_COLUMNS,
    count_column("households", "open households registered now"),
    count_column("persons", "their members"),
    count_column("assessed_households", "households with an assessment in the survey year"),
    count_column("assessed_persons", "n: persons in assessed households"),
    count_column("target_poor_households", "TPMAP target poor: deprived in a dimension (and a welfare card)"),
    count_column("target_poor_persons", "persons in target-poor households"),
    count_column("poor_households", "Alkire–Foster poor: deprivation score c ≥ k"),
    count_column("poor_persons", "q: persons in poor households"),
    *(count_column(d, f"households deprived in {d}") for d in DIMENSIONS),
    Column("H", "float", "headcount ratio q / n", follows=("poor_persons", "assessed_persons")),
    Column("A", "float", "intensity: average score of the poor", follows=("poor_persons",)),
    Column("MPI", "float", "M0 = H × A", follows=("poor_persons", "assessed_persons")),
    count_column("exited", "households target poor in their previous survey year and not in this one"),
    count_column("entered", "households not target poor in their previous survey year and target poor in this one"),
)

# -- rules --


def _row(code: str, sums: Mapping[str, Any]) -> dict[str, Any]:
    n, q, censored = sums["assessed_persons"], sums["poor_persons"], sums["censored"]
    row: dict[str, Any] = {"_key": code} | area_names(code) | {name: sums[name] for name in POVERTY_COUNTS}
    return row | {"H": ratio(Fraction(q, n)) if n else 0.0, "A": ratio(censored / q) if q else 0.0,
                  "MPI": ratio(censored / n) if n else 0.0}


async def poverty_by_area(session: AsyncSession, *, cache: Cache, threshold: int, principal: Principal, area: str,
                          depth: int, survey_year: int) -> Table:
    """A row per area `depth` digits long inside `area` that the caller sees, and the total of what it sees."""
    tree = (await cached_survey(session, cache=cache, province=area[:2], survey_year=survey_year,
                                threshold=threshold)).tree
    rows = [_row(code, tree.seen(code, principal)) for code in tree.nodes(area, depth) if visible(principal, code)]
    table = Table("poverty", POVERTY_COLUMNS, rows, _row(area, tree.seen(area, principal)),
                  await as_of(session), {"area": area, "level": level_name(depth), "survey_year": survey_year})
    return disclose(table, principal, tree.hidden)


# -- routes --

router = APIRouter()


@router.get("/poverty", summary="Households, target poor, deprivation by dimension, H, A, MPI and exits, by area",
            responses=FORMATS)
async def poverty(principal: CanRead, cache: CacheDep, settings: SettingsDep, request: Request, session: ReadSessionDep,
                  area: AreaParam, survey_year: SurveyYear, level: LevelParam = None,
                  fmt: FormatParam = None) -> Response:
    depth = depth_of(area, level)
    ensure_area_or_child(principal, area)
    table = await poverty_by_area(session, cache=cache,
                                  threshold=settings.small_count_max, principal=principal,
                                  area=area, depth=depth, survey_year=survey_year)
    return respond(table, choose_format(request, fmt))
