"""Partners acting on what is referred to them, in the registry: it learns open referrals from the assistance
service's events (through its real consumer path, inbox included), a partner's client reads the minimum contact of a
household referred to it while the referral is open — audited with its purpose — and nothing else; the optional
contact phone of members (validated, masked like citizen IDs, never in events); the partner's citizen-ID lookup
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from shared.events.assistance import REFERRAL_CREATED, REFERRAL_UPDATED
from shared.ids import new_id
from shared.pii import InvalidPhone, format_phone, mask_phone, validate_thai_phone
from tests.kit.apps import deliver, problem
from tests.kit.registry import Registry, household, person

databases = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

PARTNER = "registry:partner"
HOSPITAL_CLIENT = "kk-hospital"
PURPOSE = "นัดตรวจสุขภาพตามที่ส่งต่อ"


def purpose(text: str = PURPOSE) -> dict[str, str]:
    return {"X-Purpose": quote(text)}


def referral_event(household_id: str, *, referral_id: str, partner_id: str, client_id: str | None = HOSPITAL_CLIENT,
                   status: str = "open", version: int = 1, village: str = "40010103") -> dict[str, Any]:
    """A referral event's data as the assistance service publishes it."""
    return {"referral_id": referral_id, "household_id": household_id, "village_code": village,
            "dimension": "health", "partner_id": partner_id, "partner_sector": "government",
            "partner_client_id": client_id, "due_on": "2030-01-01", "status": status, "version": version}


async def registered(registry: Registry, *members: dict[str, Any], subdistrict: str = "400101",
                     village_no: int = 3) -> dict[str, Any]:
    created = await registry.register(household(*(members or (person(registry.cid()),)), subdistrict=subdistrict,
                                                village_no=village_no))
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def audit_actions(registry: Registry, household_id: str | None = None) -> list[tuple[str, str | None, str]]:
    params = {"client_id": HOSPITAL_CLIENT} | ({"household_id": household_id} if household_id else {})
    entries = (await registry.client.get("/v1/audit", params=params, headers=registry.admin)).json()["items"]
    return [(e["action"], e["household_id"], e["purpose"]) for e in reversed(entries)]


@databases
async def test_a_partner_reads_the_contact_only_while_its_referral_is_open(registry: Registry) -> None:
    head = person(registry.cid(), title="นาย", first_name="สมชาย", last_name="ใจงาม", phone="+66 81 234 5678")
    child = person(registry.cid(), "child", first_name="เด็กชาย", phone="02-123-4567")
    home = await registered(registry, head, child)
    other = await registered(registry)
    partner_id, referral_id = new_id(), new_id()
    hospital = registry.as_(PARTNER, areas=("40",), client_id=HOSPITAL_CLIENT)
    url = f"/v1/households/{home['id']}/contact"

    # Before the registry has heard of a referral: nothing, as for a household that does not exist.
    before = problem(await registry.client.get(url, headers=hospital | purpose()), 404)
    assert before["type"].endswith("no-open-referral")

    created_id = new_id()
    assert await deliver(registry.app, REFERRAL_CREATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id), event_id=created_id) == 1
    read = await registry.client.get(url, headers=hospital | purpose())
    assert read.status_code == 200, read.text
    assert read.json() == {
        "household_id": home["id"], "referral_ids": [referral_id], "head_title": "นาย", "head_first_name": "สมชาย",
        "head_last_name": "ใจงาม", "house_no": "12/3", "village_no": 3, "village_code": "40010103",
        "subdistrict_code": "400101", "subdistrict_name_th": "ในเมือง", "district_name_th": "เมืองขอนแก่น",
        "province_name_th": "ขอนแก่น", "phone": "081-234-5678"}

    # The purpose is required; a client that is not a partner's, another partner's client, another household.
    missing = problem(await registry.client.get(url, headers=hospital), 422)
    assert "X-Purpose" in json.dumps(missing)
    problem(await registry.client.get(url, headers=registry.as_("registry:read", "pii:read") | purpose()), 403)
    temple = registry.as_(PARTNER, areas=("40",), client_id="wat-nong-waeng")
    problem(await registry.client.get(url, headers=temple | purpose()), 404)
    problem(await registry.client.get(f"/v1/households/{other['id']}/contact", headers=hospital | purpose()), 404)
    problem(await registry.client.get(f"/v1/households/{new_id()}/contact", headers=hospital | purpose()), 404)
    # The partner's token is bounded by its areas too.
    elsewhere = registry.as_(PARTNER, areas=("41",), client_id=HOSPITAL_CLIENT)
    problem(await registry.client.get(url, headers=elsewhere | purpose()), 404)

    # Every read and every refusal is in the audit log, with the purpose as declared.
    assert await audit_actions(registry, home["id"]) == [
        ("partner_contact_refused", home["id"], PURPOSE), ("partner_contact", home["id"], PURPOSE),
        ("partner_contact_refused", home["id"], PURPOSE)]
    assert ("partner_contact_refused", other["id"], PURPOSE) in await audit_actions(registry)

    # In progress it stays readable; once done it is refused, and a late, older event does not open it again.
    await deliver(registry.app, REFERRAL_UPDATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id, status="in_progress", version=2)
        | {"status_before": "open"})
    assert (await registry.client.get(url, headers=hospital | purpose())).status_code == 200
    await deliver(registry.app, REFERRAL_UPDATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id, status="done", version=3)
        | {"status_before": "in_progress"})
    problem(await registry.client.get(url, headers=hospital | purpose()), 404)
    await deliver(registry.app, REFERRAL_UPDATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id, status="in_progress", version=2)
        | {"status_before": "open"})
    problem(await registry.client.get(url, headers=hospital | purpose()), 404)
    # The creation redelivered (the same event id: the inbox knows it) or published again under a new id.
    await deliver(registry.app, REFERRAL_CREATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id), event_id=created_id)
    await deliver(registry.app, REFERRAL_CREATED, referral_event(
        home["id"], referral_id=referral_id, partner_id=partner_id))
    problem(await registry.client.get(url, headers=hospital | purpose()), 404)


