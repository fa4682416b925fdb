"""The reports from events: exact figures worked by hand, corrections and redelivery, formats, suppression and
area claims (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from shared.events.assistance import VISIT_RECORDED
from shared.events.registry import HOUSEHOLD_REGISTERED, TEAM_CREATED
from shared.ids import new_id
from tests.registry.support import problem
from tests.reporting.support import Reporting

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

A, B, C = "40010103", "40010201", "40020101"  # two villages of Mueang Khon Kaen, one of Ban Fang


async def four_households(reporting: Reporting) -> dict[str, str]:
    """h1 (A, 3 persons) poor c = 1/2; h2 (A, 2) target poor, c = 1/5; h3 (B, 4) c = 0; h4 (C, 5) poor c = 2/5.

    4001: n = 9, q = 3, H = 1/3, A = 1/2, M0 = 1/6.  4002: n = 5, q = 5, H = 1, A = 2/5, M0 = 2/5.
    Province: n = 14, q = 8, Σc(k) = 3/2 + 2 = 7/2, H = 4/7, A = 7/16, M0 = 1/4.
    """
    ids = {}
    for name, village, persons in (("h1", A, 3), ("h2", A, 2), ("h3", B, 4), ("h4", C, 5)):
        ids[name] = await reporting.registered(village, persons)
    await reporting.assessed(ids["h1"], A, 3, score="1/2", failed={"housing": "1/5", "income_per_person": "3/10"},
                             deprived=("living", "income"), poor=True, target_poor=True)
    await reporting.assessed(ids["h2"], A, 2, score="1/5", failed={"exercise": "1/5"}, deprived=("health",),
                             target_poor=True)
    await reporting.assessed(ids["h3"], B, 4)
    await reporting.assessed(ids["h4"], C, 5, score="2/5", failed={"literacy": "1/5", "working_age_income": "1/5"},
                             deprived=("education", "income"), poor=True, target_poor=True)
    return ids


def by_area(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["area_code"]: row for row in body["rows"]}


async def test_poverty_by_district_adds_up_exactly(reporting: Reporting) -> None:
    await four_households(reporting)
    body = await reporting.report("poverty", area="40", level="district", survey_year=2565)
    assert body["report"] == "poverty" and body["level"] == "district" and body["suppressed_cells"] == 0
    rows = by_area(body)
    assert len(rows) == 26  # every district of Khon Kaen, with or without data
    mueang, ban_fang = rows["4001"], rows["4002"]
    assert mueang["area_name_th"] == "เมืองขอนแก่น" and mueang["area_name_en"] == "Mueang Khon Kaen"
    assert (mueang["households"], mueang["persons"], mueang["assessed_households"], mueang["assessed_persons"]) == (
        3, 9, 3, 9)
    assert (mueang["target_poor_households"], mueang["target_poor_persons"], mueang["poor_persons"]) == (2, 5, 3)
    assert (mueang["health"], mueang["living"], mueang["education"], mueang["income"], mueang["access"]) == (
        1, 1, 0, 1, 0)
    assert (mueang["H"], mueang["A"], mueang["MPI"]) == (round(1 / 3, 6), 0.5, round(1 / 6, 6))
    assert (ban_fang["H"], ban_fang["A"], ban_fang["MPI"]) == (1.0, 0.4, 0.4)
    assert rows["4003"]["households"] == 0 and rows["4003"]["MPI"] == 0.0
    total = body["total"]
    assert (total["area_code"], total["households"], total["persons"], total["target_poor_households"]) == (
        "40", 4, 14, 3)
    assert (total["H"], total["A"], total["MPI"]) == (round(4 / 7, 6), 0.4375, 0.25)
    assert body["as_of"] is not None

    villages = by_area(await reporting.report("poverty", area="4001", level="village", survey_year=2565))
    assert set(villages) == {A, B} and villages[A]["area_name_th"] == "ในเมือง หมู่ที่ 3"

    decomposition = await reporting.report("mpi-decomposition", area="40", level="district", survey_year=2565)
    assert decomposition["M0_exact"] == "1/4"
    parts = {(r["part"], r["code"]): r for r in decomposition["rows"]}
    # 4001 contributes (3/2)/14 = 3/28 and 4002 2/14 = 1/7; indicators: housing 3·(1/5)/14 = 3/70, …
    assert parts[("area", "4001")]["contribution"] == round(3 / 28, 6)
    assert parts[("area", "4002")]["contribution"] == round(1 / 7, 6)
    assert parts[("indicator", "housing")]["contribution"] == round(3 / 70, 6)
    assert parts[("indicator", "literacy")]["contribution"] == round(1 / 14, 6)
    assert "exercise" not in {code for part, code in parts if part == "indicator"}  # h2 is not poor: censored
    indicators = sum(r["contribution"] for r in decomposition["rows"] if r["part"] == "indicator")
    assert indicators == pytest.approx(0.25, abs=1e-5)


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


async def test_assistance_and_progress(reporting: Reporting) -> None:
    ids = await four_households(reporting)
    await reporting.budget("40", "1080000.00", "6000.00", "3000.00", budget_id="b")
    await reporting.budget("4001", "30000.00")
    await reporting.paid(ids["h1"], A)
    reversed_id = await reporting.paid(ids["h4"], C)
    await reporting.reversed(reversed_id, ids["h4"], C)
    await reporting.subsidised("400101", "500000.00")
    await reporting.subsidised("400201", "280000.00", paid_on="2022-03-05")
    await reporting.helped(ids["h2"], A)
    await reporting.helped(ids["h3"], B, given_on="2021-09-30")  # FY 2564: not in this report

    body = await reporting.report("assistance", area="40", level="district", fiscal_year=2565)
    rows, total = by_area(body), body["total"]
    assert (rows["4001"]["families_granted"], rows["4001"]["grant_amount"], rows["4001"]["grants_reversed"]) == (
        1, "3000.00", 0)
    assert (rows["4002"]["families_granted"], rows["4002"]["grant_amount"], rows["4002"]["grants_reversed"]) == (
        0, "0.00", 1)
    assert (total["centres_subsidised"], total["subsidy_amount"]) == (2, "780000.00")
    assert (rows["4001"]["budget_allocated"], total["budget_allocated"], total["budget_used"]) == (
        "30000.00", "1110000.00", "3000.00")
    # target poor in 2565: h1 (paid), h2 (helped by a partner), h4 (payment reversed): 2 of 3 covered.
    assert (total["target_poor_households"], total["target_poor_helped"], total["coverage"]) == (
        3, 2, round(2 / 3, 6))
    assert (rows["4001"]["coverage"], rows["4002"]["coverage"]) == (1.0, 0.0)

    progress = await reporting.report("progress", area="40", **{"from": "2022-01", "to": "2022-03"})
    months = {r["month"]: r for r in progress["rows"]}
    assert list(months) == ["2022-01", "2022-02", "2022-03"]
    assert (months["2022-01"]["assessed_households"], months["2022-01"]["families_granted"],
            months["2022-01"]["grant_amount"]) == (4, 1, "3000.00")
    assert (months["2022-02"]["subsidy_amount"], months["2022-03"]["subsidy_amount"]) == ("500000.00", "280000.00")
    assert (months["2022-03"]["households_helped"], months["2022-03"]["help_value"]) == (1, "1500.00")
    assert progress["total"]["subsidy_amount"] == "780000.00"
    backwards = {"area": "40", "from": "2022-05", "to": "2022-01"}
    problem(await reporting.client.get("/v1/reports/progress", params=backwards, headers=reporting.detail), 422)


async def test_field_network_counts_official_areas_teams_and_centres(reporting: Reporting) -> None:
    await reporting.team("4001", ["400101", "400102"], members=4)
    await reporting.team("4001", ["400103"])
    last = await reporting.team("4002", ["400201"])
    await reporting.send(TEAM_CREATED, {"team_id": last, "province_code": "40", "district_code": "4002",
                                        "subdistrict_codes": ["400201"], "member_count": 3}, key=last)  # redelivered
    await reporting.centre("400101")
    await reporting.centre("400101", "family_development_centre")
    await reporting.centre("400201")

    body = await reporting.report("field-network", area="40")
    rows, total = by_area(body), body["total"]
    assert len(rows) == 26 and (total["districts"], total["subdistricts"]) == (26, 199)  # Khon Kaen, officially
    assert (total["teams"], total["team_members"], total["social_assistance_centres"],
            total["family_development_centres"]) == (3, 10, 2, 1)
    assert (rows["4001"]["teams"], rows["4001"]["districts"], rows["4001"]["social_assistance_centres"]) == (2, 1, 1)
    assert rows["4002"]["teams"] == 1 and rows["4029"]["teams"] == 0
    by_subdistrict = by_area(await reporting.report("field-network", area="4001"))
    assert (by_subdistrict["400101"]["teams"], by_subdistrict["400103"]["teams"],
            by_subdistrict["400104"]["teams"]) == (1, 1, 0)
    assert by_subdistrict["400101"]["family_development_centres"] == 1
    one = await reporting.report("field-network", area="400101")
    assert (one["total"]["districts"], one["total"]["subdistricts"], one["total"]["teams"]) == (1, 1, 1)
    problem(await reporting.client.get("/v1/reports/field-network", params={"area": "40", "level": "village"},
                                       headers=reporting.detail), 422)


async def test_formats(reporting: Reporting) -> None:
    await four_households(reporting)
    params = {"area": "40", "level": "district", "survey_year": 2565}
    as_csv = await reporting.client.get("/v1/reports/poverty", params=params | {"format": "csv"},
                                        headers=reporting.detail)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith("\ufeff".encode())  # the BOM: Excel reads the Thai names right
    text = as_csv.content.decode("utf-8-sig")
    header, *lines = text.splitlines()
    assert header.split(",")[:4] == ["row", "area_code", "area_name_th", "area_name_en"]
    assert "4001,เมืองขอนแก่น,Mueang Khon Kaen,3,9" in text and lines[-1].startswith("total,40,ขอนแก่น")
    assert as_csv.headers["kaenkhun-as-of"]
    by_accept = await reporting.client.get("/v1/reports/poverty", params=params,
                                           headers=reporting.detail | {"Accept": "text/csv"})
    assert by_accept.content == as_csv.content

    as_parquet = await reporting.client.get("/v1/reports/poverty", params=params,
                                            headers=reporting.detail | {"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.schema.metadata[b"report"] == b"poverty"
    records = {r["area_code"]: r for r in table.to_pylist()}
    assert records["4001"]["area_name_th"] == "เมืองขอนแก่น" and records["40"]["row"] == "total"
    assert records["40"]["MPI"] == 0.25 and records["4001"]["target_poor_persons"] == 5

    money = await reporting.client.get("/v1/reports/assistance", params={"area": "40", "fiscal_year": 2565,
                                                                          "format": "parquet"},
                                       headers=reporting.detail)
    assert str(pq.read_table(io.BytesIO(money.content)).schema.field("grant_amount").type) == "decimal128(14, 2)"
    problem(await reporting.client.get("/v1/reports/poverty", params=params | {"format": "xlsx"},
                                       headers=reporting.detail), 422)


async def test_small_counts_are_suppressed_with_their_complements(reporting: Reporting) -> None:
    ids = {}
    for i in range(10):
        ids[i] = await reporting.registered(A, 2)  # 10 households, 20 persons in Mueang
    for _ in range(3):
        await reporting.registered(C, 1)  # 3 in Ban Fang: small
    await reporting.registered("40030101", 5)  # …
    for _ in range(6):
        await reporting.registered("40040101", 1)  # 6 in a third district
    body = await reporting.report("poverty", reporting.as_("reporting:read"), area="40", level="district",
                                  survey_year=2565)
    rows = by_area(body)
    assert rows["4002"]["households"] is None and rows["4003"]["households"] is None  # 3 and 1: primary
    # 3 + 1 = 20 − 10 − 6 would still tell that each is at most 4: the smallest other district that lifts the
    # hidden sum past the threshold (6) goes too. Persons share the households' pattern (one household of 5).
    assert rows["4004"]["households"] is None and rows["4001"]["households"] == 10
    assert body["total"]["households"] == 20 and body["suppressed_cells"] > 0
    assert (rows["4001"]["persons"], rows["4002"]["persons"], rows["4003"]["persons"], rows["4004"]["persons"]) == (
        20, None, None, None)
    detail = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2565))
    assert (detail["4002"]["households"], detail["4003"]["persons"]) == (3, 5)

    await reporting.paid(ids[0], A)
    money = by_area(await reporting.report("assistance", reporting.as_("reporting:read"), area="40",
                                           level="district", fiscal_year=2565))
    assert money["4001"]["families_granted"] is None and money["4001"]["grant_amount"] is None  # money follows


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
    fresh = await reporting.client.get("/v1/reports/freshness", headers=reporting.detail)
    topics = {t["topic"]: t for t in fresh.json()["topics"]}
    assert topics["registry.household"]["events_applied"] == 4
    assert topics["assessment.household"]["events_applied"] == 4


async def test_an_event_it_does_not_need_is_recorded_as_such(reporting: Reporting) -> None:
    """A field visit reaches reporting on the household topic and changes nothing, but is accounted for in its
    inbox (the history checker counts every event of a subscribed topic), once however often it comes."""
    visit = {"visit_id": "v1", "household_id": "h1", "village_code": A, "visited_on": "2022-02-01",
             "stage": "survive", "team_id": None, "problems": [{"dimension": "health"}]}
    event_id = await reporting.send(VISIT_RECORDED, visit)
    await reporting.send(VISIT_RECORDED, visit, event_id=event_id)
    inbox = reporting.app.state.spec.inbox
    async with reporting.app.state.engine.connect() as conn:
        rows = (await conn.execute(select(inbox.c.event_id, inbox.c.outcome))).all()
    assert [tuple(r) for r in rows] == [(event_id, "not_needed")]


async def test_a_reversed_centre_subsidy_leaves_the_figures(reporting: Reporting) -> None:
    paid = new_id()
    centre = await reporting.subsidised("400101", "10000.00", disbursement_id=paid)
    await reporting.subsidised("400101", "20000.00")
    await reporting.subsidy_reversed(paid, centre, "400101", "10000.00")
    total = (await reporting.report("assistance", area="40", fiscal_year=2565))["total"]
    assert (total["centres_subsidised"], total["subsidy_amount"]) == (1, "20000.00")
