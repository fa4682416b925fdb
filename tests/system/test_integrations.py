"""Issue 21's loop over real processes: the broker and the four services (`ops.launcher.System`, on SQLite), a
partner agency's and the ministry's receivers as real HTTP servers of this test, every delivery's signature checked
with the `standardwebhooks` package.

A referral is created → the partner's receiver gets the signed `referral.created` → the partner reads the contact
(audited with its purpose), moves the referral on, records help and finishes it (the contact is then 404). The
ministry pushes a batch (one item pays, one matches nobody) → a payment is reversed → the ministry's receiver gets
the signed `disbursement.reversed` → its read-back shows the push answer's totals, the item reversed, and the feed
lists it. Then the assistance service is killed with SIGKILL while a delivery is in flight: after the restart every
event has arrived, and duplicates carry the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook

from ops.launcher import System
from services.assistance.settings import DEV_WEBHOOK_SECRET
from shared import clock
from shared.settings import DEV_CLIENT_SECRET
from shared.webhooks import signed_headers
from tests.kit.apps import serving
from tests.kit.assessment import MEASURED_OK, all_meet
from tests.kit.registry import citizen_id, household, person

pytestmark = [pytest.mark.slow, pytest.mark.system]

# Short delays, so a delivery interrupted by SIGKILL goes again within seconds (its lease ends) and a failed one is
# retried soon; private (loopback) targets allowed, as in development (the default, said here explicitly).
WEBHOOK_ENV = {"KAENKHUN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "KAENKHUN_WEBHOOK_TIMEOUT_S": "5",
               "KAENKHUN_WEBHOOK_LEASE_S": "8", "KAENKHUN_WEBHOOK_BACKOFF_BASE_S": "0.5",
               "KAENKHUN_WEBHOOK_BACKOFF_MAX_S": "2", "KAENKHUN_WEBHOOK_POLL_INTERVAL_S": "0.2"}
PURPOSE = "นัดตรวจสุขภาพตามที่ส่งต่อ"
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("integrations"), env=dict(os.environ, **WEBHOOK_ENV))
    try:
        running.start_all()
        yield running
    finally:
        running.stop()


@dataclass
class Receiver:
    """A subscriber's HTTP endpoint: keeps every request (headers, body) as it arrives; answers 200, after
    `delay_s` when set (a slow receiver)."""

    name: str
    secret: str = ""
    delay_s: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return Response(status_code=200)

        return app

    def events(self, event_type: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """Every delivery of this type (duplicates included), each verified with `standardwebhooks`."""
        found = []
        for headers, body in self.received:
            event = json.loads(body)
            if event["type"] != f"th.kaenkhun.{event_type}.v1":
                continue
            Webhook(self.secret).verify(body, headers)  # raises if the signature or timestamp is wrong
            assert headers["webhook-id"] == event["id"], "webhook-id is the event id"
            assert headers["content-type"].startswith("application/cloudevents+json")
            found.append((headers, event))
        return found


@asynccontextmanager
async def receiving(name: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(name)
    async with serving(receiver.app()) as base:
        receiver.url = base + "/hook"
        yield receiver


async def until(check: Any, what: str, timeout_s: float = TIMEOUT_S) -> Any:
    """Poll the coroutine function `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Api:
    """One client's calls: a token by client credentials from the registry's issuer, every answer checked."""

    def __init__(self, http: httpx.AsyncClient, system: System) -> None:
        self.http, self.system = http, system
        self.headers: dict[str, str] = {}

    async def sign_in(self, client_id: str, scope: str | None = None) -> Api:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": DEV_CLIENT_SECRET}
        answer = await self.http.post(f"{self.system.url('registry')}/oauth/token", data=data | (
            {"scope": scope} if scope else {}))
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return self

    async def request(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.headers | kwargs.pop("headers", {})
        for _ in range(100):  # a service restarting refuses connections for a moment
            try:
                return await self.http.request(method, self.system.url(service) + path, headers=headers, **kwargs)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
        raise AssertionError(f"{service} unreachable")

    async def ok(self, method: str, service: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        answer = await self.request(method, service, path, **kwargs)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None


async def subscribe(api: Api, receiver: Receiver, event_types: list[str], areas: list[str]) -> dict[str, Any]:
    created: dict[str, Any] = await api.ok("POST", "assistance", "/v1/subscriptions", 201, json={
        "url": receiver.url, "event_types": event_types, "areas": areas})
    assert created["secret"].startswith("whsec_")
    receiver.secret = created["secret"]
    return created


def test_partner_and_ministry_loop_over_real_processes(system: System) -> None:
    asyncio.run(_loop(system))


async def _loop(system: System) -> None:
    rng = random.Random(21)
    async with httpx.AsyncClient(timeout=30) as http, receiving("partner") as partner_hook, \
            receiving("ministry") as ministry_hook:
        staff = await Api(http, system).sign_in("khon-kaen-staff")
        auditor = await Api(http, system).sign_in("khon-kaen-staff", "audit:read")
        partner = await Api(http, system).sign_in("kk-partner")
        ministry = await Api(http, system).sign_in("msdhs-ministry")

        # -- staff: a household with a contact phone, known to the assistance service; a partner tied to kk-partner
        head_cid = citizen_id(rng)
        registered = await staff.ok("POST", "registry", "/v1/households", 201, json=household(person(
            head_cid, birth_date="1980-03-01", first_name="สมศรี", last_name="มีสุข", phone="081-234-5678")))
        household_id = registered["id"]
        assert registered["members"][0]["phone"] == "xxx-xxx-5678"  # masked without pii:read

        async def known_to_assistance() -> bool:
            answer = await staff.request("GET", "assistance", f"/v1/households/{household_id}/timeline")
            return answer.status_code == 200
        await until(known_to_assistance, "the household to reach the assistance service")
        hospital = await staff.ok("POST", "assistance", "/v1/partners", 201, json={
            "name": "โรงพยาบาลขอนแก่น", "sector": "government", "areas": ["40"], "client_id": "kk-partner"})

        # -- the partner subscribes to referral.created with its own token
        await subscribe(partner, partner_hook, ["referral.created"], ["40"])

        # -- staff refer the household to the partner → the partner's receiver gets the signed event
        due_on = (clock.today() + timedelta(days=30)).isoformat()
        referral_body = {"dimension": "health", "action": "ตรวจสุขภาพและให้คำแนะนำ", "partner_id": hospital["id"],
                         "due_on": due_on}
        referral = await staff.ok("POST", "assistance", f"/v1/households/{household_id}/referrals", 201,
                                  json=referral_body)

        async def referral_delivered() -> list[Any]:
            return [e for _, e in partner_hook.events("referral.created") if e["data"]["referral_id"] == referral["id"]]
        (event,) = (await until(referral_delivered, "referral.created at the partner's receiver"))[:1]
        assert event["data"]["partner_id"] == hospital["id"]
        assert event["data"]["household_id"] == household_id
        assert event["data"]["partner_client_id"] == "kk-partner"
        assert "สมศรี" not in json.dumps(event, ensure_ascii=False) and "0812345678" not in json.dumps(event)

        # -- the partner reads the contact (the registry learns the referral from the bus), audited with its purpose
        contact_path = f"/v1/households/{household_id}/contact"
        purpose = {"X-Purpose": quote(PURPOSE)}

        async def contact() -> Any:
            answer = await partner.request("GET", "registry", contact_path, headers=purpose)
            return answer.json() if answer.status_code == 200 else None
        found = await until(contact, "the contact to be readable by the partner")
        assert (found["head_first_name"], found["head_last_name"], found["house_no"], found["phone"]) == (
            "สมศรี", "มีสุข", "12/3", "081-234-5678")
        assert found["referral_ids"] == [referral["id"]]
        audit = await auditor.ok("GET", "registry", "/v1/audit", params={"household_id": household_id})
        reads = [r for r in audit["items"] if r["action"] == "partner_contact"]
        assert reads and reads[0]["client_id"] == "kk-partner" and reads[0]["purpose"] == PURPOSE, audit

        # -- the partner moves it on, records help (Idempotency-Key, retried once), finishes it
        step = f"/v1/referrals/{referral['id']}"
        await partner.ok("PATCH", "assistance", step, json={"status": "in_progress", "note": "นัดตรวจ"})
        help_body = {"kind": "health", "value": "1500.00", "given_on": clock.today().isoformat(),
                     "notes": "ตรวจสุขภาพและรับยา"}
        key = {"Idempotency-Key": f"help-{referral['id']}"}
        helped = await partner.ok("POST", "assistance", f"{step}/help", 201, json=help_body, headers=key)
        retried = await partner.request("POST", "assistance", f"{step}/help", json=help_body, headers=key)
        assert retried.status_code == 200 and retried.json()["id"] == helped["id"]
        assert retried.headers["idempotent-replayed"] == "true"
        await partner.ok("PATCH", "assistance", step, json={"status": "done", "note": "ตรวจแล้ว"})

        async def contact_gone() -> bool:
            answer = await partner.request("GET", "registry", contact_path, headers=purpose)
            return answer.status_code == 404
        await until(contact_gone, "the contact to be refused once the referral is done")

        # -- the ministry subscribes, pushes a batch (one item pays the household, one matches nobody)
        await subscribe(ministry, ministry_hook, ["disbursement.recorded", "disbursement.reversed"], ["*"])
        assessed_body = {"indicator_set": "tpmap-2560", "survey_year": 2565, "surveyed_on": "2022-01-15",
                         "answers": all_meet(housing=False), "measurements": MEASURED_OK}

        async def assessed() -> bool:
            answer = await staff.request("POST", "assessment", f"/v1/households/{household_id}/assessments",
                                         json=assessed_body)
            assert answer.status_code in (200, 201, 409), answer.text
            return answer.status_code in (200, 201) and bool(answer.json()["target_poor"])
        await until(assessed, "the assessment to be recorded")

        async def target_poor() -> bool:
            answer = await staff.request("GET", "assistance", f"/v1/households/{household_id}/timeline")
            return bool(answer.status_code == 200 and answer.json().get("target_poor"))
        await until(target_poor, "the assessment to reach the assistance service")
        await staff.ok("PUT", "assistance", "/v1/budgets/family_grant/2565/40", json={"amount": "30000.00"})

        batch_ref = "MSDHS-KK-LOOP-0001"
        batch = {"batch_ref": batch_ref, "programme": "family_grant", "fiscal_year": 2565, "paid_on": "2022-01-27",
                 "items": [{"item_ref": "1", "citizen_id": head_cid, "amount": "3000.00"},
                           {"item_ref": "2", "citizen_id": citizen_id(rng), "amount": "3000.00"}]}
        raw = json.dumps(batch, ensure_ascii=False).encode()

        async def push(message_id: str) -> httpx.Response:
            headers = signed_headers([DEV_WEBHOOK_SECRET], message_id, raw) | {
                "Idempotency-Key": batch_ref, "Content-Type": "application/json"}
            return await http.post(f"{system.url('assistance')}/v1/disbursement-batches", content=raw,
                                   headers=headers)
        pushed = await push("msg_loop_1")
        assert pushed.status_code == 201, pushed.text
        answer = pushed.json()
        totals = answer["totals"]
        assert (totals["items"], totals["accepted"], totals["rejected"]) == (2, 1, 1), answer
        link = f"</v1/disbursement-batches/{batch_ref}>"
        assert link in pushed.headers["link"]
        replayed = await push("msg_loop_2")  # a retry: new signature, same key → the stored first answer
        assert replayed.status_code == 201 and replayed.json() == answer
        assert replayed.headers["idempotent-replayed"] == "true" and link in replayed.headers["link"]
        paid = next(i for i in answer["items"] if i["item_ref"] == "1")
        assert paid["status"] == "accepted" and paid["household_id"] == household_id

        async def recorded() -> list[Any]:
            return [e for _, e in ministry_hook.events("disbursement.recorded")
                    if e["data"]["disbursement_id"] == paid["disbursement_id"]]
        await until(recorded, "disbursement.recorded at the ministry's receiver")

        # -- staff reverse the payment → the ministry's receiver gets the signed disbursement.reversed
        before_reversal = datetime.now(UTC) - timedelta(seconds=1)
        await staff.ok("POST", "assistance", f"/v1/disbursements/{paid['disbursement_id']}/reversal",
                       json={"reason": "โอนซ้ำ"})

        async def reversed_delivered() -> list[Any]:
            return [e for _, e in ministry_hook.events("disbursement.reversed")
                    if e["data"]["disbursement_id"] == paid["disbursement_id"]]
        reversal = (await until(reversed_delivered, "disbursement.reversed at the ministry's receiver"))[0]
        assert (reversal["data"]["reason"], reversal["data"]["household_id"]) == ("โอนซ้ำ", household_id)

        # -- the ministry's read-back: the push answer's totals (a reversal moves accepted → reversed), every item
        read = await ministry.ok("GET", "assistance", f"/v1/disbursement-batches/{batch_ref}")
        pushed_totals, now_totals = answer["totals"], read["totals"]
        assert {k: now_totals[k] for k in ("items", "amount", "rejected", "rejected_amount")} == {
            k: pushed_totals[k] for k in ("items", "amount", "rejected", "rejected_amount")}
        assert (now_totals["accepted"], now_totals["reversed"]) == (0, 1)
        assert float(now_totals["reversed_amount"]) == float(pushed_totals["accepted_amount"]) == 3000.0
        assert read["outside_view"]["items"] == 0
        items = {i["item_ref"]: i for i in read["items"]}
        assert items["1"]["status"] == "reversed" and items["1"]["reversal_reason"] == "โอนซ้ำ"
        assert items["1"]["reversed_at"] is not None
        assert items["2"]["status"] == "rejected" and items["2"]["reason"] == "unknown_household"
        assert items["2"]["household_id"] is None
        listed = await ministry.ok("GET", "assistance", "/v1/disbursement-batches")
        assert [b["totals"] for b in listed["items"] if b["batch_ref"] == batch_ref] == [now_totals]
        feed = await ministry.ok("GET", "assistance", "/v1/disbursements",
                                 params={"updated_since": before_reversal.isoformat(), "limit": 500})
        moved = [p for p in feed["items"] if p["disbursement_id"] == paid["disbursement_id"]]
        assert [(p["status"], p["reversal_reason"]) for p in moved] == [("reversed", "โอนซ้ำ")], feed

        # -- SIGKILL the delivering service mid-delivery: nothing lost, duplicates only with the same webhook-id
        partner_hook.delay_s = 2.0
        already = len(partner_hook.received)
        new_referrals = [(await staff.ok("POST", "assistance", f"/v1/households/{household_id}/referrals", 201,
                                         json=referral_body))["id"] for _ in range(3)]

        async def in_flight() -> bool:
            return len(partner_hook.received) > already
        await until(in_flight, "a delivery of the new referrals to be in flight")
        system.kill("assistance")
        partner_hook.delay_s = 0.0
        await asyncio.to_thread(system.start, "assistance")

        async def all_delivered() -> set[str]:
            got = {e["data"]["referral_id"] for _, e in partner_hook.events("referral.created")}
            return got if set(new_referrals) <= got else set()
        await until(all_delivered, "every referral.created after the restart", timeout_s=90)
        deliveries = partner_hook.events("referral.created")
        ids_by_referral: dict[str, set[str]] = {}
        for headers, event in deliveries:
            ids_by_referral.setdefault(event["data"]["referral_id"], set()).add(headers["webhook-id"])
        assert set(ids_by_referral) == {referral["id"], *new_referrals}
        assert all(len(ids) == 1 for ids in ids_by_referral.values()), ids_by_referral
        assert len({h["webhook-id"] for h, _ in deliveries}) == 1 + len(new_referrals)
        print(f"partner deliveries: {len(deliveries)} for {1 + len(new_referrals)} events")
