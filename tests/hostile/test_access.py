"""Access a client may try to take: fields it may not set (mass assignment), keys it points a token at (SSRF
and forged tokens by `jku`/`x5u`/`jwk`), the `none` algorithm."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services import SERVICES, load
from tests.hostile.openapi import json_bodies, nodes
from tests.kit.apps import make_settings, problem
from tests.kit.registry import Registry, household, person

BOTH = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_request_body_takes_fields_it_does_not_declare(service: str, tmp_path: Any) -> None:
    """Every JSON request body of the service refuses unknown fields (`additionalProperties: false`), so a
    client cannot set `id`, `version`, `status`, `created_by` or anything else the server decides."""
    settings = make_settings(service, f"sqlite+aiosqlite:///{tmp_path / 'db'}", "127.0.0.1:1", run_bus=False)
    doc = load(service).create_app(settings).openapi()
    open_ = [f"{method} {template}: body.{'.'.join(path)}"
             for method, template, _, schema in json_bodies(doc) for path, node in nodes(doc, schema)
             if node.get("type") == "object" and node.get("additionalProperties") is not False
             and not isinstance(node.get("additionalProperties"), dict) and "patternProperties" not in node]
    assert not open_, "\n".join(open_)


@BOTH
async def test_server_decided_fields_cannot_be_set(registry: Registry) -> None:
    body = household(person(registry.cid())) | {"id": "01a00000-0000-7000-8000-000000000000", "version": 9,
                                                 "status": "closed"}
    refused = problem(await registry.register(body), 422)
    assert {e["field"] for e in refused["errors"]} == {"body.id", "body.version", "body.status"}


async def test_a_body_with_eighty_thousand_unknown_keys_gets_a_short_answer(registry: Registry) -> None:
    """Every way a body fails is not listed: the first 100 are, with how many more there were (a 7 MB 422 for
    80,000 unknown keys before)."""
    body = household(person(registry.cid())) | {f"k{n}": 0 for n in range(80_000)}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) < 1_048_576
    response = await registry.client.post("/v1/households", content=raw,
                                          headers=registry.admin | {"Content-Type": "application/json"})
    refused = problem(response, 422)
    assert len(refused["errors"]) == 100 and refused["errors_omitted"] == 79_900
    assert "79,900 more" in refused["detail"] and len(response.content) < 20_000


def _attacker_key() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, public | {"kid": "attacker"}


@BOTH
async def test_a_token_cannot_point_at_its_own_keys(registry: Registry) -> None:
    """A token signed by someone else's key is refused even when its header says where to fetch that key
    (`jku`, `x5u`) or carries it (`jwk`), and nothing is fetched; `alg: none` is refused."""
    fetched: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fetched.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key, jwk = _attacker_key()
    settings = registry.app.state.settings.auth
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": "attacker", "scope": "*", "areas": ["*"],
              "exp": int(time.time()) + 300}
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    headers = ({"jku": f"http://127.0.0.1:{port}/jwks.json", "kid": "attacker"},
               {"x5u": f"http://127.0.0.1:{port}/cert.pem", "kid": "attacker"},
               {"jwk": jwk, "kid": "attacker"})
    try:
        for header in headers:
            token = jwt.encode(claims, pem, algorithm="RS256", headers=header)
            response = await registry.client.get("/v1/households", headers={"Authorization": f"Bearer {token}"})
            problem(response, 401)
        unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                            for part in ({"alg": "none", "typ": "JWT"}, claims)) + "."
        problem(await registry.client.get("/v1/households", headers={"Authorization": f"Bearer {unsigned}"}), 401)
        await asyncio.sleep(0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert fetched == []