@databases
@pytest.mark.parametrize("final", ["cancelled", "declined"])
async def test_a_cancelled_or_declined_referral_opens_nothing(registry: Registry, final: str) -> None:
    home = await registered(registry, person(registry.cid(), phone="0812345678"))
    partner_id, first, second = new_id(), new_id(), new_id()
    hospital = registry.as_(PARTNER, areas=("40",), client_id=HOSPITAL_CLIENT)
    url = f"/v1/households/{home['id']}/contact"
    for referral_id in (first, second):
        await deliver(registry.app, REFERRAL_CREATED, referral_event(
            home["id"], referral_id=referral_id, partner_id=partner_id))
    assert sorted((await registry.client.get(url, headers=hospital | purpose())).json()["referral_ids"]) == sorted(
        [first, second])
    await deliver(registry.app, REFERRAL_UPDATED, referral_event(
        home["id"], referral_id=first, partner_id=partner_id, status=final, version=2) | {"status_before": "open"})
    # Still one open: the read names only it.
    assert (await registry.client.get(url, headers=hospital | purpose())).json()["referral_ids"] == [second]
    await deliver(registry.app, REFERRAL_UPDATED, referral_event(
        home["id"], referral_id=second, partner_id=partner_id, status=final, version=2) | {"status_before": "open"})
    problem(await registry.client.get(url, headers=hospital | purpose()), 404)


@databases
async def test_a_referral_to_a_partner_with_no_client_opens_nothing(registry: Registry) -> None:
    home = await registered(registry)
    await deliver(registry.app, REFERRAL_CREATED, referral_event(
        home["id"], referral_id=new_id(), partner_id=new_id(), client_id=None))
    hospital = registry.as_(PARTNER, areas=("40",), client_id=HOSPITAL_CLIENT)
    problem(await registry.client.get(f"/v1/households/{home['id']}/contact", headers=hospital | purpose()), 404)


@databases
async def test_the_contact_phone_is_validated_masked_and_never_in_events(registry: Registry) -> None:
    bad = await registry.register(household(person(registry.cid(), phone="081-234-567")))
    error = problem(bad, 422)
    assert "phone" in json.dumps(error) and "10 digits" in json.dumps(error, ensure_ascii=False)
    problem(await registry.register(household(person(registry.cid(), phone="+1 202 555 0100"))), 422)

    home = await registered(registry, person(registry.cid(), phone="+66812345678"), person(registry.cid(), "spouse"))
    masked = (await registry.client.get(f"/v1/households/{home['id']}",
                                        headers=registry.as_("registry:read"))).json()
    assert [m["phone"] for m in masked["members"]] == ["xxx-xxx-5678", None]
    whole = (await registry.client.get(f"/v1/households/{home['id']}",
                                       headers=registry.as_("registry:read", "pii:read") | purpose("ติดต่อ"))).json()
    assert [m["phone"] for m in whole["members"]] == ["081-234-5678", None]
    listed = (await registry.client.get("/v1/households", headers=registry.as_("registry:read"))).json()
    assert [m["phone"] for h in listed["items"] for m in h["members"]] == ["xxx-xxx-5678", None]

    # Added and transferred members keep theirs.
    added = await registry.client.post(f"/v1/households/{home['id']}/members", json=person(
        registry.cid(), "child", phone="043 123 456"), headers=registry.admin | {"If-Match": '"v1"'})
    assert added.status_code == 201, added.text
    assert added.json()["members"][-1]["phone"] == "04-312-3456"
    target = await registered(registry)
    moved = await registry.client.post(
        f"/v1/households/{home['id']}/members/{added.json()['members'][-1]['id']}:transfer",
        json={"to_household_id": target["id"], "relation": "child"}, headers=registry.admin | {"If-Match": '"v2"'})
    assert moved.status_code == 200, moved.text
    arrived = (await registry.client.get(f"/v1/households/{target['id']}", headers=registry.admin)).json()
    assert arrived["members"][-1]["phone"] == "04-312-3456"

    # A member's phone changes in place (If-Match), or goes; the event says what changed, never the number.
    current = await registry.client.get(f"/v1/households/{home['id']}", headers=registry.admin)
    head_id, home_now = current.json()["members"][0]["id"], current.headers["etag"]
    member_url = f"/v1/households/{home['id']}/members/{head_id}"
    problem(await registry.client.patch(member_url, json={"phone": "0812345678"}, headers=registry.admin), 428)
    problem(await registry.client.patch(member_url, json={"phone": "12"}, headers=registry.admin
                                        | {"If-Match": home_now}), 422)
    changed = await registry.client.patch(member_url, json={"phone": "09-1234-5678"},
                                          headers=registry.admin | {"If-Match": home_now})
    assert changed.status_code == 200, changed.text
    assert changed.json()["members"][0]["phone"] == "091-234-5678"
    same = await registry.client.patch(member_url, json={"phone": "0912345678"},
                                       headers=registry.admin | {"If-Match": changed.headers["etag"]})
    assert same.headers["etag"] == changed.headers["etag"]  # nothing changed: same version, no event
    removed = await registry.client.patch(member_url, json={"phone": None},
                                          headers=registry.admin | {"If-Match": changed.headers["etag"]})
    assert removed.json()["members"][0]["phone"] is None
    updates = [d["changed"] for t, _, d in await registry.events() if t == "household.updated"]
    assert updates == [["members.phone"], ["members.phone"]]

    # No event carries a phone, in any form.
    published = json.dumps([data for _, _, data in await registry.events()])
    assert '"phone"' not in published
    for digits in ("0812345678", "812345678", "043123456", "0912345678", "912345678"):
        assert digits not in published


