"""The field-work report's rules: a province's field year read once, counted by area, by team and by sector, and
the cells hidden from callers without `reporting:detail` (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting.disclosure import parent_of, protect
from services.reporting.models import Help, Referral, Team, Visit
from services.reporting.reports.areas import area_names, level_name, official_areas, visible
from services.reporting.reports.field_work.schemas import (
    FIELD_WORK_COLUMNS,
    REFERRAL_GROUPS,
    REFERRALS,
    SECTOR_COLUMNS,
    SECTORS,
    TEAM_COLUMNS,
    UNDER_WAY,
    VISIT_GROUP,
    VISITS,
)
from services.reporting.reports.publication import as_of
from services.reporting.reports.table import Table, disclose
from services.reporting.security import DETAIL
from shared import clock
from shared.auth import Principal
from shared.money import fiscal_year_bounds

Fact = tuple[str, Hashable | None]  # (village, a household to count once, or None to count every fact)


@dataclass
class FieldYear:
    """A province's field work of a fiscal year, fact by fact."""

    province: str
    teams: list[tuple[str, str]]  # (team id, district)
    visits: list[tuple[str, str, str | None]]  # (village, household, team)
    referrals: list[tuple[str, str, str, date]]  # (village, sector, status, due on)
    helped: list[tuple[str, str, str]]  # (village, household, sector)


async def field_year(session: AsyncSession, province: str, fiscal_year: int) -> FieldYear:
    start, end = fiscal_year_bounds(fiscal_year)
    teams = await session.execute(select(col(Team.id), col(Team.district_code)).where(
        col(Team.district_code).startswith(province, autoescape=True)))
    visits = await session.execute(select(col(Visit.village_code), col(Visit.household_id), col(Visit.team_id)).where(
        col(Visit.visited_on) >= start, col(Visit.visited_on) <= end,
        col(Visit.village_code).startswith(province, autoescape=True)))
    referrals = await session.execute(select(
        col(Referral.village_code), col(Referral.partner_sector), col(Referral.status), col(Referral.due_on)).where(
        col(Referral.created_on) >= start, col(Referral.created_on) <= end,
        col(Referral.village_code).startswith(province, autoescape=True)))
    helped = await session.execute(select(col(Help.village_code), col(Help.household_id), col(Help.partner_sector))
                                   .where(col(Help.given_on) >= start, col(Help.given_on) <= end,
                                          col(Help.village_code).startswith(province, autoescape=True)))
    return FieldYear(province, [(t, d) for t, d in teams], [(v, h, t) for v, h, t in visits],
                     [(v, s, st, due) for v, s, st, due in referrals], [(v, h, s) for v, h, s in helped])


def _count(facts: Iterable[tuple[str, Hashable | None]], nodes: Callable[[str], Iterable[str]]) -> dict[str, int]:
    """Facts counted at every node `nodes(key)` names: each fact once, or each distinct member once."""
    counts: dict[str, int] = {}
    seen: dict[str, set[Hashable]] = {}
    for key, member in facts:
        for node in nodes(key):
            if member is None:
                counts[node] = counts.get(node, 0) + 1
            elif member not in seen.setdefault(node, set()):
                seen[node].add(member)
                counts[node] = counts.get(node, 0) + 1
    return counts


def _up(village: str) -> list[str]:
    """A village and the areas above it."""
    return [village[:n] for n in range(len(village), 0, -2)]


def _measures(year: FieldYear, today: date, seen: Callable[[str], bool]) -> dict[str, dict[str, int]]:
    """Each area column, by area node, over the facts in villages `seen` accepts."""
    visits = [v for v in year.visits if seen(v[0])]
    referrals = [r for r in year.referrals if seen(r[0])]
    return {"visits": _count(((v, None) for v, _, _ in visits), _up),
            "households_visited": _count(((v, h) for v, h, _ in visits), _up),
            **_referral_counts(referrals, today, lambda v, _: _up(v))}


def _referral_counts(referrals: Iterable[tuple[str, str, str, date]], today: date,
                     nodes: Callable[[str, str], Iterable[str]]) -> dict[str, dict[str, int]]:
    found = list(referrals)

    def count(keep: Callable[[str, date], bool]) -> dict[str, int]:
        return _count(((f"{v}|{s}", None) for v, s, status, due in found if keep(status, due)),
                      lambda key: nodes(*key.split("|")))

    return {"referrals_open": count(lambda status, _: status in UNDER_WAY),
            "referrals_overdue": count(lambda status, due: status in UNDER_WAY and due < today),
            "referrals_done": count(lambda status, _: status == "done")}


