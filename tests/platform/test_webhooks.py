"""Event subscriptions (shared/webhooks) in the assistance service: a real receiving HTTP server, signatures
checked with the `standardwebhooks` package, retries, 410, per-household order, area and partner filters, SSRF
refusals, secret rotation and redelivery. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from services.assistance.models import outbox, webhook
from services.registry.models import outbox as registry_outbox
from shared import migrations
from shared.db import transaction
from shared.events.assistance import DISBURSEMENT_REVERSED, REFERRAL_CREATED, REFERRAL_UPDATED, ReferralCreated
from shared.events.catalogue import EventType
from shared.ids import new_id
from shared.webhooks.sender import Sender
from shared.webhooks.settings import WebhookSettings
from shared.webhooks.targets import TargetRefused, check_target
from tests.kit.apps import bearer, consumer_record, make_settings, problem, running, serving
from tests.kit.assistance import Assistance
from tests.kit.registry import Registry

SUBSCRIBER = ("events:subscribe", "assistance:read")


@dataclass
class Receiver:
    """A receiving HTTP server: answers from `script` (status, or "timeout"), then 200; keeps what it got."""

    script: list[int | str] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, int | str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            answer = self.script.pop(0) if self.script else 200
            self.received.append((dict(request.headers), body, answer))
            if answer == "timeout":
                await asyncio.sleep(2)
                answer = 200
            return Response(status_code=int(answer))

        return app

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, a in self.received if a == 200]


@asynccontextmanager
async def receiving(script: list[int | str] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(list(script or []))
    async with serving(receiver.app()) as base:  # type: ignore[arg-type]
        receiver.url = base + "/hook"
        yield receiver


@asynccontextmanager
async def sending(assistance: Assistance, **overrides: Any) -> AsyncIterator[Sender]:
    """The app's sender with short delays, running (the fixture's app runs with the bus off)."""
    settings = WebhookSettings.model_validate({"backoff_base_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 0.5,
                                               "poll_interval_s": 0.05, "lease_s": 5} | overrides)
    sender = Sender(webhook, assistance.app.state.sessionmaker, settings, production=False)
    assistance.app.state.webhook_sender = sender
    sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


async def publish(assistance: Assistance, event_type: EventType, data: dict[str, Any], *, offset: int = 0,
                  event_id: str | None = None) -> str:
    """The service's own event, through its webhook consumer (as it reads its own topic); returns the event id."""
    event_id = event_id or new_id()
    consumer = assistance.app.state.webhook_consumer
    await consumer.process([consumer.handlers.decode(
        consumer_record(event_type, data, event_id=event_id, offset=offset))])
    return event_id


def referral(household_id: str, *, village: str = "40010103", partner_id: str | None = None,
             status: str = "open", version: int = 1) -> dict[str, Any]:
    return {"referral_id": new_id(), "household_id": household_id, "village_code": village, "dimension": "health",
            "partner_id": partner_id or new_id(), "partner_sector": "government", "due_on": "2022-03-01",
            "status": status, "version": version}


async def subscribe(assistance: Assistance, url: str, *, event_types: tuple[str, ...] = ("referral.created",),
                    areas: tuple[str, ...] = ("40",), headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await assistance.client.post("/v1/subscriptions", json={
        "url": url, "event_types": list(event_types), "areas": list(areas)},
        headers=headers or assistance.as_(*SUBSCRIBER, areas=("40",)))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/subscriptions/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


async def wait_for(predicate: Any, timeout_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_retries_until_delivered_signed_and_in_order(assistance: Assistance) -> None:
    async with receiving([500, 500, "timeout"]) as receiver, sending(assistance) as sender:
        sub = await subscribe(assistance, receiver.url, event_types=("referral.created", "referral.updated"))
        assert sub["secret"].startswith("whsec_") and sub["status"] == "active"
        household = new_id()
        created = referral(household)
        first = await publish(assistance, REFERRAL_CREATED, created)
        second = await publish(assistance, REFERRAL_UPDATED, created | {"status": "in_progress", "version": 2,
                                                                         "status_before": "open"}, offset=1)
        await wait_for(lambda: len(receiver.delivered()) == 2)
        await sender.drain()
        # The first event failed three times (500, 500, time-out) before the second was sent at all.
        assert [a for _, _, a in receiver.received] == [500, 500, "timeout", 200, 200]
        verifier = Webhook(sub["secret"])
        ids = []
        for headers, body in receiver.delivered():
            assert headers["content-type"] == "application/cloudevents+json"
            event = verifier.verify(body, headers)
            assert headers["webhook-id"] == event["id"]
            ids.append(event["id"])
        assert ids == [first, second]
        # Every attempt of the first carried the same webhook-id: receivers drop duplicates by it.
        assert {h["webhook-id"] for h, _, _ in receiver.received[:4]} == {first}
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(receiver.delivered()[0][1], receiver.delivered()[0][0])

        listed = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}/deliveries",
                                              headers=assistance.as_(*SUBSCRIBER, areas=("40",)))).json()
        by_event = {d["event_id"]: d for d in listed["items"]}
        assert by_event[first]["attempts"] == 4 and by_event[first]["last_status"] == 200
        assert by_event[first]["delivered_at"] is not None and by_event[first]["next_attempt_at"] is None
        assert by_event[second]["attempts"] == 1


