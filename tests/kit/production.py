"""Production as an operator configures it: the keys and secrets README.md, "Configuration", says to supply
(what docker-compose.yml's `.env` or the Kubernetes Secret holds), and a process environment of only a
container's variables, so that no setting of this machine leaks into a check of what the container gets."""

from __future__ import annotations

import base64
import json
import os
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def production_secrets() -> dict[str, str]:
    """What an operator puts in `.env` for production (the comment at the top of docker-compose.yml)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "KAENKHUN_ENV": "production",
        "KAENKHUN_AUTH_PRIVATE_KEY_PEM": private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        "KAENKHUN_AUTH_PUBLIC_KEY_PEM": private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "KAENKHUN_AUTH_ISSUER": "https://kaenkhun.example.go.th",
        "KAENKHUN_AUTH_CLIENTS": json.dumps({"khon-kaen-staff": {"secret": secrets.token_urlsafe(24),
                                                                 "scopes": ["*"], "areas": ["40"]}}),
        "KAENKHUN_PII_ENCRYPTION_KEYS": json.dumps({"k1": _key()}),
        "KAENKHUN_PII_ACTIVE_KEY_ID": "k1",
        "KAENKHUN_PII_HASH_KEY": _key(),
        "KAENKHUN_ASSISTANCE_MINISTRY_WEBHOOK_SECRETS": json.dumps(["whsec_" + _key()]),
        "KAENKHUN_REPORTING_PUBLIC_AREAS": '["40"]',
        "KAENKHUN_BI_PASSWORD": secrets.token_urlsafe(16),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
    }


def only_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    """The process environment is the container's: no setting of this machine leaks into the check."""
    for name in list(os.environ):
        if name.startswith(("KAENKHUN_", "KAFKA_", "POSTGRES_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
