"""The reports: poverty by area, the MPI's decomposition, assistance by area, monthly progress, the field
network (areas, teams, centres), freshness.

Every figure comes from the read models (`projection`); every report is a `tables.Table`, so it is
suppressed and exported one way (JSON, CSV, Parquet) and carries `as_of`, the newest event it reflects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from fractions import Fraction
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting import publication
from services.reporting.disclosure import protect, tree_of
from services.reporting.models import (
    DIMENSIONS,
    AreaYear,
    Assessment,
    Budget,
    Centre,
    Feed,
    Help,
    Payment,
    Team,
)
from services.reporting.publication import CENTRE_SUBSIDY, Survey
from services.reporting.security import DETAIL, can_read
from services.reporting.tables import Column, Format, Table, choose_format, respond
from shared import areas
from shared.app import SessionDep
from shared.areas import AREA_CODE_PATTERN
from shared.auth import Principal, area_clause, ensure_area
from shared.db import as_utc
from shared.errors import Forbidden, NotFound, Unprocessable
from shared.money import ZERO, FiscalYear, fiscal_year, fiscal_year_bounds

LEVELS = {"province": 2, "district": 4, "subdistrict": 6, "village": 8}
Level = Literal["province", "district", "subdistrict", "village"]

AreaParam = Annotated[str, Query(pattern=AREA_CODE_PATTERN, description="DOPA code, e.g. 40")]
LevelParam = Annotated[Level | None, Query(description="one row per area of this level (default: one below)")]
SurveyYear = Annotated[int, Query(ge=2500, le=2700, description="B.E., e.g. 2565")]
FormatParam = Annotated[Format | None, Query(alias="format", description="json (default), csv or parquet; "
                                                                         "or ask by Accept")]

AREA_COLUMNS = (Column("area_code", "str", "DOPA code"), Column("area_name_th", "str", "Thai name"),
                Column("area_name_en", "str", "English name"))


def _count(name: str, description: str) -> Column:
    return Column(name, "int", description, count=True)


POVERTY_COLUMNS = (
    *AREA_COLUMNS,
    _count("households", "open households registered now"),
    _count("persons", "their members"),
    _count("assessed_households", "households with an assessment in the survey year"),
    _count("assessed_persons", "n: persons in assessed households"),
    _count("target_poor_households", "TPMAP target poor: deprived in a dimension (and a welfare card)"),
    _count("target_poor_persons", "persons in target-poor households"),
    _count("poor_households", "Alkire–Foster poor: deprivation score c ≥ k"),
    _count("poor_persons", "q: persons in poor households"),
    *(_count(d, f"households deprived in {d}") for d in DIMENSIONS),
    Column("H", "float", "headcount ratio q / n", follows=("poor_persons", "assessed_persons")),
    Column("A", "float", "intensity: average score of the poor", follows=("poor_persons",)),
    Column("MPI", "float", "M0 = H × A", follows=("poor_persons", "assessed_persons")),
    _count("exited", "households target poor in their previous survey year and not in this one"),
    _count("entered", "households not target poor in their previous survey year and target poor in this one"),
)


def _area_names(code: str) -> dict[str, str]:
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


def _official(code: str, depth: int) -> list[str]:
    """The official areas `depth` digits long inside `code` (villages come from the data)."""
    if depth >= 8:
        return []
    found = areas.find(code)
    level = [found] if found else []
    while level and len(level[0].code) < depth:
        level = [child for a in level for child in areas.children(a)]
    return [a.code for a in level]


def _visible(principal: Principal, code: str) -> bool:
    """True if the caller may see some of the area: it lies inside a claim, or a claim lies inside it."""
    return principal.can_see(code) or any(claim.startswith(code) for claim in principal.areas)


def _depth(area: str, level: Level | None) -> int:
    if areas.find(area) is None:
        raise NotFound(f"There is no area with code {area}.")
    depth = LEVELS[level] if level else min(len(area) + 2, 8)
    if depth < len(area):
        raise Unprocessable(f"level {level} is above area {area}", errors=[
            {"field": "query.level", "message": "must be the area's level or below", "code": "level"}])
    return depth


def _level_name(depth: int) -> str:
    return next(name for name, n in LEVELS.items() if n == depth)


async def as_of(session: AsyncSession) -> datetime | None:
    newest = (await session.execute(select(func.max(col(Feed.newest_event_at))))).scalar_one_or_none()
    return as_utc(newest) if newest is not None else None


def _finish(request: Request, principal: Principal, table: Table, fmt: Format | None,
            hidden: Mapping[str, frozenset[str]], whole: Callable[[str], bool] | None = None) -> Response:
    """The one disclosure-control step: a caller without `reporting:detail` gets the table with the cells
    `hidden` names blanked, and every row that is not a whole node (an area it sees only part of) blanked too."""
    if not principal.has_scope(DETAIL):
        table.protect(hidden, whole or principal.can_see)
    return respond(table, choose_format(request, fmt))


def _ratio(value: Fraction | float) -> float:
    return round(float(value), 6)


async def _snapshot(session: AsyncSession) -> None:
    """Every read of a report from one snapshot (PostgreSQL: REPEATABLE READ; SQLite's transaction is one)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _cache(request: Request) -> publication.Cache:
    state = request.app.state
    if not hasattr(state, "publications"):
        state.publications = publication.Cache()
    cache: publication.Cache = state.publications
    return cache


async def _survey(request: Request, session: AsyncSession, area: str, survey_year: int) -> Survey:
    threshold = request.app.state.settings.small_count_max
    key = ("survey", area[:2], survey_year, threshold, await publication.version(session))
    found: Survey = await _cache(request).get(
        key, lambda: publication.survey(session, area[:2], survey_year, threshold))
    return found


def _poverty_row(code: str, sums: Mapping[str, Any]) -> dict[str, Any]:
    n, q, censored = sums["assessed_persons"], sums["poor_persons"], sums["censored"]
    row: dict[str, Any] = {"_key": code} | _area_names(code) | {
        name: sums[name] for name in publication.POVERTY_COUNTS}
    return row | {"H": _ratio(Fraction(q, n)) if n else 0.0, "A": _ratio(censored / q) if q else 0.0,
                  "MPI": _ratio(censored / n) if n else 0.0}


router = APIRouter(prefix="/v1/reports", tags=["reports"])
FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
                                                      "description": "JSON by default; CSV or Parquet on request"}}


