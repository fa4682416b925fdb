"""Events the assessment service publishes (topic `assessment.household`, key = household id).

Scores are exact fractions written as text ("5/12"), with a rounded number beside them for display; each
indicator's status and weight are included so a consumer can decompose the MPI without the set's rules.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.events.catalogue import Catalogue

TOPIC = "assessment.household"


class IndicatorOutcome(BaseModel):
    status: str = Field(description="pass, fail or not_applicable")
    weight: str = Field(description="the indicator's weight for this household, an exact fraction ('1/12')")


class AssessmentRecorded(BaseModel):
    """A household's assessment for a survey year was recorded (revision 1) or corrected (revision > 1)."""

    assessment_id: str
    household_id: str
    survey_year: int = Field(description="Buddhist Era year of the survey round, e.g. 2565")
    revision: int
    surveyed_on: date
    indicator_set: str
    indicator_set_version: int
    province_code: str
    district_code: str
    subdistrict_code: str
    village_code: str
    dimensions: dict[str, bool | None] = Field(
        description="dimension → deprived (true/false), null when none of its indicators applies")
    indicators: dict[str, IndicatorOutcome]
    score: str = Field(description="deprivation score c, an exact fraction")
    score_value: float
    poor: bool = Field(description="c ≥ k of the indicator set")
    severity: str = Field(description="none, vulnerable, poor or severe")
    target_poor: bool = Field(description="TPMAP: deprived in a dimension (and holds a welfare card, if the set says)")
    welfare_card: bool
    member_count: int


class PovertyChange(StrEnum):
    entered = "entered"
    exited = "exited"
    unchanged = "unchanged"
    first_assessment = "first_assessment"


class PovertyStatusChanged(BaseModel):
    """Target-poor status now against the latest result of the previous survey year the household has."""

    household_id: str
    assessment_id: str
    survey_year: int
    revision: int
    previous_assessment_id: str | None
    previous_survey_year: int | None
    change: PovertyChange = Field(description="of target_poor: entered, exited, unchanged, or first_assessment")
    target_poor_before: bool | None
    target_poor_now: bool
    poor_before: bool | None
    poor_now: bool
    dimensions_entered: list[str] = Field(description="deprived now, not before")
    dimensions_exited: list[str] = Field(description="deprived before, not now")
    village_code: str


ASSESSMENT_EVENTS = Catalogue()

ASSESSMENT_RECORDED = ASSESSMENT_EVENTS.define(
    "assessment.recorded", topic=TOPIC, producer="assessment", aggregate="household", payload=AssessmentRecorded)
POVERTY_STATUS_CHANGED = ASSESSMENT_EVENTS.define(
    "household.poverty_status_changed", topic=TOPIC, producer="assessment", aggregate="household",
    payload=PovertyStatusChanged)
