"""The scoring of one household's answers against an indicator set (`sets.schemas.IndicatorSet`).

Pure functions, no database: the HTTP route, the CSV import and the tests all score through `score`.
Arithmetic is exact (`Fraction`), so a score of exactly 1/3 is poor under k = 1/3, never 0.3333 < 1/3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from services.assessment.sets.schemas import Indicator, IndicatorSet, MemberRule

Status = Literal["pass", "fail", "not_applicable"]
Severity = Literal["none", "vulnerable", "poor", "severe"]


@dataclass(frozen=True)
class Person:
    """What scoring needs to know of a member (from the registry's events)."""

    birth_date: date
    disability: bool


def age_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_months(birth: date, on: date) -> int:
    return (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)


def matches(rule: MemberRule, person: Person, on: date) -> bool:
    if person.birth_date > on:  # not yet born on the survey date
        return False
    years = age_years(person.birth_date, on)
    return ((rule.min_age is None or years >= rule.min_age)
            and (rule.max_age is None or years <= rule.max_age)
            and (rule.under_age_months is None or age_months(person.birth_date, on) < rule.under_age_months)
            and (rule.disability is None or person.disability == rule.disability))


def applies(indicator: Indicator, members: Sequence[Person], on: date) -> bool:
    rule = indicator.applies_to
    return rule is None or any(matches(rule.members, m, on) for m in members)


@dataclass(frozen=True)
class IndicatorResult:
    code: str
    dimension: str
    status: Status
    reason: str
    weight: Fraction  # 0 when not applicable

    @property
    def deprived(self) -> bool:
        return self.status == "fail"


@dataclass(frozen=True)
class Result:
    """A household's result: each indicator, deprived dimensions, score c and what follows from it."""

    indicators: list[IndicatorResult]
    deprived_dimensions: list[str]
    applicable_dimensions: list[str]
    score: Fraction
    poor: bool
    severity: Severity
    target_poor: bool
    member_count: int


class AnswerError(ValueError):
    """Answers that cannot be scored: (field, message) pairs, e.g. ("answers.preschool", "does not apply…")."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


def _number(value: Decimal) -> str:
    return f"{value.normalize():,f}" if value == value.to_integral_value() else f"{value:,f}"


def score(indicator_set: IndicatorSet, *, members: Sequence[Person], welfare_card: bool, surveyed_on: date,
          answers: Mapping[str, bool], measurements: Mapping[str, Decimal]) -> Result:
    """Score one household; raises AnswerError naming every field that is wrong."""
    errors: list[tuple[str, str]] = []
    errors += [(f"answers.{code}", f"unknown indicator in {indicator_set.id}")
               for code in answers if indicator_set.indicator(code) is None]
    by_measurement = indicator_set.measurements
    errors += [(f"measurements.{name}", f"{indicator_set.id} has no measurement {name!r}; it has "
                + (", ".join(sorted(by_measurement)) or "none"))
               for name in measurements if name not in by_measurement]
    errors += [(f"measurements.{name}", "must not be negative")
               for name, value in measurements.items() if name in by_measurement and value < 0]
    decided: dict[str, tuple[bool, str]] = {}
    for indicator in indicator_set.indicators:
        answer = answers.get(indicator.code)
        measured = indicator.measurement
        figure = measurements.get(measured.name) if measured is not None else None
        if not applies(indicator, members, surveyed_on):
            assert indicator.applies_to is not None
            why = f"does not apply: no {indicator.applies_to.members.describe()} on {surveyed_on.isoformat()}"
            if answer is not None:
                errors.append((f"answers.{indicator.code}", why))
            if figure is not None and measured is not None:
                errors.append((f"measurements.{measured.name}", why))
            continue
        if measured is not None and figure is not None and figure >= 0:
            meets = figure >= measured.at_least
            relation = "≥" if meets else "<"
            reason = (f"{measured.name} {_number(figure)} {relation} {_number(measured.at_least)} "
                      f"{measured.unit}").rstrip()
            if answer is not None and answer != meets:
                errors.append((f"answers.{indicator.code}", f"answered {'meets' if answer else 'fails'} but "
                               f"{reason}"))
            decided[indicator.code] = (meets, reason)
        elif answer is not None:
            decided[indicator.code] = (answer, "answered meets" if answer else "answered fails")
        elif figure is None:
            needs = f" or measurement {measured.name}" if measured is not None else ""
            errors.append((f"answers.{indicator.code}", f"required: an answer (true = meets, false = fails){needs}"))
    if errors:
        raise AnswerError(errors)

    decided_per_dimension: dict[str, int] = {}
    for indicator in indicator_set.indicators:
        if indicator.code in decided:
            decided_per_dimension[indicator.dimension] = decided_per_dimension.get(indicator.dimension, 0) + 1
    applicable_dimensions = [d.code for d in indicator_set.dimensions if d.code in decided_per_dimension]
    weights = {d: Fraction(1, len(applicable_dimensions) * n) for d, n in decided_per_dimension.items()}
    results = []
    deprived: set[str] = set()
    c = Fraction(0)
    for indicator in indicator_set.indicators:
        if indicator.code not in decided:
            assert indicator.applies_to is not None
            results.append(IndicatorResult(
                indicator.code, indicator.dimension, "not_applicable",
                f"no {indicator.applies_to.members.describe()} on {surveyed_on.isoformat()}", Fraction(0)))
            continue
        meets, reason = decided[indicator.code]
        weight = weights[indicator.dimension]
        if not meets:
            c += weight
            deprived.add(indicator.dimension)
        results.append(IndicatorResult(indicator.code, indicator.dimension, "pass" if meets else "fail", reason,
                                       weight))
    deprived_dimensions = [d for d in applicable_dimensions if d in deprived]
    poor = c >= indicator_set.k
    severity: Severity = ("severe" if c >= indicator_set.severe else "poor" if poor
                          else "vulnerable" if c >= indicator_set.vulnerable else "none")
    target_poor = bool(deprived_dimensions) and (welfare_card or not indicator_set.target_poor_requires_welfare_card)
    return Result(results, deprived_dimensions, applicable_dimensions, c, poor, severity, target_poor, len(members))
