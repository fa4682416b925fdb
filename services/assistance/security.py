"""The assistance service's OAuth 2.0 scopes: one security scheme shared by all its routes.

The ministry's pushes are not authenticated by a token but by their Standard Webhooks signature; the ministry
reads back what it pushed with a client of its own holding `assistance:disbursements:read` over every area. A
partner agency's client holds `assistance:partner` and is tied to its partner record by its client id: it sees
and moves on only the referrals addressed to that partner."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import SecurityScopes

from shared.app import service_security
from shared.auth import Principal
from shared.auth.security import SCHEME_NAME
from shared.errors import Forbidden
from shared.webhooks.routes import SUBSCRIBE, SUBSCRIBE_DESCRIPTION

READ = "assistance:read"
WRITE = "assistance:write"
PARTNER = "assistance:partner"
DISBURSEMENTS_READ = "assistance:disbursements:read"

security = service_security(
    "assistance",
    {
        READ: "Read programmes, budgets, batches and payments in the token's areas",
        WRITE: "Set budgets, reverse payments, record visits and refer households in the token's areas",
        PARTNER: "Act for the partner agency tied to this client: its referrals, their outcomes and the help given",
        SUBSCRIBE: SUBSCRIBE_DESCRIPTION,
        DISBURSEMENTS_READ: "Read back pushed batches and the feed of payments, and nothing else, in the token's "
                            "areas (the ministry's client: every area)",
    },
)

can_read = security.require(READ)
can_write = security.require(WRITE)
signed_in = security.require()  # the route itself decides between staff and partner scopes


async def _disbursement_reader(request: Request) -> Principal:
    """Staff who read (`assistance:read`) or the ministry's reader (`assistance:disbursements:read`); 403
    otherwise. The token is read here rather than through the scheme, so that the operation can declare the
    two scopes as alternatives (`DISBURSEMENT_READERS`), which FastAPI's Security() cannot say."""
    who = await security.authenticate(request, SecurityScopes(), request.headers.get("authorization"))
    if not (who.has_scope(READ) or who.has_scope(DISBURSEMENTS_READ)):
        raise Forbidden(f"This operation needs the scope {READ} (staff) or {DISBURSEMENTS_READ} (the ministry).",
                        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{READ}"'},
                        missing_scopes=[READ])
    return who


# The OpenAPI `security` of an operation taking either scope (`openapi_extra` of its route).
DISBURSEMENT_READERS = {"security": [{SCHEME_NAME: [READ]}, {SCHEME_NAME: [DISBURSEMENTS_READ]}]}

# The caller, as a route's first parameter (so the token is checked before a database session opens).
CanRead = Annotated[Principal, can_read]
CanWrite = Annotated[Principal, can_write]
SignedIn = Annotated[Principal, signed_in]
ReadsDisbursements = Annotated[Principal, Depends(_disbursement_reader)]
