"""Indicator sets: the tpmap-2560 file as loaded, and the sets served from the database (SQLite and
PostgreSQL)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.assessment.support import TPMAP
from tests.kit.apps import problem
from tests.kit.assessment import Assessment


def test_the_tpmap_set_has_17_indicators_in_5_dimensions() -> None:
    assert len(TPMAP.indicators) == 17
    assert [d.code for d in TPMAP.dimensions] == ["health", "living", "education", "income", "access"]
    assert sorted(i.bmn_no or 0 for i in TPMAP.indicators) == [1, 4, 5, 7, 8, 9, 10, 11, 15, 16, 17, 19, 20, 21, 22,
                                                                27, 28]
    assert TPMAP.k == Fraction(1, 3)


@pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)
async def test_indicator_sets_are_served_from_the_database(assessment: Assessment) -> None:
    listed = await assessment.client.get("/v1/indicator-sets", headers=assessment.admin)
    assert listed.status_code == 200
    assert [(s["id"], s["version"], s["latest"], s["indicators"]) for s in listed.json()["items"]] == [
        ("tpmap-2560", 1, True, 17)]
    detail = (await assessment.client.get("/v1/indicator-sets/tpmap-2560", headers=assessment.admin)).json()
    water = next(i for i in detail["indicators"] if i["code"] == "drinking_water")
    assert water["label_th"] == "ครัวเรือนมีน้ำสะอาดสำหรับดื่มและบริโภคเพียงพอตลอดปี อย่างน้อยคนละ 5 ลิตรต่อวัน"
    assert water["measurement"] == {"name": "drinking_water_lpd", "at_least": "5", "unit": "litres per person per day"}
    assert detail["poverty_cutoff"] == "1/3" and detail["target_poor_requires_welfare_card"] is True
    problem(await assessment.client.get("/v1/indicator-sets/jpt-2566", headers=assessment.admin), 404)
