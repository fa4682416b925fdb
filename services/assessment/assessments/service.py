"""The rules of an assessment: check and score it, store it (or a new revision), its events, read it back.

A household has one counting assessment per survey year; a correction is a new revision (the old one is
kept, no longer current). Every recorded revision publishes `assessment.recorded` and
`household.poverty_status_changed` (against the latest result of the previous survey year). The bulk import
(`services.assessment.imports`) applies the same rules row by row: `check`, `is_repeat`, `new_revision`, `events`.
Both keep the MPI's village sums (`services.assessment.aggregates`) in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assessment import aggregates
from services.assessment.assessments.schemas import AreaCodes, AssessmentIn, AssessmentOut, IndicatorOut
from services.assessment.models import Assessment, KnownHousehold, outbox
from services.assessment.projection import Known, persons
from services.assessment.scoring import AnswerError, Result, score
from services.assessment.sets.schemas import IndicatorSet
from services.assessment.sets.service import Sets
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.assessment import (
    ASSESSMENT_RECORDED,
    POVERTY_STATUS_CHANGED,
    AssessmentRecorded,
    PovertyChange,
    PovertyStatusChanged,
)
from shared.ids import new_id
from shared.pagination import PageRequest, fetch_page

# An assessment as stored: the ORM row, or (in a bulk import) its column values as attributes.
Stored = Assessment | SimpleNamespace


@dataclass(frozen=True)
class Recorded:
    assessment: Assessment
    created: bool


def _field_errors(exc: AnswerError) -> Unprocessable:
    errors = [{"field": f"body.{field}", "message": message, "code": "assessment"} for field, message in exc.errors]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return Unprocessable(detail, errors=errors)


def _dimensions(indicator_set: IndicatorSet, result: Result) -> dict[str, bool | None]:
    return {d.code: (d.code in result.deprived_dimensions) if d.code in result.applicable_dimensions else None
            for d in indicator_set.dimensions}


async def known_household(session: AsyncSession, *, principal: Principal, household_id: str,
                          retry_after_s: int) -> KnownHousehold:
    """The household as the registry announced it; 409 + Retry-After if not yet, 404 outside the caller's areas."""
    household = await session.get(KnownHousehold, household_id)
    if household is None:
        raise Conflict(f"Household {household_id} has not reached the assessment service from the registry yet; "
                       "if it was just registered, retry shortly.", type_slug="household-not-yet-known",
                       headers={"Retry-After": str(retry_after_s)})
    if not principal.can_see(household.village_code):
        raise NotFound(f"There is no household {household_id} in your areas.")
    return household


def check(sets: Sets, household: Known, body: AssessmentIn) -> tuple[IndicatorSet, Result]:
    """Every rule an assessment must meet before it is stored, and its score; raises the Problem if not."""
    if household.status != "open":
        raise Conflict(f"Household {household.id} is closed; it cannot be assessed.", type_slug="household-closed")
    indicator_set = sets.get(body.indicator_set, body.indicator_set_version)
    if indicator_set is None:
        raise Unprocessable(f"There is no indicator set {body.indicator_set}"
                            + (f" version {body.indicator_set_version}" if body.indicator_set_version else ""),
                            errors=[{"field": "body.indicator_set", "message": "unknown indicator set",
                                     "code": "assessment"}])
    be_year = body.surveyed_on.year + 543
    if abs(be_year - body.survey_year) > 1:
        raise Unprocessable("surveyed_on is not near the survey year", errors=[{
            "field": "body.surveyed_on", "code": "assessment",
            "message": f"{body.surveyed_on.isoformat()} is B.E. {be_year}, not near survey year {body.survey_year}"}])
    if body.surveyed_on > utcnow().date():
        raise Unprocessable("surveyed_on is in the future", errors=[{
            "field": "body.surveyed_on", "code": "assessment", "message": "must not be in the future"}])
    try:
        return indicator_set, score(indicator_set, members=persons(household), welfare_card=household.welfare_card,
                                    surveyed_on=body.surveyed_on, answers=body.answers,
                                    measurements=body.measurements)
    except AnswerError as exc:
        raise _field_errors(exc) from None


def is_repeat(current: Stored | None, household: Known, indicator_set: IndicatorSet,
              body: AssessmentIn) -> bool:
    """True if `current` is this very assessment again (e.g. a retried request, a file imported twice)."""
    return current is not None and (
        current.indicator_set_id, current.indicator_set_version, current.surveyed_on, current.answers,
        current.measurements, current.household_version,
    ) == (indicator_set.id, indicator_set.version, body.surveyed_on, body.answers, _measurements(body),
          household.version)


