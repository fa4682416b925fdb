"""The built-in OAuth 2.0 client-credentials token endpoint (RFC 6749 §4.4) and its JWKS document."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth.keys import load_private_key, public_jwk
from shared.auth.principal import is_sensitive
from shared.auth.tokens import issue_token
from shared.settings import AuthSettings, OAuthClient

TOKEN_URL = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
_FORM_PARAMS = ("grant_type", "client_id", "client_secret", "scope")
# Tokens and errors about credentials must not sit in shared caches (RFC 6749 §5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


class OAuthErrorBody(BaseModel):
    """A token endpoint error (RFC 6749 §5.2); OAuth clients expect this shape, not problem+json."""

    error: Literal["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope"]
    error_description: str


class OAuthError(Exception):
    """A token request refused with an RFC 6749 §5.2 error code."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        """The error as the JSON body and headers RFC 6749 prescribes."""
        headers = dict(_NO_STORE)
        if self.status == 401:
            # §5.2: a 401 must carry a challenge for the client authentication scheme we accept.
            headers["WWW-Authenticate"] = 'Basic realm="kaenkhun", charset="UTF-8"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError(
            "invalid_client", "Client authentication must use HTTP Basic or form fields.", status=401
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "The Basic credentials are not valid base64.", status=401) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "The Basic credentials lack a client secret.", status=401)
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded.
    return unquote_plus(client_id), unquote_plus(secret)


async def _form_params(request: Request) -> dict[str, str]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded.")
    try:
        form = await request.form()
    except Exception as exc:  # the parser's errors vary by version; all mean a body we cannot read
        raise OAuthError("invalid_request", "The request body could not be parsed.") from exc
    params: dict[str, str] = {}
    for name in _FORM_PARAMS:
        values = form.getlist(name)
        # §3.2: request parameters must not be repeated.
        if len(values) > 1:
            raise OAuthError("invalid_request", f"The {name} parameter is repeated.")
        if values and isinstance(values[0], str) and values[0] != "":
            params[name] = values[0]
    return params


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


# Compared against when the client id is unknown, so a miss costs the same time as a hit.
_UNKNOWN_CLIENT_DIGEST = _digest("unknown-client-" + "x" * 32)


def _authenticate(
    settings: AuthSettings, request: Request, params: dict[str, str]
) -> tuple[str, OAuthClient]:
    basic = _basic_credentials(request)
    if basic is not None:
        if "client_secret" in params:
            raise OAuthError(
                "invalid_request", "Use one client authentication method, not Basic and form both."
            )
        if "client_id" in params and params["client_id"] != basic[0]:
            raise OAuthError(
                "invalid_request", "The client_id parameter does not match the Basic credentials."
            )
        client_id, secret = basic
    else:
        if "client_id" not in params or "client_secret" not in params:
            raise OAuthError("invalid_client", "Client authentication is required.", status=401)
        client_id, secret = params["client_id"], params["client_secret"]
    client = settings.clients.get(client_id)
    expected = _digest(client.secret.get_secret_value()) if client else _UNKNOWN_CLIENT_DIGEST
    # Comparing fixed-length digests in constant time leaks neither the secret nor its length.
    if not hmac.compare_digest(_digest(secret), expected) or client is None:
        raise OAuthError("invalid_client", "Client authentication failed.", status=401)
    return client_id, client


def _granted_scopes(client: OAuthClient, requested: str | None) -> list[str]:
    """What was asked for (within what the client may have); without `scope`, the client's scopes less the
    sensitive ones (pii:read, audit:read, admin), which are granted only by name."""
    if not requested:
        defaults = [s for s in client.scopes if not is_sensitive(s)]
        if not defaults:
            raise OAuthError("invalid_scope", "This client's scopes are granted only by name: ask for them in scope.")
        return defaults
    wanted = list(dict.fromkeys(requested.split()))  # dedupe, keep order
    if "*" in client.scopes:
        return wanted
    beyond = [s for s in wanted if s not in client.scopes]
    if beyond:
        raise OAuthError("invalid_scope", f"The client may not request: {' '.join(beyond)}.")
    return wanted


_TOKEN_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": [GRANT_CLIENT_CREDENTIALS]},
                        "client_id": {"type": "string", "description": "Or use HTTP Basic client auth."},
                        "client_secret": {"type": "string", "format": "password"},
                        "scope": {"type": "string", "description": (
                            "Space-separated; default: the client's scopes but pii:read, audit:read and "
                            "admin scopes, which are granted only by name.")},
                    },
                }
            }
        },
    }
}


def token_router(settings: AuthSettings) -> APIRouter:
    """A router with POST /oauth/token and GET /.well-known/jwks.json for the configured signing key."""
    if settings.private_key_pem is None:
        raise ValueError("the token endpoint needs a private key")
    signing_key = load_private_key(settings.private_key_pem.get_secret_value())
    jwks = {"keys": [public_jwk(signing_key.public_key(), algorithm=settings.algorithm)]}
    router = APIRouter(tags=["auth"])

    @router.post(
        TOKEN_URL,
        summary="Issue an access token (OAuth 2.0 client credentials)",
        openapi_extra=_TOKEN_REQUEST_BODY,
        response_model=TokenResponse,
        responses={400: {"model": OAuthErrorBody}, 401: {"model": OAuthErrorBody}},
    )
    async def token(request: Request) -> JSONResponse:
        """Exchange client credentials for a signed bearer token."""
        try:
            params = await _form_params(request)
            grant_type = params.get("grant_type")
            if grant_type is None:
                raise OAuthError("invalid_request", "The grant_type parameter is required.")
            if grant_type != GRANT_CLIENT_CREDENTIALS:
                raise OAuthError("unsupported_grant_type", "Only grant_type=client_credentials is supported.")
            client_id, client = _authenticate(settings, request, params)
            scopes = _granted_scopes(client, params.get("scope"))
        except OAuthError as refused:
            return refused.response()
        access_token = issue_token(
            settings, client_id=client_id, scopes=scopes, areas=client.areas, subject=client.subject
        )
        body = TokenResponse(
            access_token=access_token, expires_in=settings.token_ttl_s, scope=" ".join(scopes)
        )
        return JSONResponse(body.model_dump(), headers=_NO_STORE)

    @router.get(JWKS_PATH, summary="Public keys that verify this issuer's tokens (JWK Set)")
    async def jwks_document() -> JSONResponse:
        """The JWK Set holding the token signing key's public half."""
        return JSONResponse(jwks, headers={"Cache-Control": "public, max-age=300"})

    return router
