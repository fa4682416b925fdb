"""The assessment API: indicator sets, recording and explaining assessments, revisions, the registry projection,
events, area scoping, MPI by area (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.events.registry import HOUSEHOLD_UPDATED
from shared.ids import new_id
from tests.assessment.support import ADULT, MEASURED_OK, Assessment, all_meet, facts, member
from tests.registry.support import problem

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_indicator_sets_are_served_from_the_database(assessment: Assessment) -> None:
    listed = await assessment.client.get("/v1/indicator-sets", headers=assessment.admin)
    assert listed.status_code == 200
    assert [(s["id"], s["version"], s["latest"], s["indicators"]) for s in listed.json()] == [
        ("tpmap-2560", 1, True, 17)]
    detail = (await assessment.client.get("/v1/indicator-sets/tpmap-2560", headers=assessment.admin)).json()
    water = next(i for i in detail["indicators"] if i["code"] == "drinking_water")
    assert water["label_th"] == "ครัวเรือนมีน้ำสะอาดสำหรับดื่มและบริโภคเพียงพอตลอดปี อย่างน้อยคนละ 5 ลิตรต่อวัน"
    assert water["measurement"] == {"name": "drinking_water_lpd", "at_least": "5", "unit": "litres per person per day"}
    assert detail["poverty_cutoff"] == "1/3" and detail["target_poor_requires_welfare_card"] is True
    problem(await assessment.client.get("/v1/indicator-sets/jpt-2566", headers=assessment.admin), 404)


async def test_an_assessment_explains_every_indicator(assessment: Assessment) -> None:
    household_id = await assessment.household(member(ADULT), member("2018-06-01", relation="child"))
    response = await assessment.assess(household_id, all_meet(preschool=False),
                                       MEASURED_OK | {"income_per_person_year": "20000"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/households/{household_id}/assessments/{body['id']}"
    by_code = {i["code"]: i for i in body["indicators"]}
    assert by_code["preschool"] == {
        "code": "preschool", "dimension": "education", "label_th": "เด็กอายุ 3–5 ปี ได้รับบริการเลี้ยงดูเตรียมความพร้อมก่อนวัยเรียน",
        "label_en": "Children aged 3–5 get pre-school care", "status": "fail", "reason": "answered fails",
        "weight": "1/8"}
    assert by_code["household_income"]["reason"] == "income_per_person_year 20,000 < 38,000 baht per person per year"
    assert by_code["elderly_care"]["status"] == "not_applicable"
    assert body["dimensions"] == {"health": False, "living": False, "education": True, "income": True,
                                  "access": None}
    # education: literacy + preschool → 1/4 × 1/2; income: work + household income → 1/4 × 1/2.
    assert (body["score"], body["poor"], body["severity"], body["target_poor"]) == ("1/4", False, "vulnerable", True)
    assert body["member_count"] == 2 and body["revision"] == 1 and body["current"] is True
    again = await assessment.client.get(response.headers["location"], headers=assessment.admin)
    assert again.json() == body


async def test_bad_answers_are_422_naming_the_field(assessment: Assessment) -> None:
    household_id = await assessment.household()
    cases = [
        (all_meet(flying=True), MEASURED_OK, "body.answers.flying"),
        (all_meet(preschool=True), MEASURED_OK, "body.answers.preschool"),
        (all_meet(drinking_water=True), MEASURED_OK | {"drinking_water_lpd": "2"}, "body.answers.drinking_water"),
        ({k: v for k, v in all_meet().items() if k != "housing"}, MEASURED_OK, "body.answers.housing"),
        (all_meet(), MEASURED_OK | {"rain_mm": "3"}, "body.measurements.rain_mm"),
    ]
    for answers, measurements, field in cases:
        body = problem(await assessment.assess(household_id, answers, measurements), 422)
        assert field in [e["field"] for e in body["errors"]], body
    body = problem(await assessment.assess(household_id, surveyed_on="2015-01-01"), 422)
    assert body["errors"][0]["field"] == "body.surveyed_on"
    response = await assessment.client.post(f"/v1/households/{household_id}/assessments", headers=assessment.admin,
                                            json={"indicator_set": "nope", "survey_year": 2565,
                                                  "surveyed_on": "2022-01-15"})
    assert problem(response, 422)["errors"][0]["field"] == "body.indicator_set"
    assert await assessment.events() == []


async def test_an_unknown_household_is_409_with_retry_after(assessment: Assessment) -> None:
    response = await assessment.assess(new_id())
    body = problem(response, 409)
    assert response.headers["retry-after"] == "5"
    assert body["type"].endswith("household-not-yet-known")


async def test_a_correction_is_a_new_revision_and_a_repeat_is_nothing_new(assessment: Assessment) -> None:
    household_id = await assessment.household()
    first = (await assessment.assess(household_id)).json()
    repeat = await assessment.assess(household_id)
    assert repeat.status_code == 200 and repeat.json()["id"] == first["id"]
    corrected = await assessment.assess(household_id, all_meet(housing=False))
    assert corrected.status_code == 201
    assert (corrected.json()["revision"], corrected.json()["current"]) == (2, True)
    history = (await assessment.client.get(f"/v1/households/{household_id}/assessments",
                                           headers=assessment.admin)).json()
    assert [(a["revision"], a["current"], a["score"]) for a in history] == [(2, True, "1/16"), (1, False, "0")]
    types = [t for t, _, _ in await assessment.events()]
    assert types == ["assessment.recorded", "household.poverty_status_changed"] * 2


async def test_poverty_status_changes_between_survey_years(assessment: Assessment) -> None:
    household_id = await assessment.household()
    failing = all_meet(safe_food=False, medicine_use=False, exercise=False, housing=False, clean_home=False)
    await assessment.assess(household_id, failing, survey_year=2565, surveyed_on="2022-01-15")
    await assessment.assess(household_id, all_meet(), survey_year=2566, surveyed_on="2023-01-15")
    changes = [d for t, _, d in await assessment.events() if t == "household.poverty_status_changed"]
    assert [(c["survey_year"], c["change"], c["target_poor_now"]) for c in changes] == [
        (2565, "first_assessment", True), (2566, "exited", False)]
    assert changes[1]["dimensions_exited"] == ["health", "living"] and changes[1]["previous_survey_year"] == 2565
    recorded = [d for t, k, d in await assessment.events() if t == "assessment.recorded"]
    # health 1/4 × 3/3 + living 1/4 × 2/4
    assert recorded[0]["score"] == "3/8" and recorded[0]["dimensions"]["health"] is True
    assert recorded[0]["indicators"]["housing"] == {"status": "fail", "weight": "1/16"}
    assert "citizen_id_hash" not in str(recorded)


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


async def test_area_scoping_hides_other_districts(assessment: Assessment) -> None:
    household_id = await assessment.household(village="40020101")
    outsider = assessment.as_("assessment:read", "assessment:write", areas=("4001",))
    problem(await assessment.assess(household_id, headers=outsider), 404)
    await assessment.assess(household_id)
    problem(await assessment.client.get(f"/v1/households/{household_id}/assessments", headers=outsider), 404)
    report = (await assessment.client.get("/v1/mpi?area=40&survey_year=2565", headers=outsider)).json()
    assert report["total"]["households"] == 0
    problem(await assessment.client.get(f"/v1/households/{household_id}/assessments",
                                        headers=assessment.as_("assessment:write")), 403)


async def test_mpi_by_district_adds_up(assessment: Assessment) -> None:
    # 4001: 2 persons at c = 3/8 (poor); 4002: 1 person at c = 0 and 1 person at c = 1/4 (not poor).
    poor = await assessment.household(member(ADULT), member("1985-01-01"), village="40010101")
    await assessment.assess(poor, all_meet(safe_food=False, medicine_use=False, exercise=False, housing=False,
                                           clean_home=False))
    fine = await assessment.household(village="40020101")
    await assessment.assess(fine)
    slightly = await assessment.household(village="40020202")
    await assessment.assess(slightly, all_meet(literacy=False))
    report = (await assessment.client.get("/v1/mpi?area=40&level=district&survey_year=2565",
                                          headers=assessment.admin)).json()
    rows = {r["area_code"]: r for r in report["rows"]}
    assert rows["4001"]["area_name_th"] == "เมืองขอนแก่น"
    assert (rows["4001"]["persons"], rows["4001"]["poor_persons"], rows["4001"]["mpi_exact"]) == (2, 2, "3/8")
    assert (rows["4002"]["persons"], rows["4002"]["poor_persons"], rows["4002"]["mpi_exact"]) == (2, 0, "0")
    total = report["total"]
    assert (total["persons"], total["headcount"], total["intensity"], total["mpi_exact"]) == (4, 0.5, 0.375, "3/16")
    assert sum(total["indicator_contributions"].values()) == pytest.approx(3 / 16, abs=1e-5)  # each rounded to 6 places
    # Target poor: deprived in any dimension with a welfare card — the poor household and the slightly one.
    assert total["target_poor_households"] == 2
