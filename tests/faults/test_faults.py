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
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ops import consistency, demo
from ops.broker import free_port
from ops.launcher import System
from services import SERVICES
from shared.db import create_engine
from tests.kit.env import POSTGRES_URL_ENV, postgres_admin_url

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.timeout(1200)]
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


class PrivatePostgres:
    """A PostgreSQL cluster of our own, run as the `postgres` user, on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        shutil.chown(folder, "postgres")
        self._as_postgres("initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, tool: str, *args: str) -> None:
        assert PG_BIN is not None
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args], check=True,
                       capture_output=True)

    def start(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-w", "-o",
                          f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_databases(self, *names: str) -> None:
        for name in names:
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                            f"CREATE DATABASE {name}"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    if PG_BIN is None:
        missing = "PostgreSQL's server binaries (Debian: apt-get install postgresql; /usr/lib/postgresql/*/bin)"
        if postgres_admin_url():  # CI says PostgreSQL is there: then its binaries must be too
            pytest.fail(f"{POSTGRES_URL_ENV} is set but {missing} are missing")
        pytest.skip(f"the faults test runs its own cluster and needs {missing}")
    folder = Path(tempfile.mkdtemp(prefix="kaenkhun-pg-"))  # pytest's own folders are closed to other users
    try:
        cluster = PrivatePostgres(folder)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Load:
    """Writes as clients do, until told to stop; what it got back, for the checks afterwards."""

    loader: demo.Loader
    rng: random.Random = field(default_factory=lambda: random.Random(9))
    stop: bool = False
    households: list[demo.Home] = field(default_factory=list)
    assessed: int = 0
    batches: int = 0
    paid: int = 0
    helped: int = 0

    async def run(self, indicator_set: Any) -> None:
        people = demo.People(self.rng)
        registry, assessment = self.loader.endpoints.registry, self.loader.endpoints.assessment
        round_no = 0
        while not self.stop:
            round_no += 1
            fresh = []
            for n in range(4):
                home = demo.Home(f"F{round_no}-{n}", "400101", 1 + n, f"{round_no}/{n}", ["tpmap"], True,
                                 people.household(self.rng.choice((1, 2, 3))), {"safe_food"})
                body = {"address": {"subdistrict_code": home.subdistrict, "village_no": home.village_no,
                                    "house_no": home.house_no}, "sources": home.sources, "welfare_card": True,
                        "members": [{"citizen_id": m.citizen_id, "title": m.title, "first_name": m.first_name,
                                     "last_name": m.last_name, "sex": m.sex, "birth_date": m.birth_date.isoformat(),
                                     "relation": m.relation, "disability": m.disability} for m in home.members]}
                made = await self.loader.call("POST", f"{registry}/v1/households", json=body, expect=(201, 409))
                if made and "id" in made:  # 409: a retry of a registration that had gone through
                    home.household_id = made["id"]
                    fresh.append(home)
            for home in fresh:
                row = demo.assessment_row(home, indicator_set, self.rng)
                answers = {k: v == "true" for k, v in row.items() if v in ("true", "false")}
                measurements = {k: v for k, v in row.items()
                                if k not in answers and k not in ("household_id", "indicator_set", "survey_year",
                                                                  "surveyed_on")}
                await self.loader.call("POST", f"{assessment}/v1/households/{home.household_id}/assessments", json={
                    "indicator_set": indicator_set.id, "survey_year": demo.SURVEY_YEAR,
                    "surveyed_on": demo.SURVEYED_ON.isoformat(), "answers": answers, "measurements": measurements})
                self.assessed += 1
            self.households += fresh
            if round_no % 2 == 0 and len(self.households) >= 12:  # field work on homes registered rounds ago
                self.helped += await self.loader.field_work(self.households[-12:-10], f"round-{round_no}")
            if round_no % 3 == 0 and len(self.households) >= 6:
                families = self.households[-6:-3]  # assessed a round ago: likely known to assistance by now
                batch = await self.loader.grants(families, 100 + round_no)
                self.batches += 1
                self.paid += batch["totals"]["accepted"]


async def quiet_and_consistent(system: System) -> dict[str, consistency.Finding]:
    engines = {name: create_engine(system.database_urls[name]) for name in SERVICES}
    try:
        settled = await consistency.settle(engines, kafka=system.kafka, timeout_s=300)
        assert settled, f"the system did not settle: {settled.waiting_for}"
        return {f.check: f for f in await consistency.check(engines)}
    finally:
        for engine in engines.values():
            await engine.dispose()


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
