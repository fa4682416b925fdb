"""Partner agencies acting on what is referred to them: the registry learns which referrals are open from the
assistance service's events, and a partner's client reads the minimum it needs to serve a household referred to
it — the head's title and name, the house number, the village and sub-district, a contact phone — while such a
referral is open.

The registry keeps what it learns of referrals in `projection`. A partner's client is tied to its partner by its
client id (the token's `sub`), as in the assistance service
(`services/assistance/partners.py`); the referral events name that client (`partner_client_id`). The client holds
`registry:partner`. Every read is audited with the purpose the caller declares (`X-Purpose`, required), and so is
every refusal; a household with no referral open to the caller's partner answers 404, whether it exists or not.
"""

from collections.abc import Sequence
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry.households.disclosure import audit
from services.registry.households.queries import CallerWithPurpose
from services.registry.models import Household, Member, ReferralAccess
from services.registry.security import CanActForPartner
from shared import areas
from shared.app import SessionDep
from shared.errors import NotFound, problem_response
from shared.ids import ID_PATTERN
from shared.pii import format_phone

# -- schemas --


class ContactOut(BaseModel):
    """The minimum a partner needs to find and serve a household referred to it."""

    household_id: str
    referral_ids: list[str] = Field(description="the referrals open to your partner for this household")
    head_title: str = Field(examples=["นาง"])
    head_first_name: str = Field(examples=["สมหญิง"])
    head_last_name: str = Field(examples=["ใจดี"])
    house_no: str = Field(examples=["12/3"])
    village_no: int = Field(examples=[3])
    village_code: str = Field(examples=["40010103"])
    subdistrict_code: str = Field(examples=["400101"])
    subdistrict_name_th: str = Field(examples=["ในเมือง"])
    district_name_th: str = Field(examples=["เมืองขอนแก่น"])
    province_name_th: str = Field(examples=["ขอนแก่น"])
    phone: str | None = Field(description="a contact phone: the head's, else the first member's recorded; null "
                                          "when none is", examples=["081-234-5678"])


# -- rules --

# A referral the partner is still working on; done, cancelled and declined ones open nothing.
OPEN = frozenset({"open", "in_progress"})


async def open_referrals(session: AsyncSession, *, client_id: str, household_ids: Sequence[str]
                         ) -> dict[str, list[str]]:
    """Household id → the ids of the referrals open to the partner acting through `client_id`."""
    found: dict[str, list[str]] = {}
    if household_ids:
        rows = await session.execute(
            select(col(ReferralAccess.household_id), col(ReferralAccess.referral_id))
            .where(col(ReferralAccess.household_id).in_(list(household_ids)),
                   col(ReferralAccess.partner_client_id) == client_id, col(ReferralAccess.status).in_(OPEN))
            .order_by(col(ReferralAccess.referral_id)))
        for household_id, referral_id in rows.all():
            found.setdefault(household_id, []).append(referral_id)
    return found


def refusal(household_id: str) -> NotFound:
    return NotFound(f"There is no household {household_id} with a referral open to your partner.",
                    type_slug="no-open-referral")


async def contact(session: AsyncSession, *, caller: CallerWithPurpose, household_id: str,
                  action: str = "partner_contact") -> ContactOut:
    """The household's contact if a referral to the caller's partner is open for it (and it lies in the token's
    areas); `refusal` otherwise. Audited either way (`action`, or `action` + `_refused`), with the purpose."""
    household = await session.get(Household, household_id)
    referrals = await open_referrals(session, client_id=caller.principal.client_id, household_ids=[household_id])
    if household is None or not caller.principal.can_see(household.village_code) or household_id not in referrals:
        audit(session, caller=caller, action=f"{action}_refused", household_id=household_id)
        raise refusal(household_id)
    audit(session, caller=caller, action=action, household_id=household_id)
    members = list((await session.execute(
        select(Member).where(col(Member.household_id) == household_id, col(Member.removed_at).is_(None))
        .order_by(col(Member.position)))).scalars())
    head = next((m for m in members if m.relation == "head"), members[0])
    phone = head.phone or next((m.phone for m in members if m.phone), None)
    subdistrict = areas.find(household.subdistrict_code)
    district = areas.find(household.district_code)
    province = areas.find(household.province_code)
    return ContactOut(
        household_id=household.id, referral_ids=referrals[household_id], head_title=head.title,
        head_first_name=head.first_name, head_last_name=head.last_name, house_no=household.house_no,
        village_no=household.village_no, village_code=household.village_code,
        subdistrict_code=household.subdistrict_code,
        subdistrict_name_th=subdistrict.name_th if subdistrict else household.subdistrict_code,
        district_name_th=district.name_th if district else household.district_code,
        province_name_th=province.name_th if province else household.province_code,
        phone=format_phone(phone) if phone else None)


# -- routes --

router = APIRouter(prefix="/v1", tags=["partners"])
RequiredPurpose = Annotated[
    str,
    Header(alias="X-Purpose", min_length=1, max_length=1500,
           description="why you read the contact (required), written to the audit log with the read; UTF-8, "
                       "percent-encoded when not ASCII (e.g. Thai text)", examples=["นัดตรวจสุขภาพตามที่ส่งต่อ"]),
]


def caller_with(principal: CanActForPartner, purpose: str) -> CallerWithPurpose:
    return CallerWithPurpose(principal, unquote(purpose, errors="replace")[:500])


@router.get("/households/{household_id}/contact", response_model=ContactOut,
            summary="A partner reads the contact of a household referred to it",
            description="For a partner agency's client (`registry:partner`, tied to its partner by client id): the "
                        "head's title and name, the house number, village, sub-district and a contact phone of a "
                        "household with a referral addressed to the partner that is `open` or `in_progress`. "
                        "`X-Purpose` is required; every read and every refusal is written to the audit log. Once "
                        "the referral is done, cancelled or declined — and for any other household — 404.",
            responses={404: {"description": "No referral open to your partner for this household"}})
async def get_contact(principal: CanActForPartner, household_id: Annotated[str, Path(pattern=ID_PATTERN)],
                      purpose: RequiredPurpose, request: Request, session: SessionDep) -> JSONResponse:
    try:
        found = await contact(session, caller=caller_with(principal, purpose), household_id=household_id)
    except NotFound as exc:
        return problem_response(exc, request)  # returned, not raised: the audit row of the refusal is kept
    return JSONResponse(found.model_dump(mode="json"))
