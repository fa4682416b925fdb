"""Helpers for the assistance tests: partner agencies."""

from __future__ import annotations

from typing import Any

from tests.kit.assistance import Assistance

HOSPITAL = "โรงพยาบาลขอนแก่น"


async def partner(assistance: Assistance, name: str = HOSPITAL, *, sector: str = "government",
                  areas: list[str] | None = None, client_id: str | None = None) -> dict[str, Any]:
    created = await assistance.client.post("/v1/partners", json={
        "name": name, "sector": sector, "areas": areas or ["40"], "client_id": client_id}, headers=assistance.admin)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body
