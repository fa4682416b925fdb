"""Indicator sets (data files, versioned) and the scoring of one household's answers against a set.

Pure functions, no database: the HTTP route, the CSV import and the tests all score through `score`.
Arithmetic is exact (`Fraction`), so a score of exactly 1/3 is poor under k = 1/3, never 0.3333 < 1/3.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SETS_DIR = Path(__file__).parent / "indicator_sets"
Status = Literal["pass", "fail", "not_applicable"]
Severity = Literal["none", "vulnerable", "poor", "severe"]


class MemberRule(BaseModel):
    """Households with at least one member matching every given condition (ages in whole years, inclusive)."""

    model_config = ConfigDict(extra="forbid")
    min_age: int | None = Field(None, ge=0)
    max_age: int | None = Field(None, ge=0)
    under_age_months: int | None = Field(None, ge=1)
    disability: bool | None = None

    def describe(self) -> str:
        parts = []
        if self.under_age_months is not None:
            parts.append(f"younger than {self.under_age_months} months")
        if self.min_age is not None and self.max_age is not None:
            parts.append(f"aged {self.min_age}–{self.max_age}")
        elif self.min_age is not None:
            parts.append(f"aged {self.min_age} or over")
        elif self.max_age is not None:
            parts.append(f"aged {self.max_age} or under")
        if self.disability:
            parts.append("with a disability")
        return "member " + " and ".join(parts) if parts else "member"


class Applicability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: MemberRule


class Measurement(BaseModel):
    """A figure recorded by the surveyor that decides the indicator: it passes when figure >= at_least."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    at_least: Decimal
    unit: str = ""


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    bmn_no: int | None = Field(None, description="number of the indicator in the Basic Minimum Needs (จปฐ.) set")
    dimension: str
    label_th: str
    label_en: str
    applies_to: Applicability | None = Field(None, description="absent: every household")
    measurement: Measurement | None = None


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_th: str
    name_en: str


def _fraction(value: str) -> Fraction:
    try:
        fraction = Fraction(value)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{value!r} is not a number or fraction such as 1/3") from exc
    if not 0 < fraction <= 1:
        raise ValueError(f"{value} is not in (0, 1]")
    return fraction


class IndicatorSet(BaseModel):
    """One version of an indicator set, as its data file states it."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    version: int = Field(ge=1)
    name_th: str
    name_en: str
    weights: Literal["nested_equal"] = "nested_equal"
    poverty_cutoff: str = Field("1/3", description="k: poor when the deprivation score c >= k")
    vulnerable_cutoff: str = "1/5"
    severe_cutoff: str = "1/2"
    target_poor_requires_welfare_card: bool = True
    dimensions: list[Dimension] = Field(min_length=1)
    indicators: list[Indicator] = Field(min_length=1)

    @field_validator("poverty_cutoff", "vulnerable_cutoff", "severe_cutoff")
    @classmethod
    def _cutoff(cls, value: str) -> str:
        _fraction(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IndicatorSet:
        dimensions = [d.code for d in self.dimensions]
        codes = [i.code for i in self.indicators]
        for name, values in (("dimension", dimensions), ("indicator", codes)):
            if len(set(values)) != len(values):
                raise ValueError(f"a {name} code appears twice")
        for indicator in self.indicators:
            if indicator.dimension not in dimensions:
                raise ValueError(f"indicator {indicator.code}: unknown dimension {indicator.dimension}")
        names = [i.measurement.name for i in self.indicators if i.measurement]
        if len(set(names)) != len(names):
            raise ValueError("two indicators are decided by the same measurement")
        if not self.vulnerable <= self.k <= self.severe:
            raise ValueError("cutoffs must satisfy vulnerable <= poverty <= severe")
        return self

    @property
    def k(self) -> Fraction:
        return _fraction(self.poverty_cutoff)

    @property
    def vulnerable(self) -> Fraction:
        return _fraction(self.vulnerable_cutoff)

    @property
    def severe(self) -> Fraction:
        return _fraction(self.severe_cutoff)

    @cached_property
    def measurements(self) -> dict[str, Indicator]:
        """Measurement name → the indicator it decides."""
        return {i.measurement.name: i for i in self.indicators if i.measurement is not None}

    @cached_property
    def by_code(self) -> dict[str, Indicator]:
        return {i.code: i for i in self.indicators}

    def indicator(self, code: str) -> Indicator | None:
        return self.by_code.get(code)


@dataclass(frozen=True)
class SetFile:
    definition: IndicatorSet
    sha256: str


def load_files(directory: Path = SETS_DIR) -> list[SetFile]:
    """Every indicator set file in the folder (`*.toml`), validated."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        raw = path.read_bytes()
        try:
            definition = IndicatorSet.model_validate(tomllib.loads(raw.decode("utf-8")))
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"indicator set file {path.name}: {exc}") from exc
        found.append(SetFile(definition, hashlib.sha256(definition.model_dump_json().encode()).hexdigest()))
    return found


# -- scoring ---------------------------------------------------------------------------------------------


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
