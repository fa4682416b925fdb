"""The field network report from events: official areas, teams and centres (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.events.registry import TEAM_CREATED
from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import by_area

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_field_network_counts_official_areas_teams_and_centres(reporting: Reporting) -> None:
    await reporting.team("4001", ["400101", "400102"], members=4)
    await reporting.team("4001", ["400103"])
    last = await reporting.team("4002", ["400201"])
    await reporting.send(TEAM_CREATED, {"team_id": last, "province_code": "40", "district_code": "4002",
                                        "subdistrict_codes": ["400201"], "member_count": 3}, key=last)  # redelivered
    await reporting.centre("400101")
    await reporting.centre("400101", "family_development_centre")
    await reporting.centre("400201")

    body = await reporting.report("field-network", area="40")
    rows, total = by_area(body), body["total"]
    assert len(rows) == 26 and (total["districts"], total["subdistricts"]) == (26, 199)  # Khon Kaen, officially
    assert (total["teams"], total["team_members"], total["social_assistance_centres"],
            total["family_development_centres"]) == (3, 10, 2, 1)
    assert (rows["4001"]["teams"], rows["4001"]["districts"], rows["4001"]["social_assistance_centres"]) == (2, 1, 1)
    assert rows["4002"]["teams"] == 1 and rows["4029"]["teams"] == 0
    by_subdistrict = by_area(await reporting.report("field-network", area="4001"))
    assert (by_subdistrict["400101"]["teams"], by_subdistrict["400103"]["teams"],
            by_subdistrict["400104"]["teams"]) == (1, 1, 0)
    assert by_subdistrict["400101"]["family_development_centres"] == 1
    one = await reporting.report("field-network", area="400101")
    assert (one["total"]["districts"], one["total"]["subdistricts"], one["total"]["teams"]) == (1, 1, 1)
    problem(await reporting.client.get("/v1/reports/field-network", params={"area": "40", "level": "village"},
                                       headers=reporting.detail), 422)
