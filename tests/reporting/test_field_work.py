"""The field-work report from events: visits by area and by team, referrals open, overdue and done by area and by
partner sector, households helped; redelivery, the clock, disclosure control, area scoping and the export
formats (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest

from shared import clock
from shared.events.assistance import HELP_RECORDED, REFERRAL_CREATED, REFERRAL_UPDATED, VISIT_RECORDED
from shared.ids import new_id
from shared.money import fiscal_year
from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import A, B, C, by_area

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

READ = ("reporting:read",)


def this_year() -> int:
    """Referrals count in the fiscal year they were made: the events' time, now."""
    return fiscal_year(clock.today())


async def visited(reporting: Reporting, household: str, village: str, team: str | None, *,
                  on: date | None = None, dimensions: tuple[str, ...] = ("health",)) -> str:
    visit_id = new_id()
    await reporting.send(VISIT_RECORDED, {
        "visit_id": visit_id, "household_id": household, "village_code": village,
        "visited_on": (on or clock.today()).isoformat(), "stage": "survive", "team_id": team,
        "problems": [{"dimension": d, "indicator_code": None} for d in dimensions]}, key=household)
    return visit_id


async def referred(reporting: Reporting, household: str, village: str, sector: str, *, due_in_days: int = 30,
                   moves: tuple[str, ...] = ()) -> str:
    """A referral made today, then moved through `moves` (in_progress, done, cancelled)."""
    referral_id, partner = new_id(), new_id()
    facts = {"referral_id": referral_id, "household_id": household, "village_code": village,
             "dimension": "health", "partner_id": partner, "partner_sector": sector,
             "due_on": (clock.today() + timedelta(days=due_in_days)).isoformat()}
    await reporting.send(REFERRAL_CREATED, facts | {"status": "open", "version": 1}, key=household)
    before = "open"
    for version, status in enumerate(moves, 2):
        await reporting.send(REFERRAL_UPDATED, facts | {"status": status, "status_before": before,
                                                        "version": version}, key=household)
        before = status
    return referral_id


async def helped(reporting: Reporting, household: str, village: str, sector: str) -> None:
    await reporting.send(HELP_RECORDED, {
        "help_id": new_id(), "referral_id": new_id(), "household_id": household, "village_code": village,
        "dimension": "health", "partner_id": new_id(), "partner_sector": sector, "kind": "health",
        "value": None, "given_on": clock.today().isoformat()}, key=household)


async def field_work(reporting: Reporting) -> dict[str, str]:
    """Teams t1 (4001) and t2 (4002). In A: h1 visited twice by t1, h2 once by t1; in B: h3 once with no team; in
    C: h4 once by t2, and once by t2 in the previous fiscal year (not counted). Referrals: h1 to government (open,
    due in 30 days), h1 to government (in progress, 3 days overdue), h2 to private (done), h3 to government
    (cancelled), h4 to academic (done). Help: h2 by private, h4 by academic twice, h4 by government."""
    ids = {name: new_id() for name in ("h1", "h2", "h3", "h4")}
    t1, t2 = await reporting.team("4001", ["400101", "400102"]), await reporting.team("4002", ["400201"])
    ids |= {"t1": t1, "t2": t2}
    await visited(reporting, ids["h1"], A, t1)
    await visited(reporting, ids["h1"], A, t1, dimensions=("health", "income"))
    await visited(reporting, ids["h2"], A, t1)
    await visited(reporting, ids["h3"], B, None)
    await visited(reporting, ids["h4"], C, t2)
    start_of_year = date(this_year() - 543 - 1, 10, 1)
    await visited(reporting, ids["h4"], C, t2, on=start_of_year - timedelta(days=1))
    await referred(reporting, ids["h1"], A, "government")
    await referred(reporting, ids["h1"], A, "government", due_in_days=-3, moves=("in_progress",))
    await referred(reporting, ids["h2"], A, "private", moves=("in_progress", "done"))
    await referred(reporting, ids["h3"], B, "government", moves=("cancelled",))
    await referred(reporting, ids["h4"], C, "academic", moves=("in_progress", "done"))
    await helped(reporting, ids["h2"], A, "private")
    await helped(reporting, ids["h4"], C, "academic")
    await helped(reporting, ids["h4"], C, "academic")
    await helped(reporting, ids["h4"], C, "government")
    return ids


