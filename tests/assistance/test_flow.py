"""Registry → Kafka → assessment → Kafka → assistance, for real: a household registered and assessed as target
poor is paid by citizen ID once both services' events have arrived, and the payment is published."""

from __future__ import annotations

import asyncio
import random

import pytest

from services import load
from services.assistance.models import outbox
from shared import migrations
from shared.broker import LocalBroker
from shared.scratchdb import ScratchDatabases
from tests.apps import bearer, make_settings, outbox_events, running, wait_ready
from tests.assessment.support import MEASURED_OK, all_meet
from tests.assistance.support import Assistance, item
from tests.registry.support import citizen_id, household, person

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)


async def test_a_family_registered_and_assessed_is_paid_by_citizen_id(
    databases: ScratchDatabases, broker: LocalBroker,
) -> None:
    names = ("registry", "assessment", "assistance")
    settings = {n: make_settings(n, await databases.new(n), broker.bootstrap_servers) for n in names}
    apps = {n: load(n).create_app(settings[n]) for n in names}
    async with running(apps["registry"]) as registry, running(apps["assessment"]) as assessment, \
            running(apps["assistance"]) as assistance_client:
        for n in names:
            await migrations.upgrade(apps[n].state.engine, apps[n].state.spec.migrations_dir)
        for client in (registry, assessment, assistance_client):
            assert (await wait_ready(client)).status_code == 200
        cid = citizen_id(random.Random(11))
        created = await registry.post("/v1/households", json=household(person(cid, birth_date="1980-03-01")),
                                      headers=bearer(settings["registry"].auth, "registry:write"))
        assert created.status_code == 201, created.text
        household_id = created.json()["id"]

        body = {"indicator_set": "tpmap-2560", "survey_year": 2565, "surveyed_on": "2022-01-15",
                "answers": all_meet(housing=False), "measurements": MEASURED_OK}
        for _ in range(300):  # 409 until the registry's event reaches the assessment service
            scored = await assessment.post(f"/v1/households/{household_id}/assessments", json=body,
                                           headers=bearer(settings["assessment"].auth, "assessment:write"))
            if scored.status_code != 409:
                break
            await asyncio.sleep(0.1)
        assert scored.status_code == 201 and scored.json()["target_poor"] is True, scored.text

        assistance = Assistance(assistance_client, settings["assistance"], apps["assistance"], random.Random(1))
        assert (await assistance.budget("3000.00")).status_code == 200
        outcome: dict[str, object] = {}
        for attempt in range(300):  # each try is a new batch: until both events have arrived
            pushed = await assistance.push(assistance.batch([item("1", cid=cid)]), key=f"flow-{attempt}")
            assert pushed.status_code == 201, pushed.text
            outcome = pushed.json()["items"][0]
            if outcome["status"] == "accepted":
                break
            assert outcome["reason"] in ("unknown_household", "not_eligible"), outcome
            await asyncio.sleep(0.1)
        assert outcome["status"] == "accepted" and outcome["household_id"] == household_id
        published = [(t, k) for t, k, _ in await outbox_events(apps["assistance"], outbox)
                     if t == "disbursement.recorded"]
        assert published == [("disbursement.recorded", household_id)]
