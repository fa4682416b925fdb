"""Token verification over HTTP (signature, issuer, audience, expiry, type, lifetime, claim shapes), a verifier
reading the issuer's JWKS, and issuing tokens."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from shared.auth import JWKS_PATH, Principal, TokenVerifier, issue_token
from shared.auth.keys import load_private_key, load_public_key
from shared.errors import Unauthorized
from shared.settings import AuthSettings
from tests.kit.auth import assert_problem, bearer, make_settings, other_key_pair, token_for


def assert_invalid_token(response: httpx.Response, detail_fragment: str) -> None:
    body = assert_problem(response, 401)
    assert detail_fragment in body["detail"]
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


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


def test_issue_token_rejects_malformed_areas(settings: AuthSettings) -> None:
    with pytest.raises(ValueError, match="DOPA"):
        issue_token(settings, client_id="c", scopes=["households:read"], areas=["4"])


def test_a_verified_token_is_taken_at_its_word_until_it_expires_and_no_longer() -> None:
    settings = make_settings()
    verifier = TokenVerifier(settings)
    token = token_for(settings, scopes=["households:read"], areas=["40"], ttl_s=-28)  # 1–2 s left in the leeway
    first = verifier.verify(token)
    assert verifier.verify(token) == first == Principal(client_id="field-app", scopes=frozenset({"households:read"}),
                                                        areas=frozenset({"40"}))
    time.sleep(2.5)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_is_checked_again_after_a_while_so_a_withdrawn_key_stops_it() -> None:
    settings = make_settings()
    verifier = TokenVerifier(settings)
    verifier.CACHE_S = 1.0
    token = token_for(settings, scopes=["households:read"], areas=["40"])
    verifier.verify(token)
    verifier._public_key = load_public_key(other_key_pair()[1])  # the issuer's key is withdrawn
    verifier.verify(token)  # still remembered
    time.sleep(1.5)
    with pytest.raises(Unauthorized, match="signature"):
        verifier.verify(token)
    # A token that failed is not remembered: it fails every time.
    with pytest.raises(Unauthorized, match="signature"):
        verifier.verify(token)
