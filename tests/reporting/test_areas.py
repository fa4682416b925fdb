"""Area claims on the reports: rows and totals hold only what the caller may see; unknown areas, levels above
the area and other scopes are refused (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_area_claims(reporting: Reporting) -> None:
    await four_households(reporting)
    ban_fang = reporting.as_("reporting:read", "reporting:detail", areas=("4002",))
    body = await reporting.report("poverty", ban_fang, area="40", level="district", survey_year=2565)
    assert [r["area_code"] for r in body["rows"]] == ["4002"]
    assert body["total"]["assessed_persons"] == 5  # the total holds only what the caller may see
    problem(await reporting.client.get("/v1/reports/poverty", params={"area": "4001", "survey_year": 2565},
                                       headers=ban_fang), 403)
    problem(await reporting.client.get("/v1/reports/poverty", params={"area": "99", "survey_year": 2565},
                                       headers=reporting.detail), 404)
    problem(await reporting.client.get("/v1/reports/poverty", params={"area": "4001", "level": "province",
                                                                       "survey_year": 2565},
                                       headers=reporting.detail), 422)
    problem(await reporting.client.get("/v1/reports/poverty", params={"area": "40", "survey_year": 2565},
                                       headers=reporting.as_("registry:read")), 403)
