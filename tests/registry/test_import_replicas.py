"""Imports across replicas: a job is claimed with a lease, a chunk's commit is fenced by it, and a replica that
takes a job over from its checkpoint finishes it with exact counts — in process on SQLite and PostgreSQL, and
with two real registry processes sharing one PostgreSQL database, one of them SIGKILLed mid-import."""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.datastructures import UploadFile

from ops.broker import free_port
from ops.scratchdb import ScratchDatabases
from services import load
from services.registry.imports.schemas import COLUMNS
from services.registry.imports.service import Group, Importer, Prepared
from services.registry.models import Household, ImportChunk, ImportJob
from shared import migrations
from shared.auth import Principal
from shared.clock import utcnow
from shared.db import create_engine, transaction
from shared.imports import Checkpoint, ImportSettings
from shared.imports.routes import accept_upload, progress
from shared.settings import REPO_ROOT
from tests.kit import apps
from tests.kit.registry import ALL, Registry, citizen_id

HEAD = {"subdistrict_code": "400101", "village_no": "5", "lat": "", "lon": "", "sources": "tpmap",
        "welfare_card": "true", "title": "นาย", "first_name": "ประเสริฐ", "last_name": "ศรีสุข", "sex": "male",
        "birth_date": "1965-03-01", "relation": "head", "disability": "false", "phone": ""}


def households_file(count: int, *, bad_every: int, seed: int) -> tuple[bytes, list[int]]:
    """A CSV file of `count` one-person households; every `bad_every`-th has a wrong check digit. The file and
    the rows (1-based, header row 1) that must be rejected."""
    rng = random.Random(seed)
    rows, bad = [], []
    for n in range(count):
        cid = citizen_id(rng)
        if n % bad_every == bad_every - 1:
            cid = cid[:-1] + str((int(cid[-1]) + 1) % 10)
            bad.append(n + 2)
        rows.append(HEAD | {"household_key": f"H{n}", "house_no": f"{n}/1", "citizen_id": cid})
    return apps.csv_bytes(rows, COLUMNS), bad


def test_a_checkpoint_is_the_committed_prefix_and_the_spans_beyond_it() -> None:
    done = Checkpoint().plus([(5, 10)])  # the second writer's chunk committed first
    assert done == Checkpoint(0, ((5, 10),))
    assert [done.covers(r) for r in (0, 4, 5, 9, 10)] == [False, False, True, True, False]
    assert done.plus([(0, 5)]) == Checkpoint(10)
    assert done.plus([(0, 3), (10, 12)]) == Checkpoint(3, ((5, 12),))
    assert Checkpoint(10).plus([(10, 15), (15, 20)]) == Checkpoint(20)


def test_progress_is_the_committed_share_of_the_file_and_the_time_left_at_the_rate_so_far() -> None:
    now = utcnow()

    def job(status: str, bytes_done: int, started_s_ago: float | None = None) -> Any:
        started_at = now - timedelta(seconds=started_s_ago) if started_s_ago is not None else None
        return SimpleNamespace(status=status, size_bytes=1000, bytes_done=bytes_done, started_at=started_at)

    def shown(*args: Any, orphaned: bool = False) -> tuple[float, int, int | None]:
        p = progress(job(*args), now, orphaned=orphaned)
        return p.percent, p.bytes_done, p.eta_s

    assert shown("queued", 0) == (0.0, 0, None)
    assert shown("running", 0, 5) == (0.0, 0, None)           # nothing committed yet: no rate to go by
    assert shown("running", 375, 30) == (37.5, 375, 50)       # 375 bytes in 30 s: 625 more in 50 s
    assert shown("running", 999, 1) == (99.9, 999, 1)         # never 100 before it is done
    assert shown("running", 375, 30, orphaned=True) == (37.5, 375, None)  # nobody runs it now
    assert shown("failed", 375, 30) == (37.5, 375, None)
    assert shown("done", 990, 30) == (100.0, 1000, 0)         # blank lines at its end are read too


