"""The HTTP side of family grants: the ministry's signed push of a batch, a batch's state, a reversal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.disbursements import service
from services.assistance.disbursements.schemas import REF_PATTERN, BatchIn, BatchOut, ItemOut, ReversalIn
from services.assistance.pushes import Push, handle_push, push_route
from services.assistance.security import CanRead, CanWrite
from services.assistance.settings import SettingsDep
from shared.app import ReadSessionDep, SessionDep
from shared.ids import ID_PATTERN
from shared.pii import ProtectorDep

router = APIRouter(tags=["disbursements"])


@router.post("/v1/disbursement-batches",
             **push_route(BatchIn, BatchOut, "The ministry pushes a batch of family grants (signed, idempotent)"))
async def push_batch(request: Request, settings: SettingsDep, protector: ProtectorDep) -> Any:
    async def run(session: AsyncSession, push: Push) -> tuple[int, BaseModel]:
        return await service.record_batch(session, settings=settings, protector=protector, push=push)

    return await handle_push(request, "disbursement-batch", BatchIn, run, settings=settings)


@router.get("/v1/disbursement-batches/{batch_ref}", summary="A batch and each item's state now")
async def get_batch(principal: CanRead, batch_ref: Annotated[str, Path(pattern=REF_PATTERN)],
                    session: ReadSessionDep) -> BatchOut:
    return await service.get_batch(session, principal=principal, batch_ref=batch_ref)


@router.post("/v1/disbursements/{disbursement_id}/reversal", summary="Reverse an accepted payment",
             responses={404: {"description": "No such payment in your areas"},
                        409: {"description": "Not an accepted payment (rejected, or already reversed)"}})
async def reverse_payment(principal: CanWrite, disbursement_id: Annotated[str, Path(pattern=ID_PATTERN)],
                          body: ReversalIn, session: SessionDep) -> ItemOut:
    return await service.reverse(session, principal=principal, disbursement_id=disbursement_id, reason=body.reason)
