"""The MPI sums per village (`mpi_village`, `mpi_village_indicator`), kept in the same transaction as every change
of a household's current assessment, and read back summed per sub-area for `GET /v1/mpi`.

Every path that makes an assessment current or stops one counting calls `change(session, added=…, removed=…)`:
the recording of one assessment (`assessments.service.record`) and the bulk import (`imports`, once per chunk).
The deltas are folded per village in Python and written by one upsert per table (`x = x + excluded.x`), in key
order, so that concurrent writers add up and cannot deadlock on each other's rows.

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

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import MpiVillage, MpiVillageIndicator
from services.assessment.mpi import Summary
from shared.auth import Principal
from shared.auth.principal import area_clause
from shared.db import adding_upsert

VILLAGE = MpiVillage.__table__  # type: ignore[attr-defined]
INDICATOR = MpiVillageIndicator.__table__  # type: ignore[attr-defined]
KEY = ("survey_year", "indicator_set", "village_code", "denominator")
SUMS = ("households", "persons", "poor_households", "poor_persons", "target_poor_households", "target_poor_persons",
        "censored_score")

Key = tuple[int, str, str, int]


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

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The changes as rows of `mpi_village` and `mpi_village_indicator`, in key order, none that is all 0."""
        return ([dict(zip(KEY, key, strict=True)) | dict(zip(SUMS, sums, strict=True))
                 for key, sums in sorted(self.villages.items()) if any(sums)],
                [dict(zip((*KEY, "indicator"), key, strict=True)) | {"households": h, "censored": c}
                 for key, (h, c) in sorted(self.indicators.items()) if h or c])


async def change(session: AsyncSession, *, added: Iterable[Any] = (), removed: Iterable[Any] = ()) -> None:
    """Apply to the village sums the assessments that now count (`added`) and those that no longer do."""
    deltas = Deltas()
    for assessment in removed:
        deltas.add(assessment, -1)
    for assessment in added:
        deltas.add(assessment, 1)
    village_rows, indicator_rows = deltas.rows()
    await _upsert(session, VILLAGE, village_rows, KEY, SUMS)
    await _upsert(session, INDICATOR, indicator_rows, (*KEY, "indicator"), ("households", "censored"))


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


async def area_sums(session: AsyncSession, *, survey_year: int, indicator_set: str, area: str, depth: int,
                    principal: Principal) -> AreaSums:
    """The sums of the villages under `area` in the caller's areas (any claim, province to village, is a prefix of
    the village code, so these are exactly the households the caller may see), per sub-area of `depth` digits."""
    found = []
    for table, columns, sums in ((VILLAGE, ("denominator",), SUMS),
                                 (INDICATOR, ("indicator", "denominator"), ("households", "censored"))):
        part = func.substr(table.c.village_code, 1, depth)
        keys = [part, *(table.c[c] for c in columns)]
        rows = await session.execute(
            select(*keys, *(func.sum(table.c[s]) for s in sums))
            .where(table.c.survey_year == survey_year, table.c.indicator_set == indicator_set,
                   # The range lets the primary key's index find the area (LIKE cannot under most collations).
                   table.c.village_code.between(area.ljust(8, "0"), area.ljust(8, "9")),
                   table.c.village_code.startswith(area, autoescape=True), area_clause(principal, table.c.village_code))
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