def test_thai_phone_numbers() -> None:
    for typed in ("081-234-5678", "0812345678", "+66 81 234 5678", "66812345678", "0066812345678",
                  "(081) 234.5678"):
        assert validate_thai_phone(typed) == "0812345678"
    assert validate_thai_phone("02-123-4567") == "021234567" == validate_thai_phone("+66 2 123 4567")
    assert format_phone("0812345678") == "081-234-5678" and format_phone("021234567") == "02-123-4567"
    assert mask_phone("0812345678") == "xxx-xxx-5678" and mask_phone("021234567", 2) == "xx-xxx-xx67"
    assert mask_phone("0812345678", 0) == "xxx-xxx-xxxx"
    for wrong in ("081234567", "021234567 8", "0112345678", "+1 202 555 0100", "๐๘๑๒๓๔๕๖๗๘", "812345678", "", "0"):
        with pytest.raises(InvalidPhone):
            validate_thai_phone(wrong)


@databases
async def test_a_partner_looks_up_only_among_the_households_referred_to_it(registry: Registry) -> None:
    mine_cid, theirs_cid = registry.cid(), registry.cid()
    home = await registered(registry, person(mine_cid, phone="0812345678"))
    await registered(registry, person(theirs_cid))
    await deliver(registry.app, REFERRAL_CREATED, referral_event(home["id"], referral_id=new_id(),
                                                                 partner_id=new_id()))
    hospital = registry.as_(PARTNER, areas=("40",), client_id=HOSPITAL_CLIENT)

    found = await registry.client.post("/v1/households:lookup", json={"citizen_id": mine_cid},
                                       headers=hospital | purpose())
    assert found.status_code == 200, found.text
    # The partner gets the contact, not the household: no member list, no citizen IDs.
    assert found.json()["household_id"] == home["id"] and found.json()["phone"] == "081-234-5678"
    assert "members" not in found.json()
    # Someone registered but not referred to it, and someone not registered: the same answer, no household id.
    not_mine = problem(await registry.client.post("/v1/households:lookup", json={"citizen_id": theirs_cid},
                                                  headers=hospital | purpose()), 404)
    nobody = problem(await registry.client.post("/v1/households:lookup", json={"citizen_id": registry.cid()},
                                                headers=hospital | purpose()), 404)
    assert not_mine["detail"] == nobody["detail"] and "household_id" not in not_mine
    # The purpose is required of a partner; a client with neither scope is refused.
    problem(await registry.client.post("/v1/households:lookup", json={"citizen_id": mine_cid}, headers=hospital), 422)
    problem(await registry.client.post("/v1/households:lookup", json={"citizen_id": mine_cid},
                                       headers=registry.as_("registry:read") | purpose()), 403)
    # Staff lookups are as before.
    staff = await registry.client.post("/v1/households:lookup", json={"citizen_id": theirs_cid},
                                       headers=registry.as_("registry:lookup"))
    assert staff.status_code == 200 and "members" in staff.json()

    actions = [action for action, _, _ in await audit_actions(registry)]
    assert actions == ["partner_lookup", "partner_lookup_refused", "partner_lookup_refused"]