class Stalling(Importer):
    """The registry's importer, whose reading of the file waits before its `at`-th chunk until `meanwhile` has run
    on the event loop: what happens to a replica whose lease runs out while it works (a long pause, a partition)."""

    def __init__(self, *args: Any, at: int, meanwhile: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.at, self.meanwhile, self.prepared = at, meanwhile, 0
        self.loop = asyncio.get_running_loop()

    def prepare(self, units: list[Group], importer: Principal) -> list[Prepared]:
        self.prepared += 1
        if self.prepared == self.at:
            asyncio.run_coroutine_threadsafe(self.meanwhile(), self.loop).result()
        return super().prepare(units, importer)


async def count(registry: Registry, what: Any) -> int:
    async with transaction(registry.app.state.sessionmaker) as session:
        return int((await session.execute(select(func.count()).select_from(what))).scalar_one())


async def job_row(registry: Registry, job_id: str) -> ImportJob:
    async with transaction(registry.app.state.sessionmaker) as session:
        job: ImportJob = (await session.execute(select(ImportJob).where(ImportJob.id == job_id))).scalar_one()
        return job


async def test_a_stale_owners_chunk_is_refused_and_the_new_owner_finishes_exactly(registry: Registry) -> None:
    app, settings = registry.app, registry.app.state.settings
    content, bad = households_file(40, bad_every=7, seed=11)
    replica = {"maker": app.state.sessionmaker, "protector": app.state.protector,
               "settings": ImportSettings(), "chunk": 5, "max_errors": 10_000}
    b = Importer(**replica)
    seen: dict[str, Any] = {}
    job_id = ""

    async def lease_runs_out_and_b_takes_over() -> None:
        # On PostgreSQL two chunks are written at once, and the 4th is prepared while the first two may still be
        # committing: wait for one of them, so the orphaned job has progress to show.
        for _ in range(1000):
            if (await job_row(registry, job_id)).bytes_done:
                break
            await asyncio.sleep(0.01)
        async with transaction(app.state.sessionmaker) as session:
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                lease_until=utcnow() - timedelta(seconds=1)))
        seen["orphaned"] = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()
        for _ in range(1000):  # a chunk of A's being committed holds the job's row: B skips it, and looks again
            if await b.claim():
                break
            await asyncio.sleep(0.01)

    a = Stalling(**replica, at=4, meanwhile=lease_runs_out_and_b_takes_over)
    upload = UploadFile(io.BytesIO(content), filename="households.csv")
    async with transaction(app.state.sessionmaker) as session:
        job_id = await accept_upload(session, jobs=a, file=upload, max_bytes=settings.import_max_bytes,
                                     principal=Principal("test-client", areas={"*"}))
    await a.wait(job_id)

    # A was stopped by its fenced commit: the job is B's, still running, and what A committed is exactly what the
    # job counts — the chunk it prepared after losing the lease was rolled back.
    orphaned = seen["orphaned"]
    assert (orphaned["status"], orphaned["owner"]) == ("running", a.owner), orphaned
    assert orphaned["orphaned_since"] == orphaned["lease_until"] is not None
    assert 0 < orphaned["progress"]["percent"] < 100 and orphaned["progress"]["eta_s"] is None  # nobody runs it
    job = await job_row(registry, job_id)
    assert (job.status, job.owner, job.resumed) == ("running", b.owner, 1)
    committed = job.checkpoint_row + sum(end - start for start, end in job.checkpoint_ahead)
    assert 0 < committed < 40 and job.rows == committed
    taken_over = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()["progress"]
    assert orphaned["progress"]["bytes_done"] <= taken_over["bytes_done"] == job.bytes_done < len(content)
    assert isinstance(taken_over["eta_s"], int)  # B runs it: at the rate since the job started
    assert await count(registry, Household) == job.households_created
    assert job.households_created + job.rows_rejected == job.rows

    await b.run(job_id)
    body = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()
    assert (body["status"], body["owner"], body["resumed"], body["orphaned_since"]) == ("done", b.owner, 1, None)
    assert (body["rows"], body["households_created"], body["persons_created"], body["rows_rejected"]) == (
        40, 40 - len(bad), 40 - len(bad), len(bad)), body
    assert sorted(e["row"] for e in body["errors"]) == bad  # each bad row once: none reported twice
    assert await count(registry, Household) == 40 - len(bad)
    assert await count(registry, ImportChunk) == 0  # the stored upload goes with the job's end
    assert body["progress"] == {"percent": 100.0, "bytes_done": len(content), "eta_s": 0}
    # A's bytes and B's add up to the file: B counted none of those A had committed again.
    assert (await job_row(registry, job_id)).bytes_done == len(content)


# -- two real replicas ---------------------------------------------------------------------------------------


