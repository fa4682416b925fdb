"""The assistance report from events: grants, reversals, centre subsidies, budgets and the coverage of the
target poor, worked by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.reporting import Reporting
from tests.reporting.support import a_fiscal_year, by_area, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_grants_subsidies_budgets_and_coverage(reporting: Reporting) -> None:
    await a_fiscal_year(reporting, await four_households(reporting))
    body = await reporting.report("assistance", area="40", level="district", fiscal_year=2565)
    rows, total = by_area(body), body["total"]
    assert (rows["4001"]["families_granted"], rows["4001"]["grant_amount"], rows["4001"]["grants_reversed"]) == (
        1, "3000.00", 0)
    assert (rows["4002"]["families_granted"], rows["4002"]["grant_amount"], rows["4002"]["grants_reversed"]) == (
        0, "0.00", 1)
    assert (total["centres_subsidised"], total["subsidy_amount"]) == (2, "780000.00")
    assert (rows["4001"]["budget_allocated"], total["budget_allocated"], total["budget_used"]) == (
        "30000.00", "1110000.00", "3000.00")
    # target poor in 2565: h1 (paid), h2 (helped by a partner), h4 (payment reversed): 2 of 3 covered.
    assert (total["target_poor_households"], total["target_poor_helped"], total["coverage"]) == (
        3, 2, round(2 / 3, 6))
    assert (rows["4001"]["coverage"], rows["4002"]["coverage"]) == (1.0, 0.0)
