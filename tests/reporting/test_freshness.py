"""What the read models hold and how fresh it is: events applied per topic, the years held (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.kit.reporting import Reporting
from tests.reporting.support import four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_events_applied_per_topic(reporting: Reporting) -> None:
    await four_households(reporting)
    fresh = await reporting.client.get("/v1/reports/freshness", headers=reporting.detail)
    topics = {t["topic"]: t for t in fresh.json()["topics"]}
    assert topics["registry.household"]["events_applied"] == 4
    assert topics["assessment.household"]["events_applied"] == 4