def _measurements(body: AssessmentIn) -> dict[str, str]:
    return {name: str(value) for name, value in body.measurements.items()}


def new_revision(household: Known, body: AssessmentIn, indicator_set: IndicatorSet, result: Result,
                 current: Stored | None, recorded_by: str) -> dict[str, Any]:
    """The row of the assessment to store: revision 1, or the one after `current` (which the caller stops
    counting). A plain row, so that a bulk import can insert thousands at once."""
    return dict(
        id=new_id(), household_id=household.id, survey_year=body.survey_year,
        revision=current.revision + 1 if current is not None else 1, current=True,
        indicator_set_id=indicator_set.id, indicator_set_version=indicator_set.version,
        surveyed_on=body.surveyed_on, answers=dict(body.answers), measurements=_measurements(body),
        indicators=[{"code": r.code, "dimension": r.dimension, "status": r.status, "reason": r.reason,
                     "weight": str(r.weight)} for r in result.indicators],
        dimensions=_dimensions(indicator_set, result), score_num=result.score.numerator,
        score_den=result.score.denominator, poor=result.poor, severity=result.severity,
        target_poor=result.target_poor, welfare_card=household.welfare_card, member_count=result.member_count,
        province_code=household.province_code, district_code=household.district_code,
        subdistrict_code=household.subdistrict_code, village_code=household.village_code,
        household_version=household.version, recorded_at=utcnow(), recorded_by=recorded_by,
    )


async def record(session: AsyncSession, *, sets: Sets, principal: Principal, household_id: str,
                 body: AssessmentIn, retry_after_s: int) -> Recorded:
    """Score and store an assessment (or a new revision); publish its events. Idempotent for a repeat."""
    household = await known_household(session, principal=principal, household_id=household_id,
                                      retry_after_s=retry_after_s)
    indicator_set, result = check(sets, household, body)
    current = (await session.execute(select(Assessment).where(
        col(Assessment.household_id) == household_id, col(Assessment.survey_year) == body.survey_year,
        col(Assessment.current).is_(True)))).scalar_one_or_none()
    if current is not None and is_repeat(current, household, indicator_set, body):
        return Recorded(current, created=False)
    previous = (await session.execute(select(Assessment).where(
        col(Assessment.household_id) == household_id, col(Assessment.survey_year) < body.survey_year,
        col(Assessment.current).is_(True)).order_by(col(Assessment.survey_year).desc()).limit(1)
    )).scalar_one_or_none()

    if current is not None:
        # Free the "current" slot first: the partial unique index allows one current row per household-year.
        await session.execute(update(Assessment).where(col(Assessment.id) == current.id).values(current=False))
    assessment = Assessment(**new_revision(household, body, indicator_set, result, current, principal.client_id))
    session.add(assessment)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"Another assessment of household {household_id} for {body.survey_year} was recorded at "
                       "the same moment; read it and send yours again if it still applies.",
                       type_slug="concurrent-revision") from None
    await aggregates.change(session, added=[assessment], removed=[current] if current is not None else [])
    await outbox.add_many(session, events(assessment, previous))
    return Recorded(assessment, created=True)


