"""Auth: token verification, scopes, DOPA area claims, the token endpoint, JWKS and the OpenAPI scheme."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from shared.auth import (
    JWKS_PATH,
    TOKEN_URL,
    Principal,
    TokenVerifier,
    area_clause,
    ensure_area,
    install_auth,
    issue_token,
    jwk_thumbprint,
    make_security,
)
from shared.auth.keys import load_private_key
from shared.errors import PROBLEM_JSON, Unauthorized, install_problem_handlers
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


@pytest.fixture(scope="module")
def settings() -> AuthSettings:
    return make_settings()


@pytest.fixture
async def client(settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


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


def assert_invalid_token(response: httpx.Response, detail_fragment: str) -> None:
    body = assert_problem(response, 401)
    assert detail_fragment in body["detail"]
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# --- Principal and areas -------------------------------------------------------------------------


def test_principal_area_prefixes_cover_children_not_parents() -> None:
    principal = Principal(
        client_id="c", scopes=frozenset({"households:read"}), areas=frozenset({"40", "4001"})
    )
    assert principal.can_see("40")
    assert principal.can_see("4001")
    assert principal.can_see("40010101")
    assert not principal.can_see("41")
    assert not principal.can_see("")
    assert principal.area_prefixes() == ("40",)  # "4001" is already inside "40"

    district = Principal(client_id="c", areas=frozenset({"4001", "410101"}))
    assert not district.can_see("40")  # a district claim does not see the province as a whole
    assert district.can_see("400102")
    assert district.can_see("41010105")
    assert not district.can_see("410102")
    assert district.area_prefixes() == ("4001", "410101")


def test_principal_scopes_and_wildcards() -> None:
    reader = Principal(client_id="c", scopes=frozenset({"households:read"}))
    assert reader.has_scope("households:read")
    assert not reader.has_scope("households:write")
    assert reader.missing_scopes(["households:read", "households:write"]) == ["households:write"]
    assert reader.area_prefixes() == ()
    assert not reader.can_see("40")

    admin = Principal(client_id="a", scopes=frozenset({"*"}), areas=frozenset({"*"}))
    assert admin.has_scope("anything:at-all")
    assert admin.can_see("96")
    assert admin.area_prefixes() is None
    # "*" does not imply the sensitive scopes: they are held only by name.
    assert not any(admin.has_scope(s) for s in ("pii:read", "audit:read", "registry:admin", "reporting:admin"))
    named = Principal(client_id="a", scopes=frozenset({"*", "pii:read"}))
    assert named.has_scope("pii:read") and not named.has_scope("audit:read")


@pytest.mark.parametrize("bad_area", ["", "4", "400", "4001010101", "ab", "40*"])
def test_principal_rejects_malformed_area_claims(bad_area: str) -> None:
    # An empty string would be a prefix of every code: it must never become a claim.
    with pytest.raises(ValueError, match="DOPA"):
        Principal(client_id="c", areas=frozenset({bad_area}))


def test_area_clause_filters_rows_in_sqlite() -> None:
    metadata = MetaData()
    households = Table("households", metadata, Column("id", String, primary_key=True), Column("area", String))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rows = {"h1": "400101", "h2": "400102", "h3": "400201", "h4": "410101", "h5": "40010105", "h6": "500101"}
    with engine.begin() as conn:
        conn.execute(insert(households), [{"id": k, "area": v} for k, v in rows.items()])

    def visible(areas: set[str]) -> set[str]:
        principal = Principal(client_id="c", areas=frozenset(areas))
        query = select(households.c.id).where(area_clause(principal, households.c.area))
        with engine.connect() as conn:
            return set(conn.scalars(query))

    assert visible({"4001"}) == {"h1", "h2", "h5"}
    assert visible({"4001", "410101"}) == {"h1", "h2", "h4", "h5"}
    assert visible({"40"}) == {"h1", "h2", "h3", "h5"}
    assert visible({"40010105"}) == {"h5"}
    assert visible({"*"}) == set(rows)
    assert visible(set()) == set()
    engine.dispose()


def test_area_clause_refuses_a_plain_string() -> None:
    with pytest.raises(TypeError):
        area_clause(Principal(client_id="c", areas=frozenset({"40"})), "area")


# --- Token verification over HTTP ----------------------------------------------------------------


async def test_area_inside_the_claim_by_prefix_is_allowed(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["40"])
    for code in ("4001", "400101", "40010103"):
        response = await client.get(f"/areas/{code}/households", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {"area": code}


async def test_area_outside_the_claim_is_forbidden(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["4001"])
    for code in ("40", "4002", "410101"):
        body = assert_problem(await client.get(f"/areas/{code}/households", headers=bearer(token)), 403)
        assert code in body["detail"]
        assert body["type"].endswith("/forbidden")


async def test_missing_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/households")
    body = assert_problem(response, 401)
    assert "access token is required" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    # Another auth scheme counts as no usable token.
    response = await client.get("/households", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_problem(response, 401)


async def test_expired_token_is_401(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    # Well past the 30 s leeway.
    token = token_for(settings, scopes=["households:read"], areas=["40"], ttl_s=-120)
    assert_invalid_token(await client.get("/households", headers=bearer(token)), "expired")


async def test_token_within_leeway_is_accepted(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["40"], ttl_s=-5)
    assert (await client.get("/households", headers=bearer(token))).status_code == 200


async def test_wrong_audience_is_401(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    elsewhere = make_settings(audience="some-other-api")
    token = token_for(elsewhere, scopes=["households:read"], areas=["40"])
    assert_invalid_token(await client.get("/households", headers=bearer(token)), "audience")


async def test_wrong_issuer_is_401(client: httpx.AsyncClient) -> None:
    token = token_for(make_settings(issuer="someone-else"), scopes=["households:read"], areas=["40"])
    assert_invalid_token(await client.get("/households", headers=bearer(token)), "issuer")


async def test_token_signed_by_another_key_is_401(client: httpx.AsyncClient) -> None:
    private, public = other_key_pair()
    forger = make_settings(private_key_pem=SecretStr(private), public_key_pem=public)
    token = token_for(forger, scopes=["*"], areas=["*"])
    assert_invalid_token(await client.get("/households", headers=bearer(token)), "signature")


async def test_garbage_and_hmac_tokens_are_401(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    assert_invalid_token(await client.get("/households", headers=bearer("not-a-jwt")), "malformed")
    # Algorithm confusion: an HS256 token keyed with the public PEM must not pass as RS256.
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": "x", "exp": int(time.time()) + 60}
    hmac_token = jwt.encode(claims, "k" * 64, algorithm="HS256")
    assert_invalid_token(await client.get("/households", headers=bearer(hmac_token)), "algorithm")


async def test_token_without_exp_or_with_bad_areas_is_401(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    assert settings.private_key_pem is not None
    key = load_private_key(settings.private_key_pem.get_secret_value())
    base = {"iss": settings.issuer, "aud": settings.audience, "sub": "x", "scope": "households:read"}
    no_exp = jwt.encode({**base, "areas": ["40"]}, key, algorithm="RS256")
    assert_invalid_token(await client.get("/households", headers=bearer(no_exp)), "exp")
    # "" would prefix every code; a correctly signed token carrying it is still refused.
    empty_area = jwt.encode({**base, "areas": [""], "exp": int(time.time()) + 60}, key, algorithm="RS256")
    assert_invalid_token(await client.get("/households", headers=bearer(empty_area)), "areas")


async def test_missing_scope_is_403_naming_it(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["40"])
    response = await client.post("/households", headers=bearer(token))
    body = assert_problem(response, 403)
    assert "households:write" in body["detail"]
    assert body["missing_scopes"] == ["households:write"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    # The same token is fine where its scope suffices.
    assert (await client.get("/households", headers=bearer(token))).status_code == 200


async def test_jwks_url_verifier_uses_the_published_key(
    client: httpx.AsyncClient, settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwks = (await client.get(JWKS_PATH)).json()
    remote = AuthSettings(jwks_url="https://issuer.example/.well-known/jwks.json")
    assert remote.public_key_pem is None
    verifier = TokenVerifier(remote)
    assert verifier.uses_jwks
    fetched: list[str] = []

    def fake_fetch(self: jwt.PyJWKClient) -> Any:
        fetched.append(self.uri)
        return jwks

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fake_fetch)
    token = issue_token(settings, client_id="admin", scopes=["households:read"], areas=["40"])
    principal = await verifier.verify_async(token)
    assert principal == Principal(
        client_id="admin", scopes=frozenset({"households:read"}), areas=frozenset({"40"})
    )
    assert fetched == ["https://issuer.example/.well-known/jwks.json"]

    private, public = other_key_pair()
    forger = make_settings(private_key_pem=SecretStr(private), public_key_pem=public)
    forged = issue_token(forger, client_id="admin", scopes=["*"], areas=["*"])
    # Its kid is not among the issuer's keys.
    with pytest.raises(Unauthorized, match="key the issuer does not publish"):
        await verifier.verify_async(forged)


# --- Token endpoint ------------------------------------------------------------------------------


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


async def test_tokens_of_another_type_or_too_long_a_life_are_401(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    private = load_private_key(settings.private_key_pem.get_secret_value())  # type: ignore[union-attr]
    now = int(time.time())
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": "field-app", "scope": "households:read",
              "areas": ["40"], "iat": now}

    def signed(headers: dict[str, str], **extra: int) -> str:
        return jwt.encode(claims | {"exp": now + 600} | extra, private, algorithm="RS256", headers=headers)

    for typ in ("JWT", "at+jwt", "application/at+jwt"):
        assert (await client.get("/households", headers=bearer(signed({"typ": typ})))).status_code == 200
    assert (await client.get("/households", headers=bearer(signed({})))).status_code == 200  # typ is optional
    for typ in ("id_token+jwt", "logout+jwt", "secevent+jwt"):
        response = await client.get("/households", headers=bearer(signed({"typ": typ})))
        assert response.status_code == 401 and "another type" in response.json()["detail"]
    year = signed({"typ": "JWT"}, exp=now + 365 * 86_400)
    response = await client.get("/households", headers=bearer(year))
    assert response.status_code == 401 and "longer than" in response.json()["detail"]
    no_iat = jwt.encode({k: v for k, v in claims.items() if k != "iat"} | {"exp": now + 2 * 86_400}, private,
                        algorithm="RS256")
    assert (await client.get("/households", headers=bearer(no_iat))).status_code == 401


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


def test_issue_token_rejects_malformed_areas(settings: AuthSettings) -> None:
    with pytest.raises(ValueError, match="DOPA"):
        issue_token(settings, client_id="c", scopes=["households:read"], areas=["4"])


def test_no_token_endpoint_without_a_signing_key() -> None:
    _, public = other_key_pair()
    app = build_app(AuthSettings(public_key_pem=public))
    paths = {getattr(route, "path", None) for route in app.routes}
    assert TOKEN_URL not in paths and JWKS_PATH not in paths


# --- OpenAPI -------------------------------------------------------------------------------------


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
