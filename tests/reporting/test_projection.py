"""The read models from events: corrections, moves, redelivery and exits, reversals, and field visits (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from services.reporting.models import Visit
from shared.events.assistance import VISIT_RECORDED
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from tests.kit.reporting import Reporting
from tests.reporting.support import A, B, C, by_area, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_corrections_moves_redelivery_and_exits(reporting: Reporting) -> None:
    ids = await four_households(reporting)
    before = await reporting.report("poverty", area="40", level="district", survey_year=2565)
    # The same events again (a replay): nothing changes.
    for event_type, data, event_id in list(reporting.sent):
        await reporting.send(event_type, data, event_id=event_id)
    assert (await reporting.report("poverty", area="40", level="district", survey_year=2565))["rows"] == (
        before["rows"])
    # h2 corrected (revision 2): it lives in C and is not deprived after all; an older revision changes nothing.
    await reporting.assessed(ids["h2"], C, 2, revision=2)
    await reporting.assessed(ids["h2"], A, 2, score="1/5", failed={"exercise": "1/5"}, deprived=("health",),
                             target_poor=True, revision=1)
    rows = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2565))
    assert (rows["4001"]["assessed_households"], rows["4001"]["target_poor_households"], rows["4001"]["health"]) == (
        2, 1, 0)
    assert (rows["4002"]["assessed_households"], rows["4002"]["assessed_persons"]) == (2, 7)
    # h1 moves to C in the registry (version 2); h3 closes.
    await reporting.registered(C, 3, household_id=ids["h1"], version=2)
    await reporting.registered(B, 4, household_id=ids["h3"], version=2, status="closed")
    await reporting.send(HOUSEHOLD_REGISTERED, reporting.sent[0][1])  # version 1 again, as a new event: stale
    rows = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2565))
    assert (rows["4001"]["households"], rows["4001"]["persons"]) == (1, 2)
    assert (rows["4002"]["households"], rows["4002"]["persons"]) == (2, 8)
    # The next survey year: h1 and h4 leave target poverty, h3 enters it.
    for name, village, change in (("h1", C, "exited"), ("h4", C, "exited"), ("h3", B, "entered")):
        await reporting.assessed(ids[name], village, 3, survey_year=2566, surveyed_on="2023-01-10",
                                 target_poor=change == "entered", deprived=("income",) if change == "entered" else ())
        await reporting.changed(ids[name], village, change)
    rows = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2566))
    assert (rows["4002"]["exited"], rows["4002"]["entered"], rows["4001"]["entered"]) == (2, 0, 1)


async def test_a_visit_is_kept_once_without_its_descriptions(reporting: Reporting) -> None:
    """A field visit reaches reporting on the household topic: kept once (its id) however often it comes, as a
    redelivery (the same event) or as the same fact published again; the dimensions of its problems only."""
    visit = {"visit_id": "v1", "household_id": "h1", "village_code": A, "visited_on": "2022-02-01",
             "stage": "survive", "team_id": "t1",
             "problems": [{"dimension": "income"}, {"dimension": "health", "indicator_code": "exercise"},
                          {"dimension": "health"}]}
    event_id = await reporting.send(VISIT_RECORDED, visit)
    await reporting.send(VISIT_RECORDED, visit, event_id=event_id)
    await reporting.send(VISIT_RECORDED, visit | {"stage": "sufficient"})  # the same visit id: the first stands
    inbox = reporting.app.state.spec.inbox
    async with reporting.app.state.engine.connect() as conn:
        outcomes = (await conn.execute(select(inbox.c.outcome))).scalars().all()
        kept = (await conn.execute(select(Visit.id, Visit.household_id, Visit.village_code, Visit.team_id,
                                          Visit.visited_on, Visit.stage, Visit.dimensions))).all()
    assert sorted(outcomes) == ["processed", "processed"]
    assert [tuple(r) for r in kept] == [("v1", "h1", A, "t1", date(2022, 2, 1), "survive", ["health", "income"])]
    visits = await reporting.report("field-work", area="40", fiscal_year=2565)
    assert (visits["total"]["visits"], visits["total"]["households_visited"]) == (1, 1)


async def test_a_reversed_centre_subsidy_leaves_the_figures(reporting: Reporting) -> None:
    paid = new_id()
    centre = await reporting.subsidised("400101", "10000.00", disbursement_id=paid)
    await reporting.subsidised("400101", "20000.00")
    await reporting.subsidy_reversed(paid, centre, "400101", "10000.00")
    total = (await reporting.report("assistance", area="40", fiscal_year=2565))["total"]
    assert (total["centres_subsidised"], total["subsidy_amount"]) == (1, "20000.00")
