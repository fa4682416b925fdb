"""For BI tools: the SQL views read over a real connection (a read-only PostgreSQL role that can read the views
and not the tables), and the public reader of the reports."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text

from ops.demo import reader_note, report_urls
from services.reporting import admin
from shared.ids import new_id
from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import A, C, four_households


@pytest.mark.parametrize("databases", ["postgres"], indirect=True)
async def test_a_read_only_role_reads_the_views_and_nothing_else(reporting: Reporting) -> None:
    ids = await four_households(reporting)
    await reporting.paid(ids["h1"], A)
    reversed_id = await reporting.paid(ids["h4"], C)
    await reporting.reversed(reversed_id, ids["h4"], C)
    await reporting.budget("40", "1080000.00", "6000.00", "3000.00", budget_id="b")
    await reporting.helped(ids["h2"], A)
    engine = reporting.app.state.engine
    role = f"bi_{new_id()[-12:]}"
    await admin.grant_bi_role(engine, role, "กุญแจ'ลับ")
    url = engine.url.set(drivername="postgresql", username=role, password="กุญแจ'ลับ")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        poverty = await connection.fetch("SELECT district_code, sum(assessed_persons) AS n, "
                                         "sum(censored_score_value) / sum(assessed_persons) AS mpi "
                                         "FROM report_poverty_by_area WHERE survey_year = 2565 "
                                         "GROUP BY district_code ORDER BY district_code")
        assert [(r["district_code"], r["n"]) for r in poverty] == [("4001", 9), ("4002", 5)]
        assert float(poverty[0]["mpi"]) == pytest.approx(1 / 6)
        paid = await connection.fetch("SELECT * FROM report_assistance_by_area ORDER BY area_code")
        assert [(r["area_code"], r["payments_standing"], r["payments_reversed"], r["amount"]) for r in paid] == [
            (A, 1, 0, Decimal("3000.00")), (C, 0, 1, Decimal("0.00"))]
        budget = await connection.fetchrow("SELECT * FROM report_budgets")
        assert (budget["allocated"], budget["remaining"]) == (Decimal("1080000.00"), Decimal("1077000.00"))
        helped = await connection.fetchrow("SELECT * FROM report_help_by_area")
        assert (helped["village_code"], helped["households"], helped["value"]) == (A, 1, Decimal("1500.00"))
        for table in ("rpt_household", "rpt_assessment", "outbox", "inbox"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetch(f"SELECT * FROM {table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("DELETE FROM rpt_payment")
    finally:
        await connection.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP OWNED BY "{role}"'))
            await conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_views_on_sqlite(reporting: Reporting) -> None:
    await four_households(reporting)
    async with reporting.app.state.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT village_code, households, target_poor_persons "
                                        "FROM report_poverty_by_area ORDER BY village_code"))).all()
    assert [tuple(r) for r in rows] == [(A, 2, 5), ("40010201", 1, 0), (C, 1, 5)]


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_public_reads_suppressed_reports_of_its_areas(reporting: Reporting) -> None:
    await four_households(reporting)
    params = {"area": "40", "level": "district", "survey_year": 2565}
    public = await reporting.client.get("/v1/reports/poverty", params=params)
    assert public.status_code == 200, public.text
    rows = {r["area_code"]: r for r in public.json()["rows"]}
    assert rows["4001"]["households"] is None and public.json()["suppressed_cells"] > 0  # 3: too few to show
    # What `kaenkhun demo` prints under its links says the same (ops/demo/run.py), and the links answer.
    note = reader_note(reporting.settings.public(), reporting.settings.small_count_max, production=False)
    assert "the public sees: every area, counts of 1 to 4 hidden" in note
    for link in report_urls("")[1:]:
        assert (await reporting.client.get(link)).status_code == 200, link

    reporting.settings.public_areas = ["4002"]
    narrowed = await reporting.client.get("/v1/reports/poverty", params=params)
    assert [r["area_code"] for r in narrowed.json()["rows"]] == ["4002"]
    assert "areas 4002 only" in reader_note(reporting.settings.public(), 4, production=False)
    reporting.settings.public_areas = []
    problem(await reporting.client.get("/v1/reports/poverty", params=params), 401)
    assert "need a token" in reader_note(reporting.settings.public(), 4, production=True)
    problem(await reporting.client.get("/v1/reports/poverty", params=params,
                                       headers={"Authorization": "Bearer not-a-token"}), 401)
