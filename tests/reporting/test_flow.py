"""All four services over a real broker: reporting's figures agree with the sources (the assessment service's
own MPI, the assistance service's payments), and a rebuild — read models emptied, the events read again from the
broker, or from every producer's outbox when the broker lost some — gives the same figures; freshness is caught up
only once what waits in the producers' outboxes is published and applied."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from services.reporting import admin
from services.reporting.models import inbox
from shared import migrations
from shared.bus.models import SHARDS
from shared.clock import utcnow
from shared.db import read_only
from shared.events.registry import TOPIC as HOUSEHOLD_TOPIC
from shared.ids import new_id
from tests.kit.apps import bearer, make_settings, running, wait_ready
from tests.kit.assessment import MEASURED_OK, all_meet
from tests.kit.assistance import Assistance, item
from tests.kit.bus import hung_replica_holds, hung_replica_lets_go, wait_for
from tests.kit.env import kafka_settings
from tests.kit.registry import citizen_id, household, person

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
NAMES = ("registry", "assessment", "assistance", "reporting")


@asynccontextmanager
async def _all_four(databases: ScratchDatabases, broker: LocalBroker, **overrides: object,
                    ) -> AsyncIterator[tuple[dict[str, Any], dict[str, FastAPI], dict[str, httpx.AsyncClient]]]:
    """The four services on new databases and `broker`, migrated and ready: (settings, apps, clients) by name."""
    settings = {n: make_settings(n, await databases.new(n), broker.bootstrap_servers, **overrides) for n in NAMES}
    apps = {n: load(n).create_app(settings[n]) for n in NAMES}
    async with AsyncExitStack() as stack:
        clients = {n: await stack.enter_async_context(running(apps[n])) for n in NAMES}
        for n in NAMES:
            await migrations.upgrade(apps[n].state.engine, apps[n].state.spec.migrations_dir)
        for client in clients.values():
            assert (await wait_ready(client)).status_code == 200
        yield settings, apps, clients


async def test_reports_agree_with_the_sources_and_survive_a_rebuild(
    databases: ScratchDatabases, own_broker: LocalBroker,
) -> None:
    # A broker of its own: the session's broker holds other tests' households, which reporting would count.
    async with _all_four(databases, own_broker) as (settings, apps, clients):
        registry, assessment, assistance_client, reporting = (clients[n] for n in NAMES)
        rng = random.Random(40)
        cids, ids = [], []
        for i in range(6):
            cid = citizen_id(rng)
            members = [person(cid, birth_date="1980-03-01")] + [
                person(citizen_id(rng), relation="child", birth_date="1995-05-05") for _ in range(i % 3)]
            writer = bearer(settings["registry"].auth, "registry:write", "registry:lookup")
            created = await registry.post("/v1/households", json=household(*members), headers=writer)
            assert created.status_code == 201, created.text
            cids.append(cid)
            ids.append(created.json()["id"])
        for n, household_id in enumerate(ids):
            body = {"indicator_set": "tpmap-2560", "survey_year": 2565, "surveyed_on": "2022-01-15",
                    "answers": all_meet(housing=n % 2 == 1, working_age_income=n != 4),
                    "measurements": MEASURED_OK}
            for _ in range(300):
                scored = await assessment.post(f"/v1/households/{household_id}/assessments", json=body,
                                               headers=bearer(settings["assessment"].auth, "assessment:write"))
                if scored.status_code != 409:
                    break
                await asyncio.sleep(0.1)
            assert scored.status_code == 201, scored.text
        source_mpi = (await assessment.get("/v1/mpi", params={"area": "40", "survey_year": 2565},
                                           headers=bearer(settings["assessment"].auth, "assessment:read"))).json()

        paid = Assistance(assistance_client, settings["assistance"], apps["assistance"], rng)
        assert (await paid.budget("1080000.00")).status_code == 200
        accepted: set[str] = set()
        for attempt in range(300):  # until the assistance service has every household and assessment
            pushed = await paid.push(paid.batch([item(str(i), cid=c) for i, c in enumerate(cids)]),
                                     key=f"all-{attempt}")
            accepted |= {i["household_id"] for i in pushed.json()["items"] if i["status"] == "accepted"}
            if len(accepted) == len(ids):  # all registered as exclusion errors: all eligible, each paid once
                break
            await asyncio.sleep(0.1)
        staff = bearer(settings["reporting"].auth, "reporting:read", "reporting:detail")

        async def figures() -> tuple[Any, Any]:
            poverty = (await reporting.get("/v1/reports/poverty", params={"area": "40", "survey_year": 2565},
                                           headers=staff)).json()["total"]
            money = (await reporting.get("/v1/reports/assistance", params={"area": "40", "fiscal_year": 2565},
                                         headers=staff)).json()["total"]
            return poverty, money

        async def settled(expect: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
            for _ in range(300):
                poverty, money = await figures()
                done = (poverty["assessed_households"] == 6 and money["families_granted"] == len(accepted)
                        and poverty["households"] == 6)
                if done and (expect is None or (poverty, money) == expect):
                    return poverty, money
                await asyncio.sleep(0.1)
            raise AssertionError(f"reporting did not settle: {await figures()}")

        poverty, money = await settled()
        source = source_mpi["total"]
        assert (poverty["assessed_persons"], poverty["target_poor_households"], poverty["target_poor_persons"],
                poverty["poor_persons"], poverty["MPI"]) == (source["persons"], source["target_poor_households"],
                                                             source["target_poor_persons"], source["poor_persons"],
                                                             source["mpi"])
        assert money["grant_amount"] == "18000.00" and money["coverage"] == 1.0
        assert (money["budget_allocated"], money["budget_used"]) == ("1080000.00", "18000.00")

        # A rebuild, with the reporting consumer stopped: the broker holds every record, so the consumer reads
        # them again from offset 0 and nothing is written to the producers' outboxes.
        consumer, engine = apps["reporting"].state.consumer, apps["reporting"].state.engine
        kafka = settings["reporting"].kafka
        await consumer.stop()
        source = await admin.rebuild(engine, kafka)
        assert source.broker, source.reason
        emptied = (await reporting.get("/v1/reports/poverty", params={"area": "40", "survey_year": 2565},
                                       headers=staff | {"Cache-Control": "no-cache"})).json()["total"]
        assert emptied["assessed_households"] == 0
        for producer in ("registry", "assessment", "assistance"):
            async with apps[producer].state.engine.connect() as conn:
                assert (await load(producer).spec.outbox.pending_stats(conn))[0] == 0
        consumer.start()
        assert await settled((poverty, money)) == (poverty, money)

        # The inbox took an offset the broker does not have (it lost its log): a rebuild replays the outboxes.
        await consumer.stop()
        async with engine.begin() as conn:
            await conn.execute(insert(inbox), [{"consumer": "reporting", "event_id": new_id(),
                                                "event_type": "x", "topic": "registry.household", "partition": 0,
                                                "offset": 10**9, "outcome": "processed", "processed_at": utcnow()}])
        source = await admin.rebuild(engine, kafka)
        assert not source.broker and "lost" in source.reason
        for producer in ("registry", "assessment", "assistance"):
            assert await admin.replay_everything(apps[producer].state.engine, load(producer).spec.outbox) > 0
        consumer.start()
        assert await settled((poverty, money)) == (poverty, money)


async def test_caught_up_means_published_and_applied(databases: ScratchDatabases, own_broker: LocalBroker) -> None:
    """Lag 0 is not done while events wait in a producer's outbox: a hung registry replica holds every outbox
    shard but 0, so most households' events are not published. Reporting's freshness, and the `/v1/bus` of the
    services consuming the registry's topic, count them from the registry's status on the bus (no service reads
    another's database); once the shards are given back and everything is published and applied: 0, caught up."""
    kafka = kafka_settings(own_broker.bootstrap_servers, outbox_status_interval_s=0.5, relay_lease_s=1.5,
                           relay_heartbeat_s=0.5)
    async with _all_four(databases, own_broker, kafka=kafka) as (settings, apps, clients):
        registry, assessment, reporting = clients["registry"], clients["assessment"], clients["reporting"]
        state = apps["registry"].state
        await hung_replica_holds(state.sessionmaker, state.spec.outbox, range(1, SHARDS))
        await wait_for(lambda: _true(state.relay.leases.owned == [0]))
        writer = bearer(settings["registry"].auth, "registry:write", "registry:lookup")
        rng = random.Random(23)
        for _ in range(8):
            created = await registry.post("/v1/households", json=household(person(citizen_id(rng))), headers=writer)
            assert created.status_code == 201, created.text
        outbox = state.spec.outbox.table
        async with read_only(state.engine) as conn:  # the test's own look at the producer: what must wait
            waiting = (await conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.topic == HOUSEHOLD_TOPIC, outbox.c.shard != 0))).scalar_one()
        assert waiting > 0
        staff = bearer(settings["reporting"].auth, "reporting:read")

        async def freshness() -> dict[str, Any]:
            response = await reporting.get("/v1/reports/freshness", headers=staff)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        async def upstream(client: httpx.AsyncClient, service: str) -> dict[str, int | None]:
            bus = await client.get("/v1/bus", headers=bearer(settings[service].auth, f"{service}:admin"))
            assert bus.status_code == 200, bus.text
            pending: dict[str, int | None] = bus.json()["upstream_pending"]
            return pending

        async def registry_says(count: int) -> bool:
            """Reporting's freshness and the `/v1/bus` of both consumers of the registry's households count them."""
            fresh = await freshness()
            topics = {t["topic"]: t for t in fresh["topics"]}
            return (topics[HOUSEHOLD_TOPIC]["outbox_pending"] == count and fresh["caught_up"] is (count == 0)
                    and (await upstream(reporting, "reporting"))[HOUSEHOLD_TOPIC] == count
                    and (await upstream(assessment, "assessment"))[HOUSEHOLD_TOPIC] == count)

        await wait_for(lambda: registry_says(waiting))
        assert not (await freshness())["caught_up"]
        producer_side = await registry.get("/v1/bus", headers=bearer(settings["registry"].auth, "registry:admin"))
        assert producer_side.json()["outbox_pending"] == waiting and producer_side.json()["sends_outbox_status"]

        await hung_replica_lets_go(state.sessionmaker, state.spec.outbox)

        said: list[dict[str, Any]] = []

        async def caught_up() -> bool:
            said.append(await freshness())
            return bool(said[-1]["caught_up"])

        await wait_for(caught_up)
        fresh = said[-1]  # caught up: every topic's lag and outbox_pending known and 0, every household applied
        assert fresh["topics"] and all(t["lag"] == 0 and t["outbox_pending"] == 0 for t in fresh["topics"]), fresh
        assert {t["topic"]: t["events_applied"] for t in fresh["topics"]}[HOUSEHOLD_TOPIC] == 8
        await wait_for(lambda: registry_says(0))


async def _true(value: bool) -> bool:
    return value
