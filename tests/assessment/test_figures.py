"""GET /v1/mpi: the Alkire–Foster figures of an area by sub-area, over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.assessment import ADULT, Assessment, all_meet, member

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_mpi_by_district_adds_up(assessment: Assessment) -> None:
    # 4001: 2 persons at c = 3/8 (poor); 4002: 1 person at c = 0 and 1 person at c = 1/4 (not poor).
    poor = await assessment.household(member(ADULT), member("1985-01-01"), village="40010101")
    await assessment.assess(poor, all_meet(safe_food=False, medicine_use=False, exercise=False, housing=False,
                                           clean_home=False))
    fine = await assessment.household(village="40020101")
    await assessment.assess(fine)
    slightly = await assessment.household(village="40020202")
    await assessment.assess(slightly, all_meet(literacy=False))
    report = (await assessment.client.get("/v1/mpi?area=40&level=district&survey_year=2565",
                                          headers=assessment.admin)).json()
    rows = {r["area_code"]: r for r in report["rows"]}
    assert rows["4001"]["area_name_th"] == "เมืองขอนแก่น"
    assert (rows["4001"]["persons"], rows["4001"]["poor_persons"], rows["4001"]["mpi_exact"]) == (2, 2, "3/8")
    assert (rows["4002"]["persons"], rows["4002"]["poor_persons"], rows["4002"]["mpi_exact"]) == (2, 0, "0")
    total = report["total"]
    assert (total["persons"], total["headcount"], total["intensity"], total["mpi_exact"]) == (4, 0.5, 0.375, "3/16")
    assert sum(total["indicator_contributions"].values()) == pytest.approx(3 / 16, abs=1e-5)  # each rounded to 6 places
    # Target poor: deprived in any dimension with a welfare card — the poor household and the slightly one.
    assert total["target_poor_households"] == 2