@router.get("/poverty", summary="Households, target poor, deprivation by dimension, H, A, MPI and exits, by area",
            responses=FORMATS)
async def poverty(request: Request, session: SessionDep, area: AreaParam, survey_year: SurveyYear,
                  level: LevelParam = None, fmt: FormatParam = None, principal: Principal = can_read) -> Response:
    depth = _depth(area, level)
    ensure_area_or_child(principal, area)
    await _snapshot(session)
    tree = (await _survey(request, session, area, survey_year)).tree
    rows = [_poverty_row(code, tree.seen(code, principal)) for code in tree.nodes(area, depth)
            if _visible(principal, code)]
    table = Table("poverty", POVERTY_COLUMNS, rows, _poverty_row(area, tree.seen(area, principal)),
                  await as_of(session), {"area": area, "level": _level_name(depth), "survey_year": survey_year})
    return _finish(request, principal, table, fmt, tree.hidden)


def ensure_area_or_child(principal: Principal, area: str) -> None:
    """A caller may ask for its own area or a wider one (rows and totals then hold only what it may see)."""
    if not _visible(principal, area):
        ensure_area(principal, area)


DECOMPOSITION_COLUMNS = (
    Column("part", "str", "area or indicator"),
    Column("code", "str", "DOPA code or indicator code"),
    Column("name_th", "str", "Thai name (areas)"),
    Column("name_en", "str", "English name (areas)"),
    _count("assessed_persons", "n of the area"),
    _count("poor_persons", "q of the area"),
    Column("M0", "float", "the area's own MPI", follows=("poor_persons", "assessed_persons")),
    Column("contribution", "float", "its part of the whole's M0 (parts add up to M0)",
           follows=("poor_persons", "assessed_persons")),
    Column("share", "float", "contribution ÷ M0", follows=("poor_persons", "assessed_persons")),
)


