"""Request and response models of the assessment routes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicator_set: str = Field(max_length=64, examples=["tpmap-2560"])
    indicator_set_version: int | None = Field(None, ge=1, le=2**31 - 1, description="default: the latest")
    survey_year: int = Field(ge=2500, le=2700, description="Buddhist Era year of the survey round", examples=[2565])
    surveyed_on: date
    answers: dict[Annotated[str, Field(pattern=CODE_PATTERN)], bool] = Field(
        default_factory=dict, description="indicator code → true (meets) / false (fails)",
        examples=[{"safe_food": True, "housing": False}])
    measurements: dict[Annotated[str, Field(pattern=CODE_PATTERN)],
                       Annotated[Decimal, Field(max_digits=14, decimal_places=3, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="figures that decide threshold indicators",
        examples=[{"income_per_person_year": "36500", "drinking_water_lpd": "6"}])


class IndicatorOut(BaseModel):
    code: str
    dimension: str
    label_th: str
    label_en: str
    status: str = Field(description="pass, fail or not_applicable")
    reason: str
    weight: str = Field(description="exact fraction; 0 when not applicable")


class AreaCodes(BaseModel):
    province_code: str
    district_code: str
    subdistrict_code: str
    village_code: str


class AssessmentOut(BaseModel):
    id: str
    household_id: str
    survey_year: int
    revision: int
    current: bool
    indicator_set: str
    indicator_set_version: int
    surveyed_on: date
    answers: dict[str, bool]
    measurements: dict[str, str]
    indicators: list[IndicatorOut]
    dimensions: dict[str, bool | None] = Field(description="dimension → deprived; null when none of it applies")
    deprived_dimensions: list[str]
    score: str = Field(description="deprivation score c, an exact fraction", examples=["5/12"])
    score_value: float
    poverty_cutoff: str
    poor: bool
    severity: str = Field(description="none (c < 1/5), vulnerable, poor (c ≥ k), severe (c ≥ 1/2)")
    target_poor: bool
    welfare_card: bool
    member_count: int
    area: AreaCodes
    recorded_at: datetime
    recorded_by: str
