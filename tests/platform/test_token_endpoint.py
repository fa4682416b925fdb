"""The token endpoint (OAuth 2.0 client credentials): tokens issued, credentials and scopes refused, default deny;
the JWKS it publishes and the key id; no endpoint without a signing key."""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest
from pydantic import SecretStr

from shared.auth import JWKS_PATH, TOKEN_URL, TokenVerifier, issue_token, jwk_thumbprint
from shared.settings import AuthSettings, OAuthClient
from tests.kit.auth import ADMIN_SECRET, FIELD_SECRET, bearer, build_app, other_key_pair


async def test_token_endpoint_issues_a_usable_token(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "field-app", "client_secret": FIELD_SECRET}
    response = await client.post(TOKEN_URL, data=form)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "households:read"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["areas"] == ["4001"]
    assert claims["on_behalf_of"] == "dsdw-khon-kaen"
    assert {"iss", "aud", "sub", "iat", "nbf", "exp", "jti"} <= claims.keys()

    protected = await client.get("/households", headers=bearer(body["access_token"]))
    assert protected.status_code == 200
    assert protected.json() == {"client_id": "field-app", "subject": "dsdw-khon-kaen"}
    inside = await client.get("/areas/400105/households", headers=bearer(body["access_token"]))
    assert inside.status_code == 200
    outside = await client.get("/areas/4002/households", headers=bearer(body["access_token"]))
    assert outside.status_code == 403


async def test_token_endpoint_accepts_http_basic_and_narrower_scope(client: httpx.AsyncClient) -> None:
    basic = base64.b64encode(f"admin:{ADMIN_SECRET}".encode()).decode()
    response = await client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "scope": "households:write"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert response.json()["scope"] == "households:write"
    assert (await client.post("/households", headers=bearer(token))).status_code == 200
    # Asked only for write, so read is not granted even though the client could have had it.
    assert (await client.get("/households", headers=bearer(token))).status_code == 403


async def test_a_token_asked_without_scope_gets_no_sensitive_scope() -> None:
    """Default deny: without `scope`, a client gets its scopes less pii:read, audit:read and admin scopes; those
    only by name. A client configured without areas gets none."""
    secret = SecretStr(FIELD_SECRET)
    settings = AuthSettings(clients={
        "officer": OAuthClient(secret=secret, scopes=["households:read", "pii:read", "audit:read", "x:admin"],
                               areas=["40"]),
        "root": OAuthClient(secret=secret, scopes=["*"], areas=["*"]),
        "auditor": OAuthClient(secret=secret, scopes=["audit:read"], areas=["40"]),
        "nowhere": OAuthClient(secret=secret, scopes=["households:read"]),
    })
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        async def token(client_id: str, scope: str | None = None) -> httpx.Response:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": FIELD_SECRET}
            return await client.post(TOKEN_URL, data=form | ({"scope": scope} if scope else {}))

        assert (await token("officer")).json()["scope"] == "households:read"
        assert (await token("officer", "households:read pii:read")).json()["scope"] == "households:read pii:read"
        root = (await token("root")).json()
        verified = TokenVerifier(settings).verify(root["access_token"])
        assert root["scope"] == "*" and verified.has_scope("households:read") and not verified.has_scope("pii:read")
        assert (await token("auditor")).json()["error"] == "invalid_scope"  # nothing left: ask by name
        assert (await token("auditor", "audit:read")).json()["scope"] == "audit:read"
        nowhere = (await token("nowhere")).json()
        assert jwt.decode(nowhere["access_token"], options={"verify_signature": False})["areas"] == []
        refused = await client.get("/areas/40/households", headers=bearer(nowhere["access_token"]))
        assert refused.status_code == 403


def test_production_refuses_a_client_without_areas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services import load
    from tests.kit.apps import make_settings as service_settings

    settings = service_settings("reporting", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", "127.0.0.1:1",
                                env="production")
    settings.auth.clients = {"x": OAuthClient(secret=SecretStr("a-real-secret-0123456789"), scopes=["*"])}
    settings.auth.private_key_pem = SecretStr(other_key_pair()[0])
    settings.auth.public_key_pem = None
    settings.auth.jwks_url = "https://issuer.example/jwks"
    with pytest.raises(RuntimeError, match="without areas"):
        load("reporting").create_app(settings)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("field-app", "wrong-secret"), ("no-such-client", FIELD_SECRET), ("field-app", "")],
)
async def test_token_endpoint_rejects_bad_credentials(
    client: httpx.AsyncClient, client_id: str, secret: str
) -> None:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = await client.post(TOKEN_URL, data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert "access_token" not in response.json()


async def test_token_endpoint_rejects_bad_basic_secret(client: httpx.AsyncClient) -> None:
    basic = base64.b64encode(b"field-app:nope").decode()
    response = await client.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_token_endpoint_rejects_unknown_grant(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "password", "client_id": "field-app", "client_secret": FIELD_SECRET}
    response = await client.post(TOKEN_URL, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    missing = await client.post(TOKEN_URL, data={"client_id": "field-app", "client_secret": FIELD_SECRET})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_token_endpoint_rejects_scope_beyond_the_client(client: httpx.AsyncClient) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "field-app",
        "client_secret": FIELD_SECRET,
        "scope": "households:read households:write",
    }
    response = await client.post(TOKEN_URL, data=form)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_scope"
    assert "households:write" in body["error_description"]


async def test_token_endpoint_requires_form_encoding(client: httpx.AsyncClient) -> None:
    payload = {"grant_type": "client_credentials", "client_id": "field-app", "client_secret": FIELD_SECRET}
    response = await client.post(TOKEN_URL, json=payload)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_jwks_key_verifies_an_issued_token(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    response = await client.get(JWKS_PATH)
    assert response.status_code == 200
    (jwk,) = response.json()["keys"]
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["alg"] == "RS256"
    assert "d" not in jwk  # public half only
    token = issue_token(settings, client_id="admin", scopes=["households:read"], areas=["40"])
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=settings.audience)
    assert claims["sub"] == "admin"
    assert claims["scope"] == "households:read"


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # The worked example of RFC 7638 §3.1.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    )
    key = jwt.PyJWK({"kty": "RSA", "n": n, "e": "AQAB"}, algorithm="RS256").key
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_no_token_endpoint_without_a_signing_key() -> None:
    _, public = other_key_pair()
    app = build_app(AuthSettings(public_key_pem=public))
    paths = {getattr(route, "path", None) for route in app.routes}
    assert TOKEN_URL not in paths and JWKS_PATH not in paths
