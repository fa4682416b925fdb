"""The projection of the registry's and the assessment's events: eligibility follows the latest assessment,
redelivered and late events change nothing, a closed household's members no longer match (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from services.assistance.models import KnownHousehold, MemberHash
from shared.db import transaction
from shared.events.registry import HOUSEHOLD_CLOSED, HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.pii import CitizenIdProtector
from tests.kit.apps import deliver
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_eligibility_follows_the_assessment_events(assistance: Assistance) -> None:
    await assistance.budget("30000.00")
    household_id, _ = await assistance.household(target_poor=None)
    first = await assistance.push(assistance.batch([item("1", household_id=household_id)]), key="k1")
    assert first.json()["items"][0]["reason"] == "not_eligible"
    await assistance.assess(household_id, True, revision=1)
    await assistance.assess(household_id, False, survey_year=2564)  # an older year arriving late changes nothing
    second = await assistance.push(assistance.batch([item("1", household_id=household_id)]), key="k2")
    assert second.json()["items"][0]["status"] == "accepted"
    await assistance.assess(household_id, False, revision=2)       # corrected: no longer target poor
    third = await assistance.push(assistance.batch([item("1", household_id=household_id)], fiscal_year=2566,
                                                   paid_on="2022-11-01"), key="k3")
    assert third.json()["items"][0]["reason"] == "not_eligible"


async def test_redelivered_and_late_events_change_nothing(assistance: Assistance) -> None:

    household_id, cid = await assistance.household(target_poor=True)
    registered = {"household_id": household_id, "version": 1, "status": "open", "province_code": "40",
                  "district_code": "4001", "subdistrict_code": "400101", "village_no": 3, "village_code": "40010103",
                  "sources": ["tpmap"], "welfare_card": True, "team_id": None, "members": []}
    event_id = new_id()
    closed = registered | {"version": 2, "status": "closed", "reason": "ย้ายออกนอกพื้นที่"}
    assert await deliver(assistance.app, HOUSEHOLD_CLOSED, closed, event_id=event_id) == 1
    assert await deliver(assistance.app, HOUSEHOLD_CLOSED, closed, event_id=event_id) == 0  # the inbox drops it
    assert await deliver(assistance.app, HOUSEHOLD_REGISTERED, registered) == 1  # older version, arriving late
    await assistance.assess(household_id, False, survey_year=2564)               # an older survey year, late
    async with transaction(assistance.app.state.sessionmaker) as session:
        row = await session.get(KnownHousehold, household_id)
        assert row is not None and (row.version, row.status, row.target_poor, row.assessed_year) == (
            2, "closed", True, 2565)
        protector = CitizenIdProtector(assistance.settings.pii)
        assert await session.get(MemberHash, (protector.hash(cid), household_id)) is None
    await assistance.budget("3000.00")
    outcome = (await assistance.push(assistance.batch([item("1", cid=cid)]), key="late")).json()["items"][0]
    assert outcome["reason"] == "unknown_household"  # closed: its members' hashes no longer match
