"""The ministry's push of family grants: matching, eligibility, yearly cap, exact money, reversal, the largest
batch, and the kick-off of the source document end to end (SQLite and PostgreSQL). Budgets under a race are in
test_budgets, the Idempotency-Key and signatures in test_pushes, the events behind eligibility in
test_projection."""

from __future__ import annotations

import base64
import json
import os
from decimal import Decimal

import pytest
from pydantic import SecretStr

from shared.ids import new_id
from shared.pii import CitizenIdProtector
from tests.kit.apps import problem
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_the_kick_off_360_families_once_even_when_pushed_twice(assistance: Assistance) -> None:
    assert (await assistance.budget("1080000.00")).status_code == 200
    families = [await assistance.household(village=f"400{101 + n % 3:03d}0{1 + n % 5}") for n in range(360)]
    body = assistance.batch([item(f"KK-{n:04d}", cid=cid) for n, (_, cid) in enumerate(families)],
                            batch_ref="MSDHS-KK-2565-0001")
    first = await assistance.push(body, key="kk-kickoff-2565")
    assert first.status_code == 201, first.text
    totals = first.json()["totals"]
    assert totals == {"items": 360, "amount": "1080000.00", "accepted": 360, "rejected": 0, "reversed": 0,
                      "accepted_amount": "1080000.00", "rejected_amount": "0.00", "reversed_amount": "0.00"}
    assert await assistance.remaining() == Decimal("0.00")

    again = await assistance.push(body, key="kk-kickoff-2565")  # the ministry's retry: new signature, same key
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await assistance.remaining() == Decimal("0.00")
    recorded = [d for t, _k, d in await assistance.events() if t == "disbursement.recorded"]
    assert len(recorded) == 360 and sum(Decimal(d["amount"]) for d in recorded) == Decimal("1080000.00")
    state = (await assistance.client.get("/v1/disbursement-batches/MSDHS-KK-2565-0001",
                                         headers=assistance.admin)).json()
    assert state["totals"]["accepted_amount"] == "1080000.00"


async def test_each_item_is_checked_and_a_rejected_one_does_not_block_the_rest(assistance: Assistance) -> None:
    await assistance.budget("100000.00", area="4001")
    poor, poor_cid = await assistance.household()
    vulnerable, _ = await assistance.household(sources=("vulnerable",), target_poor=None)
    not_poor, _ = await assistance.household(target_poor=False)
    closed, _ = await assistance.household(status="closed")
    other_province, _ = await assistance.household(village="41010101")
    twice, _ = await assistance.household()
    body = assistance.batch([
        item("A", cid=poor_cid),
        item("B", household_id=vulnerable),
        item("C", cid="1234567890123"),                    # bad check digit
        item("D", household_id=new_id()),                  # never announced
        item("E", household_id=not_poor),
        item("F", household_id=closed),
        item("G", household_id=other_province),            # no budget covers province 41
        item("H", household_id=twice, amount="3500.00"),   # above the programme's 3,000
        item("I", household_id=twice),
        item("J", household_id=twice),                     # a second payment this fiscal year
    ])
    response = await assistance.push(body)
    assert response.status_code == 201, response.text
    outcome = {i["item_ref"]: (i["status"], i["reason"]) for i in response.json()["items"]}
    assert outcome == {
        "A": ("accepted", None), "B": ("accepted", None), "C": ("rejected", "invalid_citizen_id"),
        "D": ("rejected", "unknown_household"), "E": ("rejected", "not_eligible"),
        "F": ("rejected", "household_closed"), "G": ("rejected", "no_budget"),
        "H": ("rejected", "amount_above_maximum"), "I": ("accepted", None), "J": ("rejected", "yearly_cap_reached")}
    assert response.json()["items"][0]["household_id"] == poor
    assert response.json()["totals"]["accepted_amount"] == "9000.00"
    assert await assistance.remaining("4001") == Decimal("91000.00")


async def test_during_a_hash_key_rotation_a_push_matches_members_hashed_under_either_key(
        assistance: Assistance) -> None:
    """Members announced under the key being replaced, and one re-hashed under the new key already, are all
    found by citizen ID once the new key is current and the old one previous (the whole batch in one query)."""
    await assistance.budget("9000.00")
    families = [await assistance.household() for _ in range(2)]  # hashed under the current key
    old = assistance.settings.pii
    rotated = old.model_copy(update={"hash_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
                                     "previous_hash_keys": [old.hash_key]})
    assistance.app.state.protector = CitizenIdProtector(rotated)  # what the push route hashes with
    assistance.settings = assistance.settings.model_copy(update={"pii": rotated})  # what the kit announces with
    rehashed = await assistance.household()  # announced under the new key
    body = assistance.batch([item("OLD-1", cid=families[0][1]), item("OLD-2", cid=families[1][1]),
                             item("NEW-1", cid=rehashed[1])])
    response = await assistance.push(body)
    assert response.status_code == 201, response.text
    assert {i["item_ref"]: (i["status"], i["household_id"]) for i in response.json()["items"]} == {
        "OLD-1": ("accepted", families[0][0]), "OLD-2": ("accepted", families[1][0]),
        "NEW-1": ("accepted", rehashed[0])}