async def test_410_disables_the_subscription(assistance: Assistance) -> None:
    async with receiving([410]) as receiver, sending(assistance):
        sub = await subscribe(assistance, receiver.url)
        await publish(assistance, REFERRAL_CREATED, referral(new_id()))
        headers = assistance.as_(*SUBSCRIBER, areas=("40",))

        async def status() -> dict[str, Any]:
            body: dict[str, Any] = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}",
                                                                headers=headers)).json()
            return body

        for _ in range(200):
            if (now := await status())["status"] == "disabled":
                break
            await asyncio.sleep(0.05)
        assert now["status"] == "disabled" and "410" in now["disabled_reason"]
        await publish(assistance, REFERRAL_CREATED, referral(new_id()))
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 1  # a disabled subscription receives nothing more
        # A redelivery since the start makes it active again and sends both.
        response = await assistance.client.post(f"/v1/subscriptions/{sub['id']}:redeliver",
                                                params={"since": "2000-01-01T00:00:00Z"}, headers=headers)
        assert response.status_code == 202 and response.json() == {"requeued": 2}
        await wait_for(lambda: len(receiver.delivered()) == 2)
        assert (await status())["status"] == "active"


async def test_failing_for_the_retry_window_disables(assistance: Assistance) -> None:
    async with receiving([500] * 100) as receiver, sending(assistance, retry_hours=0.0003):  # ≈ 1 s
        sub = await subscribe(assistance, receiver.url)
        await publish(assistance, REFERRAL_CREATED, referral(new_id()))
        headers = assistance.as_(*SUBSCRIBER, areas=("40",))
        for _ in range(300):
            body = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}", headers=headers)).json()
            if body["status"] == "disabled":
                break
            await asyncio.sleep(0.05)
        assert body["status"] == "disabled" and "failed since" in body["disabled_reason"]
        assert len(receiver.received) >= 2


async def test_areas_and_partners_filter_what_is_sent(assistance: Assistance) -> None:
    async with receiving() as district, receiving() as partner_rx, sending(assistance) as sender:
        await subscribe(assistance, district.url, areas=("4001",),
                        headers=assistance.as_(*SUBSCRIBER, areas=("4001",), client_id="district-4001"))
        # A partner agency's client, tied to its partner record, receives only referrals addressed to it.
        response = await assistance.client.post("/v1/partners", json={
            "name": "โรงพยาบาลขอนแก่น", "sector": "government", "areas": ["40"], "client_id": "kk-hospital"},
            headers=assistance.admin)
        assert response.status_code == 201, response.text
        partner_id = response.json()["id"]
        partner = assistance.as_("assistance:partner", "events:subscribe", areas=("40",), client_id="kk-hospital")
        refused = await assistance.client.post("/v1/subscriptions", json={
            "url": partner_rx.url, "event_types": ["disbursement.reversed"], "areas": ["40"]}, headers=partner)
        assert problem(refused, 422)["errors"][0]["field"] == "event_types"
        sub = await subscribe(assistance, partner_rx.url, headers=partner)
        assert sub["partner_id"] == partner_id

        in_4001 = await publish(assistance, REFERRAL_CREATED, referral(new_id(), village="40010103"))
        await publish(assistance, REFERRAL_CREATED, referral(new_id(), village="40020101"))
        to_partner = await publish(assistance, REFERRAL_CREATED,
                                   referral(new_id(), village="40020101", partner_id=partner_id))
        await publish(assistance, DISBURSEMENT_REVERSED, {
            "disbursement_id": new_id(), "household_id": new_id(), "programme": "family_grant", "fiscal_year": 2565,
            "amount": "3000.00", "budget_id": new_id(), "reason": "paid twice", "village_code": "40010103"})
        await wait_for(lambda: len(district.delivered()) == 1 and len(partner_rx.delivered()) == 1)
        await asyncio.sleep(0.3)
        await sender.drain()
        assert [h["webhook-id"] for h, _ in district.delivered()] == [in_4001]
        assert [h["webhook-id"] for h, _ in partner_rx.delivered()] == [to_partner]


