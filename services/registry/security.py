"""The registry service's OAuth 2.0 scopes: one security scheme shared by all its routes."""

from typing import Annotated

from shared.app import service_security
from shared.auth import Principal
from shared.webhooks.routes import SUBSCRIBE, SUBSCRIBE_DESCRIPTION

READ = "registry:read"
WRITE = "registry:write"
LOOKUP = "registry:lookup"
PII_READ = "pii:read"
AUDIT_READ = "audit:read"
PARTNER = "registry:partner"

security = service_security(
    "registry",
    {
        READ: "Read households, members (IDs masked), areas and teams in the token's areas",
        SUBSCRIBE: SUBSCRIBE_DESCRIPTION,
        WRITE: "Change households, members, teams and assignments; with registry:lookup, register people "
               "(households, members, bulk imports)",
        LOOKUP: "Find the household of a citizen ID",
        PII_READ: "See citizen IDs unmasked (every such read is written to the audit log)",
        AUDIT_READ: "Read the personal-data audit log",
        PARTNER: "Act for the partner agency tied to this client (as assistance:partner does): read the contact of "
                 "a household while a referral addressed to the partner is open, every read audited with its "
                 "purpose; look up a citizen ID among those households only",
    },
)

# Dependencies for the routes (module-level, so FastAPI sees one object per requirement).
can_read = security.require(READ)
can_write = security.require(WRITE)
can_lookup = security.require(LOOKUP)
# Putting a citizen ID on the register tells whether it is on it already (anywhere: one open household per
# person), so registering people is a lookup too: it needs both scopes, and a conflict is audited.
can_register = security.require(WRITE, LOOKUP)
can_audit = security.require(AUDIT_READ)
can_act_for_partner = security.require(PARTNER)
signed_in = security.require()  # the lookup route decides between registry:lookup and registry:partner

# The caller, as a route's first parameter (so the token is checked before a database session opens).
CanRead = Annotated[Principal, can_read]
CanWrite = Annotated[Principal, can_write]
CanLookup = Annotated[Principal, can_lookup]
CanRegister = Annotated[Principal, can_register]
CanAudit = Annotated[Principal, can_audit]
CanActForPartner = Annotated[Principal, can_act_for_partner]
SignedIn = Annotated[Principal, signed_in]
