"""GET /v1/mpi: the Alkire–Foster figures of an area by sub-area, over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from services.assessment import aggregates, models
from services.assessment.figures import LEVELS, MpiReport, mpi_row
from services.assessment.imports import FIXED_COLUMNS
from services.assessment.mpi import Summary, Unit
from services.assessment.scoring import Person, applies
from shared import migrations
from shared.auth import Principal
from shared.ids import new_id
from shared.indicators import SETS_DIR
from tests.assessment.support import ON, TPMAP, born
from tests.kit import apps
from tests.kit.assessment import ADULT, Assessment, all_meet, facts, member

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


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


# -- the report from the village sums against the old algorithm (every current assessment added one by one) --

VILLAGES = ("40010101", "40010102", "40010201", "40020101", "40020102", "41010101")
CODES = tuple(i.code for i in TPMAP.indicators)


def _variant(text: str, *, set_id: str, version: int, cutoff: str = "1/3", welfare_card: bool = True,
             merge_access: bool = False) -> str:
    """tpmap-2560 as another set or version: another id, cutoff and welfare-card rule; with `merge_access`, four
    dimensions (access's indicators counted under income), so the weights need another denominator."""
    text = (text.replace('id = "tpmap-2560"', f'id = "{set_id}"').replace("version = 1", f"version = {version}")
            .replace('poverty_cutoff = "1/3"', f'poverty_cutoff = "{cutoff}"')
            .replace("target_poor_requires_welfare_card = true",
                     f"target_poor_requires_welfare_card = {str(welfare_card).lower()}"))
    if merge_access:
        block = '[[dimensions]]\ncode = "access"\nname_th = "การเข้าถึงบริการรัฐ"\nname_en = "Access to public services"\n'
        assert block in text
        text = text.replace(block, "").replace('dimension = "access"', 'dimension = "income"')
    return text


def _oracle(rows: list[Any], *, principal: Principal, area: str, depth: int, survey_year: int, indicator_set: str,
            cutoff: str) -> MpiReport:
    """GET /v1/mpi as it was computed before the village sums: every current assessment's Fractions added."""
    parts: dict[str, Summary] = {}
    targets: dict[str, tuple[int, int]] = {}
    for a in rows:
        if not (a.survey_year == survey_year and a.indicator_set_id == indicator_set
                and a.village_code.startswith(area) and principal.can_see(a.village_code)):
            continue
        key = a.village_code[:depth]
        deprivations = {i["code"]: Fraction(i["weight"]) for i in a.indicators if i["status"] == "fail"}
        parts.setdefault(key, Summary()).add(Unit(a.member_count, Fraction(a.score_num, a.score_den), a.poor,
                                                  deprivations))
        households, persons = targets.get(key, (0, 0))
        targets[key] = (households + a.target_poor, persons + a.member_count * a.target_poor)
    total = Summary()
    for part in parts.values():
        total.merge(part)
    total_target = (sum(t[0] for t in targets.values()), sum(t[1] for t in targets.values()))
    return MpiReport(survey_year=survey_year, indicator_set=indicator_set, poverty_cutoff=cutoff, area=area,
                     level=next(name for name, n in LEVELS.items() if n == depth),
                     rows=[mpi_row(code, parts[code], targets[code]) for code in sorted(parts)],
                     total=mpi_row(area, total, total_target))


async def _populate(assessment: Assessment, rng: random.Random, folder: Path) -> None:
    """Households in six villages of two provinces, assessed on three sets (one with two versions of different
    denominators) over two years, by the API, by revisions and by a bulk import that revises within itself."""
    text = (SETS_DIR / "tpmap-2560.toml").read_text(encoding="utf-8")
    (folder / "tpmap-2560.toml").write_text(text, encoding="utf-8")
    (folder / "tpmap-2560-v2.toml").write_text(_variant(text, set_id="tpmap-2560", version=2, merge_access=True),
                                               encoding="utf-8")
    (folder / "loose.toml").write_text(_variant(text, set_id="loose-2566", version=1, cutoff="1/4",
                                                welfare_card=False), encoding="utf-8")
    await assessment.app.state.sets.sync(assessment.app.state.sessionmaker, folder)
    choices = [("tpmap-2560", 1), ("tpmap-2560", 2), ("loose-2566", 1)]
    households: list[tuple[str, list[Person]]] = []
    for n in range(40):
        ages = [] if n == 0 else [rng.randint(0, 90) for _ in range(rng.randint(1, 5))]  # one with no members
        members = [member(born(age, 3).isoformat(), disability=rng.random() < 0.2) for age in ages]
        household_id = new_id()
        await assessment.announce(facts(household_id, *members, village=rng.choice(VILLAGES),
                                        welfare_card=rng.random() < 0.7))
        households.append((household_id, [Person(born(age, 3), bool(m["disability"]))
                                          for age, m in zip(ages, members, strict=True)]))

    def answers(people: list[Person], on: date) -> dict[str, bool]:
        return {i.code: rng.random() < 0.55 for i in TPMAP.indicators if applies(i, people, on)}

    def body(people: list[Person], year: int) -> dict[str, Any]:
        set_id, version = rng.choice(choices)
        return {"indicator_set": set_id, "indicator_set_version": version, "survey_year": year,
                "surveyed_on": f"{year - 543}-01-15", "answers": answers(people, ON.replace(year=year - 543)),
                "measurements": {}}

    for household_id, people in households:
        for year in rng.sample([2565, 2566], rng.randint(1, 2)):
            for _ in range(rng.randint(1, 3)):  # revisions, some moving the household to another set
                response = await assessment.client.post(f"/v1/households/{household_id}/assessments",
                                                        json=body(people, year), headers=assessment.admin)
                assert response.status_code in (200, 201), response.text
    rows = []
    for household_id, people in rng.sample(households, 25) + rng.sample(households, 5):  # some twice in the file
        b = body(people, rng.choice([2565, 2566]))
        rows.append({"household_id": household_id, "indicator_set": b["indicator_set"],
                     "indicator_set_version": b["indicator_set_version"], "survey_year": b["survey_year"],
                     "surveyed_on": b["surveyed_on"]} | {c: str(v).lower() for c, v in b["answers"].items()})
    job = await apps.run_import(assessment.app, assessment.client, "/v1/assessment-imports",
                                apps.csv_bytes(rows, (*FIXED_COLUMNS, *CODES)), assessment.admin)
    assert (job["status"], job["rows_rejected"]) == ("done", 0), job


async def test_mpi_from_the_village_sums_is_the_report_of_every_assessment(assessment: Assessment,
                                                                          tmp_path: Path) -> None:
    await _populate(assessment, random.Random(2566), tmp_path)
    async with assessment.app.state.sessionmaker() as session:
        stored = (await session.execute(select(models.Assessment).where(
            col(models.Assessment.current).is_(True)))).scalars().all()
    assert {(a.indicator_set_id, a.indicator_set_version) for a in stored} == {
        ("tpmap-2560", 1), ("tpmap-2560", 2), ("loose-2566", 1)}
    callers = [("*",), ("40",), ("4001",), ("400101",), ("40010102",), ("400102", "4002"), ("41",), ("4003",)]
    queries = [("40", None), ("40", "subdistrict"), ("40", "village"), ("4001", None), ("400101", None),
               ("40010101", None), ("41", "district"), ("4002", "district")]
    compared = 0
    for areas in callers:
        principal = Principal("oracle", areas=frozenset(areas))
        headers = assessment.as_("assessment:read", areas=areas)
        for set_id, cutoff in (("tpmap-2560", "1/3"), ("loose-2566", "1/4")):
            for year in (2565, 2566):
                for area, level in queries:
                    query = f"/v1/mpi?area={area}&survey_year={year}&indicator_set={set_id}" + (
                        f"&level={level}" if level else "")
                    response = await assessment.client.get(query, headers=headers)
                    assert response.status_code == 200, response.text
                    depth = LEVELS[level] if level else min(len(area) + 2, 8)
                    expected = _oracle(stored, principal=principal, area=area, depth=depth, survey_year=year,
                                       indicator_set=set_id, cutoff=cutoff)
                    assert response.content == JSONResponse(expected.model_dump(mode="json")).body, query
                    compared += bool(expected.rows)
    assert compared > 100  # most of the comparisons have figures in them
    # Migrations assessment_0009 and _0011 fill the same sums from the current assessments as were kept along the
    # way.
    kept = await _sums(assessment.app.state.engine)
    await _downgrade(assessment.app.state.engine, assessment.app.state.spec.migrations_dir, "assessment_0008")
    await migrations.upgrade(assessment.app.state.engine, assessment.app.state.spec.migrations_dir)
    assert await _sums(assessment.app.state.engine) == kept


async def _sums(engine: AsyncEngine) -> dict[str, set[tuple[Any, ...]]]:
    """The rows of the village and sub-district sums that count anything."""
    async with engine.connect() as conn:
        return {table.name: {tuple(r) for r in (await conn.execute(select(table))).all() if any(r[len(key):])}
                for level in aggregates.LEVELS
                for table, key in ((level.sums, level.key), (level.indicators, (*level.key, "indicator")))}


async def _downgrade(engine: AsyncEngine, migrations_dir: Path, revision: str) -> None:
    config = migrations.alembic_config(migrations_dir, str(engine.url))

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
