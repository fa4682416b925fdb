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
from shared.pagination import Page, PageDep, PageRequest, fetch_page

# -- schemas --


class AuditOut(BaseModel):
    id: int
    at: datetime
    client_id: str
    action: str
    household_id: str | None
    purpose: str | None
    correlation_id: str | None


# -- rules --


async def entries(session: AsyncSession, *, principal: Principal, household_id: str | None, client_id: str | None,
                  since: datetime | None, page: PageRequest) -> Page[AuditOut]:
    """A page of the log, newest first; which entries a caller sees is said in `list_audit` (its docstring is the
    API's description of the route)."""
    query = select(AuditEntry)
    if not principal.sees_all_areas:
        query = query.join(Household, col(Household.id) == col(AuditEntry.household_id)).where(
            area_clause(principal, col(Household.village_code)))
    if household_id is not None:
        query = query.where(col(AuditEntry.household_id) == household_id)
    if client_id is not None:
        query = query.where(col(AuditEntry.client_id) == client_id)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    rows, next_cursor = await fetch_page(session, query, order=[], id_column=col(AuditEntry.id), page=page,
                                         descending=True)
    items = [AuditOut(id=r.id or 0, at=as_utc(r.at), client_id=r.client_id, action=r.action,
                      household_id=r.household_id, purpose=r.purpose, correlation_id=r.correlation_id) for r in rows]
    return Page[AuditOut](items=items, next_cursor=next_cursor)


# -- routes --

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", summary="Reads of personal data, newest first")
async def list_audit(principal: CanAudit, session: ReadSessionDep, page: PageDep,
                     household_id: Annotated[str | None, Query(max_length=36)] = None,
                     client_id: Annotated[str | None, Query(max_length=200)] = None,
                     since: AwareDatetime | None = None) -> Page[AuditOut]:
    """Entries about households of the caller's areas; entries about no household (a lookup that found
    nothing) only for a caller of every area."""
    return await entries(session, principal=principal, household_id=household_id, client_id=client_id,
                         since=since, page=page)