def events(assessment: Stored, previous: Stored | None, *, validated: bool = True) -> list[PendingEvent]:
    """`assessment.recorded` and `household.poverty_status_changed` for a newly stored revision.

    Their payloads are built as the JSON data their models dump to, then validated into the models; a bulk import
    (`validated=False`) hands that data to the outbox as it is, which writes it as given (validating and dumping
    the models cost more than the rest of an imported row's events; a test checks that an imported row publishes,
    byte for byte but its ids, what the same request publishes through the models)."""
    c = _score(assessment)
    recorded = {
        "assessment_id": assessment.id, "household_id": assessment.household_id,
        "survey_year": assessment.survey_year, "revision": assessment.revision,
        "surveyed_on": assessment.surveyed_on.isoformat(), "indicator_set": assessment.indicator_set_id,
        "indicator_set_version": assessment.indicator_set_version, "province_code": assessment.province_code,
        "district_code": assessment.district_code, "subdistrict_code": assessment.subdistrict_code,
        "village_code": assessment.village_code, "dimensions": assessment.dimensions,
        "indicators": {i["code"]: {"status": i["status"], "weight": i["weight"]} for i in assessment.indicators},
        "score": str(c), "score_value": round(float(c), 6), "poor": assessment.poor,
        "severity": assessment.severity, "target_poor": assessment.target_poor,
        "welfare_card": assessment.welfare_card, "member_count": assessment.member_count,
    }
    now_deprived = {d for d, deprived in assessment.dimensions.items() if deprived}
    before_deprived = {d for d, deprived in previous.dimensions.items() if deprived} if previous else set()
    if previous is None:
        change = PovertyChange.first_assessment
    elif previous.target_poor == assessment.target_poor:
        change = PovertyChange.unchanged
    else:
        change = PovertyChange.entered if assessment.target_poor else PovertyChange.exited
    status = {
        "household_id": assessment.household_id, "assessment_id": assessment.id,
        "survey_year": assessment.survey_year, "revision": assessment.revision,
        "previous_assessment_id": previous.id if previous else None,
        "previous_survey_year": previous.survey_year if previous else None, "change": change.value,
        "target_poor_before": previous.target_poor if previous else None,
        "target_poor_now": assessment.target_poor, "poor_before": previous.poor if previous else None,
        "poor_now": assessment.poor, "dimensions_entered": sorted(now_deprived - before_deprived),
        "dimensions_exited": sorted(before_deprived - now_deprived) if previous else [],
        "village_code": assessment.village_code,
    }
    if validated:
        return [PendingEvent(ASSESSMENT_RECORDED, AssessmentRecorded.model_validate(recorded), assessment.household_id),
                PendingEvent(POVERTY_STATUS_CHANGED, PovertyStatusChanged.model_validate(status),
                             assessment.household_id)]
    return [PendingEvent(ASSESSMENT_RECORDED, recorded, assessment.household_id),
            PendingEvent(POVERTY_STATUS_CHANGED, status, assessment.household_id)]


def _score(assessment: Stored) -> Fraction:
    return Fraction(assessment.score_num, assessment.score_den)


def present(assessment: Assessment, indicator_set: IndicatorSet | None) -> AssessmentOut:
    labels = {i.code: i for i in indicator_set.indicators} if indicator_set else {}
    c = _score(assessment)
    return AssessmentOut(
        id=assessment.id, household_id=assessment.household_id, survey_year=assessment.survey_year,
        revision=assessment.revision, current=assessment.current, indicator_set=assessment.indicator_set_id,
        indicator_set_version=assessment.indicator_set_version, surveyed_on=assessment.surveyed_on,
        answers=assessment.answers, measurements=assessment.measurements,
        indicators=[IndicatorOut(
            code=i["code"], dimension=i["dimension"], status=i["status"], reason=i["reason"], weight=i["weight"],
            label_th=labels[i["code"]].label_th if i["code"] in labels else "",
            label_en=labels[i["code"]].label_en if i["code"] in labels else "",
        ) for i in assessment.indicators],
        dimensions=assessment.dimensions,
        deprived_dimensions=[d for d, deprived in assessment.dimensions.items() if deprived],
        score=str(c), score_value=round(float(c), 6),
        poverty_cutoff=indicator_set.poverty_cutoff if indicator_set else "",
        poor=assessment.poor, severity=assessment.severity, target_poor=assessment.target_poor,
        welfare_card=assessment.welfare_card, member_count=assessment.member_count,
        area=AreaCodes(province_code=assessment.province_code, district_code=assessment.district_code,
                       subdistrict_code=assessment.subdistrict_code, village_code=assessment.village_code),
        recorded_at=as_utc(assessment.recorded_at), recorded_by=assessment.recorded_by,
    )


async def history(session: AsyncSession, *, principal: Principal, household_id: str, retry_after_s: int,
                  page: PageRequest) -> tuple[list[Assessment], str | None]:
    """A page of a household's assessments, newest survey year and revision first, and the next cursor (409 or 404
    as `known_household`)."""
    await known_household(session, principal=principal, household_id=household_id, retry_after_s=retry_after_s)
    return await fetch_page(session, select(Assessment).where(col(Assessment.household_id) == household_id),
                            order=[col(Assessment.survey_year), col(Assessment.revision)],
                            id_column=col(Assessment.id), page=page, descending=True)


async def find(session: AsyncSession, *, principal: Principal, household_id: str, assessment_id: str) -> Assessment:
    """One assessment of the household; 404 if there is none in the caller's areas."""
    assessment = await session.get(Assessment, assessment_id)
    if assessment is None or assessment.household_id != household_id or not principal.can_see(
            assessment.village_code):
        raise NotFound(f"There is no assessment {assessment_id} of household {household_id} in your areas.")
    return assessment