async def test_subscribing_is_bounded_by_scope_areas_and_types(assistance: Assistance) -> None:
    url = "http://127.0.0.1:9/hook"
    body = {"url": url, "event_types": ["referral.created"], "areas": ["40"]}
    assert problem(await assistance.client.post("/v1/subscriptions", json=body,
                                                 headers=assistance.as_("assistance:read")), 403)
    limited = assistance.as_(*SUBSCRIBER, areas=("4001",))
    assert problem(await assistance.client.post("/v1/subscriptions", json=body, headers=limited), 403)
    assert problem(await assistance.client.post("/v1/subscriptions", json=body | {"areas": ["*"]},
                                                headers=limited), 403)
    unknown = problem(await assistance.client.post("/v1/subscriptions", json=body | {
        "event_types": ["household.registered"]}, headers=limited), 422)
    assert unknown["errors"][0]["code"] == "unknown"
    # Someone else's subscription is not found.
    mine = await subscribe(assistance, url)
    other = assistance.as_(*SUBSCRIBER, areas=("40",), client_id="someone-else")
    assert problem(await assistance.client.get(f"/v1/subscriptions/{mine['id']}", headers=other), 404)
    listed = (await assistance.client.get("/v1/subscriptions", headers=assistance.as_(*SUBSCRIBER, areas=("40",))))
    assert [s["id"] for s in listed.json()["items"]] == [mine["id"]] and "secret" not in listed.json()["items"][0]
    assert (await assistance.client.get("/v1/subscriptions", headers=other)).json()["items"] == []
    deleted = await assistance.client.delete(f"/v1/subscriptions/{mine['id']}",
                                             headers=assistance.as_(*SUBSCRIBER, areas=("40",)))
    assert deleted.status_code == 204


async def test_the_ministry_subscribes_to_the_payments_events_only(assistance: Assistance) -> None:
    """The ministry's reader (`assistance:disbursements:read`, every area, no staff scope) may subscribe to the
    payments' events — so a reversal reaches it without polling — and to nothing else."""
    ministry = assistance.as_("events:subscribe", "assistance:disbursements:read", client_id="msdhs-ministry")
    body = {"url": "http://127.0.0.1:9/hook", "areas": ["*"]}
    payments = ["centre_subsidy.recorded", "centre_subsidy.reversed", "disbursement.recorded",
                "disbursement.reversed"]
    created = await assistance.client.post("/v1/subscriptions", json=body | {"event_types": payments},
                                           headers=ministry)
    assert created.status_code == 201, created.text
    assert (created.json()["event_types"], created.json()["partner_id"]) == (payments, None)
    refused = problem(await assistance.client.post("/v1/subscriptions", json=body | {
        "event_types": ["disbursement.reversed", "referral.created"]}, headers=ministry), 422)
    assert [e["message"] for e in refused["errors"]] == ["unknown event type referral.created"]
    # Without the reader's scope (nor staff's, nor a partner's) it is still 403.
    assert problem(await assistance.client.post("/v1/subscriptions", json=body | {"event_types": payments},
                                                headers=assistance.as_("events:subscribe")), 403)


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "https://127.0.0.1/hook", "https://169.254.169.254/x",
                                 "https://10.0.0.1/hook", "https://[::1]/hook", "https://localhost/hook",
                                 "https://192.168.1.1/hook", "https://100.64.0.1/hook", "https://224.0.0.1/hook",
                                 "https://[::ffff:10.0.0.1]/hook", "ftp://example.org/hook"])
