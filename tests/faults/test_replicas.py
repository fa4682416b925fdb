"""Two replicas of every service on one PostgreSQL cluster and one broker, each service behind a load balancer
(`ops.balancer`, which sends new connections only to replicas whose /readyz answers 200), while writes keep
coming as in the fault test:

- every replica is ready, not only one per service (readiness is database + broker, not relay leadership);
- a registry replica SIGKILLed: its twin stays ready and takes the traffic; restarted, it is ready again;
- an assessment replica frozen (SIGSTOP) for three leases: assessments written through its twin are all
  published within about a lease (the twin takes the frozen one's outbox shards); thawed, it publishes nothing
  stale and the replicas share the shards again;
- a registry import sent to one replica, which is SIGKILLed mid-file: the other finishes the job (after its
  lease) with exact counts;
- a reporting replica SIGKILLed and restarted; a frozen assistance replica while the ministry pushes;

then the system settles and the history checker finds nothing, and both reporting replicas answer the same
freshness figures, equal to the events the sources published.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops import demo
from ops.demo.population import csv_file, household_rows
from ops.launcher import System, ready
from services import SERVICES
from shared.settings import DEV_CLIENT_SECRET
from tests.kit.faults import Load, PrivatePostgres, quiet_and_consistent

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.timeout(1500)]

LEASE_S = 4  # the outbox shards' and import jobs' leases in this test (short, so the test is too)
ENV = {"KAENKHUN_KAFKA_RELAY_LEASE_S": str(LEASE_S), "KAENKHUN_KAFKA_RELAY_HEARTBEAT_S": "1",
       "KAENKHUN_REGISTRY_IMPORT_LEASE_S": str(LEASE_S), "KAENKHUN_REGISTRY_IMPORT_HEARTBEAT_S": "1",
       "KAENKHUN_REGISTRY_IMPORT_POLL_S": "1", "KAENKHUN_LIMITS_RATE_PER_S": "0"}
IMPORT_HOUSEHOLDS = 12_000


def import_file(rng: random.Random) -> tuple[bytes, int, int]:
    """A registry import CSV of IMPORT_HOUSEHOLDS new households: its bytes, households and persons."""
    people = demo.People(rng)
    homes = [demo.Home(f"R{n}", "400102", 1 + n % 9, f"R{n}", ["tpmap"], True,
                       people.household(rng.choice((1, 2, 3, 4))), set()) for n in range(IMPORT_HOUSEHOLDS)]
    rows = household_rows(homes)
    return csv_file(rows, list(rows[0])), len(homes), len(rows)


async def bus(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = await client.get(f"{url}/v1/bus", headers=headers, timeout=5)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def test_two_replicas_of_every_service_fail_over_in_seconds_and_stay_consistent(
        tmp_path: Path, postgres: PrivatePostgres) -> None:
    postgres.create_databases(*(f"replicas_{name}" for name in SERVICES))
    system = System(tmp_path, env={**os.environ, **ENV}, replicas=2,
                    database_urls={name: postgres.url(f"replicas_{name}") for name in SERVICES})
    system.start_all()
    seen: dict[str, Any] = {}
    try:
        assert all(ready(system.instance_url(i)) for i in system.instances()), "every replica is ready"

        async def scenario() -> Load:
            loader = system.loader(timeout_s=120)
            loader.http = httpx.AsyncClient(timeout=15)  # a request stuck on a frozen replica is retried
            await loader.sign_in()
            await loader.budgets(grants=demo.GRANT * 10_000, subsidies=demo.SUBSIDY)
            load = Load(loader)
            writing = asyncio.create_task(load.run(await loader.indicator_set()))
            client = httpx.AsyncClient()
            admin = await asyncio.to_thread(admin_headers, system)

            async def pause(seconds: float) -> None:
                await asyncio.sleep(seconds)
                if writing.done():
                    await writing  # the load failed: show why

            try:
                # 1. A registry replica dies; its twin stays ready and serves.
                await pause(3)
                system.kill("registry-1")
                assert await asyncio.to_thread(ready, system.instance_url("registry-2"))
                await pause(3)
                await asyncio.to_thread(system.start, "registry-1")

                # 2. An assessment replica hangs for three leases: its twin publishes everything meanwhile.
                await pause(2)
                system.freeze("assessment-1")
                frozen_at = time.monotonic()
                drained = None  # when the twin held every shard and nothing was left unpublished
                while time.monotonic() - frozen_at < LEASE_S * 4:
                    twin = await bus(client, system.instance_url("assessment-2"), admin)
                    if len(twin["outbox_shards"]) == twin["outbox_shards_total"] and twin["outbox_pending"] == 0:
                        drained = time.monotonic() - frozen_at
                        break
                    await asyncio.sleep(0.1)
                seen["assessment twin took over and drained after s"] = drained
                assert drained is not None, f"the twin did not publish the frozen replica's shards: {twin}"
                assert drained < LEASE_S * 2 + 2, "within about a lease (plus heartbeats, a poll, a busy machine)"
                await pause(max(LEASE_S * 3 - drained, 0))  # frozen three leases in all
                system.thaw("assessment-1")
                await pause(LEASE_S * 2)
                shares = [await bus(client, system.instance_url(i), admin)
                          for i in system.instances("assessment")]
                seen["assessment shards after thaw"] = [len(s["outbox_shards"]) for s in shares]
                assert all(s["outbox_shards"] for s in shares), "thawed, the replicas share the shards again"
                assert not set(shares[0]["outbox_shards"]) & set(shares[1]["outbox_shards"])

                # 3. An import on one registry replica, killed mid-file: the other finishes it, counts exact.
                content, households, persons = await asyncio.to_thread(import_file, random.Random(22))
                url = f"{system.instance_url('registry-1')}/v1/imports"
                job = await loader.call("POST", url, files={"file": ("replicas.csv", content, "text/csv")},
                                        expect=(202,))
                while True:
                    status = await loader.call("GET", f"{url}/{job['id']}")
                    if status["status"] == "running" and status["rows"] > 0 or status["status"] == "done":
                        break
                    await asyncio.sleep(0.1)
                assert status["status"] == "running", "the file was imported before the replica could be killed"
                system.kill("registry-1")
                killed_at_rows = status["rows"]
                while True:
                    status = await loader.call("GET", f"{system.url('registry')}/v1/imports/{job['id']}")
                    if status["status"] in ("done", "failed"):
                        break
                    await asyncio.sleep(0.5)
                seen["import"] = {k: v for k, v in status.items() if k != "errors"} | {"killed_at_rows": killed_at_rows}
                assert status["status"] == "done", status
                assert (status["rows"], status["rows_rejected"]) == (persons, 0)
                assert status["households_created"] == households
                assert status["resumed"] >= 1, "the other replica took the job over"
                await asyncio.to_thread(system.start, "registry-1")

                # 4. A reporting replica dies and comes back; an assistance replica hangs while pushes go on.
                system.kill("reporting-2")
                await pause(3)
                await asyncio.to_thread(system.start, "reporting-2")
                system.freeze("assistance-2")
                await pause(LEASE_S * 2)
                system.thaw("assistance-2")
                await pause(3)
            finally:
                load.stop = True
                await writing
                await loader.close()
                await client.aclose()
            return load

        load = asyncio.run(scenario())
        found = asyncio.run(quiet_and_consistent(system))
        admin = admin_headers(system)
        freshness = [httpx.get(f"{system.instance_url(i)}/v1/reports/freshness", timeout=10, headers=admin).json()
                     for i in system.instances("reporting")]
    finally:
        system.stop()
    print(f"load: {len(load.households)} households registered, {load.assessed} assessments, {load.batches} grant "
          f"batches, {load.helped} homes helped; seen: {seen}")
    assert len(load.households) >= 40 and load.batches >= 3, "the load kept writing through the faults"
    assert [f"{f.check}: {f.summary} {f.examples}" for f in found.values() if not f.ok] == []
    assert len(found) == 4 * 4 + 4 + 2
    assert freshness[0] == freshness[1], "both reporting replicas answer the same"


def admin_headers(system: System) -> dict[str, str]:
    """A token of the development admin client (every area: the bus status and every report need it)."""
    token = httpx.post(f"{system.url('registry')}/oauth/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": "kaenkhun-admin", "client_secret": DEV_CLIENT_SECRET,
        "scope": "* " + " ".join(f"{name}:admin" for name in SERVICES)})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
