"""One whole run of the demo: the steps in order, then the reports to look at."""

from __future__ import annotations

import time
from typing import Any

from ops.demo.loader import Loader
from ops.demo.population import (
    FAMILY_DEVELOPMENT_CENTRES,
    FISCAL_YEAR,
    GRANT,
    GRANT_FAMILIES,
    NEXT_SURVEY_YEAR,
    PROVINCE,
    SUBSIDY,
    SURVEY_YEAR,
    Home,
    expected,
    field_homes,
    grant_families,
    next_year_fails,
    population,
)
from shared import clock
from shared.money import fiscal_year


async def run(loader: Loader) -> tuple[list[Home], dict[str, Any], float]:
    """Load everything, wait until reporting shows it; (households, figures, seconds)."""
    started = time.monotonic()
    say, scenario = loader.say, loader.scenario
    await loader.sign_in()
    geography = await loader.geography()
    indicator_set = await loader.indicator_set()
    say(f"Khon Kaen   {len(geography.districts)} districts, {len(geography.all_subdistricts())} sub-districts; "
        f"seed {scenario.seed}, scale {scenario.scale}: {scenario.households:,} households")
    homes = population(scenario, geography, indicator_set)
    await loader.teams(geography)
    centre_ids = await loader.centres(geography)
    await loader.budgets(grants=GRANT * GRANT_FAMILIES, subsidies=SUBSIDY * FAMILY_DEVELOPMENT_CENTRES)
    await loader.households(homes)
    await loader.assessments(homes, indicator_set)
    await loader.grants(grant_families(homes, 1), 1)
    await loader.subsidies(centre_ids)
    await loader.assessments(homes, indicator_set, survey_year=NEXT_SURVEY_YEAR,
                             fails=next_year_fails(scenario, homes, indicator_set))
    field = await loader.field_visits(field_homes(homes), indicator_set)
    figures = await loader.wait_for(expected(scenario))
    figures |= await (loader.wait_for(field, loader.field_work_figures) if field else loader.field_work_figures())
    return homes, figures, time.monotonic() - started


def report_urls(reporting: str) -> list[str]:
    return [f"{reporting}/dashboard",
            f"{reporting}/v1/reports/poverty?area={PROVINCE}&survey_year={SURVEY_YEAR}&level=district",
            f"{reporting}/v1/reports/assistance?area={PROVINCE}&fiscal_year={FISCAL_YEAR}",
            f"{reporting}/v1/reports/poverty?area={PROVINCE}&survey_year={NEXT_SURVEY_YEAR}&level=district",
            f"{reporting}/v1/reports/field-network?area={PROVINCE}",
            f"{reporting}/v1/reports/field-work?area={PROVINCE}&fiscal_year={fiscal_year(clock.today())}",
            f"{reporting}/v1/reports/field-work/sectors?area={PROVINCE}&fiscal_year={fiscal_year(clock.today())}",
            f"{reporting}/v1/reports/poverty?area={PROVINCE}&survey_year={SURVEY_YEAR}&format=csv"]