async def test_money_is_exact_and_bad_amounts_are_refused(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    # The forms refused besides (README, "Amounts"): exponents, spaces around, a sign, leading zeros, a JSON
    # number with a fraction (a float), true.
    for amount in ("0", "-3000", "3000.001", "NaN", "1e3", "3e3", " 3000.00", "3000.00 ", "+3000", "03000",
                   "3,000.00", 3000.5, 1e3, True):
        response = await assistance.push(assistance.batch([item("1", household_id=household_id, amount=amount)]),
                                         key=f"bad-{amount!r}")
        assert problem(response, 422)["errors"][0]["field"].startswith("body.items.0.amount"), amount
    for amount in ("0.001", "-1", "1e20", " 5.00", "5e2"):
        problem(await assistance.budget(amount), 422)
    for amount in ("3000", 3000, "2999.5", "0.50"):  # the forms taken: digits, at most two decimals, or a whole number
        assert (await assistance.budget(amount)).status_code == 200, amount
    problem(await assistance.push(assistance.batch([item("1", household_id=household_id)], paid_on="2022-10-01"),
                                  key="fy"), 422)  # FY 2566, not 2565


async def test_a_reversal_returns_the_money_and_the_yearly_payment(assistance: Assistance) -> None:
    await assistance.budget("3000.00")
    household_id, _ = await assistance.household()
    paid = (await assistance.push(assistance.batch([item("1", household_id=household_id)]), key="p1")).json()
    payment_id = paid["items"][0]["disbursement_id"]
    assert await assistance.remaining() == Decimal("0.00")
    reversed_ = await assistance.client.post(f"/v1/disbursements/{payment_id}/reversal",
                                             json={"reason": "จ่ายซ้ำซ้อน"}, headers=assistance.admin)
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "reversed"
    assert await assistance.remaining() == Decimal("3000.00")
    problem(await assistance.client.post(f"/v1/disbursements/{payment_id}/reversal", json={"reason": "again"},
                                         headers=assistance.admin), 409)
    again = await assistance.push(assistance.batch([item("1", household_id=household_id)]), key="p2")
    assert again.json()["items"][0]["status"] == "accepted"  # the reversed payment no longer counts
    budget = (await assistance.client.get("/v1/budgets/family_grant/2565/40", headers=assistance.admin)).json()
    assert (budget["allocated"], budget["disbursed"], budget["reversed"], budget["remaining"]) == (
        "3000.00", "6000.00", "3000.00", "0.00")
    reversal = [d for t, _k, d in await assistance.events() if t == "disbursement.reversed"]
    assert [(d["disbursement_id"], d["amount"], d["reason"]) for d in reversal] == [
        (payment_id, "3000.00", "จ่ายซ้ำซ้อน")]
    problem(await assistance.client.put("/v1/budgets/family_grant/2565/40", json={"amount": "2999.99"},
                                        headers=assistance.admin), 409)  # 3,000 is disbursed
    outside = assistance.as_("assistance:read", "assistance:write", areas=("4101",))
    problem(await assistance.client.post(f"/v1/disbursements/{payment_id}/reversal", json={"reason": "x"},
                                         headers=outside), 404)


async def test_the_largest_batch_the_api_promises_fits_its_body_limit(assistance: Assistance) -> None:
    """10,000 items (KAENKHUN_ASSISTANCE_BATCH_MAX_ITEMS) with Thai notes is well over the 1 MiB default body
    limit; the push endpoints take it. One item more is refused by the batch rule (422), not the body limit."""
    note = "โอนผ่านบัญชีธนาคารกรุงไทย " * 4
    items = [item(f"R{n:05d}", household_id=new_id()) | {"note": note} for n in range(10_000)]
    body = json.dumps(assistance.batch(items), ensure_ascii=False).encode()
    assert len(body) > 2 * 1_048_576
    response = await assistance.push(body)
    assert response.status_code == 201, response.text[:500]
    assert len(response.json()["items"]) == 10_000
    over = json.dumps(assistance.batch([*items, item("R10000", household_id=new_id())]), ensure_ascii=False)
    assert problem(await assistance.push(over.encode(), key="over"), 422)["status"] == 422
