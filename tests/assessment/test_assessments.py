"""The assessment routes: recording and explaining assessments, bad answers, unknown households, revisions,
poverty status events, area scoping (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.ids import new_id
from tests.kit.apps import problem
from tests.kit.assessment import ADULT, MEASURED_OK, Assessment, all_meet, member

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


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
                                           headers=assessment.admin)).json()["items"]
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
