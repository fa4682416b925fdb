"""Authentication and authorisation: OAuth 2.0 client-credentials JWTs, scopes and DOPA area claims."""

from shared.auth.keys import jwk_thumbprint, public_jwk
from shared.auth.principal import Principal, area_clause, ensure_area, is_area_claim
from shared.auth.security import ServiceSecurity, install_auth, make_security
from shared.auth.token_endpoint import JWKS_PATH, TOKEN_URL, token_router
from shared.auth.tokens import TokenVerifier, invalid_token, issue_token

__all__ = [
    "JWKS_PATH",
    "TOKEN_URL",
    "Principal",
    "ServiceSecurity",
    "TokenVerifier",
    "area_clause",
    "ensure_area",
    "install_auth",
    "invalid_token",
    "is_area_claim",
    "issue_token",
    "jwk_thumbprint",
    "make_security",
    "public_jwk",
    "token_router",
]
