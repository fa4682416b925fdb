"""The ministry reconciles after its push: its own client reads back every batch and every item's state now
(unmatched items and reversals included), the feed of payments by when their state moved, totals that agree with
the push's answer; a province's reader sees its items and only the number of the others; a replayed push answers
as the first did, with a link to the batch now (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from ops.scratchdb import ScratchDatabases
from services import load
from services.assistance.models import Disbursement
from shared import migrations
from shared.auth import TOKEN_URL
from shared.clock import THAILAND
from shared.db import as_utc, create_engine, sessionmaker, transaction
from shared.ids import new_id
from shared.settings import DEV_CLIENT_SECRET
from tests.assistance.support import partner
from tests.kit.apps import problem
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

MINISTRY = "msdhs-ministry"
BATCH = "MSDHS-FG-2565-0042"


async def ministry_token(assistance: Assistance) -> dict[str, str]:
    """A token for the ministry's development client, taken as the README shows (client credentials)."""
    answer = await assistance.client.post(TOKEN_URL, data={
        "grant_type": "client_credentials", "client_id": MINISTRY, "client_secret": DEV_CLIENT_SECRET})
    assert answer.status_code == 200, answer.text
    granted = answer.json()
    assert "assistance:disbursements:read" in granted["scope"].split()
    return {"Authorization": f"Bearer {granted['access_token']}"}


async def pushed_batch(assistance: Assistance) -> tuple[dict[str, Any], dict[str, str]]:
    """Seven grants: three accepted (one in another province), two that matched no household, two rejected
    for a household of Khon Kaen. Returns the push's answer and the item refs' household ids."""
    await assistance.budget("30000.00", area="40")
    await assistance.budget("30000.00", area="41")
    poor, poor_cid = await assistance.household()
    second, _ = await assistance.household(village="40020101")
    not_poor, _ = await assistance.household(target_poor=False)
    elsewhere, _ = await assistance.household(village="41010101")
    body = assistance.batch([
        item("A", cid=poor_cid),
        item("B", household_id=second),
        item("C", cid="1234567890123"),          # bad check digit: matched nothing
        item("D", household_id=new_id()),        # never registered: matched nothing
        item("E", household_id=not_poor),
        item("F", household_id=elsewhere),       # Udon Thani (41): outside Khon Kaen's view
        item("G", household_id=poor, amount="1500.00"),  # a second payment this fiscal year
    ], batch_ref=BATCH)
    first = await assistance.push(body, key="msdhs-0042")
    assert first.status_code == 201, first.text
    return first.json(), {"A": poor, "B": second, "E": not_poor, "F": elsewhere, "G": poor}


async def test_the_ministry_reads_back_what_it_pushed(assistance: Assistance) -> None:
    pushed, households = await pushed_batch(assistance)
    assert pushed["totals"] == {"items": 7, "amount": "19500.00", "accepted": 3, "rejected": 4, "reversed": 0,
                                "accepted_amount": "9000.00", "rejected_amount": "10500.00",
                                "reversed_amount": "0.00"}
    assert pushed["outside_view"] == {"items": 0}
    b = next(i for i in pushed["items"] if i["item_ref"] == "B")
    reversed_ = await assistance.client.post(f"/v1/disbursements/{b['disbursement_id']}/reversal",
                                             json={"reason": "บัญชีปิดแล้ว"}, headers=assistance.admin)
    assert reversed_.status_code == 200 and reversed_.json()["reversal_reason"] == "บัญชีปิดแล้ว"

    ministry = await ministry_token(assistance)
    state = await assistance.client.get(f"/v1/disbursement-batches/{BATCH}", headers=ministry)
    assert state.status_code == 200, state.text
    batch = state.json()
    by_ref = {i["item_ref"]: i for i in batch["items"]}
    assert {r: (i["status"], i["reason"], i["household_id"]) for r, i in by_ref.items()} == {
        "A": ("accepted", None, households["A"]), "B": ("reversed", None, households["B"]),
        "C": ("rejected", "invalid_citizen_id", None), "D": ("rejected", "unknown_household", None),
        "E": ("rejected", "not_eligible", households["E"]), "F": ("accepted", None, households["F"]),
        "G": ("rejected", "yearly_cap_reached", households["G"])}
    assert by_ref["B"]["reversal_reason"] == "บัญชีปิดแล้ว"
    # The time the reversal answered with, not a window around the test's clock.
    when = datetime.fromisoformat(by_ref["B"]["reversed_at"])
    assert when.tzinfo is not None and when == datetime.fromisoformat(reversed_.json()["reversed_at"])
    assert by_ref["D"]["reason_text"].startswith("no household of the registry matches")
    assert all(by_ref[r]["reversed_at"] is None for r in "ACDEFG")
    # The same totals: nothing added, nothing lost; the reversal moved one payment and its money.
    assert batch["totals"] == {"items": 7, "amount": "19500.00", "accepted": 2, "rejected": 4, "reversed": 1,
                               "accepted_amount": "6000.00", "rejected_amount": "10500.00",
                               "reversed_amount": "3000.00"}
    assert batch["outside_view"] == {"items": 0}
    assert (batch["batch_ref"], batch["programme"], batch["fiscal_year"], batch["paid_on"], batch["received_at"]) \
        == (pushed["batch_ref"], pushed["programme"], pushed["fiscal_year"], pushed["paid_on"], pushed["received_at"])

    listed = await assistance.client.get("/v1/disbursement-batches", headers=ministry)
    assert listed.status_code == 200, listed.text
    assert [(b["batch_ref"], b["totals"], b["outside_view"]) for b in listed.json()["items"]] == [
        (BATCH, batch["totals"], {"items": 0})]

    # The ministry's client reads back and nothing more: no reversal, no budget, no household's visits.
    problem(await assistance.client.post(f"/v1/disbursements/{by_ref['A']['disbursement_id']}/reversal",
                                         json={"reason": "x"}, headers=ministry), 403)
    problem(await assistance.client.get("/v1/budgets/family_grant/2565/40", headers=ministry), 403)