def _values(measures: Mapping[str, Mapping[str, int]], group: tuple[str, ...], nodes: Iterable[str],
            ) -> dict[str, tuple[int, ...]]:
    return {code: tuple(measures[name].get(code, 0) for name in group) for code in nodes}


def _team_key(district: str, team: str | None) -> str:
    return f"T:{district}:{team or ''}"


def _team_parent(code: str) -> str | None:
    return code.split(":")[1] if code.startswith("T:") else parent_of(code)


def _sector_parent(code: str) -> str | None:
    return code.split(":")[1] if code.startswith("S:") else None


@dataclass
class Published:
    """What callers without detail may see of a province's field year: per column, the hidden nodes of each
    tree (areas, teams, sectors)."""

    areas: dict[str, frozenset[str]]
    teams: dict[str, frozenset[str]]
    sectors: dict[str, frozenset[str]]


def published(year: FieldYear, today: date, threshold: int) -> Published:
    everything = _measures(year, today, lambda _: True)
    areas = set(official_areas(year.province)) | {n for v, _, _ in year.visits for n in _up(v)} | {
        n for v, *_ in year.referrals for n in _up(v)}
    area_nodes = {c for c in areas if len(c) <= 8}
    team_measures = _team_measures(year, lambda _: True)
    team_nodes = {c for c in area_nodes if len(c) <= 4} | set(team_measures["visits"])
    merged = {name: {**everything[name], **team_measures[name]} for name in VISIT_GROUP}
    hidden_areas, hidden_teams = linked(_values(merged, VISIT_GROUP, area_nodes),
                                         _values(merged, VISIT_GROUP, team_nodes), threshold)
    area_hidden = dict.fromkeys(VISIT_GROUP, frozenset(hidden_areas))
    team_hidden = dict.fromkeys(VISIT_GROUP, frozenset(hidden_teams))
    for group in REFERRAL_GROUPS:
        area_hidden[group[0]] = frozenset(protect(_values(everything, group, area_nodes), threshold))
    sectors = _sector_measures(year, today, lambda _: True)
    sector_hidden = {}
    for group in (*REFERRAL_GROUPS, ("households_helped",)):
        values = _values(sectors, group, {year.province, *(f"S:{year.province}:{s}" for s in _sectors(year))})
        sector_hidden[group[0]] = frozenset(protect(values, threshold, parent=_sector_parent))
    return Published(area_hidden, team_hidden, sector_hidden)


def linked(areas: dict[str, tuple[int, ...]], teams: dict[str, tuple[int, ...]], threshold: int,
            ) -> tuple[set[str], set[str]]:
    """The hidden nodes of the area tree, and of the teams table (its rows, and its totals: the province and
    districts, hidden where the area tree hides them). The teams' rows of a district are protected under the
    district as the area tree publishes it: where the district is shown, as children of a known total (the
    districts are the roots of that forest, never chosen as complements); where it is hidden, all of them, so
    that they add up to nothing an attacker did not have (a complement's room stays what the area tree gave it)."""
    hidden_areas = protect(areas, threshold)
    rows = {code: v for code, v in teams.items() if code.startswith("T:")}
    forest = {code: v for code, v in teams.items() if len(code) == 4 and code not in hidden_areas} | {
        code: v for code, v in rows.items() if _team_parent(code) not in hidden_areas}
    hidden_teams = protect(forest, threshold, parent=lambda code: _team_parent(code) if code.startswith("T:") else None)
    hidden_teams = {code for code in hidden_teams if code.startswith("T:")} | {
        code for code in rows if _team_parent(code) in hidden_areas}
    return hidden_areas, hidden_teams | {code for code in hidden_areas if len(code) <= 4}


def _team_measures(year: FieldYear, seen: Callable[[str], bool]) -> dict[str, dict[str, int]]:
    """Visits by (team, district) row, by district and by province (the nodes of the teams tree)."""
    visits = [v for v in year.visits if seen(v[0])]

    def nodes(key: str) -> list[str]:
        return [key, key.split(":")[1], year.province]

    counts = {"visits": _count(((_team_key(v[:4], t), None) for v, _, t in visits), nodes),
              "households_visited": _count(((_team_key(v[:4], t), h) for v, h, t in visits), nodes)}
    for team, district in year.teams:  # a team without visits is a row of zeros
        for name in counts:
            counts[name].setdefault(_team_key(district, team), 0)
    return counts


def _sectors(year: FieldYear) -> list[str]:
    found = {s for _, s, _, _ in year.referrals} | {s for _, _, s in year.helped}
    return [*SECTORS, *sorted(found - set(SECTORS))]


