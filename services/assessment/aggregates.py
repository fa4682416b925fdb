"""The MPI sums per village (`mpi_village`, `mpi_village_indicator`) and per sub-district (`mpi_subdistrict`,
`mpi_subdistrict_indicator`: the same sums added up), kept in the same transaction as every change of a
household's current assessment, and read back summed per sub-area for `GET /v1/mpi`: a province or a district
from the sub-districts' rows (a twelfth of the villages'), for a caller who sees whole sub-districts.

Every path that makes an assessment current or stops one counting calls `change(session, added=…, removed=…)`:
the recording of one assessment (`assessments.service.record`), and the bulk import (`imports`, once per chunk, as
its two halves: `deltas` in the thread that scores the chunk, `write` on the event loop).
The deltas are folded per village (and per sub-district) in Python and written by one upsert per table
(`x = x + excluded.x`), in key order, villages first, so that concurrent writers add up and cannot deadlock on
each other's rows.

Exactness: a household's score and weights are fractions whose denominators divide the set version's
`denominator(…)` (weights are 1 / (applicable dimensions × decided indicators of the dimension)), so
persons × c × denominator is an integer, and so are the sums. The report turns them back into the same
`Fraction`s that adding the households one by one gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import lcm
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import MpiSubdistrict, MpiSubdistrictIndicator, MpiVillage, MpiVillageIndicator
from services.assessment.mpi import Summary
from shared.auth import Principal
from shared.auth.principal import area_clause
from shared.db import adding_upsert

KEY = ("survey_year", "indicator_set", "village_code", "denominator")
SUMS = ("households", "persons", "poor_households", "poor_persons", "target_poor_households", "target_poor_persons",
        "censored_score")

Key = tuple[int, str, str, int]


@dataclass(frozen=True)
class Level:
    """Where the sums of one level of area are kept: its two tables, the column of its area codes, their digits."""

    sums: Table
    indicators: Table
    column: str
    digits: int

    @property
    def key(self) -> tuple[str, ...]:
        return ("survey_year", "indicator_set", self.column, "denominator")


VILLAGES = Level(MpiVillage.__table__, MpiVillageIndicator.__table__,  # type: ignore[attr-defined]
                 "village_code", 8)
SUBDISTRICTS = Level(MpiSubdistrict.__table__, MpiSubdistrictIndicator.__table__,  # type: ignore[attr-defined]
                     "subdistrict_code", 6)
LEVELS = (VILLAGES, SUBDISTRICTS)


@lru_cache(maxsize=256)
def _nested(dimensions: int, most_indicators: int) -> int:
    """The least common multiple of every nested weight's denominator a × n (a dimensions, n indicators)."""
    return lcm(*(a * n for a in range(1, dimensions + 1) for n in range(1, most_indicators + 1)), 1)


def denominator(assessment: Any) -> int:
    """A denominator for the stored assessment's score and weights: the same for every household assessed on one
    version of a set (from its dimensions and indicators), widened only if a fraction does not divide it."""
    per_dimension: dict[str, int] = {}
    for indicator in assessment.indicators:
        per_dimension[indicator["dimension"]] = per_dimension.get(indicator["dimension"], 0) + 1
    found = _nested(len(assessment.dimensions), max(per_dimension.values(), default=1))
    return lcm(found, assessment.score_den,
               *(Fraction(i["weight"]).denominator for i in assessment.indicators if i["status"] == "fail"))


