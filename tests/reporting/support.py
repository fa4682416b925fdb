"""Helpers for the reporting tests: the small data sets the report tests share (figures worked by hand)."""

from __future__ import annotations

from typing import Any

from tests.kit.reporting import Reporting

A, B, C = "40010103", "40010201", "40020101"  # two villages of Mueang Khon Kaen, one of Ban Fang


async def four_households(reporting: Reporting) -> dict[str, str]:
    """h1 (A, 3 persons) poor c = 1/2; h2 (A, 2) target poor, c = 1/5; h3 (B, 4) c = 0; h4 (C, 5) poor c = 2/5.

    4001: n = 9, q = 3, H = 1/3, A = 1/2, M0 = 1/6.  4002: n = 5, q = 5, H = 1, A = 2/5, M0 = 2/5.
    Province: n = 14, q = 8, Σc(k) = 3/2 + 2 = 7/2, H = 4/7, A = 7/16, M0 = 1/4.
    """
    ids = {}
    for name, village, persons in (("h1", A, 3), ("h2", A, 2), ("h3", B, 4), ("h4", C, 5)):
        ids[name] = await reporting.registered(village, persons)
    await reporting.assessed(ids["h1"], A, 3, score="1/2", failed={"housing": "1/5", "income_per_person": "3/10"},
                             deprived=("living", "income"), poor=True, target_poor=True)
    await reporting.assessed(ids["h2"], A, 2, score="1/5", failed={"exercise": "1/5"}, deprived=("health",),
                             target_poor=True)
    await reporting.assessed(ids["h3"], B, 4)
    await reporting.assessed(ids["h4"], C, 5, score="2/5", failed={"literacy": "1/5", "working_age_income": "1/5"},
                             deprived=("education", "income"), poor=True, target_poor=True)
    return ids


async def a_fiscal_year(reporting: Reporting, ids: dict[str, str]) -> None:
    """FY 2565 of `four_households`: a province budget of 1,080,000 (3,000 drawn) and 30,000 for 4001; h1 paid
    3,000 in January; h4 paid and reversed; centres subsidised 500,000 in February (400101) and 280,000 in March
    (400201); h2 helped in March (1,500) and h3 in September 2021 (FY 2564)."""
    await reporting.budget("40", "1080000.00", "6000.00", "3000.00", budget_id="b")
    await reporting.budget("4001", "30000.00")
    await reporting.paid(ids["h1"], A)
    reversed_id = await reporting.paid(ids["h4"], C)
    await reporting.reversed(reversed_id, ids["h4"], C)
    await reporting.subsidised("400101", "500000.00")
    await reporting.subsidised("400201", "280000.00", paid_on="2022-03-05")
    await reporting.helped(ids["h2"], A)
    await reporting.helped(ids["h3"], B, given_on="2021-09-30")  # FY 2564: not in these figures


def by_area(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["area_code"]: row for row in body["rows"]}
