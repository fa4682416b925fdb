"""The dashboard in a real browser (Debian's headless Chromium): served by the service over real HTTP, it
shows the figures of the reports API — tiles, map, table, bars, trends, months in Thai Buddhist-era — in Thai
and in English, with no asset from elsewhere; drilling down changes the address and Back returns; each view's
screenshot is saved under build/."""

from __future__ import annotations

import asyncio
import html.parser
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ops.scratchdb import ScratchDatabases
from services import load
from shared import clock, migrations
from shared.events.assistance import REFERRAL_CREATED, REFERRAL_UPDATED, VISIT_RECORDED
from shared.ids import new_id
from shared.money import fiscal_year
from tests.kit.apps import make_settings, serving
from tests.kit.browser import browser
from tests.kit.env import NO_BROKER, system_tool
from tests.kit.reporting import Reporting
from tests.reporting.support import A, B, C, by_area, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build"
DIMENSIONS = ("health", "living", "education", "income", "access")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REFERRALS = ("referrals_open", "referrals_overdue", "referrals_done")
TH_MONTHS = ["ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค."]


class Figures(html.parser.HTMLParser):
    """What the page shows: each tile's value, each bar's, each map mark's, each trend point's and month's, each
    table row's cells, the x-axis labels, the download links and the page's asset URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.bars: dict[str, str] = {}
        self.map: dict[str, str] = {}
        self.trends: dict[str, str] = {}
        self.months: dict[tuple[str, str], str] = {}
        self.labels: dict[str, str] = {}
        self.rows: dict[str, list[str]] = {}
        self.crumbs: dict[str, bool] = {}  # area code → is a link
        self.downloads: list[str] = []
        self.empty = 0
        self.assets: list[str] = []
        self.legend = ""
        self.ready = ""
        self.lang = ""
        self._row: str | None = None
        self._cell = False
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        if tag == "body":
            self.ready = a.get("data-ready", "")
        for attribute, into in (("data-figure", self.figures), ("data-bar", self.bars),
                                ("data-map-area", self.map), ("data-trend", self.trends)):
            if attribute in a:
                into[a[attribute]] = a.get("data-value", "")
        if "data-month" in a:
            self.months[a["data-month"], a["data-series"]] = a.get("data-value", "")
        if "data-label" in a:
            self._label = a["data-label"]
            self.labels[self._label] = ""
        if "data-crumb" in a:
            self.crumbs[a["data-crumb"]] = tag == "a"
        if "data-download" in a:
            self.downloads.append(a["data-download"])
        if "data-legend" in a:
            self.legend = a["data-legend"]
        if a.get("data-empty") == "true":
            self.empty += 1
        if tag in ("script", "link", "img") and (a.get("src") or a.get("href")):
            self.assets.append(a.get("src") or a.get("href") or "")
        if tag == "tr" and "data-area" in a:
            self._row = a["data-area"]
            self.rows[self._row] = []
        if tag == "td" and self._row is not None:
            self._cell = True
            self.rows[self._row].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = False
        if tag == "tr":
            self._row = None
        if tag == "text":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._cell and self._row is not None:
            self.rows[self._row][-1] += data
        if self._label is not None:
            self.labels[self._label] += data


def shown(html: str) -> Figures:
    page = Figures()
    page.feed(html)
    return page


async def chromium(url: str, *extra: str) -> str:
    browser_path = system_tool("chromium", "chromium-browser", install="apt-get install chromium fonts-thai-tlwg")
    process = await asyncio.create_subprocess_exec(
        browser_path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage", "--virtual-time-budget=15000", "--window-size=1400,1900", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.fixture
async def served(databases: ScratchDatabases) -> AsyncIterator[tuple[str, Reporting]]:
    settings = make_settings("reporting", await databases.new("reporting"), NO_BROKER,
                             run_bus=False)
    app = load("reporting").create_app(settings)
    async with serving(app) as base:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        async with httpx.AsyncClient(base_url=base) as client:
            yield base, Reporting(client, settings, app)


async def two_survey_years(reporting: Reporting) -> None:
    """`four_households` in 2565, h1 and h4 paid, a centre subsidy, a team and two centres; then survey year
    2566: h1 (4001) and h4 (4002) leave target poverty, h3 (4001) enters it."""
    ids = await four_households(reporting)
    await reporting.paid(ids["h1"], A)
    await reporting.paid(ids["h4"], C)
    await reporting.subsidised("400101", "780000.00")
    await reporting.team("4001", ["400101"])
    await reporting.centre("400101")
    await reporting.centre("400201")
    for name, village, change in (("h1", A, "exited"), ("h4", C, "exited"), ("h3", B, "entered")):
        await reporting.assessed(ids[name], village, 3, survey_year=2566, surveyed_on="2023-01-10",
                                 target_poor=change == "entered", deprived=("income",) if change == "entered" else ())
        await reporting.changed(ids[name], village, change)


def th_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{TH_MONTHS[number - 1]} {(year + 543) % 100:02d}"


def same(shown_value: str, api_value: Any) -> bool:
    """A data-value attribute against the API's figure: "" for hidden (null), numbers compared as numbers."""
    if api_value is None:
        return shown_value == ""
    return shown_value != "" and float(shown_value) == float(api_value)


