"""The progress report: month by month, surveys, exits, grants, subsidies and partners' help in an area, read
from the read models directly; its small counts are protected within whole fiscal years."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting.disclosure import protect, tree_of
from services.reporting.models import Assessment, Help, Payment
from services.reporting.reports.areas import AreaParam, ensure_area_or_child, ensure_known
from services.reporting.reports.publication import CENTRE_SUBSIDY, as_of
from services.reporting.reports.table import (
    FORMATS,
    Column,
    FormatParam,
    LangParam,
    Table,
    choose_format,
    count_column,
    disclose,
    respond,
)
from services.reporting.security import DETAIL, CanRead
from services.reporting.settings import SettingsDep
from shared.app import ReadSessionDep
from shared.auth import Principal, area_clause
from shared.errors import Forbidden, Unprocessable
from shared.money import ZERO, fiscal_year, fiscal_year_bounds

# -- schemas --

PROGRESS_COLUMNS = (
    Column("month", "str", "YYYY-MM (C.E.)", label_th="เดือน (ค.ศ.)"),
    count_column("assessed_households", "households surveyed in the month", "ครัวเรือนที่สำรวจ"),
    count_column("target_poor_households", "of them, target poor", "ครัวเรือนยากจนเป้าหมาย"),
    count_column("exited", "of them, out of target poverty since their previous survey year",
                 "ครัวเรือนที่พ้นความยากจนเป้าหมาย"),
    count_column("entered", "of them, newly target poor", "ครัวเรือนที่เข้าสู่ความยากจนเป้าหมาย"),
    count_column("families_granted", "households paid a family grant in the month",
                 "ครัวเรือนที่ได้รับเงินช่วยเหลือครอบครัว"),
    Column("grant_amount", "money", "baht of those grants", follows=("families_granted",),
           label_th="จำนวนเงินช่วยเหลือครอบครัว (บาท)"),
    count_column("centres_subsidised", "centres paid a subsidy in the month", "ศูนย์ที่ได้รับเงินอุดหนุน"),
    Column("subsidy_amount", "money", "baht of those subsidies", follows=("centres_subsidised",),
           label_th="จำนวนเงินอุดหนุนศูนย์ (บาท)"),
    count_column("households_helped", "households helped by partner agencies in the month",
                 "ครัวเรือนที่หน่วยงานภาคีช่วยเหลือ"),
    Column("help_value", "money", "baht value of that help, where it has one", follows=("households_helped",),
           label_th="มูลค่าความช่วยเหลือ (บาท)"),
)
Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (C.E.)")]

# -- rules --


def months_between(first: str, last: str) -> list[str]:
    """The months from `first` to `last` (YYYY-MM), both included; at most 120 (refused past that)."""
    months = _months(first, last)
    if not months or len(months) > 120:
        raise Unprocessable("from must not be after to, and at most 120 months apart", errors=[
            {"field": "query.from", "message": "from ≤ to, at most 120 months", "code": "range"}])
    return months


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    out: list[str] = []
    while f"{year:04d}-{month:02d}" <= last and len(out) <= 120:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


async def progress_by_month(session: AsyncSession, *, threshold: int, principal: Principal, area: str,
                            months: list[str]) -> Table:
    """A row per month of `months` (consecutive, from `months_between`) and their total, in `area`."""
    detail = principal.has_scope(DETAIL)
    # Without detail, months are protected within each whole fiscal year, whatever range was asked for.
    first, last = date(int(months[0][:4]), int(months[0][5:]), 1), _month_end(months[-1])
    if not detail:
        first, last = fiscal_year_bounds(fiscal_year(first))[0], fiscal_year_bounds(fiscal_year(last))[1]
    window = _months(first.isoformat()[:7], last.isoformat()[:7])
    rows = {m: _progress_row(m) for m in window}
    asked = set(months)
    total = _progress_row(None)
    sets: dict[tuple[str, str | None], set[str]] = {}

    def count(month: str, name: str, value: Any = 1, member: str | None = None) -> None:
        for key, row in ((month, rows[month]), *(((None, total),) if month in asked else ())):
            if member is not None:
                sets.setdefault((name, key), set()).add(member)
                row[name] = len(sets[(name, key)])
            else:
                row[name] += value

    surveyed = await session.execute(select(
        col(Assessment.surveyed_on), col(Assessment.target_poor), col(Assessment.change)).where(
        col(Assessment.surveyed_on) >= first, col(Assessment.surveyed_on) <= last,
        col(Assessment.village_code).startswith(area, autoescape=True),
        area_clause(principal, col(Assessment.village_code))))
    for on, target_poor, change in surveyed:
        month = on.isoformat()[:7]
        count(month, "assessed_households")
        count(month, "target_poor_households", int(target_poor))
        count(month, "exited", int(change == "exited"))
        count(month, "entered", int(change == "entered"))
    paid = await session.execute(select(Payment).where(
        col(Payment.paid_on) >= first, col(Payment.paid_on) <= last, col(Payment.reversed).is_(False),
        col(Payment.area_code).startswith(area, autoescape=True), area_clause(principal, col(Payment.area_code))))
    for p in paid.scalars():
        month = p.paid_on.isoformat()[:7]
        if p.programme == CENTRE_SUBSIDY:
            count(month, "centres_subsidised", member=p.centre_id)
            count(month, "subsidy_amount", p.amount)
        else:
            count(month, "families_granted", member=p.household_id)
            count(month, "grant_amount", p.amount)
    given = await session.execute(select(col(Help.given_on), col(Help.household_id), col(Help.value)).where(
        col(Help.given_on) >= first, col(Help.given_on) <= last,
        col(Help.village_code).startswith(area, autoescape=True), area_clause(principal, col(Help.village_code))))
    for on, household_id, value in given:
        month = on.isoformat()[:7]
        count(month, "households_helped", member=household_id)
        count(month, "help_value", value or ZERO)
    table = Table("progress", PROGRESS_COLUMNS, [rows[m] for m in months], total, await as_of(session),
                  {"area": area, "from": months[0], "to": months[-1]})
    return disclose(table, principal, _months_hidden(rows, asked, threshold), whole=lambda _: True)


def _fiscal_year_of_month(code: str) -> str | None:
    """The parent of a month in the tree of months: its fiscal year (which has none)."""
    return None if code.startswith("FY") else f"FY{fiscal_year(date(int(code[:4]), int(code[5:]), 1))}"


def _months_hidden(rows: Mapping[str, Mapping[str, Any]], asked: set[str], threshold: int,
                   ) -> dict[str, frozenset[str]]:
    """Each count column's hidden months, chosen within whole fiscal years (the months of a fiscal year add up
    to the year's figure, published elsewhere); the total of the months asked for is hidden where one of them
    is (it is not a node of that tree)."""
    hidden: dict[str, frozenset[str]] = {}
    for column in (c for c in PROGRESS_COLUMNS if c.count):
        values = tree_of({m: (row[column.name],) for m, row in rows.items()}, (0,), parent=_fiscal_year_of_month)
        months = protect(values, threshold, parent=_fiscal_year_of_month) - {c for c in values if c.startswith("FY")}
        hidden[column.name] = frozenset(months | ({"total"} if months & asked else set()))
    return hidden


def _month_end(month: str) -> date:
    year, number = int(month[:4]), int(month[5:])
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def _progress_row(month: str | None) -> dict[str, Any]:
    return {"_key": month or "total", "month": month or "total", "assessed_households": 0,
            "target_poor_households": 0, "exited": 0, "entered": 0, "families_granted": 0, "grant_amount": ZERO,
            "centres_subsidised": 0, "subsidy_amount": ZERO, "households_helped": 0, "help_value": ZERO}


# -- routes --

router = APIRouter()


@router.get("/progress", summary="Month by month: surveys, exits, grants, subsidies and partners' help",
            responses=FORMATS)
async def progress(principal: CanRead, settings: SettingsDep, request: Request, session: ReadSessionDep,
                   area: AreaParam,
                   from_: Annotated[str, Query(alias="from", pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                               description="first month, YYYY-MM (C.E.)")],
                   to: Month, fmt: FormatParam = None, lang: LangParam = "en") -> Response:
    ensure_known(area)
    ensure_area_or_child(principal, area)
    months = months_between(from_, to)
    if not principal.has_scope(DETAIL) and (len(area) != 2 or not principal.can_see(area)):
        raise Forbidden("Month-by-month figures are published for a whole province; for a smaller area they "
                        "need the scope reporting:detail.")
    table = await progress_by_month(session, threshold=settings.small_count_max,
                                    principal=principal, area=area, months=months)
    return respond(table, choose_format(request, fmt), lang)
