"""The indicator-set routes: every version of every set, and one set in full."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.assessment.security import CanRead
from services.assessment.sets.schemas import SetDetail, SetSummary
from services.assessment.sets.service import Sets, detail, summaries
from shared.pagination import Page

router = APIRouter(prefix="/v1/indicator-sets", tags=["indicator sets"])


async def loaded_sets(request: Request) -> Sets:
    """FastAPI dependency: the indicator sets the app loaded (`app.state.sets`)."""
    sets: Sets = request.app.state.sets
    return sets


SetsDep = Annotated[Sets, Depends(loaded_sets)]


@router.get("", summary="Every version of every indicator set")
async def list_sets(_principal: CanRead, sets: SetsDep) -> Page[SetSummary]:
    """All of them at once (the files the service loaded), in the envelope every list has."""
    return Page[SetSummary](items=summaries(sets=sets), next_cursor=None)


@router.get("/{set_id}", summary="An indicator set: dimensions, indicators, applicability, thresholds, cutoffs",
            responses={404: {"description": "No such set or version"}})
async def get_set(_principal: CanRead, set_id: str, sets: SetsDep,
                  version: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                        description="default: the latest")] = None) -> SetDetail:
    return detail(sets=sets, set_id=set_id, version=version)