async def test_a_province_sees_its_items_and_the_count_of_the_rest(assistance: Assistance) -> None:
    pushed, _ = await pushed_batch(assistance)
    khon_kaen = assistance.as_("assistance:read", areas=("40",))
    state = (await assistance.client.get(f"/v1/disbursement-batches/{BATCH}", headers=khon_kaen)).json()
    assert [i["item_ref"] for i in state["items"]] == ["A", "B", "E", "G"]
    assert state["outside_view"] == {"items": 3}  # C and D matched no household, F is in province 41
    assert state["totals"] == pushed["totals"]    # the whole batch's, as the push answered
    listed = (await assistance.client.get("/v1/disbursement-batches", headers=khon_kaen)).json()["items"]
    assert [(b["totals"], b["outside_view"]) for b in listed] == [(pushed["totals"], {"items": 3})]
    feed = (await assistance.client.get("/v1/disbursements", headers=khon_kaen)).json()["items"]
    assert sorted(p["item_ref"] for p in feed) == ["A", "B", "E", "G"]
    nowhere = assistance.as_("assistance:read", areas=("4102",))
    state = (await assistance.client.get(f"/v1/disbursement-batches/{BATCH}", headers=nowhere)).json()
    assert state["items"] == [] and state["outside_view"] == {"items": 7} and state["totals"] == pushed["totals"]