async def test_ssrf_targets_are_refused_in_production(url: str) -> None:
    with pytest.raises(TargetRefused):
        await check_target(url, allow_private=False)


async def test_ssrf_guard_at_subscribe_and_send(assistance: Assistance) -> None:
    await check_target("https://93.184.215.14/hook", allow_private=False)  # a public address passes
    await check_target("http://127.0.0.1:8080/hook", allow_private=True)  # development allows local receivers
    async with receiving() as receiver, sending(assistance) as sender:
        sub = await subscribe(assistance, receiver.url)  # development: allowed
        assistance.settings.webhooks.allow_private_targets = False
        for url in ("http://127.0.0.1/hook", "https://169.254.169.254/latest", "https://10.0.0.1/hook"):
            body = problem(await assistance.client.post("/v1/subscriptions", json={
                "url": url, "event_types": ["referral.created"], "areas": ["40"]},
                headers=assistance.as_(*SUBSCRIBER, areas=("40",))), 422)
            assert body["errors"][0]["code"] == "target-refused"
        # And at send time: the subscription made before is refused too, without a request.
        sender.allow_private = False
        await publish(assistance, REFERRAL_CREATED, referral(new_id()))
        headers = assistance.as_(*SUBSCRIBER, areas=("40",))
        for _ in range(200):
            items = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}/deliveries",
                                                 headers=headers)).json()["items"]
            if items and items[0]["attempts"] > 0:
                break
            await asyncio.sleep(0.05)
        assert items[0]["last_error"].startswith("target refused") and receiver.received == []


async def test_rotation_signs_with_both_secrets(assistance: Assistance) -> None:
    async with receiving() as receiver, sending(assistance):
        sub = await subscribe(assistance, receiver.url)
        headers = assistance.as_(*SUBSCRIBER, areas=("40",))
        rotated = (await assistance.client.post(f"/v1/subscriptions/{sub['id']}/secret:rotate", headers=headers))
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != sub["secret"] and new.startswith("whsec_")
        await publish(assistance, REFERRAL_CREATED, referral(new_id()))
        await wait_for(lambda: len(receiver.delivered()) == 1)
        got_headers, body = receiver.delivered()[0]
        assert len(got_headers["webhook-signature"].split()) == 2
        Webhook(sub["secret"]).verify(body, got_headers)
        Webhook(new).verify(body, got_headers)


async def test_redelivery_of_one_and_duplicates_share_the_id(assistance: Assistance) -> None:
    async with receiving() as receiver, sending(assistance):
        sub = await subscribe(assistance, receiver.url)
        data = referral(new_id())
        event_id = await publish(assistance, REFERRAL_CREATED, data)
        await publish(assistance, REFERRAL_CREATED, data, event_id=event_id)  # the broker gave it again
        await wait_for(lambda: len(receiver.delivered()) == 1)
        headers = assistance.as_(*SUBSCRIBER, areas=("40",))
        items = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}/deliveries",
                                             headers=headers)).json()["items"]
        assert len(items) == 1
        again = await assistance.client.post(
            f"/v1/subscriptions/{sub['id']}/deliveries/{items[0]['id']}:redeliver", headers=headers)
        assert again.status_code == 202 and again.json() == {"requeued": 1}
        await wait_for(lambda: len(receiver.delivered()) == 2)
        assert {h["webhook-id"] for h, _ in receiver.delivered()} == {event_id}
        assert problem(await assistance.client.post(
            f"/v1/subscriptions/{sub['id']}/deliveries/999999:redeliver", headers=headers), 404)


async def test_a_killed_sender_loses_nothing(assistance: Assistance) -> None:
    """Killed mid-delivery (the receiver has the request, the answer never counts): the next sender sends it
    again after the lease (at once on SQLite, one process), with the same webhook-id."""
    async with receiving(["timeout"]) as receiver:
        async with sending(assistance, timeout_s=5, lease_s=1) as sender:
            sub = await subscribe(assistance, receiver.url)
            event_id = await publish(assistance, REFERRAL_CREATED, referral(new_id()))
            await wait_for(lambda: len(receiver.received) == 1)
            await sender.kill()
        async with sending(assistance, lease_s=1):
            await wait_for(lambda: len(receiver.received) == 2)
        assert [h["webhook-id"] for h, _, _ in receiver.received] == [event_id, event_id]
        items = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}/deliveries",
                                             headers=assistance.as_(*SUBSCRIBER, areas=("40",)))).json()["items"]
        assert items[0]["delivered_at"] is not None


