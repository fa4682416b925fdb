"""Issuing and verifying RS256 JWT access tokens (claims: iss, aud, sub, exp, scope, areas)."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError
from starlette.concurrency import run_in_threadpool

from shared.auth.keys import jwk_thumbprint, load_private_key, load_public_key
from shared.auth.principal import Principal, is_area_claim
from shared.errors import ServiceUnavailable, Unauthorized
from shared.ids import new_uuid4
from shared.settings import AuthSettings

# Our tokens name the client twice: `sub` (what every verifier reads) and `client_id` (RFC 9068).
# The agency a client acts for travels in its own claim so `sub` stays the client id.
ON_BEHALF_OF_CLAIM = "on_behalf_of"

# First match wins, so subclasses (InvalidSignatureError is a DecodeError) come before their parents.
_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "The access token has expired."),
    (jwt.InvalidAudienceError, "The access token was issued for another audience."),
    (jwt.InvalidIssuerError, "The access token was not issued by the trusted issuer."),
    (jwt.InvalidSignatureError, "The access token signature is invalid."),
    (jwt.ImmatureSignatureError, "The access token is not valid yet."),
    (jwt.InvalidIssuedAtError, "The access token has an invalid iat claim."),
    (InvalidSubjectError, "The access token has an invalid sub claim."),
    (jwt.InvalidAlgorithmError, "The access token uses an algorithm that is not allowed."),
    (jwt.DecodeError, "The access token is malformed."),
    (jwt.PyJWKClientError, "The access token is signed by a key the issuer does not publish."),
    (jwt.PyJWTError, "The access token is invalid."),
)


def invalid_token(detail: str) -> Unauthorized:
    """An RFC 6750 invalid_token 401 problem with the matching WWW-Authenticate challenge."""
    # error_description may not hold quotes or backslashes (RFC 6750 §3).
    description = detail.replace("\\", "").replace('"', "'")
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return Unauthorized(detail, headers={"WWW-Authenticate": challenge})


def issue_token(
    settings: AuthSettings,
    *,
    client_id: str,
    scopes: list[str],
    areas: list[str],
    ttl_s: int | None = None,
    subject: str | None = None,
) -> str:
    """Sign an access token for `client_id` with the configured private key."""
    if settings.private_key_pem is None:
        raise RuntimeError("no signing key: set KAENKHUN_AUTH_PRIVATE_KEY_PEM to issue tokens")
    bad_areas = [a for a in areas if not is_area_claim(a)]
    if bad_areas:
        raise ValueError(f"areas must be '*' or 2/4/6/8-digit DOPA codes, got {bad_areas}")
    bad_scopes = [s for s in scopes if not s or any(c.isspace() for c in s)]
    if bad_scopes:
        raise ValueError(f"scopes must be non-empty and without spaces, got {bad_scopes}")
    private_key = load_private_key(settings.private_key_pem.get_secret_value())
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": client_id,
        "client_id": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + (settings.token_ttl_s if ttl_s is None else ttl_s),
        "jti": new_uuid4(),
        "scope": " ".join(scopes),
        "areas": list(areas),
    }
    if subject is not None:
        claims[ON_BEHALF_OF_CLAIM] = subject
    # kid lets JWKS verifiers pick the key; typ marks a JWT access token (RFC 9068 §2.1).
    headers = {"kid": jwk_thumbprint(private_key.public_key()), "typ": "at+jwt"}
    return jwt.encode(claims, private_key, algorithm=settings.algorithm, headers=headers)


class TokenVerifier:
    """Verifies bearer tokens against a configured PEM public key or, failing that, a JWKS URL.

    A partner sends the same token with every request for its lifetime, and checking an RS256 signature costs
    more than the rest of a small request: a token that passed is remembered (`CACHED_TOKENS` of them, the
    oldest forgotten first) with what it grants, and taken at its word again until it expires — or, at most
    `CACHE_S` after it was checked, so that a signing key withdrawn from the issuer's JWKS stops working as
    soon as the key set is fetched again. Only tokens that passed every check are kept, by their exact text.
    """

    CACHED_TOKENS = 4096
    CACHE_S = 300.0  # the JWKS client's own lifespan for a key set

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._jwks: jwt.PyJWKClient | None = None
        # A pinned PEM wins over JWKS: it needs no network and cannot be swapped by whoever serves the URL.
        self._public_key = load_public_key(settings.public_key_pem) if settings.public_key_pem else None
        if self._public_key is None:
            if not settings.jwks_url:
                raise ValueError("auth needs public_key_pem or jwks_url to verify tokens")
            # cache_keys keeps keys by kid; the JWK set itself is re-fetched at most every 5 minutes.
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=10)

    @property
    def uses_jwks(self) -> bool:
        """True if keys come from a JWKS URL (verification may then do network I/O)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Check signature, iss, aud, exp (with leeway) and claim shapes; raise Unauthorized otherwise."""
        held = self._cached(token)
        if held is not None:
            return held
        now = time.time()
        principal, exp = self._verify(token)
        self._verified[token] = (min(exp + self._settings.leeway_s, now + self.CACHE_S), principal)
        while len(self._verified) > self.CACHED_TOKENS:  # JWKS verification runs in threads: no KeyError races
            with contextlib.suppress(KeyError):
                self._verified.popitem(last=False)
        return principal

    def _cached(self, token: str) -> Principal | None:
        held = self._verified.get(token)
        if held is None:
            return None
        if time.time() < held[0]:
            return held[1]
        self._verified.pop(token, None)
        return None

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The principal of a token that passes every check, and its expiry (epoch seconds)."""
        settings = self._settings
        try:
            key: Any = self._public_key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            _check_type_and_lifetime(token, claims, settings)
        except jwt.PyJWKClientConnectionError as exc:
            # Our failure to reach the issuer is not the caller's fault: 503, not 401.
            raise ServiceUnavailable(
                "Cannot fetch the token issuer's signing keys; try again later."
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise invalid_token(f"The access token lacks the required {exc.claim} claim.") from exc
        except _TypeOrLifetimeError as exc:
            raise invalid_token(str(exc)) from exc
        except (jwt.PyJWTError, ValueError) as exc:
            detail = next(
                (msg for kind, msg in _FAILURES if isinstance(exc, kind)), "The access token is invalid."
            )
            raise invalid_token(detail) from exc
        return _principal_from_claims(claims), float(claims["exp"])

    async def verify_async(self, token: str) -> Principal:
        """Like verify, but moves a possible JWKS fetch off the event loop."""
        if self._jwks is not None and self._cached(token) is None:
            return await run_in_threadpool(self.verify, token)
        return self.verify(token)


# RFC 9068 access tokens say `at+jwt`; plain `JWT` is what most issuers write. Any other type (an ID token, a
# logout token, a signed request…) is not an access token, even when its signature and claims would pass.
ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})


