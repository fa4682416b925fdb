"""For BI tools: the SQL views read over a real connection (a read-only PostgreSQL role that can read the views
and not the tables), with the areas' names joined in, exactly the columns `services.reporting.views` documents and
a comment on every view and column; docs/data-dictionary.md made from the same source; and the public reader of
the reports."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text

from services.reporting import admin, dictionary, views
from shared.ids import new_id
from shared.settings import REPO_ROOT
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
        village = await connection.fetchrow("SELECT * FROM report_poverty_by_area WHERE village_code = $1", A)
        assert (village["area_code"], village["area_name_th"], village["area_name_en"], village["level"]) == (
            A, "ในเมือง หมู่ที่ 3", "Nai Mueang Moo 3", "village")
        assert (village["district_code"], village["district_name_th"], village["province_name_en"]) == (
            "4001", "เมืองขอนแก่น", "Khon Kaen")
        assert (village["welfare_card_households"], village["welfare_card_persons"]) == (2, 5)
        assert (village["target_poor_households_health"], village["target_poor_persons_health"],
                village["target_poor_persons_living"], village["target_poor_persons_education"]) == (1, 2, 3, 0)
        paid = await connection.fetch("SELECT * FROM report_assistance_by_area ORDER BY area_code")
        assert [(r["area_code"], r["payments_standing"], r["payments_reversed"], r["amount"]) for r in paid] == [
            (A, 1, 0, Decimal("3000.00")), (C, 0, 1, Decimal("0.00"))]
        budget = await connection.fetchrow("SELECT * FROM report_budgets")
        assert (budget["budget_allocated"], budget["budget_remaining"]) == (Decimal("1080000.00"),
                                                                            Decimal("1077000.00"))
        assert (budget["level"], budget["area_name_th"], budget["district_code"]) == ("province", "ขอนแก่น", None)
        helped = await connection.fetchrow("SELECT * FROM report_help_by_area")
        assert (helped["area_code"],
                helped["households_helped"], helped["help_value"]) == (A, 1, Decimal("1500.00"))
        places = {r["area_code"]: r for r in await connection.fetch(
            "SELECT * FROM report_areas WHERE area_code IN ('40', '4001', '400101', $1)", A)}
        assert (places["4001"]["area_name_en"], places["4001"]["parent_code"], places["400101"]["level"]) == (
            "Mueang Khon Kaen", "40", "subdistrict")
        assert (places[A]["area_name_th"], places[A]["parent_code"]) == ("ในเมือง หมู่ที่ 3", "400101")
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
        rows = (await conn.execute(text("SELECT village_code, households, target_poor_persons, area_name_th, "
                                        "subdistrict_name_en FROM report_poverty_by_area ORDER BY village_code"))).all()
    assert [tuple(r) for r in rows] == [(A, 2, 5, "ในเมือง หมู่ที่ 3", "Nai Mueang"),
                                        ("40010201", 1, 0, "สำราญ หมู่ที่ 1", "Samran"),
                                        (C, 1, 5, "หนองบัว หมู่ที่ 1", "Nong Bua")]


@pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)
async def test_every_view_has_the_documented_columns_and_a_comment_on_each(reporting: Reporting) -> None:
    """The migration's views have exactly the columns `views.VIEWS` documents, each one documented in
    `views.COLUMNS`; on PostgreSQL every view and every column carries its comment; and `rpt_area` holds every
    province, district and sub-district."""
    engine = reporting.app.state.engine
    async with engine.connect() as conn:
        for view in views.VIEWS:
            found = tuple((await conn.execute(text(f"SELECT * FROM {view.name} WHERE 1 = 0"))).keys())
            assert found == view.columns, view.name
            assert set(found) <= set(views.COLUMNS), view.name
        areas = (await conn.execute(text("SELECT count(*) FROM rpt_area"))).scalar_one()
        assert areas == len(views.area_rows()) > 8000  # 77 provinces, ~930 districts, ~7,400 sub-districts
        if engine.dialect.name != "postgresql":
            return
        for view in views.VIEWS:
            comment = (await conn.execute(text("SELECT obj_description(CAST(:v AS regclass), 'pg_class')"),
                                          {"v": view.name})).scalar_one()
            assert comment == view.description
            for position, column in enumerate(view.columns, start=1):
                said = (await conn.execute(text("SELECT col_description(CAST(:v AS regclass), :n)"),
                                           {"v": view.name, "n": position})).scalar_one()
                assert said == views.comment_text(views.COLUMNS[column]), (view.name, column)
        missing = (await conn.execute(text(
            "SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relkind = 'v' AND c.relname LIKE 'report\\_%' AND a.attnum > 0 "
            "AND col_description(c.oid, a.attnum) IS NULL"))).all()
        assert missing == []


def test_the_data_dictionary_is_the_one_the_views_module_makes() -> None:
    """docs/data-dictionary.md is generated (`python -m services.reporting.dictionary`): it cannot drift."""
    written = (REPO_ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert written == dictionary.markdown(), "run: python -m services.reporting.dictionary"
    for view in views.VIEWS:
        assert f"## `{view.name}`" in written


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_public_reads_suppressed_reports_of_its_areas(reporting: Reporting) -> None:
    await four_households(reporting)
    params = {"area": "40", "level": "district", "survey_year": 2565}
    public = await reporting.client.get("/v1/reports/poverty", params=params)
    assert public.status_code == 200, public.text
    rows = {r["area_code"]: r for r in public.json()["rows"]}
    assert rows["4001"]["households"] is None and public.json()["suppressed_cells"] > 0  # 3: too few to show

    reporting.settings.public_areas = ["4002"]
    narrowed = await reporting.client.get("/v1/reports/poverty", params=params)
    assert [r["area_code"] for r in narrowed.json()["rows"]] == ["4002"]
    reporting.settings.public_areas = []
    problem(await reporting.client.get("/v1/reports/poverty", params=params), 401)
    problem(await reporting.client.get("/v1/reports/poverty", params=params,
                                       headers={"Authorization": "Bearer not-a-token"}), 401)
