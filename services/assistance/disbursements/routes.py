"""The HTTP side of family grants: the ministry's signed push of a batch, reading batches and payments back, a
reversal."""

# No `from __future__ import annotations`: the routes use Annotated[..., Query()] aliases FastAPI resolves at runtime.
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.disbursements import reads, service
from services.assistance.disbursements.schemas import (
    REF_PATTERN,
    BatchIn,
    BatchOut,
    BatchSummary,
    ItemOut,
    PaymentOut,
    PaymentStatus,
    ReversalIn,
)
from services.assistance.pushes import Push, handle_push, push_route
from services.assistance.security import DISBURSEMENT_READERS, CanWrite, ReadsDisbursements
from services.assistance.settings import SettingsDep
from shared.app import ReadSessionDep, SessionDep
from shared.ids import ID_PATTERN
from shared.pagination import CURSOR_DESCRIPTION, Page, PageRequest, page_request
from shared.pii import ProtectorDep

router = APIRouter(tags=["disbursements"])
BATCH_PAGE = page_request(default=100, maximum=1000)
READERS = ("Staff (`assistance:read`) read the items in their token's areas; the ministry's client "
           "(`assistance:disbursements:read`, every area) reads every item, those that matched no household too.")


@router.post("/v1/disbursement-batches",
             **push_route(BatchIn, BatchOut, "The ministry pushes a batch of family grants (signed, idempotent)"))
async def push_batch(request: Request, settings: SettingsDep, protector: ProtectorDep) -> Any:
    async def run(session: AsyncSession, push: Push) -> tuple[int, BaseModel]:
        return await service.record_batch(session, settings=settings, protector=protector, push=push)

    return await handle_push(request, "disbursement-batch", BatchIn, run, settings=settings,
                             location=reads.batch_location)


@router.get("/v1/disbursement-batches", summary="Every batch received, oldest first, with its totals now",
            description=f"{READERS} Every reader sees every batch and its whole totals; `outside_view.items` "
                        "counts the items not in the reader's view.", openapi_extra=DISBURSEMENT_READERS)
async def list_batches(principal: ReadsDisbursements, session: ReadSessionDep,
                       since: Annotated[AwareDatetime | None, Query(
                           description="only batches received at or after this time")] = None,
                       page: PageRequest = BATCH_PAGE) -> Page[BatchSummary]:
    return await reads.list_batches(session, principal=principal, since=since, page=page)


@router.get("/v1/disbursement-batches/{batch_ref}", summary="A batch and each item's state now",
            description=f"{READERS} The totals are the whole batch's for every reader (they agree with the push's "
                        "answer); `outside_view.items` counts the items not listed.",
            openapi_extra=DISBURSEMENT_READERS)
async def get_batch(principal: ReadsDisbursements, batch_ref: Annotated[str, Path(pattern=REF_PATTERN)],
                    session: ReadSessionDep) -> BatchOut:
    return await reads.get_batch(session, principal=principal, batch_ref=batch_ref)


@router.get("/v1/disbursements", summary="The feed of payments, in the order their state last moved",
            description=f"{READERS} Ordered by (`updated_at`, id): recorded, then moved again when reversed. "
                        "Follow `next_cursor`; to start again later, pass a minute before the last `updated_at` "
                        "seen as `updated_since` (inclusive) and drop repeats by id and `updated_at`: a payment "
                        "shows once its transaction commits, a moment after its `updated_at`.",
            openapi_extra=DISBURSEMENT_READERS)
async def payments_feed(principal: ReadsDisbursements, session: ReadSessionDep,
                        status: Annotated[PaymentStatus | None,
                                          Query(description="only payments in this state now")] = None,
                        updated_since: Annotated[AwareDatetime | None, Query(
                            description="only payments whose state moved at or after this time")] = None,
                        cursor: Annotated[str | None, Query(max_length=200, description=CURSOR_DESCRIPTION)] = None,
                        limit: Annotated[int, Query(ge=1, le=1000, description="at most 1000")] = 500,
                        ) -> Page[PaymentOut]:
    return await reads.feed(session, principal=principal, status=status, updated_since=updated_since,
                            cursor=cursor, limit=limit)


@router.post("/v1/disbursements/{disbursement_id}/reversal", summary="Reverse an accepted payment",
             responses={404: {"description": "No such payment in your areas"},
                        409: {"description": "Not an accepted payment (rejected, or already reversed)"}})
async def reverse_payment(principal: CanWrite, disbursement_id: Annotated[str, Path(pattern=ID_PATTERN)],
                          body: ReversalIn, session: SessionDep) -> ItemOut:
    return await service.reverse(session, principal=principal, disbursement_id=disbursement_id, reason=body.reason)
