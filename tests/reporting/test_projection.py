"""The read models from events: corrections, moves, redelivery and exits, reversals, and field visits (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text

from ops.scratchdb import ScratchDatabases
from services import load
from services.reporting.models import Visit
from shared import migrations
from shared.db import create_engine
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
    mueang = rows["4001"]
    assert (mueang["assessed_households"], mueang["target_poor_households"], mueang["deprived_health"]) == (2, 1, 0)
    assert (rows["4001"]["target_poor_households_health"], rows["4001"]["target_poor_persons_living"]) == (0, 3)
    assert (rows["4002"]["assessed_households"], rows["4002"]["assessed_persons"]) == (2, 7)
    # h1 moves to C in the registry (version 2); h3 closes.
    await reporting.registered(C, 3, household_id=ids["h1"], version=2, welfare_card=False)
    await reporting.registered(B, 4, household_id=ids["h3"], version=2, status="closed")
    await reporting.send(HOUSEHOLD_REGISTERED, reporting.sent[0][1])  # version 1 again, as a new event: stale
    rows = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2565))
    assert (rows["4001"]["households"], rows["4001"]["persons"]) == (1, 2)
    assert (rows["4002"]["households"], rows["4002"]["persons"]) == (2, 8)
    assert (rows["4001"]["welfare_card_households"], rows["4001"]["welfare_card_persons"]) == (1, 2)  # h2
    assert (rows["4002"]["welfare_card_households"], rows["4002"]["welfare_card_persons"]) == (1, 5)  # h4, not h1
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


async def test_the_migration_counts_the_new_columns_from_the_rows_already_held(databases: ScratchDatabases) -> None:
    """reporting_0006 fills welfare cards and the target poor by dimension from the household and assessment rows
    a database already holds, as the projection would have counted them."""
    engine = create_engine(await databases.new("reporting"))
    migrations_dir = load("reporting").spec.migrations_dir
    try:
        await migrations.upgrade(engine, migrations_dir, "reporting_0005")
        async with engine.begin() as conn:
            for hid, members, card, status in (("h1", 3, True, "open"), ("h2", 2, False, "open"),
                                               ("h3", 4, True, "closed")):
                await conn.execute(text("INSERT INTO rpt_household (id, version, status, village_code, members, "
                                        "welfare_card) VALUES (:id, 1, :s, :v, :m, :c)"),
                                   {"id": hid, "s": status, "v": A, "m": members, "c": card})
            await conn.execute(text("INSERT INTO rpt_village VALUES (:v, 2, 5)"), {"v": A})
            for hid, persons, target_poor, deprived in (("h1", 3, True, '["health", "income"]'),
                                                        ("h2", 2, False, '["health"]')):
                await conn.execute(text(
                    "INSERT INTO rpt_assessment (household_id, survey_year, revision, village_code, surveyed_on, "
                    "indicator_set, persons, score, poor, target_poor, deprived, failed, recorded_at) VALUES "
                    "(:h, 2565, 1, :v, '2022-01-15', 'tpmap-2560', :p, '0', false, :t, :d, '{}', "
                    "'2022-01-15 00:00:00+00:00')"), {"h": hid, "v": A, "p": persons, "t": target_poor, "d": deprived})
            await conn.execute(text(
                "INSERT INTO rpt_area_year (survey_year, village_code, assessed_households, assessed_persons, "
                "poor_households, poor_persons, target_poor_households, target_poor_persons, deprived_health, "
                "deprived_living, deprived_education, deprived_income, deprived_access, entered, exited, "
                "censored_score, censored_by_indicator) "
                "VALUES (2565, :v, 2, 5, 0, 0, 1, 3, 2, 0, 0, 1, 0, 0, 0, '0', '{}')"), {"v": A})
        await migrations.upgrade(engine, migrations_dir)
        async with engine.connect() as conn:
            village = (await conn.execute(text("SELECT welfare_card_households, welfare_card_persons "
                                               "FROM rpt_village"))).one()
            year = (await conn.execute(text(
                "SELECT target_poor_households_health, target_poor_persons_health, target_poor_persons_income, "
                "target_poor_persons_living FROM rpt_area_year"))).one()
        assert tuple(village) == (1, 3)  # h1 (h2 holds no card, h3 is closed)
        assert tuple(year) == (1, 3, 3, 0)  # h1 only: h2 is not target poor
    finally:
        await engine.dispose()