def _sector_measures(year: FieldYear, today: date, seen: Callable[[str], bool]) -> dict[str, dict[str, int]]:
    def nodes(village: str, sector: str) -> list[str]:
        return [f"S:{year.province}:{sector}", year.province]

    counts = _referral_counts((r for r in year.referrals if seen(r[0])), today, nodes)
    counts["households_helped"] = _count(((f"{v}|{s}", h) for v, h, s in year.helped if seen(v)),
                                         lambda key: nodes(*key.split("|")))
    return counts


def _cells(measures: Mapping[str, Mapping[str, int]], code: str, names: Collection[str]) -> dict[str, int]:
    return {name: measures[name].get(code, 0) for name in names}


async def field_work_by_area(session: AsyncSession, *, threshold: int, principal: Principal, area: str, depth: int,
                             fiscal_year: int) -> Table:
    """A row per area `depth` digits long inside `area` that the caller sees, and the total of what it sees."""
    year, today = await field_year(session, area[:2], fiscal_year), clock.today()
    names = [c.name for c in (*VISITS, *REFERRALS)]
    shown = _measures(year, today, principal.can_see)
    codes = set(official_areas(area)) | {n for v, _, _ in year.visits for n in _up(v)} | {
        n for v, *_ in year.referrals for n in _up(v)}
    rows = [{"_key": c} | area_names(c) | _cells(shown, c, names)
            for c in sorted(codes) if len(c) == depth and c.startswith(area) and visible(principal, c)]
    total = {"_key": area} | area_names(area) | _cells(shown, area, names)
    table = Table("field_work", FIELD_WORK_COLUMNS, rows, total, await as_of(session),
                  {"area": area, "level": level_name(depth), "fiscal_year": fiscal_year})
    if principal.has_scope(DETAIL):
        return table
    return disclose(table, principal, published(year, today, threshold).areas)


async def field_work_by_team(session: AsyncSession, *, threshold: int, principal: Principal, area: str,
                             fiscal_year: int) -> Table:
    """A row per (team, district) with visits in `area` or belonging to it, and the total of what it sees."""
    year = await field_year(session, area[:2], fiscal_year)
    shown = _team_measures(year, lambda v: principal.can_see(v) and v.startswith(area))
    rows = []
    for key in sorted(shown["visits"]):
        if not key.startswith("T:"):
            continue
        _, district, team = key.split(":")
        if district.startswith(area[:4]) and visible(principal, district):
            names = area_names(district)
            rows.append({"_key": key, "team_id": team or None, "district_code": district,
                         "district_name_th": names["area_name_th"], "district_name_en": names["area_name_en"],
                         **_cells(shown, key, VISIT_GROUP)})
    total_visits = _measures(year, clock.today(), lambda v: principal.can_see(v) and v.startswith(area))
    names = area_names(area)
    total = {"_key": area, "team_id": None, "district_code": area, "district_name_th": names["area_name_th"],
             "district_name_en": names["area_name_en"], **_cells(total_visits, area, VISIT_GROUP)}
    table = Table("field_work_teams", TEAM_COLUMNS, rows, total, await as_of(session),
                  {"area": area, "fiscal_year": fiscal_year})
    if principal.has_scope(DETAIL):
        return table
    hidden = published(year, clock.today(), threshold).teams
    return disclose(table, principal, hidden,
                    whole=lambda key: principal.can_see(key.split(":")[1] if key.startswith("T:") else key))


async def field_work_by_sector(session: AsyncSession, *, threshold: int, principal: Principal, area: str,
                               fiscal_year: int) -> Table:
    """A row per partner sector: referrals made in `area` and households helped there, and their total."""
    year, today = await field_year(session, area[:2], fiscal_year), clock.today()
    shown = _sector_measures(year, today, lambda v: principal.can_see(v) and v.startswith(area))
    names = [c.name for c in SECTOR_COLUMNS[1:]]
    rows = [{"_key": f"S:{year.province}:{s}", "partner_sector": s} | _cells(shown, f"S:{year.province}:{s}", names)
            for s in _sectors(year)]
    total = {"_key": year.province, "partner_sector": None} | _cells(shown, year.province, names)
    table = Table("field_work_sectors", SECTOR_COLUMNS, rows, total, await as_of(session),
                  {"area": area, "fiscal_year": fiscal_year})
    if principal.has_scope(DETAIL):
        return table
    hidden = published(year, today, threshold).sectors
    return disclose(table, principal, hidden, whole=lambda _: principal.can_see(year.province))
