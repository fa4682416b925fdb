"""RSA key loading and JWK helpers (RFC 7517 keys, RFC 7638 thumbprints used as `kid`)."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# Parsing a PEM (and RSA key validation) costs milliseconds; settings hold the same PEM for the app's life.
@lru_cache(maxsize=8)
def load_private_key(pem: str) -> RSAPrivateKey:
    """Parse an RSA private key from PEM."""
    key = load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    return key


@lru_cache(maxsize=8)
def load_public_key(pem: str) -> RSAPublicKey:
    """Parse an RSA public key from PEM."""
    key = load_pem_public_key(pem.encode())
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the verification key must be an RSA public key")
    return key


def jwk_thumbprint(public_key: RSAPublicKey) -> str:
    """The RFC 7638 SHA-256 thumbprint of an RSA public key, base64url without padding."""
    numbers = public_key.public_numbers()
    # RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(public_key: RSAPublicKey, *, algorithm: str = "RS256") -> dict[str, Any]:
    """The public key as a signing JWK with its thumbprint as `kid`."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": algorithm,
        "kid": jwk_thumbprint(public_key),
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }
