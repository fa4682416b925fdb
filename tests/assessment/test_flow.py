"""Registry → Kafka → assessment, for real: the registry publishes, the assessment service projects and scores."""

from __future__ import annotations

import asyncio
import random

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.kit.apps import bearer, make_settings, running, wait_ready
from tests.kit.assessment import MEASURED_OK, all_meet
from tests.kit.registry import citizen_id, household, person

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


async def test_a_registered_household_can_be_assessed_once_the_event_arrives(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    registry_settings = make_settings("registry", await databases.new("registry"), broker.bootstrap_servers)
    assessment_settings = make_settings("assessment", await databases.new("assessment"), broker.bootstrap_servers)
    registry_app = load("registry").create_app(registry_settings)
    assessment_app = load("assessment").create_app(assessment_settings)
    async with running(registry_app) as registry, running(assessment_app) as assessment:
        await migrations.upgrade(registry_app.state.engine, registry_app.state.spec.migrations_dir)
        await migrations.upgrade(assessment_app.state.engine, assessment_app.state.spec.migrations_dir)
        assert (await wait_ready(registry)).status_code == 200
        assert (await wait_ready(assessment)).status_code == 200
        write = bearer(registry_settings.auth, "registry:write", "registry:lookup")
        adult = person(citizen_id(random.Random(9)), birth_date="1980-03-01")
        created = await registry.post("/v1/households", json=household(adult), headers=write)
        assert created.status_code == 201, created.text
        household_id = created.json()["id"]

        headers = bearer(assessment_settings.auth, "assessment:write", "assessment:read")
        body = {"indicator_set": "tpmap-2560", "survey_year": 2565, "surveyed_on": "2022-01-15",
                "answers": all_meet(housing=False), "measurements": MEASURED_OK}
        statuses = []
        for _ in range(300):
            response = await assessment.post(f"/v1/households/{household_id}/assessments", json=body,
                                             headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 409:
                break
            assert int(response.headers["retry-after"]) >= 1
            await asyncio.sleep(0.1)
        assert response.status_code == 201, (statuses, response.text)
        result = response.json()
        assert (result["member_count"], result["welfare_card"], result["score"]) == (1, True, "1/16")
        assert result["area"]["village_code"] == "40010103"
