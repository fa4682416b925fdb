"""The poverty report: households, the target poor, deprivation by dimension, H, A, MPI and exits, by area, cut
from the province's survey tree (`publication.Survey`)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

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
from services.reporting.reports.publication import POVERTY_COUNTS, Cache, CacheDep, cached_survey, wants_fresh
from services.reporting.reports.table import (
    FORMATS,
    Column,
    FormatParam,
    LangParam,
    Table,
    choose_format,
    count_column,
    disclose,
    ratio,
    respond,
)
from services.reporting.security import CanRead
from services.reporting.settings import SettingsDep
from shared.auth import Principal

# -- schemas --

SurveyYear = Annotated[int, Query(ge=2500, le=2700, description="B.E., e.g. 2565")]

DIMENSION_TH = {"health": "สุขภาพ", "living": "ความเป็นอยู่", "education": "การศึกษา", "income": "รายได้",
                "access": "การเข้าถึงบริการรัฐ"}
POVERTY_COLUMNS = (
    *AREA_COLUMNS,
    count_column("households", "open households registered now", "ครัวเรือนในทะเบียน"),
    count_column("persons", "their members", "คนในทะเบียน"),
    count_column("welfare_card_households", "of them, households on the state welfare-card register now",
                 "ครัวเรือนที่มีบัตรสวัสดิการแห่งรัฐ"),
    count_column("welfare_card_persons", "members of those households (TPMAP: welfare-card persons)",
                 "คนที่มีบัตรสวัสดิการแห่งรัฐ"),
    count_column("assessed_households", "households with an assessment in the survey year", "ครัวเรือนที่สำรวจ"),
    count_column("assessed_persons", "n: persons in assessed households", "คนที่สำรวจ"),
    count_column("target_poor_households", "TPMAP target poor: deprived in a dimension (and a welfare card)",
                 "ครัวเรือนยากจนเป้าหมาย"),
    count_column("target_poor_persons", "persons in target-poor households (TPMAP: target poor, any dimension)",
                 "คนจนเป้าหมาย"),
    count_column("poor_households", "Alkire–Foster poor: deprivation score c ≥ k", "ครัวเรือนยากจนหลายมิติ"),
    count_column("poor_persons", "q: persons in poor households", "คนยากจนหลายมิติ"),
    *(count_column(f"deprived_{d}", f"assessed households deprived in {d} (target poor or not)",
                   f"ครัวเรือนที่ขาดด้าน{DIMENSION_TH[d]}") for d in DIMENSIONS),
    *(count_column(f"target_poor_households_{d}", f"target-poor households deprived in {d}",
                   f"ครัวเรือนยากจนเป้าหมายด้าน{DIMENSION_TH[d]}") for d in DIMENSIONS),
    *(count_column(f"target_poor_persons_{d}", f"TPMAP: target-poor persons by dimension, {d} (a person counts in "
                   "every dimension their household is deprived in)", f"คนจนเป้าหมายด้าน{DIMENSION_TH[d]}")
      for d in DIMENSIONS),
    Column("H", "float", "headcount ratio q / n", follows=("poor_persons", "assessed_persons"),
           label_th="สัดส่วนคนจน (H)"),
    Column("A", "float", "intensity: average score of the poor", follows=("poor_persons",),
           label_th="ความรุนแรงของความยากจน (A)"),
    Column("MPI", "float", "M0 = H × A", follows=("poor_persons", "assessed_persons"),
           label_th="ดัชนีความยากจนหลายมิติ (MPI)"),
    count_column("exited", "households target poor in their previous survey year and not in this one",
                 "ครัวเรือนที่พ้นความยากจนเป้าหมาย"),
    count_column("entered", "households not target poor in their previous survey year and target poor in this one",
                 "ครัวเรือนที่เข้าสู่ความยากจนเป้าหมาย"),
)

# -- rules --


def _row(code: str, sums: Mapping[str, Any]) -> dict[str, Any]:
    n, q, censored = sums["assessed_persons"], sums["poor_persons"], sums["censored"]
    row: dict[str, Any] = {"_key": code} | area_names(code) | {name: sums[name] for name in POVERTY_COUNTS}
    return row | {"H": ratio(Fraction(q, n)) if n else 0.0, "A": ratio(censored / q) if q else 0.0,
                  "MPI": ratio(censored / n) if n else 0.0}


async def poverty_by_area(*, cache: Cache, threshold: int, principal: Principal, area: str,
                          depth: int, survey_year: int, fresh: bool = False) -> Table:
    """A row per area `depth` digits long inside `area` that the caller sees, and the total of what it sees."""
    tree = (await cached_survey(cache=cache, province=area[:2], survey_year=survey_year,
                                threshold=threshold, fresh=fresh)).tree
    rows = [_row(code, tree.seen(code, principal)) for code in tree.nodes(area, depth) if visible(principal, code)]
    table = Table("poverty", POVERTY_COLUMNS, rows, _row(area, tree.seen(area, principal)),
                  tree.as_of, {"area": area, "level": level_name(depth), "survey_year": survey_year})
    return disclose(table, principal, tree.hidden)


# -- routes --

router = APIRouter()


@router.get("/poverty", summary="Households, target poor, deprivation by dimension, H, A, MPI and exits, by area",
            responses=FORMATS)
async def poverty(principal: CanRead, cache: CacheDep, settings: SettingsDep, request: Request, area: AreaParam,
                  survey_year: SurveyYear, level: LevelParam = None, fmt: FormatParam = None,
                  lang: LangParam = "en") -> Response:
    depth = depth_of(area, level)
    ensure_area_or_child(principal, area)
    table = await poverty_by_area(cache=cache,
                                  threshold=settings.small_count_max, principal=principal,
                                  area=area, depth=depth, survey_year=survey_year, fresh=wants_fresh(request))
    return respond(table, choose_format(request, fmt), lang)
