"""The assistance service's OAuth 2.0 scopes: one security scheme shared by all its routes.

The ministry's pushes are not authenticated by a token but by their Standard Webhooks signature."""

from shared.app import service_security

READ = "assistance:read"
WRITE = "assistance:write"

security = service_security(
    "assistance",
    {
        READ: "Read programmes, budgets, batches and payments in the token's areas",
        WRITE: "Set budgets and reverse payments in the token's areas",
    },
)

can_read = security.require(READ)
can_write = security.require(WRITE)
