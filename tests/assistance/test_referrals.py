"""Referrals and help: partner isolation, the status machine, overdue referrals, the events (SQLite and
PostgreSQL). Partners themselves are in test_partners."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from shared import clock
from shared.ids import new_id
from tests.assistance.support import HOSPITAL, partner
from tests.kit.apps import problem
from tests.kit.assistance import Assistance

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

ROOF = "ซ่อมแซมหลังคาบ้านที่รั่ว"
PARTNER = "assistance:partner"
TODAY = clock.today().isoformat()


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def refer(assistance: Assistance, household_id: str, partner_id: str, *, due_on: date | None = None,
                dimension: str = "living", headers: dict[str, str] | None = None) -> dict[str, Any]:
    created = await assistance.client.post(f"/v1/households/{household_id}/referrals", json={
        "dimension": dimension, "action": ROOF, "partner_id": partner_id,
        "due_on": (due_on or clock.today() + timedelta(days=30)).isoformat()}, headers=headers or assistance.admin)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/referrals/{created.json()['id']}"
    body: dict[str, Any] = created.json()
    return body


async def test_a_partner_sees_and_moves_only_its_own_referrals(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    other_household, _ = await assistance.household(village="40020101")
    hospital = await partner(assistance, client_id="kk-hospital")
    temple = await partner(assistance, "วัดหนองแวง", sector="religious", client_id="wat-nong-waeng")
    mine = await refer(assistance, household_id, hospital["id"], dimension="health")
    theirs = await refer(assistance, other_household, temple["id"])
    as_hospital = assistance.as_(PARTNER, client_id="kk-hospital")

    listed = (await assistance.client.get("/v1/referrals", params={"status": "open"}, headers=as_hospital)).json()
    assert [r["id"] for r in listed["items"]] == [mine["id"]] and listed["next_cursor"] is None
    assert listed["items"][0]["partner"] == {"id": hospital["id"], "name": HOSPITAL, "sector": "government"}
    assert listed["items"][0]["action"] == ROOF
    # Asking for another partner's referrals does not widen what a partner sees.
    widened = await assistance.client.get("/v1/referrals", params={"partner_id": temple["id"]}, headers=as_hospital)
    assert widened.json()["items"] == []
    problem(await assistance.client.get(f"/v1/referrals/{theirs['id']}", headers=as_hospital), 404)
    problem(await assistance.client.patch(f"/v1/referrals/{theirs['id']}", json={"status": "in_progress"},
                                          headers=as_hospital), 404)
    problem(await assistance.client.post(f"/v1/referrals/{theirs['id']}/help", json={
        "kind": "health", "given_on": TODAY}, headers=as_hospital | key("h0")), 404)
    # A partner's client is not staff: no households, visits or plans, and it cannot refer.
    problem(await assistance.client.get(f"/v1/households/{household_id}/timeline", headers=as_hospital), 403)
    problem(await assistance.client.get(f"/v1/households/{household_id}/referrals", headers=as_hospital), 403)
    problem(await assistance.client.post(f"/v1/households/{household_id}/referrals", json={
        "dimension": "health", "action": "x", "partner_id": hospital["id"], "due_on": "2030-01-01"},
        headers=as_hospital), 403)
    # A partner scope without a partner tied to the client, or no scope at all.
    problem(await assistance.client.get("/v1/referrals", headers=assistance.as_(PARTNER, client_id="nobody")), 403)
    problem(await assistance.client.get("/v1/referrals", headers=assistance.as_("registry:read")), 403)

    staff = (await assistance.client.get("/v1/referrals", headers=assistance.admin)).json()
    assert {r["id"] for r in staff["items"]} == {mine["id"], theirs["id"]}
    mueang = assistance.as_("assistance:read", areas=("4001",))
    assert [r["id"] for r in (await assistance.client.get("/v1/referrals", headers=mueang)).json()["items"]] == [
        mine["id"]]
    problem(await assistance.client.get(f"/v1/referrals/{theirs['id']}", headers=mueang), 404)
    plan = (await assistance.client.get(f"/v1/households/{household_id}/referrals", headers=assistance.admin)).json()
    assert [r["id"] for r in plan["items"]] == [mine["id"]]

    moved = await assistance.client.patch(f"/v1/referrals/{mine['id']}", json={"status": "in_progress"},
                                          headers=as_hospital)
    assert moved.status_code == 200, moved.text
    helped = await assistance.client.post(f"/v1/referrals/{mine['id']}/help", json={
        "kind": "health", "value": "1500.50", "given_on": TODAY, "notes": "ตรวจสุขภาพและรับยา"},
        headers=as_hospital | key("h1"))
    assert helped.status_code == 201, helped.text
    assert helped.json()["value"] == "1500.50" and helped.json()["recorded_by"] == "kk-hospital"
    detail = (await assistance.client.get(f"/v1/referrals/{mine['id']}", headers=as_hospital)).json()
    assert [h["notes"] for h in detail["help"]] == ["ตรวจสุขภาพและรับยา"]
    assert [(c["status_before"], c["status"], c["changed_by"]) for c in detail["changes"]] == [
        (None, "open", "test-client"), ("open", "in_progress", "kk-hospital")]


async def test_the_status_machine(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    hospital = await partner(assistance)
    referral = await refer(assistance, household_id, hospital["id"])
    url = f"/v1/referrals/{referral['id']}"

    async def move(status: str, **headers: str) -> Any:
        return await assistance.client.patch(url, json={"status": status, "note": f"→ {status}"},
                                             headers=assistance.admin | headers)

    conflict = problem(await move("done"), 409)
    assert conflict["status_now"] == "open"
    problem(await move("open"), 409)
    problem(await move("finished"), 422)
    problem(await move("in_progress", **{"If-Match": '"v7"'}), 412)
    started = await move("in_progress", **{"If-Match": '"v1"'})
    assert started.status_code == 200 and started.headers["etag"] == '"v2"'
    problem(await move("in_progress"), 409)
    done = await move("done")
    assert done.json()["status"] == "done" and done.json()["outcome"] == "→ done" and done.json()["version"] == 3
    for status in ("open", "in_progress", "cancelled", "done"):
        problem(await move(status), 409)
    # Help may still be recorded after the fact; not under a cancelled referral.
    assert (await assistance.client.post(f"{url}/help", json={"kind": "service", "given_on": TODAY},
                                         headers=assistance.admin | key("s1"))).status_code == 201

    cancelled = await refer(assistance, household_id, hospital["id"])
    assert (await assistance.client.patch(f"/v1/referrals/{cancelled['id']}", json={"status": "cancelled"},
                                          headers=assistance.admin)).status_code == 200
    problem(await assistance.client.post(f"/v1/referrals/{cancelled['id']}/help", json={
        "kind": "cash", "value": "500.00", "given_on": TODAY}, headers=assistance.admin | key("c1")), 409)
    for n, bad in enumerate(({"kind": "cash", "value": "0.00", "given_on": TODAY},
                             {"kind": "cash", "value": "10.001", "given_on": TODAY},
                             {"kind": "luck", "given_on": TODAY},
                             {"kind": "job", "given_on": (clock.today() + timedelta(days=1)).isoformat()},
                             {"kind": "job", "given_on": (clock.today() - timedelta(days=1)).isoformat()})):
        problem(await assistance.client.post(f"{url}/help", json=bad, headers=assistance.admin | key(f"b{n}")), 422)

    published = [(t, d["status_before"] if t == "referral.updated" else None, d["status"])
                 for t, _, d in await assistance.events() if t.startswith("referral.")]
    assert published == [("referral.created", None, "open"), ("referral.updated", "open", "in_progress"),
                         ("referral.updated", "in_progress", "done"), ("referral.created", None, "open"),
                         ("referral.updated", "open", "cancelled")]
    helped = [d for t, _, d in await assistance.events() if t == "help.recorded"]
    assert [(h["kind"], h["value"], h["partner_sector"]) for h in helped] == [("service", None, "government")]
    assert ROOF not in str(await assistance.events())  # the action's text stays in the service


async def test_referrals_that_cannot_be_made(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    closed, _ = await assistance.household(status="closed")
    far = await partner(assistance, "เทศบาลเมืองชุมแพ", areas=["4005"])
    hospital = await partner(assistance)
    body = {"dimension": "living", "action": ROOF, "due_on": "2030-01-01"}
    url = f"/v1/households/{household_id}/referrals"
    problem(await assistance.client.post(url, json=body | {"partner_id": far["id"]}, headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=body | {"partner_id": new_id()}, headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=body | {"partner_id": hospital["id"], "dimension": "luck"},
                                         headers=assistance.admin), 422)
    problem(await assistance.client.post(f"/v1/households/{closed}/referrals", json=body | {
        "partner_id": hospital["id"]}, headers=assistance.admin), 409)
    problem(await assistance.client.post(f"/v1/households/{new_id()}/referrals", json=body | {
        "partner_id": hospital["id"]}, headers=assistance.admin), 404)
    problem(await assistance.client.post(url, json=body | {"partner_id": hospital["id"]},
                                         headers=assistance.as_("assistance:read")), 403)
    problem(await assistance.client.get("/v1/referrals", params={"cursor": "bm90LWFuLWlk"},
                                        headers=assistance.admin), 400)


async def test_overdue_referrals_are_listed(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    hospital = await partner(assistance, client_id="kk-hospital")
    today = clock.today()
    late = await refer(assistance, household_id, hospital["id"], due_on=today - timedelta(days=3))
    started_late = await refer(assistance, household_id, hospital["id"], due_on=today - timedelta(days=1))
    finished_late = await refer(assistance, household_id, hospital["id"], due_on=today - timedelta(days=10))
    on_time = await refer(assistance, household_id, hospital["id"], due_on=today)
    for referral, steps in ((started_late, ("in_progress",)), (finished_late, ("in_progress", "done"))):
        for status in steps:
            assert (await assistance.client.patch(f"/v1/referrals/{referral['id']}", json={"status": status},
                                                  headers=assistance.admin)).status_code == 200
    assert late["overdue"] is True and on_time["overdue"] is False

    as_hospital = assistance.as_(PARTNER, client_id="kk-hospital")
    overdue = (await assistance.client.get("/v1/referrals", params={"overdue": "true"}, headers=as_hospital)).json()
    assert [r["id"] for r in overdue["items"]] == [late["id"], started_late["id"]]
    assert all(r["overdue"] for r in overdue["items"])
    not_overdue = (await assistance.client.get("/v1/referrals", params={"overdue": "false"},
                                               headers=assistance.admin)).json()
    assert [r["id"] for r in not_overdue["items"]] == [finished_late["id"], on_time["id"]]

    first = (await assistance.client.get("/v1/referrals", params={"limit": 3}, headers=assistance.admin)).json()
    rest = (await assistance.client.get("/v1/referrals", params={"cursor": first["next_cursor"]},
                                        headers=assistance.admin)).json()
    assert [r["id"] for r in first["items"] + rest["items"]] == [
        late["id"], started_late["id"], finished_late["id"], on_time["id"]]
    assert rest["next_cursor"] is None


async def test_help_is_recorded_once_however_often_it_is_sent(assistance: Assistance) -> None:
    """A partner's retry (same Idempotency-Key, same body) answers what the first did and records nothing more;
    the same key with other help is 422; without a key, 400; help dated before the referral, 422."""
    household_id, _ = await assistance.household()
    referral = await refer(assistance, household_id, (await partner(assistance))["id"])
    url = f"/v1/referrals/{referral['id']}/help"
    body = {"kind": "cash", "value": "3000.00", "given_on": TODAY, "notes": "ค่าซ่อมหลังคา"}
    first = await assistance.client.post(url, json=body, headers=assistance.admin | key("pay-1"))
    again = await assistance.client.post(url, json=body, headers=assistance.admin | key("pay-1"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = problem(await assistance.client.post(url, json=body | {"value": "500.00"},
                                                 headers=assistance.admin | key("pay-1")), 422)
    assert other["type"].endswith("/idempotency-key-reused")
    problem(await assistance.client.post(url, json=body, headers=assistance.admin), 400)
    assert (await assistance.client.post(url, json=body, headers=assistance.admin | key("pay-2"))).status_code == 201
    detail = (await assistance.client.get(f"/v1/referrals/{referral['id']}", headers=assistance.admin)).json()
    assert len(detail["help"]) == 2
    assert [t for t, _, _ in await assistance.events()].count("help.recorded") == 2


async def test_a_partner_declines_a_referral_with_its_reason(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    hospital = await partner(assistance, client_id="kk-hospital")
    as_hospital = assistance.as_(PARTNER, client_id="kk-hospital")
    referral = await refer(assistance, household_id, hospital["id"], dimension="health")
    url = f"/v1/referrals/{referral['id']}"
    reason = "อยู่นอกเขตบริการของโรงพยาบาล"

    # A reason is required; staff cancel rather than decline.
    missing = problem(await assistance.client.patch(url, json={"status": "declined"}, headers=as_hospital), 422)
    assert missing["errors"][0]["field"] == "body.reason"
    problem(await assistance.client.patch(url, json={"status": "declined", "reason": reason},
                                          headers=assistance.admin), 403)
    declined = await assistance.client.patch(url, json={"status": "declined", "reason": reason}, headers=as_hospital)
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined" and declined.json()["decline_reason"] == reason
    assert declined.json()["overdue"] is False
    assert [(c["status_before"], c["status"], c["note"], c["changed_by"]) for c in declined.json()["changes"]] == [
        (None, "open", None, "test-client"), ("open", "declined", reason, "kk-hospital")]
    # Final: no move, no help under it.
    for status in ("open", "in_progress", "done", "cancelled", "declined"):
        problem(await assistance.client.patch(url, json={"status": status, "reason": "x"}, headers=as_hospital), 409)
    problem(await assistance.client.post(f"{url}/help", json={"kind": "health", "given_on": TODAY},
                                         headers=as_hospital | key("d1")), 409)

    # Only from open: a referral under way is finished or cancelled, not declined.
    started = await refer(assistance, household_id, hospital["id"])
    await assistance.client.patch(f"/v1/referrals/{started['id']}", json={"status": "in_progress"},
                                  headers=as_hospital)
    conflict = problem(await assistance.client.patch(f"/v1/referrals/{started['id']}", json={
        "status": "declined", "reason": reason}, headers=as_hospital), 409)
    assert conflict["status_now"] == "in_progress"

    # The field team sees it in the list and on the household's timeline.
    listed = (await assistance.client.get("/v1/referrals", params={"status": "declined"},
                                          headers=assistance.admin)).json()
    assert [(r["id"], r["decline_reason"]) for r in listed["items"]] == [(referral["id"], reason)]
    timeline = (await assistance.client.get(f"/v1/households/{household_id}/timeline",
                                            headers=assistance.admin)).json()
    steps = [e["details"] for e in timeline["entries"] if e["type"] == "referral.updated"]
    assert {"status_before": "open", "status": "declined", "note": reason}.items() <= steps[0].items()

    # The events: the new status, the partner and its client, never the reason's or the action's text.
    published = [d for t, _, d in await assistance.events() if t.startswith("referral.")]
    assert [(d["status"], d["partner_id"], d["partner_client_id"]) for d in published][:2] == [
        ("open", hospital["id"], "kk-hospital"), ("declined", hospital["id"], "kk-hospital")]
    assert reason not in str(await assistance.events()) and ROOF not in str(await assistance.events())
