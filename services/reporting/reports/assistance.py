"""The assistance report: grants, centre subsidies, budgets and the coverage of the target poor, by area, cut
from the province's tree of a fiscal year (`publication.assistance`) and of the survey year whose target poor
it covers."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

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
from services.reporting.reports.publication import (
    Cache,
    CacheDep,
    cached_assistance,
    cached_survey,
    wants_fresh,
)
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
from shared.money import FiscalYear

# -- schemas --

ASSISTANCE_COLUMNS = (
    *AREA_COLUMNS,
    count_column("families_granted", "households paid a family grant in the fiscal year (standing payments)",
                 "ครัวเรือนที่ได้รับเงินช่วยเหลือครอบครัว"),
    Column("grant_amount", "money", "baht of those grants", follows=("families_granted",),
           label_th="จำนวนเงินช่วยเหลือครอบครัว (บาท)"),
    count_column("grants_reversed", "grant payments reversed", "รายการจ่ายที่ยกเลิก"),
    count_column("centres_subsidised", "family development centres paid a subsidy", "ศูนย์ที่ได้รับเงินอุดหนุน"),
    Column("subsidy_amount", "money", "baht of those subsidies", follows=("centres_subsidised",),
           label_th="จำนวนเงินอุดหนุนศูนย์ (บาท)"),
    Column("budget_allocated", "money", "budgets of the fiscal year set for this area or areas inside it",
           exact=True, label_th="งบประมาณที่จัดสรร (บาท)"),
    Column("budget_used", "money", "standing payments drawn on those budgets",
           follows=("families_granted", "centres_subsidised"), label_th="งบประมาณที่ใช้ (บาท)"),
    count_column("target_poor_households", "target poor in the survey year (default: the fiscal year's B.E. year)",
                 "ครัวเรือนยากจนเป้าหมาย"),
    count_column("target_poor_helped", "of them, households paid a grant or helped by a partner in the fiscal year",
                 "ครัวเรือนยากจนเป้าหมายที่ได้รับความช่วยเหลือ"),
    Column("coverage", "float", "target_poor_helped ÷ target_poor_households",
           follows=("target_poor_helped", "target_poor_households"), label_th="สัดส่วนที่ได้รับความช่วยเหลือ"),
)
# The columns read from the fiscal year's tree as they are.
ASSISTANCE_FIGURES = ("families_granted", "grant_amount", "grants_reversed", "centres_subsidised", "subsidy_amount",
                      "budget_allocated", "budget_used")

# -- rules --


async def assistance_by_area(*, cache: Cache, threshold: int, principal: Principal,
                             area: str, depth: int, fiscal_year: int, survey_year: int | None,
                             fresh: bool = False) -> Table:
    """A row per area `depth` digits long inside `area` that the caller sees, and the total of what it sees;
    the target poor are those of `survey_year` (by default the fiscal year's B.E. year)."""
    target = await cached_survey(cache=cache, province=area[:2], survey_year=survey_year or fiscal_year,
                                 threshold=threshold, fresh=fresh)
    tree = await cached_assistance(cache=cache, province=area[:2], fiscal_year=fiscal_year, target=target,
                                   threshold=threshold, fresh=fresh)

    def row(code: str) -> dict[str, Any]:
        sums = tree.seen(code, principal)
        targets = target.tree.seen(code, principal)["target_poor_households"]
        return {"_key": code} | area_names(code) | {name: sums[name] for name in ASSISTANCE_FIGURES} | {
            "target_poor_households": targets, "target_poor_helped": sums["target_poor_helped"],
            "coverage": ratio(Fraction(sums["target_poor_helped"], targets)) if targets else 0.0}

    codes = sorted(set(tree.nodes(area, depth)) | set(target.tree.nodes(area, depth)))
    table = Table("assistance", ASSISTANCE_COLUMNS, [row(c) for c in codes if visible(principal, c)], row(area),
                  _older(tree.as_of, target.tree.as_of),
                  {"area": area, "level": level_name(depth), "fiscal_year": fiscal_year,
                                         "survey_year": target.survey_year})
    hidden = tree.hidden.taking(target.tree.hidden, ("target_poor_households",))
    return disclose(table, principal, hidden)


def _older(a: datetime | None, b: datetime | None) -> datetime | None:
    """The report's `as_of` from its two trees' (each may have been read at another moment): what both reflect."""
    return min(a, b) if a is not None and b is not None else a or b


# -- routes --

router = APIRouter()


@router.get("/assistance", summary="Grants, subsidies, budgets and coverage of the target poor, by area",
            responses=FORMATS)
async def assistance(principal: CanRead, cache: CacheDep, settings: SettingsDep, request: Request,
                     area: AreaParam, fiscal_year: Annotated[FiscalYear, Query()],
                     level: LevelParam = None, survey_year: Annotated[int | None, Query(ge=2500, le=2700)] = None,
                     fmt: FormatParam = None, lang: LangParam = "en") -> Response:
    depth = depth_of(area, level)
    ensure_area_or_child(principal, area)
    table = await assistance_by_area(cache=cache,
                                     threshold=settings.small_count_max, principal=principal,
                                     area=area, depth=depth, fiscal_year=fiscal_year, survey_year=survey_year,
                                     fresh=wants_fresh(request))
    return respond(table, choose_format(request, fmt), lang)
