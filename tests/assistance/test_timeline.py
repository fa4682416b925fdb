"""A household's timeline from the projection and this service's records: registry and assessment events
kept once each (redelivery adds nothing), payments and their reversal, area scoping (SQLite and PostgreSQL).
The whole story through the real services is in test_flow."""

from __future__ import annotations

from typing import Any

import pytest

from shared.events.assessment import POVERTY_STATUS_CHANGED
from shared.events.registry import HOUSEHOLD_ASSIGNED
from shared.ids import new_id
from tests.kit.apps import deliver, problem
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_the_timeline_keeps_each_event_once_with_payments_and_reversals(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    facts = {"household_id": household_id, "version": 2, "status": "open", "province_code": "40",
             "district_code": "4001", "subdistrict_code": "400101", "village_no": 3, "village_code": "40010103",
             "sources": ["tpmap"], "welfare_card": True, "team_id": None, "members": []}
    assigned = new_id()
    for _ in range(2):  # delivered twice (a lost offset, a replay): kept once
        await deliver(assistance.app, HOUSEHOLD_ASSIGNED, facts | {"buddy_official": "นายสมชาย ใจดี"},
                      event_id=assigned)
    await deliver(assistance.app, POVERTY_STATUS_CHANGED, {
        "household_id": household_id, "assessment_id": new_id(), "survey_year": 2565, "revision": 1,
        "previous_assessment_id": None, "previous_survey_year": None, "change": "first_assessment",
        "target_poor_before": None, "target_poor_now": True, "poor_before": None, "poor_now": False,
        "dimensions_entered": ["income"], "dimensions_exited": [], "village_code": "40010103"})
    await assistance.budget("3000.00")
    paid = (await assistance.push(assistance.batch([item("1", household_id=household_id)]), key="t1")).json()
    payment_id = paid["items"][0]["disbursement_id"]
    assert (await assistance.client.post(f"/v1/disbursements/{payment_id}/reversal", json={"reason": "จ่ายผิดคน"},
                                         headers=assistance.admin)).status_code == 200

    response = await assistance.client.get(f"/v1/households/{household_id}/timeline", headers=assistance.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["household_id"], body["village_code"], body["target_poor"]) == (household_id, "40010103", True)
    entries = body["entries"]
    assert [e["type"] for e in entries] == [
        "household.registered", "assessment.recorded", "household.assigned", "household.poverty_status_changed",
        "disbursement.recorded", "disbursement.reversed"]
    assert entries[2]["id"] == assigned and entries[2]["details"]["buddy_official"] == "นายสมชาย ใจดี"
    assert entries[2]["details"]["version"] == 2 and entries[2]["details"]["members"] == 0
    assert entries[1]["on"] == "2022-01-15" and entries[1]["details"]["target_poor"] is True
    assert entries[4]["on"] == "2022-01-27" and entries[4]["details"]["amount"] == "3000.00"
    assert entries[5]["details"]["reason"] == "จ่ายผิดคน"

    mueang = assistance.as_("assistance:read", areas=("4002",))
    problem(await assistance.client.get(f"/v1/households/{household_id}/timeline", headers=mueang), 404)
    problem(await assistance.client.get(f"/v1/households/{new_id()}/timeline", headers=assistance.admin), 404)
