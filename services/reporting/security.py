"""The reporting service's OAuth 2.0 scopes: one security scheme shared by all its routes."""

from shared.app import service_security

READ = "reporting:read"
DETAIL = "reporting:detail"

security = service_security(
    "reporting",
    {
        READ: "Read reports of the token's areas, small counts suppressed",
        DETAIL: "See small counts too (1 to 4 households or persons) — for staff entitled to detail",
    },
)

can_read = security.require(READ)