async def test_the_dashboard_shows_the_figures_of_the_api(served: tuple[str, Reporting], tmp_path: Path) -> None:
    base, reporting = served
    await two_survey_years(reporting)
    poverty = await reporting.report("poverty", area="40", level="district", survey_year=2565)
    later = await reporting.report("poverty", area="40", level="district", survey_year=2566)
    money = await reporting.report("assistance", area="40", level="district", fiscal_year=2565)
    months = await reporting.report("progress", area="40", **{"from": "2021-10", "to": "2022-09"})
    token = reporting.detail["Authorization"].removeprefix("Bearer ")

    async with httpx.AsyncClient(base_url=base) as http:
        for path in ("/dashboard", "/dashboard/assets/dashboard.js"):
            headers = (await http.get(path)).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src 'self'" in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"

    SCREENSHOTS.mkdir(exist_ok=True)
    async with browser() as page:
        # The page works under its policy (Chromium enforces it) and moves the token out of the URL.
        await page.open(f"{base}/dashboard?survey_year=2565#token={token}")
        assert "token" not in await page.url()
        th = shown(await page.dom())
        assert th.ready == "true" and th.lang == "th"
        assert all(asset.startswith("/dashboard/assets/") for asset in th.assets)  # nothing from the internet
        assert not [m for m in await page.console() if "Content Security Policy" in m or "Uncaught" in m]
        total: dict[str, Any] = poverty["total"]
        assert th.figures["households"] == str(total["households"]) == "4"
        assert th.figures["target_poor_households"] == str(total["target_poor_households"])
        assert float(th.figures["MPI"]) == total["MPI"] == 0.25
        assert th.figures["money_paid"] == "786000.00"
        assert float(th.figures["coverage"]) == money["total"]["coverage"]
        assert (th.figures["teams"], th.figures["social_assistance_centres"]) == ("1", "2")
        assert {d: th.bars[d] for d in DIMENSIONS} == {d: str(total[f"deprived_{d}"]) for d in DIMENSIONS}
        assert th.rows["4001"][0] == "เมืองขอนแก่น" and th.rows["4001"][1] == "3"
        assert len([code for code in th.rows if code != "total"]) == 26
        # The map: a mark per district (placed or listed), each with the API's figure of the chosen measure.
        assert th.legend == "target_poor_households"
        rows = by_area(poverty)
        assert set(th.map) == set(rows) and len(th.map) == 26
        assert all(same(th.map[code], row["target_poor_households"]) for code, row in rows.items())
        # Assistance: grants and subsidies, a bar each, each labelled with its own figure.
        assert float(th.bars["4001:grant_amount"]) == 3000 and float(th.bars["4001:subsidy_amount"]) == 780000
        assert float(th.bars["4002:grant_amount"]) == 3000 and float(th.bars["4002:subsidy_amount"]) == 0
        # Months: Buddhist-era Thai labels (ต.ค. 64 … ก.ย. 65) and each series' figure of each month.
        assert th.labels["2021-10"] == "ต.ค. 64" and th.labels["2022-09"] == "ก.ย. 65"
        assert {m: th.labels[m] for m in (r["month"] for r in months["rows"])} == {
            r["month"]: th_month(r["month"]) for r in months["rows"]}
        for r in months["rows"]:
            for series in ("grant_amount", "subsidy_amount"):
                assert same(th.months[r["month"], series], r[series]), (r["month"], series)
        # Trends: both survey years, with the real exits of 2566.
        for year, body in ((2565, poverty), (2566, later)):
            for key in ("target_poor_households", "exited", "MPI"):
                assert same(th.trends[f"{year}:{key}"], body["total"][key]), (year, key)
        assert later["total"]["exited"] == 2 and th.trends["2566:exited"] == "2"
        assert th.labels["2565"] == "พ.ศ. 2565"
        # Downloads: each is the report's own URL, as CSV and as Excel, with the page's language for the headers.
        csvs = [href for href in th.downloads if "format=csv" in href]
        sheets = [href for href in th.downloads if "format=xlsx" in href]
        assert len(sheets) == len(csvs) and all("lang=th" in href for href in th.downloads if "/poverty?" in href)
        async with httpx.AsyncClient(base_url=base) as http:
            paths = (await http.get("/openapi.json")).json()["paths"]
        for href in th.downloads:  # only what each report declares (the API refuses any other parameter)
            path, query = href.split("?")
            declared = {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
            assert set(parse_qs(query)) <= declared, href
        assert {href.split("?")[0] for href in csvs} >= {"/v1/reports/poverty", "/v1/reports/assistance",
                                                       "/v1/reports/progress"}
        async with httpx.AsyncClient(base_url=base, headers=reporting.detail) as http:
            for href in csvs:
                response = await http.get(href)
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv"), href
            for href in sheets:
                response = await http.get(href)
                assert response.status_code == 200, href
                assert response.headers["content-type"].startswith(XLSX) and response.content[:2] == b"PK", href
        await page.screenshot(SCREENSHOTS / "dashboard.png")
        # A download button saves the report as the API gives it (fetched with the token, saved from a blob).
        await page.downloads_to(tmp_path)
        await page.click('#dl-areas button[data-format="csv"]')
        saved = tmp_path / "poverty-40-2565.csv"
        for _ in range(100):
            if await asyncio.to_thread(saved.exists):
                break
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=base, headers=reporting.detail) as http:
            expected = (await http.get(next(href for href in csvs if href.startswith("/v1/reports/poverty")))).content
        assert await asyncio.to_thread(saved.read_bytes) == expected

        # Another figure on the map: the address carries it.
        await page.open(f"{base}/dashboard?survey_year=2565&figure=MPI")
        mpi = shown(await page.dom())
        assert mpi.legend == "MPI" and all(same(mpi.map[code], row["MPI"]) for code, row in rows.items())
        await page.open(f"{base}/dashboard?survey_year=2565&figure=coverage")
        coverage = shown(await page.dom())
        assert all(same(coverage.map[code], row["coverage"]) for code, row in by_area(money).items())

        # Drill down by clicking: the address changes, the breadcrumb leads back up, Back returns.
        await page.open(f"{base}/dashboard?survey_year=2565")
        await page.click('tr[data-area="4001"] a')
        await page.ready()
        assert "area=4001" in await page.url()
        district = shown(await page.dom())
        assert district.figures["households"] == "3" and district.crumbs == {"40": True, "4001": False}
        assert {code[:4] for code in district.rows if code != "total"} == {"4001"}
        assert (district.figures["teams"], district.figures["social_assistance_centres"]) == ("1", "1")
        assert set(district.map) == {code for code in district.map if code.startswith("4001")} and district.map
        await page.screenshot(SCREENSHOTS / "dashboard-district.png")
        await page.open(f"{base}/dashboard?area=400101&survey_year=2565")  # a sub-district: its villages, a grid
        villages = by_area(await reporting.report("poverty", area="400101", level="village", survey_year=2565))
        subdistrict = shown(await page.dom())
        assert set(subdistrict.map) == set(villages) == {A}
        assert same(subdistrict.map[A], villages[A]["target_poor_households"])
        await page.back()
        await page.ready()
        await page.back()
        await page.ready()
        assert "area=40&" in await page.url()
        assert shown(await page.dom()).figures["households"] == "4"
        # Tapping a district on the map shows its figure and a link into it.
        await page.click('circle[data-map-area="4002"]')
        assert await page.script("return document.getElementById('map-info').textContent.startsWith('บ้านฝาง: 1')")
        await page.click("#map-info a")
        await page.ready()
        assert "area=4002" in await page.url() and shown(await page.dom()).figures["households"] == "1"
        await page.open(f"{base}/dashboard?area=4001&survey_year=2565")  # a bookmark
        await page.click('nav a[data-crumb="40"]')
        await page.ready()
        assert "area=40&" in await page.url() and shown(await page.dom()).figures["households"] == "4"

        # The latest survey year by default, written into the address.
        await page.open(f"{base}/dashboard")
        assert "survey_year=2566" in await page.url()
        assert shown(await page.dom()).figures["exited"] == str(later["total"]["exited"])

        await page.open(f"{base}/dashboard?lang=en&survey_year=2565")
        english = shown(await page.dom())
        assert english.lang == "en" and english.rows["4001"][0] == "Mueang Khon Kaen"
        assert english.labels["2021-10"] == "Oct 2021" and english.labels["2565"] == "2022"
        await page.screenshot(SCREENSHOTS / "dashboard-en.png")

        await page.open(f"{base}/dashboard?survey_year=2565")
        await page.media("print")  # A4 landscape, no controls
        assert await page.script("return getComputedStyle(document.querySelector('.controls')).display") == "none"
        await page.screenshot(SCREENSHOTS / "dashboard-print.png")
        await page.media("")
        assert not [m for m in await page.console() if "Content Security Policy" in m or "Uncaught" in m]

    # The public (no token) drilled into a district: its three households are hidden, and the months, which are
    # published for a whole province only, come from the province.
    public = shown(await chromium(f"{base}/dashboard?area=4001", "--dump-dom"))
    assert public.ready == "true" and public.figures["households"] == "" and public.figures["MPI"] == ""
    assert {code[:4] for code in public.rows if code != "total"} == {"4001"}
    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 20_000


