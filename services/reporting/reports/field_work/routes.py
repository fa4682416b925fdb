"""GET /v1/reports/field-work, /field-work/teams and /field-work/sectors."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.reporting.reports.areas import AreaParam, LevelParam, depth_of, ensure_area_or_child, ensure_known
from services.reporting.reports.field_work.service import field_work_by_area, field_work_by_sector, field_work_by_team
from services.reporting.reports.table import FORMATS, FormatParam, choose_format, respond
from services.reporting.security import DETAIL, CanRead
from services.reporting.settings import SettingsDep
from shared.app import ReadSessionDep
from shared.errors import Forbidden
from shared.money import FiscalYear

router = APIRouter()
FiscalYearParam = Annotated[FiscalYear, Query()]


@router.get("/field-work", summary="Visits and referrals of a fiscal year, by area", responses=FORMATS)
async def field_work(principal: CanRead, settings: SettingsDep, request: Request, session: ReadSessionDep,
                     area: AreaParam, fiscal_year: FiscalYearParam, level: LevelParam = None,
                     fmt: FormatParam = None) -> Response:
    depth = depth_of(area, level)
    ensure_area_or_child(principal, area)
    table = await field_work_by_area(session, threshold=settings.small_count_max, principal=principal, area=area,
                                     depth=depth, fiscal_year=fiscal_year)
    return respond(table, choose_format(request, fmt))


@router.get("/field-work/teams", summary="Visits of a fiscal year, by field team", responses=FORMATS)
async def field_work_teams(principal: CanRead, settings: SettingsDep, request: Request, session: ReadSessionDep,
                           area: AreaParam, fiscal_year: FiscalYearParam, fmt: FormatParam = None) -> Response:
    ensure_known(area)
    ensure_area_or_child(principal, area)
    if not principal.has_scope(DETAIL) and len(area) > 4:
        raise Forbidden("Visits by team are published for a province or a district; for a smaller area they need "
                        "the scope reporting:detail.")
    table = await field_work_by_team(session, threshold=settings.small_count_max, principal=principal, area=area,
                                     fiscal_year=fiscal_year)
    return respond(table, choose_format(request, fmt))


@router.get("/field-work/sectors", summary="Referrals and help of a fiscal year, by partner sector",
            responses=FORMATS)
async def field_work_sectors(principal: CanRead, settings: SettingsDep, request: Request, session: ReadSessionDep,
                             area: AreaParam, fiscal_year: FiscalYearParam, fmt: FormatParam = None) -> Response:
    ensure_known(area)
    ensure_area_or_child(principal, area)
    if not principal.has_scope(DETAIL) and (len(area) != 2 or not principal.can_see(area)):
        raise Forbidden("Figures by partner sector are published for a whole province; for a smaller area they "
                        "need the scope reporting:detail.")
    table = await field_work_by_sector(session, threshold=settings.small_count_max, principal=principal, area=area,
                                       fiscal_year=fiscal_year)
    return respond(table, choose_format(request, fmt))
