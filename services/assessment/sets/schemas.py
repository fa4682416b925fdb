"""An indicator set as its data file states it (dimensions, indicators, applicability, thresholds, cutoffs), and
the answers of the indicator-set routes.

The set file format is a response model too: `GET /v1/indicator-sets/{id}` serves a set as its file defines it.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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


class SetSummary(BaseModel):
    id: str
    version: int
    latest: bool
    name_th: str
    name_en: str
    dimensions: int
    indicators: int


class SetDetail(IndicatorSet):
    latest: bool
