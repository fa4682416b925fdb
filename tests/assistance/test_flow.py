"""Registry → Kafka → assessment → Kafka → assistance, for real (three apps, a real broker, real consumers):
a household registered and assessed as target poor is paid by citizen ID, and a household's whole story —
registered, assessed, visited, referred, helped by a partner, reassessed out of poverty — shows up in order on
its timeline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from services.assistance.models import outbox
from services.assistance.settings import AssistanceSettings
from shared import clock, migrations
from tests.kit.apps import bearer, make_settings, outbox_events, running, wait_ready
from tests.kit.assessment import MEASURED_OK, all_meet
from tests.kit.assistance import Assistance, item
from tests.kit.registry import citizen_id, household, person

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
NAMES = ("registry", "assessment", "assistance")


@dataclass
class Services:
    registry: httpx.AsyncClient
    assessment: httpx.AsyncClient
    assistance: Assistance
    settings: dict[str, Any]

    def as_(self, service: str, *scopes: str, client_id: str = "test-client") -> dict[str, str]:
        return bearer(self.settings[service].auth, *scopes, client_id=client_id)

    async def register(self, cid: str) -> str:
        created = await self.registry.post("/v1/households", json=household(person(cid, birth_date="1980-03-01")),
                                           headers=self.as_("registry", "registry:write", "registry:lookup"))
        assert created.status_code == 201, created.text
        household_id: str = created.json()["id"]
        return household_id

    async def assess(self, household_id: str, survey_year: int, surveyed_on: str, **answers: bool) -> dict[str, Any]:
        body = {"indicator_set": "tpmap-2560", "survey_year": survey_year, "surveyed_on": surveyed_on,
                "answers": all_meet(**answers), "measurements": MEASURED_OK}
        for _ in range(300):  # 409 until the registry's event reaches the assessment service
            scored = await self.assessment.post(f"/v1/households/{household_id}/assessments", json=body,
                                                headers=self.as_("assessment", "assessment:write"))
            if scored.status_code != 409:
                break
            await asyncio.sleep(0.1)
        assert scored.status_code == 201, scored.text
        result: dict[str, Any] = scored.json()
        return result


@asynccontextmanager
async def three_services(databases: ScratchDatabases, broker: LocalBroker) -> AsyncIterator[Services]:
    settings = {n: make_settings(n, await databases.new(n), broker.bootstrap_servers) for n in NAMES}
    apps = {n: load(n).create_app(settings[n]) for n in NAMES}
    async with running(apps["registry"]) as registry, running(apps["assessment"]) as assessment, \
            running(apps["assistance"]) as assistance:
        for n in NAMES:
            await migrations.upgrade(apps[n].state.engine, apps[n].state.spec.migrations_dir)
        for client in (registry, assessment, assistance):
            assert (await wait_ready(client)).status_code == 200
        assistance_settings: AssistanceSettings = settings["assistance"]
        yield Services(registry, assessment, Assistance(assistance, assistance_settings, apps["assistance"],
                                                        random.Random(1)), settings)


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy (an event has crossed the broker)."""
    for _ in range(300):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {found!r}")


