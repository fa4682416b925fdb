"""The reporting service's OAuth 2.0 scopes, and the public reader.

Reports are aggregates with small counts suppressed, published much as the programme publishes its
figures: a request without a token reads them as the public (scope `reporting:read`, the areas of
`KAENKHUN_REPORTING_PUBLIC_AREAS`, no detail) — in development every area, in production none unless set.
A request with a token is judged by the token alone."""

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import SecurityScopes

from shared.app import service_security
from shared.auth import Principal

READ = "reporting:read"
DETAIL = "reporting:detail"

security = service_security(
    "reporting",
    {
        READ: "Read reports of the token's areas, small counts suppressed",
        DETAIL: "See small counts too (1 to 4 households or persons) — for staff entitled to detail",
    },
)
PUBLIC_CLIENT = "public"


async def _reader(request: Request, security_scopes: SecurityScopes,
                  authorization: Annotated[str | None, Depends(security.scheme)]) -> Principal:
    public = request.app.state.settings.public()
    if not authorization and public:
        who = Principal(client_id=PUBLIC_CLIENT, scopes=frozenset({READ}), areas=frozenset(public))
        request.state.principal = who
        return who
    return await security.authenticate(request, security_scopes, authorization)


can_read = Security(_reader, scopes=[READ])

# The caller, as a route's first parameter (so the token is checked before a database session opens).
CanRead = Annotated[Principal, can_read]
