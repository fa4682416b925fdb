"""The auth tests' own app, for tests/platform/test_principal.py, test_tokens.py, test_scopes.py and
test_token_endpoint.py: shared/auth installed on a tiny FastAPI app (two households routes, one area route), settings
with the development key pair and two known clients, tokens for them, and the checks of a 401 or 403 answer.
Its fixtures (`settings`, `client`) are in fixtures/auth.py.

Not the services' settings and tokens: those are apps.py's `make_settings` and `bearer`.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr

from shared.auth import Principal, ensure_area, install_auth, issue_token, make_security
from shared.errors import PROBLEM_JSON, install_problem_handlers
from shared.settings import AuthSettings, OAuthClient

SCOPES = {"households:read": "Read households", "households:write": "Create and edit households"}
security = make_security(SCOPES)

FIELD_SECRET = "field-secret-0123456789"
ADMIN_SECRET = "admin-secret-0123456789"


def make_settings(**overrides: Any) -> AuthSettings:
    """Settings with the development key pair and two known clients."""
    clients = {
        "field-app": OAuthClient(
            secret=SecretStr(FIELD_SECRET),
            scopes=["households:read"],
            areas=["4001"],
            subject="dsdw-khon-kaen",
        ),
        "admin": OAuthClient(secret=SecretStr(ADMIN_SECRET), scopes=["*"], areas=["*"]),
    }
    return AuthSettings(clients=clients, **overrides)


def build_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI(title="auth-test")
    install_problem_handlers(app)
    install_auth(app, settings)

    @app.get("/households")
    async def list_households(
        principal: Annotated[Principal, security.require("households:read")],
    ) -> dict[str, Any]:
        return {"client_id": principal.client_id, "subject": principal.subject}

    @app.post("/households")
    async def create_household(
        principal: Annotated[Principal, security.require("households:write")],
    ) -> dict[str, str]:
        return {"created_by": principal.client_id}

    @app.get("/areas/{code}/households")
    async def households_in_area(
        code: str, principal: Annotated[Principal, security.require("households:read")]
    ) -> dict[str, str]:
        ensure_area(principal, code)
        return {"area": code}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(settings: AuthSettings, *, scopes: list[str], areas: list[str], **kwargs: Any) -> str:
    return issue_token(settings, client_id="field-app", scopes=scopes, areas=areas, **kwargs)


def other_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body
