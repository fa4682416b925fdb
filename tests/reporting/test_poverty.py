"""The poverty report from events: exact figures worked by hand, at district and village level (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.reporting import Reporting
from tests.reporting.support import A, B, by_area, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_poverty_by_district_adds_up_exactly(reporting: Reporting) -> None:
    await four_households(reporting)
    body = await reporting.report("poverty", area="40", level="district", survey_year=2565)
    assert body["report"] == "poverty" and body["level"] == "district" and body["suppressed_cells"] == 0
    rows = by_area(body)
    assert len(rows) == 26  # every district of Khon Kaen, with or without data
    mueang, ban_fang = rows["4001"], rows["4002"]
    assert mueang["area_name_th"] == "เมืองขอนแก่น" and mueang["area_name_en"] == "Mueang Khon Kaen"
    assert (mueang["households"], mueang["persons"], mueang["assessed_households"], mueang["assessed_persons"]) == (
        3, 9, 3, 9)
    assert (mueang["target_poor_households"], mueang["target_poor_persons"], mueang["poor_persons"]) == (2, 5, 3)
    assert (mueang["deprived_health"], mueang["deprived_living"], mueang["deprived_education"],
            mueang["deprived_income"], mueang["deprived_access"]) == (1, 1, 0, 1, 0)
    # TPMAP's columns: welfare cards (all four hold one), and the target poor by dimension — h1 (3 persons, living
    # and income) counts in both, h2 (2, health) in one.
    assert (mueang["welfare_card_households"], mueang["welfare_card_persons"]) == (3, 9)
    assert [(mueang[f"target_poor_households_{d}"], mueang[f"target_poor_persons_{d}"])
            for d in ("health", "living", "education", "income", "access")] == [(1, 2), (1, 3), (0, 0), (1, 3), (0, 0)]
    assert (mueang["H"], mueang["A"], mueang["MPI"]) == (round(1 / 3, 6), 0.5, round(1 / 6, 6))
    assert (ban_fang["H"], ban_fang["A"], ban_fang["MPI"]) == (1.0, 0.4, 0.4)
    assert rows["4003"]["households"] == 0 and rows["4003"]["MPI"] == 0.0
    total = body["total"]
    assert (total["area_code"], total["households"], total["persons"], total["target_poor_households"]) == (
        "40", 4, 14, 3)
    assert (total["H"], total["A"], total["MPI"]) == (round(4 / 7, 6), 0.4375, 0.25)
    assert (total["target_poor_persons_income"], total["target_poor_persons_education"], total["target_poor_persons"]
            ) == (8, 5, 10)  # h1 and h4; h4; persons count once in "any" dimension, once in each of theirs
    assert body["as_of"] is not None

    villages = by_area(await reporting.report("poverty", area="4001", level="village", survey_year=2565))
    assert set(villages) == {A, B} and villages[A]["area_name_th"] == "ในเมือง หมู่ที่ 3"