def figures(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


FIELDS = ("visits", "households_visited", "referrals_open", "referrals_overdue", "referrals_done")


async def test_visits_and_referrals_by_area_team_and_sector(reporting: Reporting) -> None:
    ids = await field_work(reporting)
    year = this_year()
    body = await reporting.report("field-work", area="40", fiscal_year=year)
    rows = by_area(body)
    assert body["report"] == "field_work" and body["fiscal_year"] == year and len(rows) == 26
    assert figures(rows["4001"], *FIELDS) == (4, 3, 2, 1, 1)
    assert figures(rows["4002"], *FIELDS) == (1, 1, 0, 0, 1)
    assert figures(rows["4003"], *FIELDS) == (0, 0, 0, 0, 0)
    assert figures(body["total"], *FIELDS) == (5, 4, 2, 1, 2)
    assert (rows["4001"]["area_name_en"], body["total"]["area_code"]) == ("Mueang Khon Kaen", "40")
    villages = by_area(await reporting.report("field-work", area="4001", level="village", fiscal_year=year))
    assert figures(villages[A], *FIELDS) == (3, 2, 2, 1, 1)
    assert figures(villages[B], *FIELDS) == (1, 1, 0, 0, 0)  # the cancelled referral counts nowhere
    # The previous fiscal year holds only h4's earlier visit.
    before = await reporting.report("field-work", area="40", fiscal_year=year - 1)
    assert figures(before["total"], *FIELDS) == (1, 1, 0, 0, 0)

    teams = await reporting.report("field-work/teams", area="40", fiscal_year=year)
    by_team = {(r["team_id"], r["district_code"]): r for r in teams["rows"]}
    assert set(by_team) == {(ids["t1"], "4001"), (None, "4001"), (ids["t2"], "4002")}
    assert figures(by_team[(ids["t1"], "4001")], "visits", "households_visited") == (3, 2)
    assert figures(by_team[(None, "4001")], "visits", "households_visited") == (1, 1)
    assert figures(by_team[(ids["t2"], "4002")], "visits", "households_visited", "district_name_en") == (
        1, 1, "Ban Fang")
    assert figures(teams["total"], "visits", "households_visited", "district_code") == (5, 4, "40")
    one_district = await reporting.report("field-work/teams", area="4002", fiscal_year=year)
    assert [r["team_id"] for r in one_district["rows"]] == [ids["t2"]] and one_district["total"]["visits"] == 1

    sectors = await reporting.report("field-work/sectors", area="40", fiscal_year=year)
    by_sector = {r["partner_sector"]: r for r in sectors["rows"]}
    assert list(by_sector)[:3] == ["government", "private", "academic"] and len(by_sector) == 7
    names = ("referrals_open", "referrals_overdue", "referrals_done", "households_helped")
    assert figures(by_sector["government"], *names) == (2, 1, 0, 1)
    assert figures(by_sector["private"], *names) == (0, 0, 1, 1)
    assert figures(by_sector["academic"], *names) == (0, 0, 1, 1)
    assert figures(by_sector["media"], *names) == (0, 0, 0, 0)
    assert figures(sectors["total"], *names) == (2, 1, 2, 2)  # h4 helped by two sectors: once in the total
    district = await reporting.report("field-work/sectors", area="4002", fiscal_year=year)
    assert figures(district["total"], *names) == (0, 0, 1, 1)


async def test_redelivery_and_replay_change_nothing(reporting: Reporting) -> None:
    await field_work(reporting)
    year = this_year()
    paths = ("field-work", "field-work/teams", "field-work/sectors")
    before = [await reporting.report(p, area="40", fiscal_year=year) for p in paths]
    for event_type, data, event_id in list(reporting.sent):  # redelivered: the inbox knows them
        await reporting.send(event_type, data, event_id=event_id, key=data.get("household_id", data.get("team_id")))
    for event_type, data, _ in list(reporting.sent):  # published again under new ids: the read models know them
        await reporting.send(event_type, data, key=data.get("household_id", data.get("team_id")))
    after = [await reporting.report(p, area="40", fiscal_year=year) for p in paths]
    assert [(b["rows"], b["total"]) for b in before] == [(a["rows"], a["total"]) for a in after]


async def test_a_declined_referral_counts_in_no_column(reporting: Reporting) -> None:
    await field_work(reporting)
    year = this_year()
    total = (await reporting.report("field-work", area="40", fiscal_year=year))["total"]
    household = new_id()
    await referred(reporting, household, B, "government", due_in_days=-3, moves=("declined",))
    await referred(reporting, household, B, "government", moves=("in_progress",))
    after = (await reporting.report("field-work", area="40", fiscal_year=year))["total"]
    # The referral under way counts as open; the one the partner declined (overdue or not) nowhere.
    assert figures(after, *FIELDS) == figures(total, *FIELDS[:2]) + (
        total["referrals_open"] + 1, total["referrals_overdue"], total["referrals_done"])


async def test_overdue_follows_the_clock(reporting: Reporting, monkeypatch: pytest.MonkeyPatch) -> None:
    await field_work(reporting)
    year, today = this_year(), clock.today()
    total = (await reporting.report("field-work", area="40", fiscal_year=year))["total"]
    assert (total["referrals_open"], total["referrals_overdue"]) == (2, 1)
    monkeypatch.setattr(clock, "today", lambda: today + timedelta(days=31))  # the other one is past due now
    total = (await reporting.report("field-work", area="40", fiscal_year=year))["total"]
    assert (total["referrals_open"], total["referrals_overdue"]) == (2, 2)


async def test_small_counts_are_hidden_without_detail(reporting: Reporting) -> None:
    ids = await field_work(reporting)
    for _ in range(6):  # six households of Phra Yuen visited: the province's figures are not small
        await visited(reporting, new_id(), "40030101", None)
    year = this_year()
    public = reporting.as_(*READ)
    body = await reporting.report("field-work", public, area="40", fiscal_year=year)
    rows = by_area(body)
    # 4001 (4 visits to 3 households) and 4002 (1) are small: hidden, and so is a complement (4003), so that
    # neither can be told from the province's total less the others.
    assert figures(rows["4001"], "visits", "households_visited") == (None, None)
    assert figures(rows["4002"], "visits", "households_visited") == (None, None)
    assert figures(rows["4003"], "visits", "households_visited") == (None, None)
    assert figures(body["total"], "visits", "households_visited") == (11, 10)
    assert rows["4004"]["visits"] == 0 and body["suppressed_cells"] > 0
    for row in [*body["rows"], body["total"]]:  # no count from 1 to 4 is shown anywhere
        assert all(row[n] is None or row[n] == 0 or row[n] > 4 for n in FIELDS)
    teams = await reporting.report("field-work/teams", public, area="40", fiscal_year=year)
    # The teams' rows of 4001 and 4002 are small; the district cells are hidden as in the area table.
    assert {r["team_id"] for r in teams["rows"]} == {ids["t1"], ids["t2"], None}
    assert all(r["visits"] is None for r in teams["rows"] if r["district_code"] in ("4001", "4002"))
    assert figures(teams["total"], "visits", "households_visited") == (11, 10)
    phra_yuen = await reporting.report("field-work/teams", public, area="4003", fiscal_year=year)
    assert figures(phra_yuen["total"], "visits") == (None,)
    for row in [*teams["rows"], teams["total"]]:
        assert row["visits"] is None or row["visits"] == 0 or row["visits"] > 4
    sectors = await reporting.report("field-work/sectors", public, area="40", fiscal_year=year)
    for row in sectors["rows"]:
        assert all(row[n] in (None, 0) for n in ("referrals_open", "referrals_done", "households_helped"))
    # With detail, the same figures are exact.
    exact = by_area(await reporting.report("field-work", area="40", fiscal_year=year))
    assert figures(exact["4001"], "visits", "households_visited") == (4, 3)
    # By sector without detail: for a whole province only.
    problem(await reporting.client.get("/v1/reports/field-work/sectors", params={"area": "4001", "fiscal_year": year},
                                       headers=public), 403)
    problem(await reporting.client.get("/v1/reports/field-work/teams", params={"area": "400101", "fiscal_year": year},
                                       headers=public), 403)


async def test_a_caller_sees_only_its_areas(reporting: Reporting) -> None:
    ids = await field_work(reporting)
    year = this_year()
    ban_fang = reporting.as_("reporting:read", "reporting:detail", areas=("4002",))
    body = await reporting.report("field-work", ban_fang, area="40", fiscal_year=year)
    assert list(by_area(body)) == ["4002"]
    assert figures(body["total"], *FIELDS) == (1, 1, 0, 0, 1)
    teams = await reporting.report("field-work/teams", ban_fang, area="40", fiscal_year=year)
    assert [r["team_id"] for r in teams["rows"]] == [ids["t2"]] and teams["total"]["visits"] == 1
    sectors = await reporting.report("field-work/sectors", ban_fang, area="40", fiscal_year=year)
    assert sum(r["referrals_open"] + r["referrals_done"] for r in sectors["rows"]) == 1
    assert {r["partner_sector"]: r["households_helped"] for r in sectors["rows"] if r["households_helped"]} == {
        "academic": 1, "government": 1}
    # Not its district, and no areas at all: refused.
    problem(await reporting.client.get("/v1/reports/field-work", params={"area": "4001", "fiscal_year": year},
                                       headers=ban_fang), 403)
    nowhere = reporting.as_("reporting:read", "reporting:detail", areas=())
    for path in ("field-work", "field-work/teams", "field-work/sectors"):
        problem(await reporting.client.get(f"/v1/reports/{path}", params={"area": "40", "fiscal_year": year},
                                           headers=nowhere), 403)


async def test_formats_and_parameters(reporting: Reporting) -> None:
    await field_work(reporting)
    year = this_year()
    params = {"area": "40", "fiscal_year": year}
    as_csv = await reporting.client.get("/v1/reports/field-work/teams", params=params | {"format": "csv"},
                                        headers=reporting.detail)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    read = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert read[-1]["is_total"] == "true" and read[-1]["visits"] == "5"
    assert {r["fiscal_year"] for r in read} == {str(year)} and {r["parent_area"] for r in read} == {"40"}
    assert sorted(int(r["visits"]) for r in read[:-1]) == [1, 1, 3]
    as_xlsx = await reporting.client.get("/v1/reports/field-work", params=params | {"format": "xlsx", "lang": "th"},
                                         headers=reporting.detail)
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    assert "จำนวนครั้งที่เยี่ยมบ้าน" in header and "ส่งต่อ: เกินกำหนด" in header
    last = [cell.value for cell in sheet[sheet.max_row]]
    assert last[header.index("จำนวนครั้งที่เยี่ยมบ้าน")] == 5
    as_parquet = await reporting.client.get("/v1/reports/field-work/sectors", params=params | {"format": "parquet"},
                                            headers=reporting.detail)
    table = pq.read_table(io.BytesIO(as_parquet.content)).to_pylist()
    assert table[-1]["is_total"] is True and table[-1]["referrals_done"] == 2 and as_parquet.headers["Kaenkhun-As-Of"]
    for bad in ({"fiscal_year": 1999}, {"level": "province", "area": "4001"}, {"area": "4x"}):
        problem(await reporting.client.get("/v1/reports/field-work", params=params | bad,
                                           headers=reporting.detail), 422)
    problem(await reporting.client.get("/v1/reports/field-work", params={"area": "99", "fiscal_year": year},
                                       headers=reporting.detail), 404)
