"""The assistance service's OAuth 2.0 scopes: one security scheme shared by all its routes.

The ministry's pushes are not authenticated by a token but by their Standard Webhooks signature. A partner
agency's client holds `assistance:partner` and is tied to its partner record by its client id: it sees and
moves on only the referrals addressed to that partner."""

from typing import Annotated

from shared.app import service_security
from shared.auth import Principal
from shared.webhooks.routes import SUBSCRIBE, SUBSCRIBE_DESCRIPTION

READ = "assistance:read"
WRITE = "assistance:write"
PARTNER = "assistance:partner"

security = service_security(
    "assistance",
    {
        READ: "Read programmes, budgets, batches and payments in the token's areas",
        WRITE: "Set budgets, reverse payments, record visits and refer households in the token's areas",
        PARTNER: "Act for the partner agency tied to this client: its referrals, their outcomes and the help given",
        SUBSCRIBE: SUBSCRIBE_DESCRIPTION,
    },
)

can_read = security.require(READ)
can_write = security.require(WRITE)
signed_in = security.require()  # the route itself decides between staff and partner scopes

# The caller, as a route's first parameter (so the token is checked before a database session opens).
CanRead = Annotated[Principal, can_read]
CanWrite = Annotated[Principal, can_write]
SignedIn = Annotated[Principal, signed_in]
