"""The HTTP side of referrals: staff refer households and read plans; staff or a partner list, read, move on
referrals and record help."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from services.assistance.logbook import Dimension, HouseholdId
from services.assistance.partners import staff_or_partner
from services.assistance.pushes import IDEMPOTENCY_KEY_PARAMETER, REPLAYED_HEADER, idempotency_key
from services.assistance.referrals import service
from services.assistance.referrals.schemas import (
    HelpIn,
    ReferralDetail,
    ReferralIn,
    ReferralOut,
    ReferralPage,
    Status,
    StatusChangeIn,
)
from services.assistance.security import READ, WRITE, CanRead, CanWrite, SignedIn
from shared import areas
from shared.app import ReadSessionDep, SessionDep
from shared.etag import etag
from shared.ids import ID_PATTERN
from shared.pagination import PageDep

router = APIRouter(tags=["logbook"])
ReferralId = Annotated[str, Path(pattern=ID_PATTERN)]


def _answer(referral: ReferralOut, status_code: int = 200) -> JSONResponse:
    headers = {"ETag": etag(referral.version)}
    if status_code == 201:
        headers["Location"] = f"/v1/referrals/{referral.id}"
    return JSONResponse(referral.model_dump(mode="json"), status_code=status_code, headers=headers)


@router.post("/v1/households/{household_id}/referrals", status_code=201,
             summary="Add an action to a household's plan, referred to a partner",
             responses={404: {"description": "No such household in your areas"},
                        409: {"description": "The household is closed"},
                        422: {"description": "An unknown partner, or one that does not serve the household's area"}})
async def refer(principal: CanWrite, household_id: HouseholdId, body: ReferralIn, session: SessionDep) -> JSONResponse:
    return _answer(await service.refer(session, principal=principal, household_id=household_id, body=body), 201)


@router.get("/v1/households/{household_id}/referrals", summary="A household's development plan: its referrals")
async def household_plan(principal: CanRead, household_id: HouseholdId, session: ReadSessionDep,
                         page: PageDep) -> ReferralPage:
    return await service.household_plan(session, principal=principal, household_id=household_id, page=page)


@router.get("/v1/referrals", summary="Referrals: a partner's own, or those in your areas",
            description=f"Staff ({READ}) see the referrals in their token's areas; a partner's client "
                        "(`assistance:partner`) sees only those addressed to its partner. Oldest first.")
async def list_referrals(principal: SignedIn, session: ReadSessionDep, status: Status | None = None,
                         overdue: Annotated[bool | None, Query(
                             description="only those due before today and not finished")] = None,
                         partner_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                         area: Annotated[str | None, Query(pattern=areas.AREA_CODE_PATTERN)] = None,
                         dimension: Dimension | None = None,
                         cursor: Annotated[str | None, Query(max_length=200)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> ReferralPage:
    who = await staff_or_partner(session, principal=principal, staff_scope=READ)
    return await service.list_referrals(session, who=who, status=status, overdue=overdue, partner_id=partner_id,
                                        area=area, dimension=dimension, cursor=cursor, limit=limit)


@router.get("/v1/referrals/{referral_id}", summary="A referral, with its steps and the help given",
            response_model=ReferralDetail)
async def get_referral(principal: SignedIn, referral_id: ReferralId, session: ReadSessionDep) -> JSONResponse:
    who = await staff_or_partner(session, principal=principal, staff_scope=READ)
    return _answer(await service.get_referral(session, who=who, referral_id=referral_id))


@router.patch("/v1/referrals/{referral_id}", summary="Move a referral on: open → in_progress → done, or cancelled, "
                                                     "or declined by its partner",
              description="`open` → `in_progress` → `done`, or `cancelled` from `open` or `in_progress`; the partner "
                          "the referral is addressed to may answer `declined` from `open`, with its `reason` "
                          "(staff cancel instead: 403). The field team sees the decline on the household's "
                          "timeline and in `GET /v1/referrals?status=declined`.",
              response_model=ReferralDetail,
              responses={403: {"description": "Declining is for the partner's client"},
                         409: {"description": "Not a move this referral can make from its status"},
                         412: {"description": "If-Match names an older version"}})
async def change_status(principal: SignedIn, referral_id: ReferralId, body: StatusChangeIn, session: SessionDep,
                        if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    who = await staff_or_partner(session, principal=principal, staff_scope=WRITE)
    return _answer(await service.change_status(session, who=who, referral_id=referral_id, body=body,
                                               if_match=if_match))


@router.post("/v1/referrals/{referral_id}/help", status_code=201, summary="Record help given under a referral",
             description="Send an `Idempotency-Key` header, the same on every retry: a retry with the same body "
                         "answers what the first did (`Idempotent-Replayed: true`), never a second record.",
             openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
             responses={200: {"description": "A retry: the help recorded by the first request with this key",
                              "headers": {"Idempotent-Replayed": REPLAYED_HEADER}},
                        400: {"description": "No Idempotency-Key"},
                        409: {"description": "The referral was cancelled, or the first request with this key is "
                                             "still being recorded"},
                        422: {"description": "A date in the future or before the referral, a zero or negative "
                                             "value, or a key used before with another body"}})
async def record_help(principal: SignedIn, referral_id: ReferralId, body: HelpIn, request: Request,
                      session: SessionDep) -> JSONResponse:
    key = idempotency_key(request)
    who = await staff_or_partner(session, principal=principal, staff_scope=WRITE)
    help_, replayed = await service.record_help(session, who=who, referral_id=referral_id, body=body, key=key)
    if replayed:
        return JSONResponse(help_.model_dump(mode="json"), status_code=200, headers={"Idempotent-Replayed": "true"})
    return JSONResponse(help_.model_dump(mode="json"), status_code=201)