async def test_the_map_places_the_districts_from_installed_data(served: tuple[str, Reporting]) -> None:
    """Khon Kaen's districts at GeoNames points (24 of 26 placed), with the names for the breadcrumb; no
    figures, so public; an unknown area is 404 and a village 422."""
    base, _ = served
    async with httpx.AsyncClient(base_url=base) as http:
        province = (await http.get("/dashboard/map/40.json")).json()
        assert province["area"] == {"code": "40", "name_th": "ขอนแก่น", "name_en": "Khon Kaen"}
        assert province["ancestors"] == [] and len(province["children"]) == 26
        placed = {c["code"]: (c["lat"], c["lon"]) for c in province["children"] if c["lat"] is not None}
        assert len(placed) >= 23 and "GeoNames" in province["source"]
        lat, lon = placed["4001"]  # Mueang Khon Kaen: the city
        assert 16.3 < lat < 16.6 and 102.7 < lon < 102.9
        assert "4008" in placed  # Ubolratana, spelt Ubonratana in GeoNames
        district = (await http.get("/dashboard/map/4001.json")).json()
        assert [a["code"] for a in district["ancestors"]] == ["40"] and len(district["children"]) == 18
        assert (await http.get("/dashboard/map/99.json")).status_code == 404
        assert (await http.get("/dashboard/map/40010101.json")).status_code == 422