@router.get("/mpi-decomposition", summary="Each indicator's and each area's contribution to M0", responses=FORMATS)
async def mpi_decomposition(request: Request, session: SessionDep, area: AreaParam, survey_year: SurveyYear,
                            level: LevelParam = None, fmt: FormatParam = None,
                            principal: Principal = can_read) -> Response:
    depth = _depth(area, level)
    ensure_area_or_child(principal, area)
    await _snapshot(session)
    survey = await _survey(request, session, area, survey_year)
    whole = survey.tree.seen(area, principal)
    n, m0 = whole["assessed_persons"], (whole["censored"] / whole["assessed_persons"]
                                        if whole["assessed_persons"] else Fraction(0))

    def shares(contribution: Fraction) -> dict[str, Any]:
        return {"contribution": _ratio(contribution), "share": _ratio(contribution / m0) if m0 else 0.0}

    rows: list[dict[str, Any]] = []
    for code in survey.tree.nodes(area, depth):
        if not _visible(principal, code):
            continue
        part = survey.tree.seen(code, principal)
        names = _area_names(code)
        pn = part["assessed_persons"]
        rows.append({"_key": code, "part": "area", "code": code, "name_th": names["area_name_th"],
                     "name_en": names["area_name_en"], "assessed_persons": pn, "poor_persons": part["poor_persons"],
                     "M0": _ratio(part["censored"] / pn) if pn else 0.0}
                    | shares(part["censored"] / n if n else Fraction(0)))
    # The indicators' parts are figures of the whole area: they follow its counts.
    for code, value in sorted(survey.by_indicator_of(area, principal).items()):
        rows.append({"_key": area, "part": "indicator", "code": code, "name_th": None, "name_en": None,
                     "assessed_persons": None, "poor_persons": None, "M0": None}
                    | shares(value / n if n else Fraction(0)))
    names = _area_names(area)
    total = {"_key": area, "part": "total", "code": area, "name_th": names["area_name_th"],
             "name_en": names["area_name_en"], "assessed_persons": n, "poor_persons": whole["poor_persons"],
             "M0": _ratio(m0), "contribution": _ratio(m0), "share": 1.0 if m0 else 0.0}
    table = Table("mpi-decomposition", DECOMPOSITION_COLUMNS, rows, total, await as_of(session),
                  {"area": area, "level": _level_name(depth), "survey_year": survey_year, "M0_exact": str(m0)},
                  params_follow={"M0_exact": "M0"})
    return _finish(request, principal, table, fmt, survey.tree.hidden)


ASSISTANCE_COLUMNS = (
    *AREA_COLUMNS,
    _count("families_granted", "households paid a family grant in the fiscal year (standing payments)"),
    Column("grant_amount", "money", "baht of those grants", follows=("families_granted",)),
    _count("grants_reversed", "grant payments reversed"),
    _count("centres_subsidised", "family development centres paid a subsidy"),
    Column("subsidy_amount", "money", "baht of those subsidies", follows=("centres_subsidised",)),
    Column("budget_allocated", "money", "budgets of the fiscal year set for this area or areas inside it",
           exact=True),
    Column("budget_used", "money", "standing payments drawn on those budgets",
           follows=("families_granted", "centres_subsidised")),
    _count("target_poor_households", "target poor in the survey year (default: the fiscal year's B.E. year)"),
    _count("target_poor_helped", "of them, households paid a grant or helped by a partner in the fiscal year"),
    Column("coverage", "float", "target_poor_helped ÷ target_poor_households",
           follows=("target_poor_helped", "target_poor_households")),
)


@router.get("/assistance", summary="Grants, subsidies, budgets and coverage of the target poor, by area",
            responses=FORMATS)
