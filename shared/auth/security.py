"""FastAPI wiring: the OAuth 2.0 client-credentials security scheme, scope checks and install_auth."""

# No `from __future__ import annotations`: FastAPI must resolve the closure's Depends(scheme) annotation
# at runtime, and a string annotation naming a local variable cannot be resolved.
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from shared.auth.principal import Principal
from shared.auth.token_endpoint import TOKEN_URL, token_router
from shared.auth.tokens import TokenVerifier, invalid_token
from shared.errors import Forbidden, Unauthorized
from shared.guards import limit_address, limit_client
from shared.settings import AuthSettings

SCHEME_NAME = "OAuth2ClientCredentials"


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: when no usable credentials were sent, the challenge carries no error code.
        raise Unauthorized(
            "An access token is required: send Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": 'Bearer realm="kaenkhun"'},
        )
    token = token.strip()
    if not token or " " in token:
        raise invalid_token("The access token is malformed.")
    return token


def _verifier(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("install_auth(app, settings) was not called for this app")
    return verifier  # type: ignore[no-any-return]


class ServiceSecurity:
    """A service's OAuth 2.0 client-credentials scheme; `require(*scopes)` guards an operation."""

    def __init__(self, scopes: dict[str, str], *, token_url: str = TOKEN_URL) -> None:
        self.scopes = dict(scopes)
        # auto_error=False: we raise our own problem+json 401 instead of FastAPI's plain one.
        self.scheme = OAuth2(
            flows=OAuthFlows(
                clientCredentials=OAuthFlowClientCredentials(tokenUrl=token_url, scopes=self.scopes)
            ),
            scheme_name=SCHEME_NAME,
            description="Client-credentials bearer JWT; its `areas` claim limits the DOPA areas.",
            auto_error=False,
        )
        scheme = self.scheme

        async def principal(
            request: Request,
            security_scopes: SecurityScopes,
            authorization: Annotated[str | None, Depends(scheme)],
        ) -> Principal:
            """The verified caller, holding every scope that this operation's Security() entries ask for."""
            try:
                who = await _verifier(request).verify_async(_bearer_token(authorization))
            except Unauthorized:
                if authorization:  # guessed and forged tokens count against the address (no token: already)
                    await limit_address(request)
                raise
            await limit_client(request, who.client_id)
            missing = who.missing_scopes(security_scopes.scopes)
            if missing:
                needed = " ".join(security_scopes.scopes)
                raise Forbidden(
                    f"This operation needs the scope(s) {', '.join(missing)}, which the token lacks.",
                    headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
                    missing_scopes=missing,
                )
            # Logging and audit middleware read the caller from here.
            request.state.principal = who
            return who

        self._principal = principal

    async def authenticate(self, request: Request, security_scopes: SecurityScopes,
                           authorization: str | None) -> Principal:
        """What `require` does, for a dependency of a service's own that wraps it."""
        who: Principal = await self._principal(request, security_scopes, authorization)
        return who

    def require(self, *scopes: str) -> Any:
        """A Security() dependency yielding the Principal; 401 without a valid token, 403 without `scopes`."""
        undeclared = [s for s in scopes if s not in self.scopes]
        if undeclared:
            # Fail at import time: an undeclared scope would be missing from the OpenAPI flow.
            raise ValueError(f"scopes not declared in make_security(): {undeclared}")
        return Security(self._principal, scopes=list(scopes))


def make_security(scopes: dict[str, str], *, token_url: str = TOKEN_URL) -> ServiceSecurity:
    """The security scheme for a service that uses `scopes` (name -> description)."""
    return ServiceSecurity(scopes, token_url=token_url)


def install_auth(app: FastAPI, settings: AuthSettings) -> None:
    """Give `app` its token verifier and, if a signing key is configured, the token and JWKS endpoints."""
    app.state.token_verifier = TokenVerifier(settings)
    app.state.auth_settings = settings
    if settings.private_key_pem is not None:
        app.include_router(token_router(settings))
