"""Registry → Kafka → assessment, for real: the registry publishes, the assessment service projects and scores."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from services.registry.imports.schemas import COLUMNS as REGISTRY_COLUMNS
from shared import migrations
from tests.kit.apps import bearer, csv_bytes, make_settings, run_import, running, wait_ready
from tests.kit.assessment import MEASURED_OK, all_meet
from tests.kit.registry import citizen_id, household, person

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


@contextlib.asynccontextmanager
async def both_running(databases: ScratchDatabases, broker: LocalBroker,
                       ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, FastAPI, httpx.AsyncClient]]:
    """The registry and the assessment service on one broker, migrated and ready: (app, client) of each."""
    registry_settings = make_settings("registry", await databases.new("registry"), broker.bootstrap_servers)
    assessment_settings = make_settings("assessment", await databases.new("assessment"), broker.bootstrap_servers)
    registry_app = load("registry").create_app(registry_settings)
    assessment_app = load("assessment").create_app(assessment_settings)
    async with running(registry_app) as registry, running(assessment_app) as assessment:
        await migrations.upgrade(registry_app.state.engine, registry_app.state.spec.migrations_dir)
        await migrations.upgrade(assessment_app.state.engine, assessment_app.state.spec.migrations_dir)
        assert (await wait_ready(registry)).status_code == 200
        assert (await wait_ready(assessment)).status_code == 200
        yield registry_app, registry, assessment_app, assessment


async def test_a_registered_household_can_be_assessed_once_the_event_arrives(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    async with both_running(databases, broker) as (registry_app, registry, assessment_app, assessment):
        registry_settings, assessment_settings = registry_app.state.settings, assessment_app.state.settings
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


async def test_an_assessment_file_names_households_by_the_registry_imports_key(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    """Province scale: the registry's import file's `household_key` reaches the assessment service with the
    household, and the assessment import takes it in place of the id."""
    async with both_running(databases, broker) as (registry_app, registry, assessment_app, assessment):
        registry_settings, assessment_settings = registry_app.state.settings, assessment_app.state.settings
        rng = random.Random(11)
        people = [{"household_key": key, "subdistrict_code": "400101", "village_no": "3", "house_no": key,
                   "sources": "tpmap", "welfare_card": "true", "citizen_id": citizen_id(rng), "title": "นาย",
                   "first_name": "สมชาย", "last_name": "ใจดี", "sex": "male", "birth_date": "1980-03-01",
                   "relation": "head", "disability": "false"} for key in ("KK-1", "KK-2")]
        write = bearer(registry_settings.auth, "registry:write", "registry:read", "registry:lookup")
        job = await run_import(registry_app, registry, "/v1/imports", csv_bytes(people, REGISTRY_COLUMNS), write)
        assert (job["households_created"], job["errors"]) == (2, []), job
        listed = (await registry.get("/v1/households", headers=write)).json()["items"]
        ids = {h["household_key"]: h["id"] for h in listed}

        headers = bearer(assessment_settings.auth, "assessment:write", "assessment:read")
        answers = {code: "true" if met else "false" for code, met in all_meet(housing=False).items()}
        rows = [{"household_key": key, "indicator_set": "tpmap-2560", "survey_year": "2565",
                 "surveyed_on": "2022-01-15"} | answers | MEASURED_OK for key in ("KK-1", "KK-2", "KK-404")]
        columns = tuple(rows[0])
        for _ in range(300):  # until both households' events have arrived
            job = await run_import(assessment_app, assessment, "/v1/assessment-imports", csv_bytes(rows, columns),
                                   headers)
            if job["assessments_created"] + job["assessments_unchanged"] == 2:
                break
            await asyncio.sleep(0.1)
        assert [(e["row"], e["column"]) for e in job["errors"]] == [(4, "household_key")], job
        assert "no household with this key has reached the assessment service" in job["errors"][0]["message"]
        for key in ("KK-1", "KK-2"):
            [recorded] = (await assessment.get(f"/v1/households/{ids[key]}/assessments",
                                               headers=headers)).json()["items"]
            assert (recorded["household_id"], recorded["score"]) == (ids[key], "1/16")
