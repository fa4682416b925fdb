"""Budgets: a budget never goes below zero, whatever the concurrency (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

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