class _TypeOrLifetimeError(jwt.InvalidTokenError):
    """A token of another type, or one that lives longer than this deployment allows."""


def _check_type_and_lifetime(token: str, claims: dict[str, Any], settings: AuthSettings) -> None:
    typ = jwt.get_unverified_header(token).get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
        raise _TypeOrLifetimeError("The access token is of another type (typ) than an access token.")
    now = time.time()
    exp = claims["exp"]
    iat = claims.get("iat")
    issued = iat if isinstance(iat, int | float) and iat <= now + settings.leeway_s else now
    if exp - issued > settings.max_token_lifetime_s + settings.leeway_s:
        raise _TypeOrLifetimeError(f"The access token lives longer than the {settings.max_token_lifetime_s} s this "
                             "deployment allows.")


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise invalid_token("The access token has an invalid sub claim.")
    scope = claims.get("scope", "")
    # OAuth says a space-separated string; some issuers send a list, which means the same thing.
    if isinstance(scope, str):
        scopes = scope.split()
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = scope
    else:
        raise invalid_token("The access token has a malformed scope claim.")
    areas = claims.get("areas", [])
    # A missing areas claim grants no area at all (fail closed), never every area.
    if not isinstance(areas, list) or not all(is_area_claim(a) for a in areas):
        raise invalid_token("The access token has a malformed areas claim.")
    subject = claims.get(ON_BEHALF_OF_CLAIM)
    if subject is not None and not isinstance(subject, str):
        raise invalid_token(f"The access token has a malformed {ON_BEHALF_OF_CLAIM} claim.")
    return Principal(client_id=sub, scopes=frozenset(scopes), areas=frozenset(areas), subject=subject)
