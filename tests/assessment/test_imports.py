"""Bulk import of assessments over HTTP: the API's rules per row, errors by row and column, revisions, a
re-import that changes nothing, bad files (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.ids import new_id
from tests.kit import apps
from tests.kit.apps import problem
from tests.kit.assessment import ADULT, MEASURED_OK, SURVEYED, Assessment, all_meet, facts, member

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

URL = "/v1/assessment-imports"
SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "assessments.csv"
COLUMNS = ("household_id", "indicator_set", "survey_year", "surveyed_on", "newborn_weight", "safe_food",
           "medicine_use", "exercise", "housing", "clean_home", "preschool", "literacy", "working_age_income",
           "drinking_water_lpd", "use_water_lpd", "income_per_person_year")


def row(household_id: str, *, survey_year: int = 2565, surveyed_on: str = SURVEYED, **cells: Any) -> dict[str, Any]:
    """A row for a household of one working-age adult, every applicable indicator met, unless told otherwise."""
    answers = {code: "true" if met else "false" for code, met in all_meet().items()}
    return ({"household_id": household_id, "indicator_set": "tpmap-2560", "survey_year": survey_year,
             "surveyed_on": surveyed_on} | answers | MEASURED_OK | cells)


async def run_import(assessment: Assessment, rows: list[dict[str, Any]], headers: dict[str, str] | None = None,
                     *, columns: tuple[str, ...] = COLUMNS, bom: bool = True) -> dict[str, Any]:
    return await apps.run_import(assessment.app, assessment.client, URL, apps.csv_bytes(rows, columns, bom=bom),
                                 headers or assessment.admin)


async def test_good_rows_are_recorded_and_bad_ones_reported_by_row_and_column(assessment: Assessment) -> None:
    adult = await assessment.household()
    with_child = await assessment.household(member(ADULT), member("2018-06-01", relation="child"))
    closed = await assessment.household(status="closed")
    elsewhere = await assessment.household(village="40020101")
    rows = [
        row(adult),                                                                     # 2: recorded
        row(with_child, preschool="false", income_per_person_year="20000"),             # 3: recorded, 2 fails
        row(new_id()),                                                                  # 4: not announced yet
        row("H-17"),                                                                    # 5: not an id
        row(adult, survey_year=2564, housing="maybe"),                                  # 6: not a flag
        row(adult, survey_year=2564, preschool="true"),                                 # 7: does not apply
        row(adult, survey_year=2564, housing=""),                                       # 8: answer missing
        row(adult, survey_year=2600),                                                   # 9: date far from year
        row(adult, survey_year=2564, surveyed_on="2021-02-30"),                         # 10: no such date
        row(adult, survey_year=2564, indicator_set="jpt-2566"),                         # 11: unknown set
        row(adult, survey_year=2564, drinking_water_lpd="-1"),                          # 12: negative
        row(closed),                                                                    # 13: closed
        row(elsewhere),                                                                 # 14: outside the areas
    ]
    mueang = assessment.as_("assessment:write", "assessment:read", areas=("4001",))
    job = await run_import(assessment, rows, mueang)
    assert job["status"] == "done", job
    assert (job["rows"], job["assessments_created"], job["assessments_unchanged"], job["rows_rejected"]) == (
        13, 2, 0, 11)
    assert [(e["row"], e["column"]) for e in job["errors"]] == [
        (4, "household_id"), (5, "household_id"), (6, "housing"), (7, "preschool"), (8, "housing"),
        (9, "surveyed_on"), (10, "surveyed_on"), (11, "indicator_set"), (12, "drinking_water_lpd"), (13, None),
        (14, "household_id")]
    messages = {e["row"]: e["message"] for e in job["errors"]}
    assert "has not reached the assessment service" in messages[4]
    assert "expected true or false" in messages[6]
    assert "does not apply" in messages[7] and "required" in messages[8]
    assert "closed" in messages[13] and "in your areas" in messages[14]

    [recorded] = (await assessment.client.get(f"/v1/households/{with_child}/assessments",
                                              headers=assessment.admin)).json()["items"]
    assert (recorded["score"], recorded["revision"], recorded["current"]) == ("1/4", 1, True)
    assert recorded["answers"]["preschool"] is False and recorded["recorded_by"] == "test-client"
    assert recorded["measurements"]["income_per_person_year"] == "20000"
    events = await assessment.events()
    assert [(t, k) for t, k, _ in events] == [
        ("assessment.recorded", adult), ("household.poverty_status_changed", adult),
        ("assessment.recorded", with_child), ("household.poverty_status_changed", with_child)]

    again = await run_import(assessment, rows, mueang)
    assert (again["assessments_created"], again["assessments_unchanged"], again["rows_rejected"]) == (0, 2, 11)
    assert len(await assessment.events()) == 4


async def test_a_file_can_carry_several_years_and_corrections(assessment: Assessment) -> None:
    household_id = await assessment.household()
    before = await assessment.assess(household_id, survey_year=2564, surveyed_on="2021-01-10")
    assert before.status_code == 201
    rows = [
        row(household_id, housing="false", clean_home="false", literacy="false"),  # 2565 rev 1: poor
        row(household_id),                                                          # 2565 rev 2: corrected
    ]
    job = await run_import(assessment, rows)
    assert (job["assessments_created"], job["rows_rejected"]) == (2, 0)
    listed = (await assessment.client.get(f"/v1/households/{household_id}/assessments",
                                          headers=assessment.admin)).json()["items"]
    assert [(a["survey_year"], a["revision"], a["current"], a["poor"]) for a in listed] == [
        (2565, 2, True, False), (2565, 1, False, True), (2564, 1, True, False)]
    changes = [d for t, _k, d in await assessment.events() if t == "household.poverty_status_changed"]
    assert [(c["survey_year"], c["revision"], c["change"], c["previous_survey_year"]) for c in changes] == [
        (2564, 1, "first_assessment", None), (2565, 1, "entered", 2564), (2565, 2, "unchanged", 2564)]

    # A later file that corrects the year again adds a third revision; an identical one adds nothing.
    third = await run_import(assessment, [row(household_id, exercise="false")])
    assert (third["assessments_created"], third["assessments_unchanged"]) == (1, 0)
    same = await run_import(assessment, [row(household_id, exercise="false")])
    assert (same["assessments_created"], same["assessments_unchanged"]) == (0, 1)
    current = [a for a in (await assessment.client.get(f"/v1/households/{household_id}/assessments",
                                                       headers=assessment.admin)).json()["items"] if a["current"]]
    assert [(a["survey_year"], a["revision"]) for a in current] == [(2565, 3), (2564, 1)]


async def test_bad_files_fail_clearly(assessment: Assessment) -> None:
    household_id = await assessment.household()
    missing = await run_import(assessment, [row(household_id)], columns=COLUMNS[1:])
    assert (missing["status"], missing["errors"][0]["row"]) == ("failed", 1)
    assert "missing columns: household_id" in missing["errors"][0]["message"]
    unknown = await run_import(assessment, [row(household_id) | {"rain_mm": "3"}], columns=(*COLUMNS, "rain_mm"))
    assert unknown["status"] == "failed" and "rain_mm" in unknown["errors"][0]["message"]
    content = apps.csv_bytes([row(household_id)], COLUMNS, bom=False).decode()
    not_utf8 = await apps.run_import(assessment.app, assessment.client, URL,
                                     content.replace("tpmap", "ทีพีแมป").encode("tis-620"), assessment.admin)
    assert not_utf8["status"] == "failed" and "UTF-8" in not_utf8["failure"]
    short = apps.csv_bytes([row(household_id)], COLUMNS) + f"{household_id},tpmap-2560\r\n".encode()
    job = await apps.run_import(assessment.app, assessment.client, URL, short, assessment.admin)
    assert (job["assessments_created"], job["errors"][0]["row"]) == (1, 3)
    problem(await assessment.client.post(URL, files={"file": ("e.csv", b"", "text/csv")},
                                         headers=assessment.admin), 400)
    problem(await assessment.client.post(URL, files={"file": ("a.csv", short, "text/csv")},
                                         headers=assessment.as_("assessment:read")), 403)


async def test_an_imports_progress_grows_to_100_with_an_estimate_of_the_time_left(assessment: Assessment) -> None:
    households = [await assessment.household() for _ in range(3)]
    rows = [row(h, survey_year=year, surveyed_on=f"{year - 543}-03-01") for h in households
            for year in (2563, 2564, 2565)] + [row("H-17")]  # 10 rows, the last rejected
    content = apps.csv_bytes(rows, COLUMNS)
    lines = content.splitlines(keepends=True)  # the header (with the BOM), then a line a row
    steps, final = await apps.run_import_in_steps(assessment.app, assessment.client, URL, content,
                                                  assessment.admin, chunk=3)
    assert [s["status"] for s in steps] == ["running"] * 4
    progress = [s["progress"] for s in steps]
    assert progress[0] == {"percent": 0.0, "bytes_done": 0, "eta_s": None}  # nothing committed: no rate yet
    for chunks, (p, step) in enumerate(zip(progress, steps, strict=True)):
        # Exactly the header and the rows of the chunks committed.
        assert p["bytes_done"] == (len(b"".join(lines[:1 + 3 * chunks])) if chunks else 0)
        assert step["rows"] == 3 * chunks
        assert p["percent"] == int(1000 * p["bytes_done"] / len(content)) / 10 < 100
        assert p["eta_s"] is None if not chunks else isinstance(p["eta_s"], int) and p["eta_s"] >= 0
    assert [p["percent"] for p in progress] == sorted({p["percent"] for p in progress})
    assert (final["status"], final["assessments_created"], final["rows_rejected"]) == ("done", 9, 1)
    assert final["progress"] == {"percent": 100.0, "bytes_done": len(content), "eta_s": 0}


async def test_a_job_is_seen_only_by_its_client_and_errors_page(assessment: Assessment) -> None:
    rows = [row(new_id()) for _ in range(5)]
    mine = assessment.as_("assessment:write", areas=("4001",))
    job = await run_import(assessment, rows, mine)
    assert job["rows_rejected"] == 5 and job["errors_total"] == 5
    page = (await assessment.client.get(f"{URL}/{job['id']}", params={"errors_limit": 2}, headers=mine)).json()
    assert [e["row"] for e in page["errors"]] == [2, 3] and page["errors_next_cursor"]
    rest = (await assessment.client.get(f"{URL}/{job['id']}", params={
        "errors_cursor": page["errors_next_cursor"], "errors_limit": 2}, headers=mine)).json()
    assert [e["row"] for e in rest["errors"]] == [4, 5]
    last = (await assessment.client.get(f"{URL}/{job['id']}", params={"errors_cursor": rest["errors_next_cursor"]},
                                        headers=mine)).json()
    assert [e["row"] for e in last["errors"]] == [6] and last["errors_next_cursor"] is None
    problem(await assessment.client.get(f"{URL}/{job['id']}", params={"errors_cursor": "garbage!"}, headers=mine),
            400)
    someone = assessment.as_("assessment:write", areas=("4002",), client_id="someone-else")
    problem(await assessment.client.get(f"{URL}/{job['id']}", headers=someone), 404)


async def test_the_readme_sample_file_imports_cleanly(assessment: Assessment) -> None:
    # The sample's households, announced with the ids the file uses.
    sample = SAMPLE.read_text(encoding="utf-8-sig")  # noqa: ASYNC240 - a small test file
    ids = sorted({line.split(",")[0] for line in sample.splitlines()[1:]})
    for household_id in ids:
        await assessment.announce(facts(household_id, member(ADULT), member("2018-06-01", relation="child")))
    job = await apps.run_import(assessment.app, assessment.client, URL, SAMPLE.read_bytes(),  # noqa: ASYNC240
                                assessment.admin)
    assert (job["status"], job["rows_rejected"], job["errors"]) == ("done", 0, [])
    assert job["assessments_created"] == len(sample.splitlines()) - 1



async def test_a_row_may_name_its_household_by_the_registry_imports_key(assessment: Assessment) -> None:
    household_id = new_id()
    await assessment.announce(facts(household_id, member(ADULT)) | {"household_key": "KK-0001"})
    elsewhere = new_id()
    await assessment.announce(facts(elsewhere, member(ADULT), village="40020101") | {"household_key": "KK-0002"})
    by_key = {k: v for k, v in row("").items() if k != "household_id"}
    columns = ("household_id", "household_key", *COLUMNS[1:])
    rows = [
        by_key | {"household_id": "", "household_key": "KK-0001"},                  # 2: recorded
        by_key | {"household_id": "", "household_key": "KK-0404"},                  # 3: unknown key
        by_key | {"household_id": household_id, "household_key": "KK-0001"},       # 4: both
        by_key | {"household_id": "", "household_key": ""},                         # 5: neither
        by_key | {"household_id": "", "household_key": "KK-0002"},                  # 6: outside the areas
    ]
    mueang = assessment.as_("assessment:write", "assessment:read", areas=("4001",))
    job = await run_import(assessment, rows, mueang, columns=columns)
    assert (job["status"], job["assessments_created"], job["rows_rejected"]) == ("done", 1, 4), job
    assert [(e["row"], e["column"]) for e in job["errors"]] == [
        (3, "household_key"), (4, "household_key"), (5, "household_id"), (6, "household_key")]
    messages = [e["message"] for e in job["errors"]]
    assert "no household with this key has reached the assessment service" in messages[0]
    assert messages[1] == "give household_id or household_key, not both"
    assert messages[2] == "empty: give household_id or household_key"
    assert messages[3] == "there is no such household in your areas"
    [recorded] = (await assessment.client.get(f"/v1/households/{household_id}/assessments",
                                              headers=assessment.admin)).json()["items"]
    assert recorded["revision"] == 1
    # A file with only the key column: the same household, the same assessment (unchanged); an empty key names
    # the key column.
    only_key = ("household_key", *COLUMNS[1:])
    again = await run_import(assessment, [by_key | {"household_key": "KK-0001"}, by_key | {"household_key": ""}],
                             columns=only_key)
    assert (again["assessments_created"], again["assessments_unchanged"]) == (0, 1), again
    assert [(e["row"], e["column"]) for e in again["errors"]] == [(3, "household_key")]
    missing = await run_import(assessment, [by_key], columns=COLUMNS[1:])
    assert missing["status"] == "failed"
    assert "missing columns: household_id or household_key" in missing["errors"][0]["message"]


async def test_an_imported_row_records_and_publishes_what_the_same_request_does(assessment: Assessment) -> None:
    # The import builds its rows and events without the request's models (in bulk, in a thread): for the same
    # answers, the same assessment, revisions and events, field by field and in the same order.
    posted, imported = await assessment.household(), await assessment.household()
    for household_id in (posted, imported):
        assert (await assessment.assess(household_id, survey_year=2564, surveyed_on="2021-01-10")).status_code == 201
    poor = {"housing": False, "clean_home": False, "literacy": False}
    corrected = {"exercise": False}
    for answers in (poor, corrected):  # 2565: revision 1 (entered), then a correction (revision 2)
        assert (await assessment.assess(posted, all_meet(**answers), MEASURED_OK | {"income_per_person_year": "20000"}
                                        )).status_code == 201
        cells = {code: "false" for code in answers} | {"income_per_person_year": "20000"}
        job = await run_import(assessment, [row(imported, **cells)])
        assert (job["assessments_created"], job["rows_rejected"]) == (1, 0), job

    def listed(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.items() if k not in ("id", "household_id", "recorded_at")} for a in body["items"]]

    bodies = [(await assessment.client.get(f"/v1/households/{h}/assessments", headers=assessment.admin)).json()
              for h in (posted, imported)]
    assert listed(bodies[0]) == listed(bodies[1])
    assert [(a["survey_year"], a["revision"], a["current"]) for a in bodies[1]["items"]] == [
        (2565, 2, True), (2565, 1, False), (2564, 1, True)]

    ids = {a["id"]: f"assessment-{n}" for body in bodies for n, a in enumerate(body["items"])}
    ids |= {posted: "household", imported: "household"}

    def published(household_id: str, events: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
        texts = [json.dumps([t, d]) for t, k, d in events if k == household_id]
        for raw, name in ids.items():
            texts = [text.replace(raw, name) for text in texts]
        return texts

    events = await assessment.events()
    assert published(posted, events) == published(imported, events)
    assert len(published(imported, events)) == 6