async def test_the_feed_follows_each_payment_as_its_state_moves(assistance: Assistance) -> None:
    await pushed_batch(assistance)
    ministry = await ministry_token(assistance)
    everything = (await assistance.client.get("/v1/disbursements", headers=ministry)).json()
    assert everything["next_cursor"] is None
    feed = everything["items"]
    assert sorted(p["item_ref"] for p in feed) == list("ABCDEFG")
    assert {p["batch_ref"] for p in feed} == {BATCH}
    assert [(p["updated_at"], p["disbursement_id"]) for p in feed] == sorted(
        (p["updated_at"], p["disbursement_id"]) for p in feed)
    unmatched = [p for p in feed if p["household_id"] is None]
    assert sorted(p["item_ref"] for p in unmatched) == ["C", "D"]

    # Page through; the payment the cursor stands on is reversed meanwhile: no payment is skipped, and the
    # reversed one comes again, later, in its new state.
    at = next(n for n, p in enumerate(feed) if p["status"] == "accepted" and n < len(feed) - 1)
    first = (await assistance.client.get("/v1/disbursements", params={"limit": at + 1}, headers=ministry)).json()
    anchor = first["items"][-1]
    assert anchor["disbursement_id"] == feed[at]["disbursement_id"] and first["next_cursor"]
    before_reversal = datetime.now(UTC)
    done = await assistance.client.post(f"/v1/disbursements/{anchor['disbursement_id']}/reversal",
                                        json={"reason": "ผู้รับเสียชีวิต"}, headers=assistance.admin)
    assert done.status_code == 200, done.text
    seen = [p["disbursement_id"] for p in first["items"]]
    cursor, last = first["next_cursor"], None
    while cursor:
        page = (await assistance.client.get("/v1/disbursements", params={"limit": 2, "cursor": cursor},
                                            headers=ministry)).json()
        seen += [p["disbursement_id"] for p in page["items"]]
        last = page["items"][-1] if page["items"] else None
        cursor = page["next_cursor"]
    assert seen == [p["disbursement_id"] for p in feed] + [anchor["disbursement_id"]]
    assert last is not None and last["status"] == "reversed" and last["reversal_reason"] == "ผู้รับเสียชีวิต"

    since = await assistance.client.get("/v1/disbursements", params={"updated_since": before_reversal.isoformat()},
                                        headers=ministry)
    assert [(p["disbursement_id"], p["status"]) for p in since.json()["items"]] == [
        (anchor["disbursement_id"], "reversed")]
    reversed_only = (await assistance.client.get("/v1/disbursements", params={"status": "reversed"},
                                                 headers=ministry)).json()["items"]
    assert [p["disbursement_id"] for p in reversed_only] == [anchor["disbursement_id"]]
    assert datetime.fromisoformat(reversed_only[0]["updated_at"]) >= before_reversal
    rejected = (await assistance.client.get("/v1/disbursements", params={"status": "rejected"},
                                            headers=ministry)).json()["items"]
    assert sorted(p["item_ref"] for p in rejected) == ["C", "D", "E", "G"]
    # A time in Thailand's zone is the same instant.
    bangkok = before_reversal.astimezone(THAILAND)
    assert (await assistance.client.get("/v1/disbursements", params={"updated_since": bangkok.isoformat()},
                                        headers=ministry)).json() == since.json()
    problem(await assistance.client.get("/v1/disbursements", params={"cursor": "not-ours"}, headers=ministry), 400)
    problem(await assistance.client.get("/v1/disbursements", params={"updated_since": "2022-01-27T10:00:00"},
                                        headers=ministry), 422)  # a time without its zone is ambiguous