async def test_a_family_registered_and_assessed_is_paid_by_citizen_id(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    async with three_services(databases, broker) as services:
        cid = citizen_id(random.Random(11))
        household_id = await services.register(cid)
        assert (await services.assess(household_id, 2565, "2022-01-15", housing=False))["target_poor"] is True

        assistance = services.assistance
        assert (await assistance.budget("3000.00")).status_code == 200
        outcome: dict[str, object] = {}
        for attempt in range(300):  # each try is a new batch: until both events have arrived
            pushed = await assistance.push(assistance.batch([item("1", cid=cid)]), key=f"flow-{attempt}")
            assert pushed.status_code == 201, pushed.text
            outcome = pushed.json()["items"][0]
            if outcome["status"] == "accepted":
                break
            assert outcome["reason"] in ("unknown_household", "not_eligible"), outcome
            await asyncio.sleep(0.1)
        assert outcome["status"] == "accepted" and outcome["household_id"] == household_id
        published = [(t, k) for t, k, _ in await outbox_events(assistance.app, outbox)
                     if t == "disbursement.recorded"]
        assert published == [("disbursement.recorded", household_id)]


async def test_a_households_whole_story_is_on_its_timeline(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    async with three_services(databases, broker) as services:
        assistance = services.assistance
        household_id = await services.register(citizen_id(random.Random(12)))
        first = await services.assess(household_id, 2565, "2022-01-15", housing=False)
        assert first["target_poor"] is True

        async def timeline() -> list[dict[str, Any]]:
            response = await assistance.client.get(f"/v1/households/{household_id}/timeline",
                                                   headers=assistance.admin)
            entries: list[dict[str, Any]] = response.json()["entries"] if response.status_code == 200 else []
            return entries

        async def types() -> list[str]:
            return [e["type"] for e in await timeline()]

        await until(lambda: _has(types, "household.poverty_status_changed"), "the first assessment's events")
        visit = await assistance.client.post(f"/v1/households/{household_id}/visits", headers=assistance.admin,
                                             json={"visited_on": "2022-02-03", "stage": "survive", "problems": [
                                                 {"dimension": "living", "indicator_code": "housing",
                                                  "description": "หลังคารั่ว ฝนตกน้ำเข้าบ้าน"}]})
        assert visit.status_code == 201, visit.text
        partner = await assistance.client.post("/v1/partners", headers=assistance.admin, json={
            "name": "องค์การบริหารส่วนตำบลศิลา", "sector": "government", "areas": ["4001"],
            "client_id": "sila-sao"})
        assert partner.status_code == 201, partner.text
        referral = await assistance.client.post(f"/v1/households/{household_id}/referrals", headers=assistance.admin,
                                                json={"dimension": "living", "action": "ซ่อมแซมหลังคาบ้าน",
                                                      "partner_id": partner.json()["id"], "due_on": "2022-06-30"})
        assert referral.status_code == 201, referral.text
        as_partner = assistance.as_("assistance:partner", client_id="sila-sao")
        url = f"/v1/referrals/{referral.json()['id']}"
        assert (await assistance.client.patch(url, json={"status": "in_progress"}, headers=as_partner)).is_success
        helped = await assistance.client.post(f"{url}/help", headers=as_partner | {"Idempotency-Key": "roof"}, json={
            "kind": "housing", "value": "12000.00", "given_on": clock.today().isoformat(),
            "notes": "เปลี่ยนหลังคาใหม่ทั้งหลัง"})
        assert helped.status_code == 201, helped.text
        assert (await assistance.client.patch(url, json={"status": "done", "note": "บ้านมั่นคงแข็งแรง"},
                                              headers=as_partner)).is_success

        second = await services.assess(household_id, 2566, "2023-01-16")
        assert second["target_poor"] is False
        await until(lambda: _has(types, "household.poverty_status_changed", 2), "the reassessment's events")

        entries = await timeline()
        assert [e["type"] for e in entries] == [
            "household.registered", "assessment.recorded", "household.poverty_status_changed", "visit.recorded",
            "referral.created", "referral.updated", "help.recorded", "referral.updated", "assessment.recorded",
            "household.poverty_status_changed"]
        assert [e["source"] for e in entries] == ["registry"] + ["assessment"] * 2 + ["assistance"] * 5 + [
            "assessment"] * 2
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
        changes = [e["details"] for e in entries if e["type"] == "household.poverty_status_changed"]
        assert [(c["change"], c["target_poor_now"]) for c in changes] == [("first_assessment", True),
                                                                          ("exited", False)]
        assert changes[1]["dimensions_exited"] == ["living"]
        help_entry = entries[6]
        assert help_entry["on"] == clock.today().isoformat() and help_entry["details"]["value"] == "12000.00"
        assert help_entry["details"]["partner"]["name"] == "องค์การบริหารส่วนตำบลศิลา"
        assert [e["details"]["status"] for e in entries if e["type"].startswith("referral.")] == [
            "open", "in_progress", "done"]
        assert entries[3]["details"]["problems"][0]["description"] == "หลังคารั่ว ฝนตกน้ำเข้าบ้าน"
        assert entries[0]["details"]["members"] == 1 and "citizen_id_hash" not in str(entries)


async def _has(types: Callable[[], Awaitable[list[str]]], wanted: str, count: int = 1) -> bool:
    return (await types()).count(wanted) >= count
