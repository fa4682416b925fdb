"""The MPI decomposition from events: each area's and each indicator's contribution, worked by hand (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.reporting import Reporting
from tests.reporting.support import four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_the_parts_add_up_to_m0_exactly(reporting: Reporting) -> None:
    await four_households(reporting)
    decomposition = await reporting.report("mpi-decomposition", area="40", level="district", survey_year=2565)
    assert decomposition["M0_exact"] == "1/4"
    parts = {(r["part"], r["code"]): r for r in decomposition["rows"]}
    # 4001 contributes (3/2)/14 = 3/28 and 4002 2/14 = 1/7; indicators: housing 3·(1/5)/14 = 3/70, …
    assert parts[("area", "4001")]["contribution"] == round(3 / 28, 6)
    assert parts[("area", "4002")]["contribution"] == round(1 / 7, 6)
    assert parts[("indicator", "housing")]["contribution"] == round(3 / 70, 6)
    assert parts[("indicator", "literacy")]["contribution"] == round(1 / 14, 6)
    # Every indicator of the set has its row, named, in the set's order; exercise contributes 0 (h2 is not poor:
    # censored) and newborn_weight (failed by no one) too. A code the set does not name comes last, unnamed.
    indicators = [r for r in decomposition["rows"] if r["part"] == "indicator"]
    assert [r["code"] for r in indicators][:5] == ["newborn_weight", "safe_food", "medicine_use", "exercise", "housing"]
    assert len(indicators) == 18 and indicators[-1]["code"] == "income_per_person" and indicators[-1]["name_en"] == ""
    assert parts[("indicator", "exercise")]["contribution"] == 0.0
    assert (parts[("indicator", "newborn_weight")]["name_th"], parts[("indicator", "newborn_weight")]["dimension"]) == (
        "เด็กแรกเกิดมีน้ำหนัก 2,500 กรัมขึ้นไป", "health")
    assert parts[("indicator", "housing")]["name_en"] == "Secure tenure and a durable house"
    indicators = sum(r["contribution"] for r in decomposition["rows"] if r["part"] == "indicator")
    assert indicators == pytest.approx(0.25, abs=1e-5)