async def assistance(request: Request, session: SessionDep, area: AreaParam,
                     fiscal_year: Annotated[FiscalYear, Query()], level: LevelParam = None,
                     survey_year: Annotated[int | None, Query(ge=2500, le=2700)] = None,
                     fmt: FormatParam = None, principal: Principal = can_read) -> Response:
    depth = _depth(area, level)
    ensure_area_or_child(principal, area)
    await _snapshot(session)
    threshold = request.app.state.settings.small_count_max
    target = await _survey(request, session, area, survey_year or fiscal_year)
    key = ("assistance", area[:2], fiscal_year, target.survey_year, threshold, await publication.version(session))
    tree: publication.Tree = await _cache(request).get(
        key, lambda: publication.assistance(session, area[:2], fiscal_year, target, threshold))

    def row(code: str) -> dict[str, Any]:
        sums = tree.seen(code, principal)
        targets = target.tree.seen(code, principal)["target_poor_households"]
        return {"_key": code} | _area_names(code) | {name: sums[name] for name in ASSISTANCE_FIGURES} | {
            "target_poor_households": targets, "target_poor_helped": sums["target_poor_helped"],
            "coverage": _ratio(Fraction(sums["target_poor_helped"], targets)) if targets else 0.0}

    codes = sorted(set(tree.nodes(area, depth)) | set(target.tree.nodes(area, depth)))
    table = Table("assistance", ASSISTANCE_COLUMNS, [row(c) for c in codes if _visible(principal, c)], row(area),
                  await as_of(session), {"area": area, "level": _level_name(depth), "fiscal_year": fiscal_year,
                                         "survey_year": target.survey_year})
    hidden = tree.hidden | {"target_poor_households": target.tree.hidden["target_poor_households"]}
    return _finish(request, principal, table, fmt, hidden)


ASSISTANCE_FIGURES = ("families_granted", "grant_amount", "grants_reversed", "centres_subsidised", "subsidy_amount",
                      "budget_allocated", "budget_used")


PROGRESS_COLUMNS = (
    Column("month", "str", "YYYY-MM (C.E.)"),
    _count("assessed_households", "households surveyed in the month"),
    _count("target_poor_households", "of them, target poor"),
    _count("exited", "of them, out of target poverty since their previous survey year"),
    _count("entered", "of them, newly target poor"),
    _count("families_granted", "households paid a family grant in the month"),
    Column("grant_amount", "money", "baht of those grants", follows=("families_granted",)),
    _count("centres_subsidised", "centres paid a subsidy in the month"),
    Column("subsidy_amount", "money", "baht of those subsidies", follows=("centres_subsidised",)),
    _count("households_helped", "households helped by partner agencies in the month"),
    Column("help_value", "money", "baht value of that help, where it has one", follows=("households_helped",)),
)
Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (C.E.)")]


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    out: list[str] = []
    while f"{year:04d}-{month:02d}" <= last and len(out) <= 120:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


@router.get("/progress", summary="Month by month: surveys, exits, grants, subsidies and partners' help",
            responses=FORMATS)
async def progress(request: Request, session: SessionDep, area: AreaParam,
                   from_: Annotated[str, Query(alias="from", pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                               description="first month, YYYY-MM (C.E.)")],
                   to: Month, fmt: FormatParam = None, principal: Principal = can_read) -> Response:
    if areas.find(area) is None:
        raise NotFound(f"There is no area with code {area}.")
    ensure_area_or_child(principal, area)
    months = _months(from_, to)
    if not months or len(months) > 120:
        raise Unprocessable("from must not be after to, and at most 120 months apart", errors=[
            {"field": "query.from", "message": "from ≤ to, at most 120 months", "code": "range"}])
    detail = principal.has_scope(DETAIL)
    if not detail and (len(area) != 2 or not principal.can_see(area)):
        raise Forbidden("Month-by-month figures are published for a whole province; for a smaller area they "
                        "need the scope reporting:detail.")
    await _snapshot(session)
    # Without detail, months are protected within each whole fiscal year, whatever range was asked for.
    first, last = date(int(from_[:4]), int(from_[5:]), 1), _month_end(to)
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
                  {"area": area, "from": from_, "to": to})
    threshold = request.app.state.settings.small_count_max
    return _finish(request, principal, table, fmt, _months_hidden(rows, asked, threshold), whole=lambda _: True)


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