async def test_over_the_bus(broker: LocalBroker, databases: ScratchDatabases) -> None:
    """The whole path in one service: its outbox, the broker, its `assistance-webhooks` consumer group, the sender."""
    settings = make_settings("assistance", await databases.new("assistance"), broker.bootstrap_servers,
                             webhooks={"poll_interval_s": 0.05})
    app = load("assistance").create_app(settings)
    async with receiving() as receiver, running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        response = await client.post("/v1/subscriptions", json={
            "url": receiver.url, "event_types": ["referral.created"], "areas": ["96"]},
            headers=bearer(settings.auth, *SUBSCRIBER, areas=("96",)))
        assert response.status_code == 201, response.text
        secret = response.json()["secret"]
        async with transaction(app.state.sessionmaker) as session:
            event_id = await outbox.add(session, REFERRAL_CREATED, ReferralCreated.model_validate(
                referral(new_id(), village="96010101")), key=new_id())
        outbox.wakeup.set()
        await wait_for(lambda: event_id in {h["webhook-id"] for h, _ in receiver.delivered()}, timeout_s=60)
        headers, body = next((h, b) for h, b in receiver.delivered() if h["webhook-id"] == event_id)
        assert Webhook(secret).verify(body, headers)["data"]["village_code"] == "96010101"


async def test_registry_events_reach_subscribers_with_the_read_scope(registry: Registry) -> None:
    """The registry offers the same subscriptions for its events; a subscriber must hold registry:read too."""
    url = "http://127.0.0.1:9/hook"
    body = {"url": url, "event_types": ["household.registered"], "areas": ["4001"]}
    refused = await registry.client.post("/v1/subscriptions", json=body,
                                         headers=registry.as_("events:subscribe", areas=("40",)))
    assert problem(refused, 403)["missing_scopes"] == ["registry:read"]
    subscriber = registry.as_("events:subscribe", "registry:read", areas=("40",))
    created = await registry.client.post("/v1/subscriptions", json=body, headers=subscriber)
    assert created.status_code == 201, created.text
    assert (await registry.register()).status_code == 201
    # The outbox row, as the registry's `registry-webhooks` consumer group reads it from the broker.
    async with transaction(registry.app.state.sessionmaker) as session:
        row = (await session.execute(select(registry_outbox.table.c.event_id, registry_outbox.table.c.value,
                                            registry_outbox.table.c.key))).one()
    record = ConsumerRecord(topic="registry.household", partition=0, offset=0, timestamp=0, timestamp_type=0,
                            key=row.key.encode(), value=row.value.encode(), checksum=None, serialized_key_size=0,
                            serialized_value_size=0, headers=[])
    consumer = registry.app.state.webhook_consumer
    assert consumer.name == "registry-webhooks"
    await consumer.process([consumer.handlers.decode(record)])
    items = (await registry.client.get(f"/v1/subscriptions/{created.json()['id']}/deliveries",
                                       headers=subscriber)).json()["items"]
    assert [(d["event_id"], d["event_type"]) for d in items] == [(row.event_id, "household.registered")]


async def test_two_replicas_never_send_the_same_delivery(assistance: Assistance) -> None:
    """Two senders on one database (replicas): each delivery is leased by one (SKIP LOCKED on PostgreSQL), so the
    receiver gets every event exactly once when nothing fails."""
    async with receiving() as receiver:
        sub = await subscribe(assistance, receiver.url)
        ids = {await publish(assistance, REFERRAL_CREATED, referral(new_id()), offset=n) for n in range(40)}
        async with sending(assistance, per_subscription=8) as first, sending(assistance, per_subscription=8):
            await wait_for(lambda: len(receiver.delivered()) >= 40)
            await asyncio.sleep(0.3)
            await first.drain()
        got = [h["webhook-id"] for h, _ in receiver.delivered()]
        assert sorted(got) == sorted(ids)
        items = (await assistance.client.get(f"/v1/subscriptions/{sub['id']}/deliveries", params={"limit": 100},
                                             headers=assistance.as_(*SUBSCRIBER, areas=("40",)))).json()["items"]
        assert len(items) == 40 and all(d["attempts"] == 1 and d["delivered_at"] for d in items)
