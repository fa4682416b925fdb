"""Budgets and yearly caps: a budget never goes below zero and a household is never paid past its programme's
yearly cap, whatever the concurrency (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from services.assistance.disbursements.service import Allowances
from services.assistance.models import Allowance
from shared.db import transaction
from shared.errors import ServiceUnavailable
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_fifty_concurrent_pushes_race_for_the_last_3000_baht(assistance: Assistance) -> None:
    await assistance.budget("3000.00", area="4001")
    households = [await assistance.household() for _ in range(50)]
    responses = await asyncio.gather(*(
        assistance.push(assistance.batch([item("1", household_id=h)]), key=f"race-{n}")
        for n, (h, _) in enumerate(households)))
    assert [r.status_code for r in responses] == [201] * 50
    outcomes = [r.json()["items"][0]["status"] for r in responses]
    assert outcomes.count("accepted") == 1 and outcomes.count("rejected") == 49
    assert {r.json()["items"][0]["reason"] for r in responses} == {None, "budget_exhausted"}
    assert await assistance.remaining("4001") == Decimal("0.00")


async def test_two_concurrent_batches_share_the_last_of_a_budget_exactly(assistance: Assistance) -> None:
    """Two batches of eight grants race for a budget of ten: exactly ten are paid, whichever batch gets them."""
    await assistance.budget("30000.00", area="4001")
    households = [await assistance.household() for _ in range(16)]
    responses = await asyncio.gather(*(
        assistance.push(assistance.batch([item(f"{n}-{k}", household_id=h) for k, (h, _) in
                                          enumerate(households[8 * n:8 * n + 8])]), key=f"half-{n}")
        for n in range(2)))
    assert [r.status_code for r in responses] == [201, 201]
    items = [i for r in responses for i in r.json()["items"]]
    assert sum(i["status"] == "accepted" for i in items) == 10
    assert {i["reason"] for i in items if i["status"] == "rejected"} == {"budget_exhausted"}
    assert sum(Decimal(r.json()["totals"]["accepted_amount"]) for r in responses) == Decimal("30000.00")
    assert await assistance.remaining("4001") == Decimal("0.00")
    recorded = [d for t, _k, d in await assistance.events() if t == "disbursement.recorded"]
    assert len(recorded) == 10 and sum(Decimal(d["amount"]) for d in recorded) == Decimal("30000.00")


async def test_two_concurrent_batches_pay_each_household_once_a_year(assistance: Assistance) -> None:
    """The same twenty households in two batches pushed at once, money for all forty: each is paid once (the
    yearly cap of one), by one batch or the other, though none had a yearly count before."""
    await assistance.budget("120000.00")
    households = [await assistance.household() for _ in range(20)]
    responses = await asyncio.gather(*(
        assistance.push(assistance.batch([item(f"{n}-{k}", cid=cid) for k, (_, cid) in enumerate(households)]),
                        key=f"twice-{n}")
        for n in range(2)))
    assert [r.status_code for r in responses] == [201, 201]
    paid = [i["household_id"] for r in responses for i in r.json()["items"] if i["status"] == "accepted"]
    assert sorted(paid) == sorted(h for h, _ in households)
    assert {i["reason"] for r in responses for i in r.json()["items"] if i["status"] == "rejected"} == {
        "yearly_cap_reached"}
    assert await assistance.remaining() == Decimal("60000.00")


async def test_a_yearly_count_raised_behind_a_batch_refuses_it_rather_than_pass_the_cap(
        assistance: Assistance) -> None:
    """The counts are read before deciding and added by a conditional upsert: should another writer have
    counted a payment since the read, the write refuses (503, to retry) rather than count past the cap."""
    household, _ = await assistance.household()
    async with transaction(assistance.app.state.sessionmaker) as session:
        counts = await Allowances.read(session, {household}, programme="family_grant", fiscal_year=2565, cap=1)
        await session.execute(insert(Allowance).values(household_id=household, programme="family_grant",
                                                       fiscal_year=2565, payments=1))  # the other writer
        assert counts.take(household)  # under the cap as it was read
        with pytest.raises(ServiceUnavailable):
            await counts.write(session)
        assert (await session.execute(select(Allowance.payments))).scalars().all() == [1]
