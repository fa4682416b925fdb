"""The HTTP side of centres: registering and reading centres, the ministry's signed push of subsidies, and
the reconciliation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.centres import service
from services.assistance.centres.schemas import CentreIn, CentreKind, CentreOut, Reconciliation, SubsidyBatchIn
from services.assistance.disbursements.reads import batch_location
from services.assistance.disbursements.schemas import BatchOut
from services.assistance.pushes import Push, handle_push, push_route
from services.assistance.security import CanRead, CanWrite
from services.assistance.settings import SettingsDep
from shared import areas
from shared.app import ReadSessionDep, SessionDep
from shared.pagination import Page, PageRequest, page_request

router = APIRouter(tags=["centres and reconciliation"])


@router.post("/v1/centres", status_code=201, summary="Register a centre",
             responses={403: {"description": "Outside your areas"}, 422: {"description": "Unknown sub-district"}})
async def create_centre(principal: CanWrite, body: CentreIn, session: SessionDep) -> JSONResponse:
    centre = await service.register(session, principal=principal, body=body)
    return JSONResponse(centre.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/centres/{centre.id}"})


@router.get("/v1/centres", summary="Centres in an area (yours by default), by sub-district and name")
async def list_centres(principal: CanRead, session: ReadSessionDep,
                       page: Annotated[PageRequest, page_request(default=500, maximum=1000)],
                       area: Annotated[str | None, Query(pattern=r"^(\d{2}|\d{4}|\d{6})$")] = None,
                       kind: CentreKind | None = None) -> Page[CentreOut]:
    return await service.list_centres(session, principal=principal, area=area, kind=kind, page=page)


@router.get("/v1/centres/{centre_id}", summary="One centre")
async def get_centre(principal: CanRead, centre_id: str, session: ReadSessionDep) -> CentreOut:
    return await service.get_centre(session, principal=principal, centre_id=centre_id)


@router.post("/v1/centre-subsidies", **push_route(
    SubsidyBatchIn, BatchOut, "The ministry pushes a batch of subsidies to centres (signed, idempotent)"))
async def push_subsidies(request: Request, settings: SettingsDep) -> Any:

    async def run(session: AsyncSession, push: Push) -> tuple[int, BaseModel]:
        return await service.record_subsidies(session, settings=settings, push=push)

    return await handle_push(request, "centre-subsidy", SubsidyBatchIn, run, settings=settings,
                             location=batch_location)


@router.get("/v1/reconciliation", summary="Every budget of a fiscal year in an area beside the sum of its payments")
async def reconciliation(principal: CanRead, fiscal_year: Annotated[int, Query(ge=2500, le=2700)],
                         session: ReadSessionDep,
                         area: Annotated[str | None, Query(pattern=areas.AREA_CODE_PATTERN)] = None) -> Reconciliation:
    return await service.reconcile(session, principal=principal, fiscal_year=fiscal_year, area=area)
