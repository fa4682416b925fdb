"""What the fault tests share: a PostgreSQL cluster of their own, a load that writes as clients do, and the wait
for the system to settle followed by the history checker."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
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
