"""The registry as tests drive it (the `registry` fixture's object), valid citizen IDs, request bodies."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from services.registry.models import outbox
from shared.pii import check_digit
from shared.settings import AuthSettings
from tests.kit.apps import bearer, outbox_events

ALL = ("registry:read", "registry:write", "registry:lookup", "pii:read", "audit:read")


def citizen_id(rng: random.Random, first: str = "1") -> str:
    """A random valid Thai citizen ID (check digit per the Interior Ministry's rule)."""
    body = first + "".join(str(rng.randrange(10)) for _ in range(11))
    return body + check_digit(body)


def person(cid: str, relation: str = "head", **overrides: Any) -> dict[str, Any]:
    values = {"citizen_id": cid, "title": "นาง", "first_name": "สมหญิง", "last_name": "ใจดี", "sex": "female",
              "birth_date": "1970-05-01", "relation": relation, "disability": False}
    return values | overrides


def household(*members: dict[str, Any], subdistrict: str = "400101", village_no: int = 3, **overrides: Any,
              ) -> dict[str, Any]:
    body = {"address": {"subdistrict_code": subdistrict, "village_no": village_no, "house_no": "12/3"},
            "sources": ["exclusion_error"], "welfare_card": True, "members": list(members)}
    return body | overrides


@dataclass
class Registry:
    client: httpx.AsyncClient
    auth: AuthSettings
    app: Any
    rng: random.Random

    def as_(self, *scopes: str, areas: tuple[str, ...] = ("*",), client_id: str = "test-client",
            ) -> dict[str, str]:
        return bearer(self.auth, *scopes, areas=areas, client_id=client_id)

    @property
    def admin(self) -> dict[str, str]:
        return self.as_(*ALL)

    def cid(self) -> str:
        return citizen_id(self.rng)

    async def register(self, body: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        body = body or household(person(self.cid()))
        response = await self.client.post("/v1/households", json=body, headers=kwargs.get("headers", self.admin))
        return response

    async def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(type, key, data) of every outbox row, in order."""
        return await outbox_events(self.app, outbox)
