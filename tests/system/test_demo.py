"""The whole system as `make up` runs it: the broker and the four services as processes, on SQLite.

`kaenkhun demo` loads Khon Kaen through the HTTP APIs and the ministry's pushes; the reporting service must
then show the source document's figures, and its read models must equal the source services' own records,
household by household and satang by satang. Then a second batch of grants is pushed in parts while the
assistance service (receiving the pushes) and the reporting service (consuming the events) are killed with
SIGKILL and restarted: nothing may be lost or counted twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ops import consistency, demo
from ops.launcher import System
from services import SERVICES
from shared.db import create_engine
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.system]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("system"))
    try:
        running.start_all()
        yield running
    finally:
        running.stop()


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def check_reporting_equals_sources(system: System, load: demo.Loader) -> dict[str, Any]:
    """Every figure and every row of reporting against the registry's, assessment's and assistance's records."""
    open_households = system.rows("registry", "SELECT h.id, h.village_code, count(m.id) FROM household h "
                                              "JOIN member m ON m.household_id = h.id AND m.removed_at IS NULL "
                                              "WHERE h.status = 'open' GROUP BY h.id, h.village_code")
    targets = system.rows("assessment", "SELECT household_id, village_code, member_count FROM assessment "
                                        "WHERE current AND survey_year = 2565 AND target_poor")
    paid = system.rows("assistance", "SELECT id, programme, coalesce(household_id, centre_id), amount "
                                     "FROM disbursement WHERE status = 'accepted' AND fiscal_year = 2565")
    # Reporting's read models hold the same households, target poor and payments: not one more, not one less.
    assert sorted(system.rows("reporting", "SELECT id, village_code, members FROM rpt_household "
                                           "WHERE status = 'open'")) == sorted(open_households)
    assert sorted(system.rows("reporting", "SELECT household_id, village_code, persons FROM rpt_assessment "
                                           "WHERE survey_year = 2565 AND target_poor")) == sorted(targets)
    in_reporting = system.rows("reporting", "SELECT id, programme, coalesce(household_id, centre_id), amount "
                                            "FROM rpt_payment WHERE NOT reversed AND fiscal_year = 2565")
    assert sorted((i, p, r, money(a)) for i, p, r, a in in_reporting) == sorted(
        (i, p, r, money(a)) for i, p, r, a in paid)
    # And the reports, by district, add them up to the same figures (as the read models are now: no-cache).
    now = {"Cache-Control": "no-cache"}
    poverty = await load.call("GET", f"{load.endpoints.reporting}/v1/reports/poverty", headers=now,
                              params={"area": "40", "level": "district", "survey_year": 2565})
    by_district = {r["area_code"]: r for r in poverty["rows"]}
    households = Counter(v[:4] for _, v, _ in open_households)
    target_households = Counter(v[:4] for _, v, _ in targets)
    target_persons: Counter[str] = Counter()
    for _, village, persons in targets:
        target_persons[village[:4]] += persons
    for code, row in by_district.items():
        assert (row["households"], row["target_poor_households"], row["target_poor_persons"]) == (
            households[code], target_households[code], target_persons[code]), code
    assistance = await load.call("GET", f"{load.endpoints.reporting}/v1/reports/assistance", headers=now,
                                 params={"area": "40", "fiscal_year": 2565})
    grants = [(r, money(a)) for _, p, r, a in paid if p == "family_grant"]
    subsidies = [money(a) for _, p, _, a in paid if p == "centre_subsidy"]
    assert (assistance["total"]["families_granted"], money(assistance["total"]["grant_amount"])) == (
        len({r for r, _ in grants}), sum((a for _, a in grants), Decimal(0)))
    assert money(assistance["total"]["subsidy_amount"]) == sum(subsidies, Decimal(0))
    return await load.figures()