class Deltas:
    """Changes to the village sums, folded per key before they are written."""

    def __init__(self) -> None:
        self.villages: dict[Key, list[int]] = {}
        self.indicators: dict[tuple[int, str, str, int, str], list[int]] = {}

    def add(self, assessment: Any, sign: int) -> None:
        """Count (sign 1) or stop counting (sign -1) one stored assessment (ORM row or its column values)."""
        d = denominator(assessment)
        key = (assessment.survey_year, assessment.indicator_set_id, assessment.village_code, d)
        persons, poor, target = assessment.member_count, assessment.poor, assessment.target_poor
        censored = persons * assessment.score_num * (d // assessment.score_den) if poor else 0
        change = (1, persons, int(poor), persons * poor, int(target), persons * target, censored)
        sums = self.villages.setdefault(key, [0] * len(SUMS))
        for n, value in enumerate(change):
            sums[n] += sign * value
        if not poor:
            return
        for indicator in assessment.indicators:
            if indicator["status"] == "fail":
                weight = Fraction(indicator["weight"])
                pair = self.indicators.setdefault((*key, indicator["code"]), [0, 0])
                pair[0] += sign
                pair[1] += sign * persons * weight.numerator * (d // weight.denominator)

    def rows(self, level: Level = VILLAGES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The changes as rows of the level's two tables (`mpi_village` and `mpi_village_indicator` unless said),
        added up per area of the level, in key order, none that is all 0."""
        areas: dict[Key, list[int]] = {}
        for (year, indicator_set, village, d), sums in self.villages.items():
            into = areas.setdefault((year, indicator_set, village[:level.digits], d), [0] * len(SUMS))
            for n, value in enumerate(sums):
                into[n] += value
        indicators: dict[tuple[int, str, str, int, str], list[int]] = {}
        for (year, indicator_set, village, d, code), (h, c) in self.indicators.items():
            pair = indicators.setdefault((year, indicator_set, village[:level.digits], d, code), [0, 0])
            pair[0] += h
            pair[1] += c
        return ([dict(zip(level.key, key, strict=True)) | dict(zip(SUMS, sums, strict=True))
                 for key, sums in sorted(areas.items()) if any(sums)],
                [dict(zip((*level.key, "indicator"), key, strict=True)) | {"households": h, "censored": c}
                 for key, (h, c) in sorted(indicators.items()) if h or c])


def deltas(*, added: Iterable[Any] = (), removed: Iterable[Any] = ()) -> Deltas:
    """The changes to the sums of the assessments that now count (`added`) and those that no longer do: pure CPU,
    which a bulk import folds in a thread."""
    folded = Deltas()
    for assessment in removed:
        folded.add(assessment, -1)
    for assessment in added:
        folded.add(assessment, 1)
    return folded


async def write(session: AsyncSession, changes: Deltas) -> None:
    """Apply folded changes to the village and sub-district sums: one upsert per table."""
    for level in LEVELS:
        area_rows, indicator_rows = changes.rows(level)
        await _upsert(session, level.sums, area_rows, level.key, SUMS)
        await _upsert(session, level.indicators, indicator_rows, (*level.key, "indicator"), ("households", "censored"))


async def change(session: AsyncSession, *, added: Iterable[Any] = (), removed: Iterable[Any] = ()) -> None:
    """Apply to the village and sub-district sums the assessments that now count (`added`) and those that no
    longer do."""
    await write(session, deltas(added=added, removed=removed))


async def _upsert(session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], key: Sequence[str],
                  sums: Sequence[str]) -> None:
    if not rows:
        return
    stmt = adding_upsert(session, table, key, sums)
    for start in range(0, len(rows), 1000):
        await session.execute(stmt, rows[start:start + 1000])


@dataclass(frozen=True)
class AreaSums:
    """The village sums under an area, added up per sub-area in SQL: rows of (sub-area, denominator, *SUMS) and
    of (sub-area, indicator, denominator, households, censored)."""

    villages: list[tuple[Any, ...]]
    indicators: list[tuple[Any, ...]]


def _level(principal: Principal, area: str, depth: int) -> Level:
    """The sub-districts' sums when the sub-areas asked for are sub-districts or larger and the caller's areas are
    whole sub-districts (or larger): then they hold exactly the caller's households; else the villages'."""
    prefixes = principal.area_prefixes()
    whole = prefixes is None or all(len(prefix) <= SUBDISTRICTS.digits for prefix in prefixes)
    return SUBDISTRICTS if whole and depth <= SUBDISTRICTS.digits and len(area) <= SUBDISTRICTS.digits else VILLAGES


async def area_sums(session: AsyncSession, *, survey_year: int, indicator_set: str, area: str, depth: int,
                    principal: Principal) -> AreaSums:
    """The sums of the areas under `area` in the caller's areas (any claim, province to village, is a prefix of
    the area code, so these are exactly the households the caller may see), per sub-area of `depth` digits."""
    level = _level(principal, area, depth)
    found = []
    for table, columns, sums in ((level.sums, ("denominator",), SUMS),
                                 (level.indicators, ("indicator", "denominator"), ("households", "censored"))):
        code = table.c[level.column]
        part = func.substr(code, 1, depth)
        keys = [part, *(table.c[c] for c in columns)]
        rows = await session.execute(
            select(*keys, *(func.sum(table.c[s]) for s in sums))
            .where(table.c.survey_year == survey_year, table.c.indicator_set == indicator_set,
                   # The range lets the primary key's index find the area (LIKE cannot under most collations).
                   code.between(area.ljust(level.digits, "0"), area.ljust(level.digits, "9")),
                   code.startswith(area, autoescape=True), area_clause(principal, code))
            .group_by(*keys))
        found.append([tuple(r) for r in rows])
    return AreaSums(*found)


def by_area(sums: AreaSums) -> tuple[dict[str, Summary], dict[str, tuple[int, int]]]:
    """Each sub-area's Summary and target poor (households, persons), the same as adding its households one by one;
    a sub-area without a counting household is left out. CPU work in the number of sub-areas × indicators."""
    parts: dict[str, Summary] = {}
    targets: dict[str, tuple[int, int]] = {}
    for code, d, households, persons, poor_h, poor_p, target_h, target_p, censored in sums.villages:
        summary = parts.setdefault(code, Summary())
        summary.households += int(households)
        summary.persons += int(persons)
        summary.poor_households += int(poor_h)
        summary.poor_persons += int(poor_p)
        summary.censored_score += Fraction(int(censored), int(d))
        h, p = targets.get(code, (0, 0))
        targets[code] = (h + int(target_h), p + int(target_p))
    counted: dict[tuple[str, str], int] = {}
    for code, indicator, d, households, censored in sums.indicators:
        counted[code, indicator] = counted.get((code, indicator), 0) + int(households)
        if code in parts:
            values = parts[code].censored_by_indicator
            values[indicator] = values.get(indicator, Fraction(0)) + Fraction(int(censored), int(d))
    for (code, indicator), households in counted.items():  # as adding households one by one: none, no entry
        if households == 0 and code in parts:
            parts[code].censored_by_indicator.pop(indicator, None)
    empty = [code for code, summary in parts.items() if summary.households == 0]
    for code in empty:
        del parts[code], targets[code]
    return parts, targets
