"""Operation scopes: a missing scope is 403 naming it, the OpenAPI document declares the client-credentials flow
and each operation's scopes, and only declared scopes can be required."""

from __future__ import annotations

import httpx
import pytest

from shared.auth import TOKEN_URL
from shared.settings import AuthSettings
from tests.kit.auth import SCOPES, assert_problem, bearer, build_app, security, token_for


async def test_missing_scope_is_403_naming_it(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["40"])
    response = await client.post("/households", headers=bearer(token))
    body = assert_problem(response, 403)
    assert "households:write" in body["detail"]
    assert body["missing_scopes"] == ["households:write"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    # The same token is fine where its scope suffices.
    assert (await client.get("/households", headers=bearer(token))).status_code == 200


def test_openapi_declares_client_credentials_flow_and_operation_scopes(settings: AuthSettings) -> None:
    document = build_app(settings).openapi()
    scheme = document["components"]["securitySchemes"]["OAuth2ClientCredentials"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == TOKEN_URL
    assert flow["scopes"] == SCOPES
    assert document["paths"]["/households"]["get"]["security"] == [
        {"OAuth2ClientCredentials": ["households:read"]}
    ]
    assert document["paths"]["/households"]["post"]["security"] == [
        {"OAuth2ClientCredentials": ["households:write"]}
    ]
    assert "security" not in document["paths"][TOKEN_URL]["post"]
    form = document["paths"][TOKEN_URL]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert "grant_type" in form["schema"]["properties"]


def test_require_refuses_undeclared_scopes() -> None:
    with pytest.raises(ValueError, match="not declared"):
        security.require("budgets:approve")
