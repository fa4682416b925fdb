"""The personal-data audit log: every unmasked read and every citizen-ID lookup, for auditors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry.models import AuditEntry, Household
from services.registry.security import CanAudit
from shared.app import ReadSessionDep
from shared.auth import Principal, area_clause
from shared.db import as_utc

# -- schemas --


class AuditOut(BaseModel):
    id: int
    at: datetime
    client_id: str
    action: str
    household_id: str | None
    purpose: str | None
    correlation_id: str | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before_id: int | None


# -- rules --


async def entries(session: AsyncSession, *, principal: Principal, household_id: str | None, client_id: str | None,
                  since: datetime | None, before_id: int | None, limit: int) -> AuditPage:
    """A page of the log, newest first, ending before `before_id`; which entries a caller sees is said in
    `list_audit` (its docstring is the API's description of the route)."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit + 1)
    if not principal.sees_all_areas:
        query = query.join(Household, col(Household.id) == col(AuditEntry.household_id)).where(
            area_clause(principal, col(Household.village_code)))
    if household_id is not None:
        query = query.where(col(AuditEntry.household_id) == household_id)
    if client_id is not None:
        query = query.where(col(AuditEntry.client_id) == client_id)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    items = [AuditOut(id=r.id or 0, at=as_utc(r.at), client_id=r.client_id, action=r.action,
                      household_id=r.household_id, purpose=r.purpose, correlation_id=r.correlation_id)
             for r in rows[:limit]]
    return AuditPage(items=items, next_before_id=items[-1].id if more else None)


# -- routes --

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", summary="Reads of personal data, newest first")
async def list_audit(principal: CanAudit, session: ReadSessionDep,
                     household_id: Annotated[str | None, Query(max_length=36)] = None,
                     client_id: Annotated[str | None, Query(max_length=200)] = None, since: AwareDatetime | None = None,
                     before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                                            description="page: entries older than this id")] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditPage:
    """Entries about households of the caller's areas; entries about no household (a lookup that found
    nothing) only for a caller of every area."""
    return await entries(session, principal=principal, household_id=household_id, client_id=client_id,
                         since=since, before_id=before_id, limit=limit)