# Areas, teams and centres are the programme's own organisation, not households: published as they are.
NETWORK_COLUMNS = (
    *AREA_COLUMNS,
    Column("districts", "int", "official districts (อำเภอ) in the area", exact=True),
    Column("subdistricts", "int", "official sub-districts (ตำบล) in the area", exact=True),
    Column("teams", "int", "field operations teams (ทีมปฏิบัติการ) of its districts", exact=True),
    Column("team_members", "int", "people in those teams", exact=True),
    Column("social_assistance_centres", "int", "sub-district social assistance centres (ศูนย์ช่วยเหลือสังคมตำบล)",
           exact=True),
    Column("family_development_centres", "int", "community family development centres (ศพค.)", exact=True),
)
CENTRE_KINDS = {"tambon_social_assistance_centre": "social_assistance_centres",
                "family_development_centre": "family_development_centres"}


@router.get("/field-network", summary="Districts, sub-districts, field teams and centres, by area",
            responses=FORMATS)
async def field_network(request: Request, session: SessionDep, area: AreaParam, level: LevelParam = None,
                        fmt: FormatParam = None, principal: Principal = can_read) -> Response:
    depth = _depth(area, level or ("subdistrict" if len(area) >= 6 else None))
    if depth > 6:
        raise Unprocessable("teams and centres are counted by district and sub-district, not by village", errors=[
            {"field": "query.level", "message": "province, district or subdistrict", "code": "level"}])
    ensure_area_or_child(principal, area)
    rows = {code: _network_row(code) for code in _official(area, depth) if _visible(principal, code)}
    total = _network_row(area)
    districts: set[str] = set()
    for code, row in rows.items():
        inside = _official(code, 4) if len(code) <= 4 else [code[:4]]
        row["districts"] = len(inside) if len(code) <= 4 else 0
        row["subdistricts"] = len(_official(code, 6))
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
                  {"area": area, "level": _level_name(depth)})
    return _finish(request, principal, table, fmt, {})


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
    return {"_key": code} | _area_names(code) | {"districts": 0, "subdistricts": 0, "teams": 0, "team_members": 0,
                                "social_assistance_centres": 0, "family_development_centres": 0}


class Years(BaseModel):
    survey_years: list[int]
    fiscal_years: list[int]


@router.get("/years", summary="The survey years and fiscal years the read models hold, oldest first")
async def years(session: SessionDep, principal: Principal = can_read) -> Years:
    surveyed = await session.execute(select(col(AreaYear.survey_year)).distinct().order_by(col(AreaYear.survey_year)))
    paid = await session.execute(select(col(Payment.fiscal_year)).distinct())
    budgeted = await session.execute(select(col(Budget.fiscal_year)).distinct())
    return Years(survey_years=list(surveyed.scalars()),
                 fiscal_years=sorted(set(paid.scalars()) | set(budgeted.scalars())))


class TopicFreshness(BaseModel):
    topic: str
    newest_event_at: datetime | None
    events_applied: int
    lag: int | None


class Freshness(BaseModel):
    as_of: datetime | None
    consumer_connected: bool
    topics: list[TopicFreshness]


@router.get("/freshness", summary="How fresh the read models are: newest event and consumer lag per topic")
async def freshness(request: Request, session: SessionDep, principal: Principal = can_read) -> Freshness:
    consumer = request.app.state.consumer
    feeds = {f.topic: f for f in (await session.execute(select(Feed))).scalars()}
    lags: dict[str, int] = consumer.lag_by_topic() if consumer is not None else {}
    topics = sorted(set(consumer.topics if consumer is not None else []) | set(feeds))
    return Freshness(as_of=await as_of(session), consumer_connected=bool(consumer and consumer.connected),
                     topics=[TopicFreshness(topic=t, newest_event_at=as_utc(feeds[t].newest_event_at) if t in feeds
                                            else None, events_applied=feeds[t].events if t in feeds else 0,
                                            lag=lags.get(t)) for t in topics])