def test_demo_loads_khon_kaen_and_survives_kills_mid_batch(system: System) -> None:
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "ops.cli", "demo", "--timeout", "180"], env=system.env,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"demo loaded in {time.monotonic() - started:.1f} s")
    shown = dict(line.split(maxsplit=1) for line in run.stdout.splitlines() if line.startswith("  ") and
                 not line.startswith("  http"))
    assert {name: shown.get(name) for name in ("districts", "teams", "social_assistance_centres",
                                                "target_poor_households", "target_poor_persons", "families_granted",
                                                "grant_amount", "subsidy_amount")} == {
        "districts": "26", "teams": "211", "social_assistance_centres": "224", "target_poor_households": "3,569",
        "target_poor_persons": "9,090", "families_granted": "360", "grant_amount": "1,080,000.00 baht",
        "subsidy_amount": "780,000.00 baht"}, run.stdout
    # The next survey year: real exits and entries; the teams' visits and referrals of this fiscal year.
    assert {name: shown.get(name) for name in ("target_poor_households_2566", "exited_2566", "entered_2566",
                                                "visits", "households_visited", "referrals_open",
                                                "referrals_overdue", "referrals_done")} == {
        "target_poor_households_2566": "3,379", "exited_2566": "250", "entered_2566": "60", "visits": "180",
        "households_visited": "150", "referrals_open": "75", "referrals_overdue": "30", "referrals_done": "30"
    }, run.stdout
    assert f"{system.url('reporting')}/dashboard" in run.stdout

    async def scenario() -> None:
        load = system.loader(timeout_s=180)
        try:
            await load.sign_in()
            scenario = demo.Scenario()
            assert await check_reporting_equals_sources(system, load) == demo.expected(scenario)

            # The second batch: 360 more families, pushed in six parts, while services are killed.
            homes = demo.population(scenario, await load.geography(), await load.indicator_set())
            await load._find_ids(homes)
            # Field work: visits, referrals, a partner's progress and help — paths the checker must account for.
            assert await load.field_work(homes[:20], "system") == 20
            await load.budgets(grants=demo.GRANT * demo.GRANT_FAMILIES * 2,
                               subsidies=demo.SUBSIDY * demo.FAMILY_DEVELOPMENT_CENTRES)
            families = demo.grant_families(homes, 2)
            await load.wait_target_poor(families)
            parts = [families[n:n + 60] for n in range(0, len(families), 60)]
            pushed: list[int] = []

            async def push_all() -> None:
                for n, part in enumerate(parts, 2):
                    await load.grants(part, n)
                    pushed.append(n)

            pushing = asyncio.create_task(push_all())

            async def parts_pushed(count: int) -> None:
                while len(pushed) < count:
                    if pushing.done():
                        await pushing  # raises what went wrong
                    await asyncio.sleep(0.01)

            await parts_pushed(2)
            await asyncio.sleep(0.03)  # the third part is on its way
            system.kill("assistance")
            await asyncio.to_thread(system.start, "assistance")
            await parts_pushed(4)
            system.kill("reporting")  # while it applies the first parts' events
            await asyncio.to_thread(system.start, "reporting")
            await pushing
            wanted = demo.expected(scenario, grant_batches=2)
            await load.wait_for(wanted)
            assert await check_reporting_equals_sources(system, load) == wanted
            batches = system.rows("assistance", "SELECT count(*), sum(accepted) FROM disbursement_batch "
                                                "WHERE programme = 'family_grant'")
            assert batches == [(7, 720)]  # the first batch and six parts: each recorded once
        finally:
            await load.close()
        await checker_finds_nothing_then_what_was_broken(system)

    asyncio.run(scenario())


async def checker_finds_nothing_then_what_was_broken(system: System) -> None:
    """`kaenkhun check-consistency` on the system after the kills: every check passes. Then, on a copy of the
    reporting database with an event's effects undone by hand, the checks that should fail do."""
    async def findings(reporting_db: Path, settle: bool = True) -> dict[str, consistency.Finding]:
        files = {name: system.data_dir / f"{name}.db" for name in SERVICES} | {"reporting": reporting_db}
        engines = {name: create_engine(f"sqlite+aiosqlite:///{path}") for name, path in files.items()}
        try:
            if settle:  # caught up: outboxes drained, inboxes complete, consumer groups committed to the end
                settled = await consistency.settle(engines, kafka=system.kafka)
                assert settled, settled.waiting_for
            return {f.check: f for f in await consistency.check(engines)}
        finally:
            for engine in engines.values():
                await engine.dispose()

    found = await findings(system.data_dir / "reporting.db")
    assert [f"{f.check}: {f.summary} {f.examples}" for f in found.values() if not f.ok] == []
    assert len(found) == 4 * 4 + 4 + 2  # delivery, origin, dead letters, order × 4 consumers; reporting; money
    assert "identical" in found["reporting = assistance: payments, amounts, reversals"].summary

    broken = system.data_dir / "reporting-broken.db"
    # SQLite's backup, not a file copy: the newest pages may still be in the -wal file beside it.
    with sqlite3.connect(system.data_dir / "reporting.db") as source, sqlite3.connect(broken) as copy:
        source.backup(copy)
    with sqlite3.connect(broken) as db:
        paid = db.execute("SELECT id FROM rpt_payment WHERE programme = 'family_grant' LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM rpt_payment WHERE id = ?", (paid,))
        db.execute("DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox WHERE topic = 'registry.team' "
                   "LIMIT 1)")
        db.execute("UPDATE rpt_area_year SET target_poor_households = target_poor_households + 1 "
                   "WHERE village_code = (SELECT min(village_code) FROM rpt_area_year)")
    found = await findings(broken, settle=False)  # the copy is broken on purpose: it would never catch up
    failed = {check: f.examples for check, f in found.items() if not f.ok}
    assert set(failed) == {"reporting = assistance: payments, amounts, reversals", "reporting: no event lost",
                           "reporting: village sums = recount of households"}, failed
    assert paid in failed["reporting = assistance: payments, amounts, reversals"][0]
