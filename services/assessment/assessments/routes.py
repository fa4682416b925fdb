"""The assessment routes: record a household's assessment, list its history, read one explained."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.assessment.assessments.schemas import AssessmentIn, AssessmentOut
from services.assessment.assessments.service import find, history, present, record
from services.assessment.models import Assessment
from services.assessment.security import CanRead, CanWrite
from services.assessment.sets.routes import SetsDep
from services.assessment.sets.schemas import IndicatorSet
from services.assessment.sets.service import Sets
from services.assessment.settings import SettingsDep
from shared.app import ReadSessionDep, SessionDep
from shared.etag import etag
from shared.ids import ID_PATTERN
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/households/{household_id}/assessments", tags=["assessments"])
HouseholdId = Annotated[str, Path(pattern=ID_PATTERN, description="the registry's household id")]


def _set_of(sets: Sets, assessment: Assessment) -> IndicatorSet | None:
    return sets.get(assessment.indicator_set_id, assessment.indicator_set_version)


@router.post("", status_code=201, summary="Record a household's assessment (a repeat for the same year is a "
             "new revision)", responses={
                 200: {"description": "The same assessment was already recorded: nothing new"},
                 404: {"description": "No such household in your areas"},
                 409: {"description": "Household not yet known (retry after Retry-After), closed, or a "
                                      "concurrent revision"},
                 422: {"description": "Unknown indicator, an answer that does not apply, an answer that "
                                      "contradicts its measurement, a missing answer"}})
async def create_assessment(principal: CanWrite, household_id: HouseholdId, body: AssessmentIn, sets: SetsDep,
                            settings: SettingsDep, response: Response, session: SessionDep) -> AssessmentOut:
    recorded = await record(session, sets=sets, principal=principal, household_id=household_id,
                            body=body, retry_after_s=settings.unknown_household_retry_after_s)
    a = recorded.assessment
    response.status_code = 201 if recorded.created else 200
    response.headers["Location"] = f"/v1/households/{household_id}/assessments/{a.id}"
    response.headers["ETag"] = etag(a.revision)
    return present(a, _set_of(sets, a))


@router.get("", summary="A household's assessments, newest survey year and revision first (history kept)",
            responses={404: {"description": "No such household in your areas"},
                       409: {"description": "Household not yet known to this service"}})
async def list_assessments(principal: CanRead, household_id: HouseholdId, sets: SetsDep, settings: SettingsDep,
                           session: ReadSessionDep, page: PageDep) -> Page[AssessmentOut]:
    rows, next_cursor = await history(session, principal=principal, household_id=household_id,
                                      retry_after_s=settings.unknown_household_retry_after_s, page=page)
    return Page[AssessmentOut](items=[present(a, _set_of(sets, a)) for a in rows], next_cursor=next_cursor)


@router.get("/{assessment_id}", summary="One assessment, explained indicator by indicator",
            responses={404: {"description": "No such assessment of this household in your areas"}})
async def get_assessment(principal: CanRead, household_id: HouseholdId,
                         assessment_id: Annotated[str, Path(pattern=ID_PATTERN)], sets: SetsDep, response: Response,
                         session: ReadSessionDep) -> AssessmentOut:
    a = await find(session, principal=principal, household_id=household_id, assessment_id=assessment_id)
    response.headers["ETag"] = etag(a.revision)
    return present(a, _set_of(sets, a))
