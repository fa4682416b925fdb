"""The registry projection: the newest snapshot of a household is kept, redelivery and stale events change
nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.events.registry import HOUSEHOLD_UPDATED
from shared.ids import new_id
from tests.kit.assessment import ADULT, Assessment, all_meet, facts, member

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_the_projection_keeps_the_newest_snapshot_and_ignores_redelivery(assessment: Assessment) -> None:
    household_id = new_id()
    event_id = new_id()
    assert await assessment.announce(facts(household_id, member(ADULT), welfare_card=False), event_id=event_id) == 1
    assert await assessment.announce(facts(household_id, member(ADULT), welfare_card=True),
                                     event_id=event_id) == 0  # the same event again: nothing
    newer = facts(household_id, member(ADULT), member("2018-01-01", relation="child"), version=3, welfare_card=False)
    await assessment.announce(newer | {"changed": ["members"]}, HOUSEHOLD_UPDATED, offset=1)
    await assessment.announce(facts(household_id, member(ADULT), version=2) | {"changed": ["members"]},
                              HOUSEHOLD_UPDATED, offset=2)  # late and stale: ignored
    body = (await assessment.assess(household_id, all_meet(preschool=True))).json()
    assert body["member_count"] == 2 and body["welfare_card"] is False
