"""HTTP routes for households and members: thin, the rules live in `queries`, `registration`, `commands` and
`disclosure`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import partners
from services.registry.households import commands, disclosure, queries, registration
from services.registry.households.queries import CallerWithPurpose, HouseholdFilter, HouseholdRecord
from services.registry.households.schemas import (
    Assignment,
    DuplicatePage,
    HouseholdClose,
    HouseholdCreate,
    HouseholdOut,
    HouseholdPage,
    HouseholdPatch,
    Lookup,
    MemberIn,
    MemberPatch,
    MemberRemove,
    MemberTransfer,
)
from services.registry.partners import ContactOut
from services.registry.security import LOOKUP, PARTNER, PII_READ, CanRead, CanRegister, CanWrite, SignedIn, can_read
from shared.app import SessionDep, session_by_caller
from shared.auth import Principal
from shared.errors import Forbidden, NotFound, Unprocessable, problem_response
from shared.etag import etag
from shared.events.registry import Source
from shared.ids import decode_cursor, encode_cursor
from shared.pagination import PageRequest, page_request
from shared.pii import CitizenIdProtector, ProtectorDep

# An unmasked read (pii:read) writes its audit row, so it needs a transaction; a masked read is a read session.
DisclosureSessionDep = Annotated[AsyncSession, session_by_caller(can_read, lambda p: p.has_scope(PII_READ))]
router = APIRouter(prefix="/v1", tags=["households"])


IfMatch = Annotated[str | None, Header(description="ETag from your last read (required for changes)")]
Purpose = Annotated[
    str | None,
    Header(alias="X-Purpose", max_length=1500,
           description="why you read personal data, written to the audit log with every unmasked read; "
                       "UTF-8, percent-encoded when not ASCII (e.g. Thai text)"),
]


def _caller(principal: Principal, purpose: str | None) -> CallerWithPurpose:
    return CallerWithPurpose(principal, unquote(purpose, errors="replace")[:500] if purpose else None)


_CHANGE_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "No such household in your areas"},
    409: {"description": "Closed household, or a citizen ID already in another open household"},
    412: {"description": "If-Match does not name the current version"},
    428: {"description": "If-Match missing"},
}


def _reply(protector: CitizenIdProtector, session: SessionDep, record: HouseholdRecord, caller: CallerWithPurpose, *,
           status_code: int = 200, action: str = "pii_read") -> JSONResponse:
    unmasked = disclosure.audit_reads(session, caller=caller, action=action,
                                      household_ids=[record.household.id] if record.members else [])
    body = disclosure.present(record, unmasked=unmasked, protector=protector)
    headers = {"ETag": etag(record.household.version)}
    if status_code == 201:
        headers["Location"] = f"/v1/households/{record.household.id}"
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


@router.post("/households", status_code=201, response_model=HouseholdOut, summary="Register a household",
             responses={201: {"headers": {"ETag": {"description": "version"}, "Location": {"description": "URL"}}},
                        409: {"description": "A citizen ID already belongs to an open household"}})
async def register_household(principal: CanRegister, body: HouseholdCreate, request: Request, protector: ProtectorDep,
                             session: SessionDep, purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    try:
        record = await registration.register(session, caller=caller, body=body, protector=protector)
    except registration.CitizenIdRegistered as exc:
        return await _refused(request, session, caller, exc)
    return _reply(protector, session, record, caller, status_code=201)


async def _refused(request: Request, session: SessionDep, caller: CallerWithPurpose,
                   exc: registration.CitizenIdRegistered) -> JSONResponse:
    """Registering someone already registered was a citizen-ID lookup: undo the change, keep the audit row."""
    await session.rollback()
    registration.audit_conflicts(session, caller=caller, holder_ids=[exc.holder_id])
    return problem_response(exc, request)


@router.get("/households", response_model=HouseholdPage, summary="List households in your areas")
async def list_households(principal: CanRead, protector: ProtectorDep, session: DisclosureSessionDep,
                          page: Annotated[PageRequest, page_request(default=50, maximum=500)],
                          province: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
                          district: Annotated[str | None, Query(pattern=r"^\d{4}$")] = None,
                          subdistrict: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
                          village_no: Annotated[int | None, Query(ge=1, le=99)] = None, source: Source | None = None,
                          welfare_card: bool | None = None, team: Annotated[str | None, Query(max_length=36)] = None,
                          status: Annotated[str | None, Query(pattern="^(open|closed|any)$")] = "open",
                          q: Annotated[str | None, Query(min_length=1, max_length=100,
                                                         description="part of a member's name")] = None,
                          purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    filters = HouseholdFilter(province=province, district=district, subdistrict=subdistrict, village_no=village_no,
                              source=source, welfare_card=welfare_card, team=team,
                              status=None if status == "any" else status, q=q)
    records, last = await queries.list_page(session, caller=caller, filters=filters, after=decode_cursor(page.cursor),
                                            limit=page.limit)
    unmasked = disclosure.audit_reads(session, caller=caller,
                                      household_ids=[r.household.id for r in records if r.members])
    items = [disclosure.present(r, unmasked=unmasked, protector=protector) for r in records]
    return JSONResponse(HouseholdPage(items=items, next_cursor=encode_cursor(last)).model_dump(mode="json"))


@router.get("/households/{household_id}", response_model=HouseholdOut, summary="A household and its members",
            responses={404: {"description": "No such household in your areas"}})
async def get_household(principal: CanRead, household_id: str, protector: ProtectorDep, session: DisclosureSessionDep,
                        purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    return _reply(protector, session, await queries.load(session, caller=caller, household_id=household_id), caller)


@router.patch("/households/{household_id}", response_model=HouseholdOut, responses=_CHANGE_RESPONSES,
              summary="Change address, sources or welfare card (merge patch; If-Match required)")
async def patch_household(principal: CanWrite, household_id: str, body: HouseholdPatch, protector: ProtectorDep,
                          session: SessionDep, if_match: IfMatch = None, purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    record = await commands.change(session, caller=caller, household_id=household_id, body=body, if_match=if_match)
    return _reply(protector, session, record, caller)


@router.post("/households/{household_id}/members", status_code=201, response_model=HouseholdOut,
             responses=_CHANGE_RESPONSES, summary="Add a member (If-Match required)")
async def add_member(principal: CanRegister, household_id: str, body: MemberIn, request: Request,
                     protector: ProtectorDep, session: SessionDep, if_match: IfMatch = None,
                     purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    try:
        record, _member = await commands.add_member(session, caller=caller, household_id=household_id, body=body,
                                                   if_match=if_match, protector=protector)
    except registration.CitizenIdRegistered as exc:
        return await _refused(request, session, caller, exc)
    return _reply(protector, session, record, caller, status_code=201)


@router.patch("/households/{household_id}/members/{member_id}", response_model=HouseholdOut,
              responses=_CHANGE_RESPONSES, summary="Change a member's contact phone (merge patch; If-Match required)")
async def patch_member(principal: CanWrite, household_id: str, member_id: str, body: MemberPatch,
                       protector: ProtectorDep, session: SessionDep, if_match: IfMatch = None,
                       purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    record = await commands.change_member(session, caller=caller, household_id=household_id, member_id=member_id,
                                         body=body, if_match=if_match)
    return _reply(protector, session, record, caller)


@router.post("/households/{household_id}/members/{member_id}:remove", response_model=HouseholdOut,
             responses=_CHANGE_RESPONSES, summary="Remove a member: deceased, moved out, or a data error")
async def remove_member(principal: CanWrite, household_id: str, member_id: str, body: MemberRemove,
                        protector: ProtectorDep, session: SessionDep, if_match: IfMatch = None,
                        purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    record = await commands.remove_member(session, caller=caller, household_id=household_id, member_id=member_id,
                                         reason=body.reason, new_head_member_id=body.new_head_member_id,
                                         if_match=if_match)
    return _reply(protector, session, record, caller)


@router.post("/households/{household_id}/members/{member_id}:transfer", response_model=HouseholdOut,
             responses=_CHANGE_RESPONSES, summary="Move a member to another open household")
async def transfer_member(principal: CanWrite, household_id: str, member_id: str, body: MemberTransfer,
                          protector: ProtectorDep, session: SessionDep, if_match: IfMatch = None,
                          purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    source, _target = await commands.transfer_member(
        session, caller=caller, household_id=household_id, member_id=member_id,
        to_household_id=body.to_household_id, relation=body.relation,
        new_head_member_id=body.new_head_member_id, if_match=if_match,
    )
    return _reply(protector, session, source, caller)


@router.post("/households/{household_id}:close", response_model=HouseholdOut, responses=_CHANGE_RESPONSES,
             summary="Close a household (its people may then join another)")
async def close_household(principal: CanWrite, household_id: str, body: HouseholdClose, protector: ProtectorDep,
                          session: SessionDep, if_match: IfMatch = None, purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    record = await commands.close(session, caller=caller, household_id=household_id, reason=body.reason,
                                 if_match=if_match)
    return _reply(protector, session, record, caller)


@router.put("/households/{household_id}/assignment", response_model=HouseholdOut, responses=_CHANGE_RESPONSES,
            summary="Assign the field team and buddy official who follow the household (If-Match optional)")
async def assign_household(principal: CanWrite, household_id: str, body: Assignment, protector: ProtectorDep,
                           session: SessionDep, if_match: IfMatch = None, purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    record = await commands.assign(session, caller=caller, household_id=household_id, team_id=body.team_id,
                                  buddy_official=body.buddy_official, if_match=if_match)
    return _reply(protector, session, record, caller)


@router.post("/households:lookup", response_model=HouseholdOut | ContactOut,
             summary="The open household of a citizen ID",
             description=f"Staff ({LOOKUP}): the open household holding the citizen ID, if it is in the token's "
                         f"areas. A partner agency's client ({PARTNER}, without {LOOKUP}): only among the "
                         "households with a referral open to its partner, and then only their contact (as "
                         "`GET /v1/households/{id}/contact` answers); `X-Purpose` is required. Every lookup is "
                         "written to the audit log, whether it finds anything or not.",
             responses={403: {"description": f"Neither {LOOKUP} nor {PARTNER}"},
                        404: {"description": "No open household in your areas has this citizen ID (a partner: no "
                                             "household referred to it)"},
                        422: {"description": "Not a citizen ID, or a partner's lookup without X-Purpose"}})
async def lookup_household(principal: SignedIn, body: Lookup, request: Request, protector: ProtectorDep,
                           session: SessionDep, purpose: Purpose = None) -> JSONResponse:
    caller = _caller(principal, purpose)
    try:
        if not principal.has_scope(LOOKUP):
            return await _partner_lookup(session, caller=caller, citizen_id=body.citizen_id, protector=protector)
        record = await disclosure.lookup(session, caller=caller, citizen_id=body.citizen_id,
                                      protector=protector)
    except NotFound as exc:
        return problem_response(exc, request)  # returned, not raised: the audit row of the lookup is kept
    return _reply(protector, session, record, caller)


async def _partner_lookup(session: SessionDep, *, caller: CallerWithPurpose, citizen_id: str,
                          protector: CitizenIdProtector) -> JSONResponse:
    """A partner's lookup: the contact of the household holding the citizen ID if a referral to the partner is
    open for it; the same 404 whether nobody holds the ID or a household not referred to the partner does."""
    if not caller.principal.has_scope(PARTNER):
        raise Forbidden(f"This operation needs the scope {LOOKUP} (staff) or {PARTNER} (a partner agency).")
    if not caller.purpose:
        raise Unprocessable("Say why you look this person up: X-Purpose is required for a partner's lookup.",
                            errors=[{"field": "header.X-Purpose", "message": "required", "code": "required"}])
    household_id = await disclosure.holder(session, citizen_id=citizen_id, protector=protector)
    refused = NotFound("No household referred to your partner has this citizen ID.", type_slug="no-open-referral")
    if household_id is None:
        disclosure.audit(session, caller=caller, action="partner_lookup_refused", household_id=None)
        raise refused
    try:
        found = await partners.contact(session, caller=caller, household_id=household_id, action="partner_lookup")
    except NotFound:
        raise refused from None  # never the id of a household the partner may not know of
    return JSONResponse(found.model_dump(mode="json"))


@router.get("/duplicates", response_model=DuplicatePage, summary="Probable duplicate people",
            description="Current members of open households in your areas who share first name, last name and "
                        "birth date but not citizen ID — usually one person registered twice with a typo.")
async def list_duplicates(principal: CanRead, protector: ProtectorDep, session: DisclosureSessionDep,
                          page: Annotated[PageRequest, page_request(default=100, maximum=500)],
                          purpose: Purpose = None) -> DuplicatePage:
    caller = _caller(principal, purpose)
    groups, next_cursor = await queries.probable_duplicates(session, caller=caller, page=page)
    unmasked = disclosure.audit_reads(
        session, caller=caller, household_ids=sorted({m.household_id for group in groups for m in group}))
    items = disclosure.present_duplicates(groups, unmasked=unmasked, protector=protector)
    return DuplicatePage(items=items, next_cursor=next_cursor)

