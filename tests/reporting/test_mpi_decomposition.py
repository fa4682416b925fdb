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
    assert "exercise" not in {code for part, code in parts if part == "indicator"}  # h2 is not poor: censored
    indicators = sum(r["contribution"] for r in decomposition["rows"] if r["part"] == "indicator")
    assert indicators == pytest.approx(0.25, abs=1e-5)