class Replica:
    """`kaenkhun serve registry` as a process of its own, on the shared database, bus off."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "serve", "registry"], cwd=REPO_ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, env=env | {"KAENKHUN_REGISTRY_PORT": str(self.port)})

    def wait_alive(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the replica exited"
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.url} not up in {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


PROCESSES = pytest.mark.parametrize("databases", ["postgres"], indirect=True)
HOUSEHOLDS = 20_000


@PROCESSES
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_replica_killed_mid_import_leaves_the_job_to_the_other(databases: ScratchDatabases,
                                                                        tmp_path: Path) -> None:
    url = await databases.new("registry")
    engine = create_engine(url)
    await migrations.upgrade(engine, load("registry").spec.migrations_dir)
    env = dict(os.environ, KAENKHUN_DATA_DIR=str(tmp_path), KAENKHUN_REGISTRY_DATABASE_URL=url,
               KAENKHUN_REGISTRY_RUN_BUS="false", KAENKHUN_LIMITS_RATE_PER_S="0", KAENKHUN_LOG_JSON="false",
               KAENKHUN_REGISTRY_IMPORT_CHUNK_HOUSEHOLDS="200", KAENKHUN_REGISTRY_IMPORT_LEASE_S="3",
               KAENKHUN_REGISTRY_IMPORT_HEARTBEAT_S="1", KAENKHUN_REGISTRY_IMPORT_POLL_S="0.5")
    content, bad = households_file(HOUSEHOLDS, bad_every=97, seed=12)
    headers = apps.bearer(load("registry").settings().auth, *ALL)
    replicas = [Replica(env, tmp_path / f"replica{n}.log") for n in (1, 2)]
    try:
        for replica in replicas:
            replica.wait_alive()
        async with httpx.AsyncClient(base_url=replicas[0].url, headers=headers, timeout=60) as first:
            response = await first.post("/v1/imports", files={"file": ("big.csv", content, "text/csv")})
            assert response.status_code == 202, response.text
            location = response.headers["location"]
            while True:  # until a quarter of the file is committed: mid-import
                job = (await first.get(location)).json()
                assert job["status"] in ("queued", "running"), job
                if job["checkpoint_row"] >= HOUSEHOLDS // 4:
                    break
                await asyncio.sleep(0.05)
        [victim] = [r for r in replicas if job["owner"].split("/")[1] == str(r.process.pid)]
        [survivor] = [r for r in replicas if r is not victim]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        print(f"\nkilled the owner with {job['checkpoint_row']:,} of {HOUSEHOLDS:,} rows committed")

        orphaned = None
        async with httpx.AsyncClient(base_url=survivor.url, headers=headers, timeout=60) as second:
            started = time.monotonic()
            while (job := (await second.get(location, params={"errors_limit": 5000})).json())["status"] not in (
                    "done", "failed"):
                assert time.monotonic() - started < 400, job
                orphaned = orphaned or job["orphaned_since"]
                await asyncio.sleep(0.1)
        print(f"the other replica finished it {time.monotonic() - started:.1f} s later: {job['resumed']} takeover; "
              f"seen orphaned since {orphaned}")
        assert job["status"] == "done", job
        assert job["owner"].split("/")[1] == str(survivor.process.pid) and job["resumed"] == 1, job
        valid = HOUSEHOLDS - len(bad)
        assert (job["rows"], job["checkpoint_row"], job["households_created"], job["persons_created"],
                job["households_unchanged"], job["rows_rejected"]) == (HOUSEHOLDS, HOUSEHOLDS, valid, valid, 0,
                                                                       len(bad)), job
        assert [e["row"] for e in job["errors"]] == bad and job["errors_total"] == len(bad)  # none twice
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(Household))).scalar_one() == valid
            assert (await conn.execute(select(func.count()).select_from(ImportChunk))).scalar_one() == 0
    finally:
        for replica in replicas:
            replica.stop()
        await engine.dispose()


async def test_a_replica_that_stops_lets_its_job_go_at_once(registry: Registry) -> None:
    app, settings = registry.app, registry.app.state.settings
    content, bad = households_file(30, bad_every=4, seed=13)
    replica = {"maker": app.state.sessionmaker, "protector": app.state.protector,
               "settings": ImportSettings(import_lease_s=3600, import_heartbeat_s=60), "chunk": 5,
               "max_errors": 10_000}
    reading = asyncio.Event()

    async def say_so() -> None:
        reading.set()

    a = Stalling(**replica, at=3, meanwhile=say_so)
    upload = UploadFile(io.BytesIO(content), filename="households.csv")
    async with transaction(app.state.sessionmaker) as session:
        job_id = await accept_upload(session, jobs=a, file=upload, max_bytes=settings.import_max_bytes,
                                     principal=Principal("test-client", areas={"*"}))
    await reading.wait()
    await a.stop()  # as on SIGTERM: its lease of an hour ends now, not in an hour

    body = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()
    assert (body["status"], body["owner"]) == ("running", a.owner) and body["orphaned_since"] is not None, body
    b = Importer(**replica)
    assert await b.claim() == [job_id]
    await b.run(job_id)
    body = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()
    assert (body["status"], body["owner"], body["resumed"]) == ("done", b.owner, 1)
    assert (body["rows"], body["households_created"], body["rows_rejected"]) == (30, 30 - len(bad), len(bad)), body
    assert sorted(e["row"] for e in body["errors"]) == bad
    assert await count(registry, Household) == 30 - len(bad)
