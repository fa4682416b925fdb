"""The progress report from events: surveys, grants, subsidies and help month by month (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import a_fiscal_year, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_month_by_month(reporting: Reporting) -> None:
    await a_fiscal_year(reporting, await four_households(reporting))
    progress = await reporting.report("progress", area="40", **{"from": "2022-01", "to": "2022-03"})
    months = {r["month"]: r for r in progress["rows"]}
    assert list(months) == ["2022-01", "2022-02", "2022-03"]
    assert (months["2022-01"]["assessed_households"], months["2022-01"]["families_granted"],
            months["2022-01"]["grant_amount"]) == (4, 1, "3000.00")
    assert (months["2022-02"]["subsidy_amount"], months["2022-03"]["subsidy_amount"]) == ("500000.00", "280000.00")
    assert (months["2022-03"]["households_helped"], months["2022-03"]["help_value"]) == (1, "1500.00")
    assert progress["total"]["subsidy_amount"] == "780000.00"
    backwards = {"area": "40", "from": "2022-05", "to": "2022-01"}
    problem(await reporting.client.get("/v1/reports/progress", params=backwards, headers=reporting.detail), 422)
