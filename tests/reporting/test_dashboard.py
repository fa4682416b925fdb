"""The dashboard in a real browser (Debian's headless Chromium): served by the service over real HTTP, it
shows the figures of the reports API, in Thai and in English, with no asset from elsewhere; each run saves a
screenshot under build/."""

from __future__ import annotations

import asyncio
import html.parser
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.kit.apps import make_settings, serving
from tests.kit.env import NO_BROKER, system_tool
from tests.kit.reporting import Reporting
from tests.reporting.support import A, C, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build"


class Figures(html.parser.HTMLParser):
    """What the page shows: each tile's value, each bar's, each table row's cells, the page's asset URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.bars: dict[str, str] = {}
        self.rows: dict[str, list[str]] = {}
        self.assets: list[str] = []
        self.ready = ""
        self.lang = ""
        self._row: str | None = None
        self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        if tag == "body":
            self.ready = a.get("data-ready", "")
        if "data-figure" in a:
            self.figures[a["data-figure"]] = a.get("data-value", "")
        if "data-bar" in a:
            self.bars[a["data-bar"]] = a.get("data-value", "")
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

    def handle_data(self, data: str) -> None:
        if self._cell and self._row is not None:
            self.rows[self._row][-1] += data


async def chromium(url: str, *extra: str) -> str:
    browser = system_tool("chromium", "chromium-browser", install="apt-get install chromium fonts-thai-tlwg")
    process = await asyncio.create_subprocess_exec(
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
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


async def test_the_dashboard_shows_the_figures_of_the_api(served: tuple[str, Reporting]) -> None:
    base, reporting = served
    ids = await four_households(reporting)
    await reporting.paid(ids["h1"], A)
    await reporting.paid(ids["h4"], C)
    await reporting.subsidised("400101", "780000.00")
    await reporting.team("4001", ["400101"])
    await reporting.centre("400101")
    await reporting.centre("400201")
    poverty = await reporting.report("poverty", area="40", level="district", survey_year=2565)
    money = await reporting.report("assistance", area="40", level="district", fiscal_year=2565)
    token = reporting.detail["Authorization"].removeprefix("Bearer ")

    async with httpx.AsyncClient(base_url=base) as http:
        for path in ("/dashboard", "/dashboard/assets/dashboard.js"):
            headers = (await http.get(path)).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src 'self'" in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"

    page = Figures()  # the page works under its policy (Chromium enforces it) and moves the token out of the URL
    page.feed(await chromium(f"{base}/dashboard#token={token}", "--dump-dom"))
    assert page.ready == "true" and page.lang == "th"
    assert all(asset.startswith("/dashboard/assets/") for asset in page.assets)  # nothing from the internet
    total: dict[str, Any] = poverty["total"]
    assert page.figures["households"] == str(total["households"]) == "4"
    assert page.figures["target_poor_households"] == str(total["target_poor_households"])
    assert float(page.figures["MPI"]) == total["MPI"] == 0.25
    assert page.figures["money_paid"] == "786000.00"
    assert float(page.figures["coverage"]) == money["total"]["coverage"]
    assert (page.figures["teams"], page.figures["social_assistance_centres"]) == ("1", "2")
    assert {d: page.bars[d] for d in ("health", "living", "education", "income", "access")} == {
        d: str(total[f"deprived_{d}"]) for d in ("health", "living", "education", "income", "access")}
    assert page.rows["4001"][0] == "เมืองขอนแก่น" and page.rows["4001"][1] == "3"
    assert len([code for code in page.rows if code != "total"]) == 26
    assert float(page.bars["4001"]) == 3000 + 780000

    english = Figures()
    english.feed(await chromium(f"{base}/dashboard?lang=en#token={token}", "--dump-dom"))
    assert english.lang == "en" and english.rows["4001"][0] == "Mueang Khon Kaen"
    drilled = Figures()
    drilled.feed(await chromium(f"{base}/dashboard?area=4001#token={token}", "--dump-dom"))
    assert set(drilled.rows) - {"total"} == {code for code in drilled.rows if code.startswith("4001")} - {"total"}
    assert drilled.figures["households"] == "3"
    assert (drilled.figures["teams"], drilled.figures["social_assistance_centres"]) == ("1", "1")

    # The public (no token) drilled into a district: its three households are hidden, and the months, which are
    # published for a whole province only, come from the province.
    public = Figures()
    public.feed(await chromium(f"{base}/dashboard?area=4001", "--dump-dom"))
    assert public.ready == "true" and public.figures["households"] == "" and public.figures["MPI"] == ""
    assert {code[:4] for code in public.rows if code != "total"} == {"4001"}

    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    await chromium(f"{base}/dashboard#token={token}", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