async def test_every_batch_received_in_pages(assistance: Assistance) -> None:
    await assistance.budget("30000.00")
    refs = []
    for n in range(3):
        household_id, _ = await assistance.household()
        ref = f"MSDHS-P-{n}"
        answer = await assistance.push(assistance.batch([item("1", household_id=household_id)], batch_ref=ref),
                                       key=f"page-{n}")
        assert answer.status_code == 201, answer.text
        refs.append((ref, answer.json()["received_at"]))
    ministry = await ministry_token(assistance)
    seen: list[str] = []
    cursor = None
    while True:
        page = (await assistance.client.get("/v1/disbursement-batches", params={"limit": 2} | (
            {"cursor": cursor} if cursor else {}), headers=ministry)).json()
        seen += [b["batch_ref"] for b in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [r for r, _ in refs]  # oldest first
    since = (await assistance.client.get("/v1/disbursement-batches", params={"since": refs[1][1]},
                                         headers=ministry)).json()["items"]
    assert [b["batch_ref"] for b in since] == ["MSDHS-P-1", "MSDHS-P-2"]
    assert all(b["totals"]["accepted_amount"] == "3000.00" for b in since)
    problem(await assistance.client.get("/v1/disbursement-batches/MSDHS-NONE", headers=ministry), 404)


async def test_who_may_not_read_back(assistance: Assistance) -> None:
    await pushed_batch(assistance)
    await partner(assistance, client_id="kk-hospital")
    hospital = assistance.as_("assistance:partner", areas=("40",), client_id="kk-hospital")
    writer_only = assistance.as_("assistance:write", areas=("*",))
    for url in ("/v1/disbursement-batches", f"/v1/disbursement-batches/{BATCH}", "/v1/disbursements"):
        for headers in (hospital, writer_only):
            body = problem(await assistance.client.get(url, headers=headers), 403)
            assert body["missing_scopes"] == ["assistance:read"]
            assert "assistance:disbursements:read" in body["detail"]
        problem(await assistance.client.get(url), 401)
    # The operations say so in the OpenAPI document: either scope.
    document = assistance.app.openapi()
    for path in ("/v1/disbursement-batches", "/v1/disbursements"):
        assert document["paths"][path]["get"]["security"] == [
            {"OAuth2ClientCredentials": ["assistance:read"]},
            {"OAuth2ClientCredentials": ["assistance:disbursements:read"]}]
    assert "assistance:disbursements:read" in (
        document["components"]["securitySchemes"]["OAuth2ClientCredentials"]["flows"]["clientCredentials"]["scopes"])


async def test_a_replayed_push_answers_as_the_first_with_a_link_to_the_batch_now(assistance: Assistance) -> None:
    await assistance.budget("3000.00")
    household_id, _ = await assistance.household()
    body = assistance.batch([item("1", household_id=household_id), item("2", household_id=new_id())],
                            batch_ref="MSDHS-R-1")
    first = await assistance.push(body, key="replay-me")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    link = '</v1/disbursement-batches/MSDHS-R-1>; rel="status"'
    assert first.headers["link"] == link and first.headers["location"] == "/v1/disbursement-batches/MSDHS-R-1"
    payment = first.json()["items"][0]["disbursement_id"]
    assert (await assistance.client.post(f"/v1/disbursements/{payment}/reversal", json={"reason": "ซ้ำ"},
                                         headers=assistance.admin)).status_code == 200

    again = await assistance.push(body, key="replay-me")  # the ministry's retry after a timeout
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # the first answer, stored: the payment accepted then
    assert again.headers["link"] == link and again.headers["location"] == first.headers["location"]
    now = (await assistance.client.get(again.headers["location"], headers=await ministry_token(assistance))).json()
    assert [i["status"] for i in now["items"]] == ["reversed", "rejected"]
    assert Decimal(now["totals"]["reversed_amount"]) == Decimal("3000.00")
    assert await assistance.remaining() == Decimal("3000.00")  # no second effect

    refused = await assistance.push(body, key="another-key")  # a refusal is replayed too, with no link
    assert problem(refused, 409)["type"].endswith("batch-exists") and "link" not in refused.headers

    # Centre subsidies are batches too: the same link.
    subsidy = await assistance.push({"batch_ref": "MSDHS-CS-1", "fiscal_year": 2565,
                                     "paid_on": "2022-01-27", "items": [
                                         {"item_ref": "1", "centre_id": new_id(), "amount": "5000.00"}]},
                                    key="cs-1", url="/v1/centre-subsidies")
    assert subsidy.status_code == 201, subsidy.text
    assert subsidy.headers["link"] == '</v1/disbursement-batches/MSDHS-CS-1>; rel="status"'
    state = (await assistance.client.get("/v1/disbursement-batches/MSDHS-CS-1",
                                         headers=await ministry_token(assistance))).json()
    assert [(i["status"], i["reason"]) for i in state["items"]] == [("rejected", "unknown_centre")]


async def test_the_migration_dates_each_stored_payment_by_its_last_move(databases: ScratchDatabases) -> None:
    """Payments recorded before the feed existed get `updated_at`: when reversed, or else when recorded."""
    engine = create_engine(await databases.new("assistance"))
    migrations_dir = load("assistance").spec.migrations_dir
    recorded, undone = datetime(2026, 1, 5, 3, 0, tzinfo=UTC), datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
    try:
        await migrations.upgrade(engine, migrations_dir, "assistance_0007")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO disbursement_batch (id, batch_ref, programme, fiscal_year, paid_on, webhook_id, "
                "idempotency_key, items, accepted, rejected, accepted_amount, created_at) VALUES ('b', 'OLD-1', "
                "'family_grant', 2569, :paid_on, 'w', 'k', 2, 2, 0, 6000, :at)"), {"paid_on": date(2026, 1, 5),
                                                                                 "at": recorded})
            for ref, reversed_at in (("1", None), ("2", undone)):
                await conn.execute(text(
                    "INSERT INTO disbursement (id, batch_id, item_ref, programme, fiscal_year, paid_on, amount, "
                    "status, reversed_at, created_at) VALUES (:id, 'b', :ref, 'family_grant', 2569, :paid_on, "
                    "3000, :status, :reversed_at, :at)"),
                    {"id": f"d{ref}", "ref": ref, "paid_on": date(2026, 1, 5), "at": recorded,
                     "status": "reversed" if reversed_at else "accepted", "reversed_at": reversed_at})
        await migrations.upgrade(engine, migrations_dir)
        async with transaction(sessionmaker(engine)) as session:
            rows = (await session.execute(select(Disbursement).order_by(col(Disbursement.id)))).scalars().all()
            assert [(d.id, as_utc(d.updated_at)) for d in rows] == [("d1", recorded), ("d2", undone)]
    finally:
        await engine.dispose()
