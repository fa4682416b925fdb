"""The MPI decomposition: each area's and each indicator's contribution to the M0 of an area, cut from the
province's survey tree (`publication.Survey`); the parts add up to M0."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.reports.areas import (
    AreaParam,
    LevelParam,
    area_names,
    depth_of,
    ensure_area_or_child,
    level_name,
    visible,
)
from services.reporting.reports.poverty import SurveyYear
from services.reporting.reports.publication import Cache, CacheDep, cached_survey, indicator_sets, wants_fresh
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
from shared.app import ReadSessionDep
from shared.auth import Principal
from shared.indicators import IndicatorName, indicator_names

# -- schemas --

DECOMPOSITION_COLUMNS = (
    Column("part", "str", "area, indicator or total", label_th="ส่วน"),
    Column("code", "str", "DOPA code or indicator code", label_th="รหัส"),
    Column("name_th", "str", "Thai name of the area or indicator", label_th="ชื่อ"),
    Column("name_en", "str", "English name of the area or indicator", label_th="ชื่อ (อังกฤษ)"),
    Column("dimension", "str", "the indicator's dimension (indicators only)", label_th="มิติ"),
    count_column("assessed_persons", "n of the area", "คนที่สำรวจ (n)"),
    count_column("poor_persons", "q of the area", "คนยากจนหลายมิติ (q)"),
    Column("M0", "float", "the area's own MPI", follows=("poor_persons", "assessed_persons"),
           label_th="ดัชนีความยากจนหลายมิติ (M0)"),
    Column("contribution", "float", "its part of the whole's M0 (parts add up to M0)",
           follows=("poor_persons", "assessed_persons"), label_th="ส่วนใน M0"),
    Column("share", "float", "contribution ÷ M0", follows=("poor_persons", "assessed_persons"),
           label_th="สัดส่วนใน M0"),
)

# -- rules --


async def decomposition(session: AsyncSession, *, cache: Cache, threshold: int, principal: Principal, area: str,
                        depth: int, survey_year: int, fresh: bool = False) -> Table:
    """A row per area `depth` digits long inside `area` that the caller sees, a row per indicator, and the
    total: M0 of what the caller sees."""
    survey = await cached_survey(cache=cache, province=area[:2], survey_year=survey_year,
                                 threshold=threshold, fresh=fresh)
    whole = survey.tree.seen(area, principal)
    n, m0 = whole["assessed_persons"], (whole["censored"] / whole["assessed_persons"]
                                        if whole["assessed_persons"] else Fraction(0))

    def shares(contribution: Fraction) -> dict[str, Any]:
        return {"contribution": ratio(contribution), "share": ratio(contribution / m0) if m0 else 0.0}

    rows: list[dict[str, Any]] = []
    for code in survey.tree.nodes(area, depth):
        if not visible(principal, code):
            continue
        part = survey.tree.seen(code, principal)
        names = area_names(code)
        pn = part["assessed_persons"]
        rows.append({"_key": code, "part": "area", "code": code, "name_th": names["area_name_th"],
                     "name_en": names["area_name_en"], "assessed_persons": pn, "poor_persons": part["poor_persons"],
                     "M0": ratio(part["censored"] / pn) if pn else 0.0}
                    | shares(part["censored"] / n if n else Fraction(0)))
    # The indicators' parts are figures of the whole area: they follow its counts. Every indicator of the sets
    # the year's assessments used has its row, in the set's order (one no poor household failed contributes 0).
    failed = survey.by_indicator_of(area, principal)
    named: dict[str, IndicatorName] = {}
    for set_id in await indicator_sets(session, cache=cache, province=area[:2], survey_year=survey_year):
        for indicator in indicator_names().get(set_id, ()):
            named.setdefault(indicator.code, indicator)  # a code two sets share is one row
    for code in sorted(set(failed) - set(named)):  # a code no set file names (a set the service lacks)
        named[code] = IndicatorName(code, "", "", "")
    for name in named.values():
        value = failed.get(name.code, Fraction(0))
        rows.append({"_key": area, "part": "indicator", "code": name.code, "name_th": name.name_th,
                     "name_en": name.name_en, "dimension": name.dimension or None, "assessed_persons": None,
                     "poor_persons": None, "M0": None} | shares(value / n if n else Fraction(0)))
    names = area_names(area)
    total = {"_key": area, "part": "total", "code": area, "name_th": names["area_name_th"],
             "name_en": names["area_name_en"], "assessed_persons": n, "poor_persons": whole["poor_persons"],
             "M0": ratio(m0), "contribution": ratio(m0), "share": 1.0 if m0 else 0.0}
    table = Table("mpi-decomposition", DECOMPOSITION_COLUMNS, rows, total, survey.tree.as_of,
                  {"area": area, "level": level_name(depth), "survey_year": survey_year, "M0_exact": str(m0)},
                  params_follow={"M0_exact": "M0"})
    return disclose(table, principal, survey.tree.hidden)


# -- routes --

router = APIRouter()


@router.get("/mpi-decomposition", summary="Each indicator's and each area's contribution to M0", responses=FORMATS)
async def mpi_decomposition(principal: CanRead, cache: CacheDep, settings: SettingsDep, request: Request,
                            session: ReadSessionDep, area: AreaParam, survey_year: SurveyYear, level: LevelParam = None,
                            fmt: FormatParam = None, lang: LangParam = "en") -> Response:
    depth = depth_of(area, level)
    ensure_area_or_child(principal, area)
    table = await decomposition(session, cache=cache,
                                threshold=settings.small_count_max, principal=principal,
                                area=area, depth=depth, survey_year=survey_year, fresh=wants_fresh(request))
    return respond(table, choose_format(request, fmt), lang)