async def visited(reporting: Reporting, household: str, village: str, team: str | None) -> None:
    await reporting.send(VISIT_RECORDED, {
        "visit_id": new_id(), "household_id": household, "village_code": village,
        "visited_on": clock.today().isoformat(), "stage": "survive", "team_id": team,
        "problems": [{"dimension": "health", "indicator_code": None}]}, key=household)


async def referred(reporting: Reporting, household: str, village: str, sector: str, *, due_in_days: int = 30,
                   status: str = "open") -> None:
    facts = {"referral_id": new_id(), "household_id": household, "village_code": village, "dimension": "health",
             "partner_id": new_id(), "partner_sector": sector,
             "due_on": (clock.today() + timedelta(days=due_in_days)).isoformat()}
    await reporting.send(REFERRAL_CREATED, facts | {"status": "open", "version": 1}, key=household)
    if status != "open":
        await reporting.send(REFERRAL_UPDATED, facts | {"status": status, "status_before": "open", "version": 2},
                             key=household)


async def test_the_field_work_panel_shows_the_field_work_report(served: tuple[str, Reporting]) -> None:
    """This fiscal year's visits by district and by team and referrals by partner sector, as the field-work
    reports give them: to a reader with reporting:detail every figure, to the public the hidden ones as —."""
    base, reporting = served
    year = fiscal_year(clock.today())
    h1, h2, h3, h4 = (new_id() for _ in range(4))
    t1, t2 = await reporting.team("4001", ["400101"]), await reporting.team("4002", ["400201"])
    for household, village, team in ((h1, A, t1), (h1, A, t1), (h2, A, t1), (h3, B, None), (h4, C, t2)):
        await visited(reporting, household, village, team)
    await referred(reporting, h1, A, "government")
    await referred(reporting, h1, A, "government", due_in_days=-3, status="in_progress")
    await referred(reporting, h2, A, "private", status="done")
    await referred(reporting, h4, C, "academic", status="done")
    query = {"area": "40", "fiscal_year": year}
    areas = await reporting.report("field-work", level="district", **query)
    teams = await reporting.report("field-work/teams", **query)
    sectors = await reporting.report("field-work/sectors", **query)
    token = reporting.detail["Authorization"].removeprefix("Bearer ")

    async with browser() as page:
        await page.open(f"{base}/dashboard#token={token}")  # this fiscal year's field work by default
        detail = shown(await page.dom())
        await page.screenshot(SCREENSHOTS / "dashboard-field.png")
        await page.open(f"{base}/dashboard?fiscal_year={year - 1}")  # or the year the address names
        last_year = shown(await page.dom())
        assert not [k for k in last_year.bars if k.startswith(("visits:", "sector:"))] and last_year.empty == 2
        assert {v for k, v in last_year.bars.items() if k.startswith("team:")} == {"0"}  # the teams, no visits
        assert not [m for m in await page.console() if "Content Security Policy" in m or "Uncaught" in m]
    assert {k: v for k, v in detail.bars.items() if k.startswith("visits:")} == {
        f"visits:{r['area_code']}": str(r["visits"]) for r in areas["rows"] if r["visits"]}  # districts visited
    assert detail.bars["visits:4001"] == "4" and detail.bars["visits:4002"] == "1"  # B is in 4001 too
    assert {k: v for k, v in detail.bars.items() if k.startswith("team:")} == {
        f"team:{r['district_code']}:{r['team_id'] or ''}": str(r["visits"]) for r in teams["rows"]}
    assert detail.bars[f"team:4001:{t1}"] == "3" and detail.bars["team:4001:"] == "1"
    assert {k: v for k, v in detail.bars.items() if k.startswith("sector:")} == {
        f"sector:{r['partner_sector']}:{k}": str(r[k]) for r in sectors["rows"] if any(r[k] for k in REFERRALS)
        for k in REFERRALS}  # sectors with referrals
    assert (detail.bars["sector:government:referrals_open"], detail.bars["sector:government:referrals_overdue"],
            detail.bars["sector:private:referrals_done"]) == ("2", "1", "1")
    assert not detail.empty

    # The public: small counts hidden (null) are drawn as labelled placeholders, with no value.
    public_areas = (await reporting.client.get("/v1/reports/field-work", params=query | {"level": "district"})).json()
    public = shown(await chromium(f"{base}/dashboard?survey_year={year}", "--dump-dom"))
    assert public.ready == "true"
    assert {k: v for k, v in public.bars.items() if k.startswith("visits:")} == {
        f"visits:{r['area_code']}": "" if r["visits"] is None else str(r["visits"]) for r in public_areas["rows"]
        if r["visits"] != 0}
    assert public.bars["visits:4002"] == ""  # one visit: hidden
