"""Fault injection with real processes: while writes keep coming (registrations, assessments, the ministry's
grant batches), SIGKILL each service in turn, stop and restart the broker, stop and restart PostgreSQL. Then
the history checker (`kaenkhun check-consistency`) must find nothing: no event lost, none applied twice,
order kept per household, reporting equal to the sources, no budget below zero, no family paid twice.

The services run on their own PostgreSQL cluster (initdb in a temporary folder, so stopping it touches no
one else's database) and the local broker; the load is an HTTP client that retries as a real one would
(connection refused, 503 with Retry-After, 409 while a household has not reached a service yet).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ops import demo
from ops.launcher import System
from services import SERVICES
from tests.kit.faults import Load, PrivatePostgres, quiet_and_consistent

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.timeout(1200)]


def test_kills_and_restarts_under_load_lose_nothing_and_count_nothing_twice(
        tmp_path: Path, postgres: PrivatePostgres) -> None:
    postgres.create_databases(*(f"faults_{name}" for name in SERVICES))
    system = System(tmp_path, database_urls={name: postgres.url(f"faults_{name}") for name in SERVICES})
    system.start_all()
    faults: list[str] = []
    try:
        async def scenario() -> Load:
            loader = system.loader(timeout_s=120)
            await loader.sign_in()
            await loader.budgets(grants=demo.GRANT * 10_000, subsidies=demo.SUBSIDY)
            load = Load(loader)
            writing = asyncio.create_task(load.run(await loader.indicator_set()))

            async def fault(name: str, action: Any) -> None:
                await asyncio.sleep(4)
                if writing.done():
                    await writing  # the load failed: show why
                started = time.monotonic()
                await asyncio.to_thread(action)
                faults.append(f"{name} ({time.monotonic() - started:.1f} s)")

            def restart_broker() -> None:
                system.broker.stop()
                time.sleep(2)
                system.broker.start()

            def restart_postgres() -> None:
                postgres.stop()
                time.sleep(2)
                postgres.start()

            def kill_and_restart(name: str) -> None:
                system.kill(name)
                system.start(name)

            try:
                for name in SERVICES:
                    await fault(f"SIGKILL {name}", lambda n=name: kill_and_restart(n))
                await fault("broker stopped and restarted empty", restart_broker)
                await fault("PostgreSQL stopped and restarted", restart_postgres)
                await asyncio.sleep(4)
            finally:
                load.stop = True
                await writing
                await loader.close()
            return load

        load = asyncio.run(scenario())
        found = asyncio.run(quiet_and_consistent(system))
    finally:
        system.stop()
    print(f"faults: {', '.join(faults)}; load: {len(load.households)} households registered, {load.assessed} "
          f"assessments, {load.batches} grant batches, {load.paid} families paid, {load.helped} homes visited, "
          "referred and helped")
    assert len(faults) == 6
    assert len(load.households) >= 40 and load.batches >= 3, "the load kept writing through the faults"
    assert load.helped >= 4, "the field work (visits, referrals, help) went on through the faults"
    assert [f"{f.check}: {f.summary} {f.examples}" for f in found.values() if not f.ok] == []
    assert len(found) == 4 * 4 + 4 + 2  # delivery, origin, dead letters, order × 4 consumers; reporting; money
