"""The assessment service's OAuth 2.0 scopes: one security scheme shared by all its routes."""

from typing import Annotated

from shared.app import service_security
from shared.auth import Principal
from shared.webhooks.routes import SUBSCRIBE, SUBSCRIBE_DESCRIPTION

READ = "assessment:read"
WRITE = "assessment:write"

security = service_security(
    "assessment",
    {
        READ: "Read indicator sets, assessments and MPI figures in the token's areas",
        SUBSCRIBE: SUBSCRIBE_DESCRIPTION,
        WRITE: "Record assessments (one household or a CSV file) in the token's areas",
    },
)

can_read = security.require(READ)
can_write = security.require(WRITE)

# The caller, as a route's first parameter (so the token is checked before a database session opens).
CanRead = Annotated[Principal, can_read]
CanWrite = Annotated[Principal, can_write]
