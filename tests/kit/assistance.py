"""The assistance service as tests drive it (the `assistance` fixture's object): households announced as registry
and assessment would, budgets, signed pushes, batch items."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from services.assistance.models import outbox
from services.assistance.settings import AssistanceSettings
from shared import webhooks
from shared.events.assessment import ASSESSMENT_RECORDED
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.pii import CitizenIdProtector
from tests.kit.apps import bearer, deliver, outbox_events
from tests.kit.registry import citizen_id

ALL = ("assistance:read", "assistance:write")
PAID_ON = "2022-01-27"  # the kick-off in Khon Kaen, FY 2565


@dataclass
class Assistance:
    client: httpx.AsyncClient
    settings: AssistanceSettings
    app: Any
    rng: random.Random

    def as_(self, *scopes: str, areas: tuple[str, ...] = ("*",), client_id: str = "test-client") -> dict[str, str]:
        return bearer(self.settings.auth, *scopes, areas=areas, client_id=client_id)

    @property
    def admin(self) -> dict[str, str]:
        return self.as_(*ALL)

    async def household(self, *, sources: tuple[str, ...] = ("tpmap",), target_poor: bool | None = True,
                        village: str = "40010103", status: str = "open", version: int = 1,
                        household_id: str | None = None) -> tuple[str, str]:
        """Announce a household of one (registry event, then its assessment); returns (id, citizen ID)."""
        household_id = household_id or new_id()
        cid = citizen_id(self.rng)
        protector = CitizenIdProtector(self.settings.pii)
        await deliver(self.app, HOUSEHOLD_REGISTERED, {
            "household_id": household_id, "version": version, "status": status, "province_code": village[:2],
            "district_code": village[:4], "subdistrict_code": village[:6], "village_no": int(village[6:]),
            "village_code": village, "sources": list(sources), "welfare_card": True, "team_id": None,
            "members": [{"member_id": new_id(), "citizen_id_hash": protector.hash(cid), "sex": "female",
                         "birth_date": "1970-05-01", "relation": "head", "disability": False}]})
        if target_poor is not None:
            await self.assess(household_id, target_poor, village=village)
        return household_id, cid

    async def assess(self, household_id: str, target_poor: bool, *, survey_year: int = 2565, revision: int = 1,
                     village: str = "40010103") -> None:
        await deliver(self.app, ASSESSMENT_RECORDED, {
            "assessment_id": new_id(), "household_id": household_id, "survey_year": survey_year,
            "revision": revision, "surveyed_on": "2022-01-15", "indicator_set": "tpmap-2560",
            "indicator_set_version": 1, "province_code": village[:2], "district_code": village[:4],
            "subdistrict_code": village[:6], "village_code": village,
            "dimensions": {"income": target_poor}, "indicators": {}, "score": "1/4" if target_poor else "0",
            "score_value": 0.25 if target_poor else 0, "poor": False, "severity": "vulnerable",
            "target_poor": target_poor, "welfare_card": True, "member_count": 1})

    async def budget(self, amount: Any, *, area: str = "40", programme: str = "family_grant",
                     fiscal_year: int = 2565) -> httpx.Response:
        return await self.client.put(f"/v1/budgets/{programme}/{fiscal_year}/{area}", json={"amount": amount},
                                     headers=self.admin)

    def batch(self, items: list[dict[str, Any]], *, batch_ref: str | None = None, **fields: Any) -> dict[str, Any]:
        return {"batch_ref": batch_ref or f"MSDHS-{new_id()[-12:]}", "programme": "family_grant",
                "fiscal_year": 2565, "paid_on": PAID_ON, "items": items} | fields

    async def push(self, body: dict[str, Any] | bytes, *, key: str | None = "default-key",
                   secrets: list[str] | None = None, timestamp: int | None = None,
                   tamper: bool = False, url: str = "/v1/disbursement-batches") -> httpx.Response:
        """POST a body the way the ministry does: signed (Standard Webhooks) with an Idempotency-Key."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signing = secrets or [s.get_secret_value() for s in self.settings.ministry_webhook_secrets]
        headers = webhooks.signed_headers(signing, f"msg_{new_id()}", raw, timestamp)
        if key is not None:
            headers["Idempotency-Key"] = key
        sent = raw.replace(b"0.00", b"1.00", 1) if tamper else raw  # one amount changed after signing
        return await self.client.post(url, content=sent, headers=headers | {"Content-Type": "application/json"})

    async def remaining(self, area: str = "40") -> Decimal:
        response = await self.client.get(f"/v1/budgets/family_grant/2565/{area}", headers=self.admin)
        assert response.status_code == 200, response.text
        return Decimal(response.json()["remaining"])

    async def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        return await outbox_events(self.app, outbox)


def item(ref: str, *, cid: str | None = None, household_id: str | None = None, amount: Any = "3000.00",
         ) -> dict[str, Any]:
    return {"item_ref": ref, "amount": amount} | ({"citizen_id": cid} if cid else {"household_id": household_id})

