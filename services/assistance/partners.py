"""Partner agencies of the seven sectors, and who is calling: provincial staff, or a partner's own client.

A partner's OAuth client (scope `assistance:partner`) is tied to its partner record by `client_id`, the
token's `sub`. Such a caller is that partner, and sees only what is addressed to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.models import Partner
from services.assistance.security import PARTNER, CanRead, CanWrite
from shared import areas
from shared.app import ReadSessionDep, SessionDep
from shared.areas import AREA_CODE_PATTERN
from shared.auth import Principal
from shared.clock import utcnow
from shared.db import as_utc
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.ids import ID_PATTERN, new_id
from shared.pagination import Page, PageDep, PageRequest, filtered_page
from shared.text import Text

# -- schemas --


class Sector(StrEnum):
    """The seven sectors of the Khon Kaen model (ภาคีเจ็ดภาคส่วน)."""

    government = "government"          # ภาครัฐ
    private = "private"                # ภาคเอกชน
    academic = "academic"              # ภาควิชาการ
    religious = "religious"            # ภาคศาสนา
    media = "media"                    # ภาคสื่อมวลชน
    civil_society = "civil_society"    # ภาคประชาสังคม
    people = "people"                  # ภาคประชาชน


ClientId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Text, StringConstraints(max_length=300)] = Field(examples=["โรงพยาบาลขอนแก่น"])
    sector: Sector
    areas: list[Annotated[str, StringConstraints(pattern=AREA_CODE_PATTERN)]] = Field(
        min_length=1, max_length=200, description="DOPA codes of the areas the partner serves", examples=[["40"]])
    client_id: ClientId | None = Field(None, description="the OAuth client acting for this partner (tokens' `sub`)")


class PartnerOut(BaseModel):
    id: str
    name: str
    sector: Sector
    areas: list[str]
    client_id: str | None
    created_at: datetime


# -- rules --


def present(partner: Partner) -> PartnerOut:
    return PartnerOut(id=partner.id, name=partner.name, sector=Sector(partner.sector), areas=partner.areas,
                      client_id=partner.client_id, created_at=as_utc(partner.created_at))


def serves(partner: Partner, area_code: str) -> bool:
    """True if the partner serves `area_code` (one of its areas contains it)."""
    return any(area_code.startswith(code) for code in partner.areas)


def shares_an_area(partner: Partner, principal: Principal) -> bool:
    """True if the partner serves some of the caller's areas (one contains the other): who else may see it."""
    return principal.sees_all_areas or any(
        mine.startswith(theirs) or theirs.startswith(mine) for mine in principal.areas for theirs in partner.areas)


@dataclass(frozen=True)
class StaffOrPartner:
    """Who is calling: staff (their token's areas bound them) or a partner (only what is addressed to it)."""

    principal: Principal
    partner: Partner | None = None


async def staff_or_partner(session: AsyncSession, *, principal: Principal, staff_scope: str) -> StaffOrPartner:
    """Staff if the token holds `staff_scope`; else the partner tied to the client, if it holds the partner
    scope; else 403."""
    if principal.has_scope(staff_scope):
        return StaffOrPartner(principal)
    if not principal.has_scope(PARTNER):
        raise Forbidden(f"This operation needs the scope {staff_scope} (staff) or {PARTNER} (a partner agency).",
                        missing_scopes=[staff_scope])
    partner = (await session.execute(select(Partner).where(col(Partner.client_id) == principal.client_id))
               ).scalar_one_or_none()
    if partner is None:
        raise Forbidden(f"Client {principal.client_id!r} holds {PARTNER} but no partner is tied to it: "
                        "register the partner with this client_id.")
    return StaffOrPartner(principal, partner)


async def register(session: AsyncSession, *, principal: Principal, body: PartnerIn) -> PartnerOut:
    """Register a partner serving known areas, all of them the caller's; its client acts for no other."""
    unknown = [code for code in body.areas if areas.find(code) is None]
    if unknown:
        raise Unprocessable(f"Unknown areas: {', '.join(unknown)}", errors=[
            {"field": "body.areas", "message": f"{code} is not a DOPA area code", "code": "area"} for code in unknown])
    outside = [code for code in body.areas if not principal.can_see(code)]
    if outside:
        raise Forbidden(f"Areas {', '.join(outside)} are outside the areas granted to client "
                        f"{principal.client_id!r}.")
    partner = Partner(id=new_id(), name=body.name, sector=body.sector.value, areas=sorted(set(body.areas)),
                      client_id=body.client_id, created_by=principal.client_id, created_at=utcnow())
    session.add(partner)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Client {body.client_id!r} already acts for another partner.") from exc
    return present(partner)


async def partners_in_reach(session: AsyncSession, *, principal: Principal, sector: Sector | None,
                            area: str | None, page: PageRequest) -> Page[PartnerOut]:
    """A page of the partners sharing an area with the caller, of a sector and serving an area if given, by name."""
    query = select(Partner)
    if sector is not None:
        query = query.where(col(Partner.sector) == sector.value)
    found, next_cursor = await filtered_page(
        session, query, order=[col(Partner.name)], id_column=col(Partner.id), page=page, id_of=lambda p: p.id,
        keep=lambda p: shares_an_area(p, principal) and (area is None or serves(p, area)))
    return Page[PartnerOut](items=[present(p) for p in found], next_cursor=next_cursor)


async def partner_in_reach(session: AsyncSession, *, principal: Principal, partner_id: str) -> PartnerOut:
    partner = await session.get(Partner, partner_id)
    if partner is None or not shares_an_area(partner, principal):
        raise NotFound(f"There is no partner {partner_id}.")
    return present(partner)


# -- routes --


router = APIRouter(tags=["logbook"])


@router.post("/v1/partners", status_code=201, summary="Register a partner agency",
             responses={403: {"description": "An area outside your own"},
                        409: {"description": "The client is already tied to another partner"}})
async def create_partner(principal: CanWrite, body: PartnerIn, session: SessionDep) -> JSONResponse:
    partner = await register(session, principal=principal, body=body)
    return JSONResponse(partner.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/partners/{partner.id}"})


@router.get("/v1/partners", summary="Partner agencies serving your areas, by sector and by the area they serve")
async def list_partners(principal: CanRead, session: ReadSessionDep, page: PageDep, sector: Sector | None = None,
                        area: Annotated[str | None, Query(pattern=AREA_CODE_PATTERN)] = None) -> Page[PartnerOut]:
    return await partners_in_reach(session, principal=principal, sector=sector, area=area, page=page)


@router.get("/v1/partners/{partner_id}", summary="A partner agency")
async def get_partner(principal: CanRead, partner_id: Annotated[str, Path(pattern=ID_PATTERN)],
                      session: ReadSessionDep) -> PartnerOut:
    return await partner_in_reach(session, principal=principal, partner_id=partner_id)
