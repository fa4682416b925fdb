"""Centres, their subsidies pushed by the ministry, and the reconciliation of budgets with payments
(SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.ids import new_id
from tests.kit.apps import problem
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

URL = "/v1/centre-subsidies"


async def centre(assistance: Assistance, *, kind: str = "family_development_centre", subdistrict: str = "400101",
                 name: str = "ศูนย์พัฒนาครอบครัวในชุมชนตำบลในเมือง") -> dict[str, Any]:
    response = await assistance.client.post("/v1/centres", json={
        "kind": kind, "name": name, "subdistrict_code": subdistrict, "local_government": "เทศบาลนครขอนแก่น"},
        headers=assistance.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def subsidies(items: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"batch_ref": f"SUB-{new_id()[-12:]}", "fiscal_year": 2565, "paid_on": "2022-01-27",
            "items": items} | fields


async def test_centres_are_registered_with_thai_names_and_listed_by_area(assistance: Assistance) -> None:
    made = await centre(assistance)
    assert made["name"] == "ศูนย์พัฒนาครอบครัวในชุมชนตำบลในเมือง" and made["subdistrict_name_th"] == "ในเมือง"
    assert (await assistance.events())[-1] == ("centre.registered", made["id"], {
        "centre_id": made["id"], "kind": "family_development_centre", "province_code": "40",
        "district_code": "4001", "subdistrict_code": "400101"})
    await centre(assistance, kind="tambon_social_assistance_centre", subdistrict="400201", name="ศูนย์ช่วยเหลือสังคมตำบล")
    listed = (await assistance.client.get("/v1/centres", params={"area": "4001"}, headers=assistance.admin)).json()
    assert [c["id"] for c in listed["items"]] == [made["id"]] and listed["next_cursor"] is None
    mueang = assistance.as_("assistance:read", "assistance:write", areas=("4001",))
    assert len((await assistance.client.get("/v1/centres", headers=mueang)).json()["items"]) == 1
    problem(await assistance.client.post("/v1/centres", json={
        "kind": "family_development_centre", "name": "x", "subdistrict_code": "400201",
        "local_government": "y"}, headers=mueang), 403)
    problem(await assistance.client.post("/v1/centres", json={
        "kind": "family_development_centre", "name": "x", "subdistrict_code": "409999",
        "local_government": "y"}, headers=assistance.admin), 422)


async def test_subsidies_are_pushed_like_grants_and_checked_per_item(assistance: Assistance) -> None:
    await assistance.budget("780000.00", programme="centre_subsidy")
    fdc = await centre(assistance)
    tambon = await centre(assistance, kind="tambon_social_assistance_centre")
    elsewhere = await centre(assistance, subdistrict="410101")
    body = subsidies([
        {"item_ref": "1", "centre_id": fdc["id"], "amount": "30000.00"},
        {"item_ref": "2", "centre_id": tambon["id"], "amount": "30000.00"},
        {"item_ref": "3", "centre_id": new_id(), "amount": "30000.00"},
        {"item_ref": "4", "centre_id": elsewhere["id"], "amount": "30000.00"},
        {"item_ref": "5", "centre_id": fdc["id"], "amount": "760000.00"},
    ])
    first = await assistance.push(body, key="sub-1", url=URL)
    assert first.status_code == 201, first.text
    assert [(i["status"], i["reason"]) for i in first.json()["items"]] == [
        ("accepted", None), ("rejected", "centre_not_eligible"), ("rejected", "unknown_centre"),
        ("rejected", "no_budget"), ("rejected", "centre_twice_in_batch")]
    again = await assistance.push(body, key="sub-1", url=URL)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    problem(await assistance.push(body, key=None, url=URL), 400)
    problem(await assistance.push(body, key="sub-1", url=URL, tamper=True), 401)
    recorded = [(k, d["amount"]) for t, k, d in await assistance.events() if t == "centre_subsidy.recorded"]
    assert recorded == [(fdc["id"], "30000.00")]
    budget = (await assistance.client.get("/v1/budgets/centre_subsidy/2565/40", headers=assistance.admin)).json()
    assert budget["remaining"] == "750000.00"


async def test_one_subsidy_a_centre_a_year_and_a_reversal_gives_the_money_back(assistance: Assistance) -> None:
    await assistance.budget("100000.00", programme="centre_subsidy")
    fdc, other = await centre(assistance), await centre(assistance, name="ศพค. ตำบลศิลา")
    twice = (await assistance.push(subsidies([
        {"item_ref": "1", "centre_id": fdc["id"], "amount": "10000.00"},
        {"item_ref": "2", "centre_id": fdc["id"], "amount": "10000.00"},
        {"item_ref": "3", "centre_id": other["id"], "amount": "10000.00"}]), key="a", url=URL)).json()
    assert [(i["status"], i["reason"]) for i in twice["items"]] == [
        ("accepted", None), ("rejected", "centre_twice_in_batch"), ("accepted", None)]
    later = (await assistance.push(subsidies([{"item_ref": "1", "centre_id": fdc["id"], "amount": "10000.00"}]),
                                   key="b", url=URL)).json()
    assert [(i["status"], i["reason"]) for i in later["items"]] == [("rejected", "centre_yearly_cap_reached")]
    remaining = (await assistance.client.get("/v1/budgets/centre_subsidy/2565/40", headers=assistance.admin)).json()
    assert remaining["remaining"] == "80000.00"

    paid = twice["items"][0]["disbursement_id"]
    undone = await assistance.client.post(f"/v1/disbursements/{paid}/reversal", json={"reason": "ศูนย์ปิดชั่วคราว"},
                                          headers=assistance.admin)
    assert undone.status_code == 200, undone.text
    assert (undone.json()["status"], undone.json()["centre_id"]) == ("reversed", fdc["id"])
    remaining = (await assistance.client.get("/v1/budgets/centre_subsidy/2565/40", headers=assistance.admin)).json()
    assert remaining["remaining"] == "90000.00"
    assert [(t, k, d["amount"]) for t, k, d in await assistance.events() if t == "centre_subsidy.reversed"] == [
        ("centre_subsidy.reversed", fdc["id"], "10000.00")]
    problem(await assistance.client.post(f"/v1/disbursements/{paid}/reversal", json={"reason": "อีกครั้ง"},
                                         headers=assistance.admin), 409)
    again = (await assistance.push(subsidies([{"item_ref": "1", "centre_id": fdc["id"], "amount": "10000.00"}]),
                                   key="c", url=URL)).json()
    assert [i["status"] for i in again["items"]] == ["accepted"]  # the reversal gave its year's subsidy back


async def test_reconciliation_equals_the_sum_of_the_payments(assistance: Assistance) -> None:
    await assistance.budget("9000.00", area="4001")
    await assistance.budget("3000.00", area="4002")
    await assistance.budget("50000.00", area="40", programme="centre_subsidy")
    mueang = [await assistance.household() for _ in range(3)]
    ban_fang, _ = await assistance.household(village="40020101")
    paid = (await assistance.push(assistance.batch(
        [item(f"M{n}", household_id=h) for n, (h, _) in enumerate(mueang)] + [item("B", household_id=ban_fang)]),
        key="grants")).json()
    assert paid["totals"]["accepted_amount"] == "12000.00"
    await assistance.client.post(f"/v1/disbursements/{paid['items'][0]['disbursement_id']}/reversal",
                                 json={"reason": "ย้ายออกนอกพื้นที่"}, headers=assistance.admin)
    fdc = await centre(assistance)
    await assistance.push(subsidies([{"item_ref": "1", "centre_id": fdc["id"], "amount": "12345.67"}]),
                          key="subsidy", url=URL)

    report = (await assistance.client.get("/v1/reconciliation", params={"fiscal_year": 2565, "area": "40"},
                                          headers=assistance.admin)).json()
    rows = {(r["programme"], r["area_code"]): r for r in report["budgets"]}
    assert set(rows) == {("family_grant", "4001"), ("family_grant", "4002"), ("centre_subsidy", "40")}
    grants = rows[("family_grant", "4001")]
    assert (grants["allocated"], grants["disbursed"], grants["reversed"], grants["remaining"]) == (
        "9000.00", "9000.00", "3000.00", "3000.00")
    assert (grants["payments"], grants["paid_amount"], grants["reversed_payments"], grants["reversed_amount"]) == (
        2, "6000.00", 1, "3000.00")
    assert all(r["balanced"] for r in report["budgets"])
    family = report["totals"]["family_grant"]
    assert (family["allocated"], family["paid_amount"], family["remaining"], family["balanced"]) == (
        "12000.00", "9000.00", "3000.00", True)
    assert report["totals"]["centre_subsidy"]["paid_amount"] == "12345.67"
    paid_total = sum(Decimal(r["paid_amount"]) for r in report["budgets"])
    assert paid_total == Decimal("9000.00") + Decimal("12345.67")
    ban_fang_only = assistance.as_("assistance:read", areas=("4002",))
    mine = (await assistance.client.get("/v1/reconciliation", params={"fiscal_year": 2565},
                                        headers=ban_fang_only)).json()
    assert [(r["programme"], r["area_code"]) for r in mine["budgets"]] == [("family_grant", "4002")]
    problem(await assistance.client.get("/v1/reconciliation", params={"fiscal_year": 2565, "area": "4001"},
                                        headers=ban_fang_only), 404)
