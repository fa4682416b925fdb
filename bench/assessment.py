"""Assessment benchmarks: households scored per second by the scoring rules alone (the baseline), assessments
recorded per second through the real service path one at a time (HTTP in-process, SQLite: projection read,
scoring, revision check, insert, two outbox events), and by the bulk CSV import (upload, background job) on
SQLite and PostgreSQL. Prints figures, asserts no time."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord

from bench import prepare
from ops.scratchdb import ScratchDatabases
from services import load
from services.assessment.scoring import Person, applies, score
from services.assessment.sets.service import load_files
from shared import migrations
from shared.auth import issue_token
from shared.bus.consumer import Consumer
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from tests.kit.apps import consumer_record, make_settings, running

ON = date(2022, 1, 15)
TPMAP = next(f.definition for f in load_files() if f.definition.id == "tpmap-2560")


def household(rng: random.Random) -> tuple[list[Person], dict[str, bool]]:
    members = [Person(date(rng.randint(1935, 2021), rng.randint(1, 12), 1), rng.random() < 0.1)
               for _ in range(rng.randint(1, 5))]
    answers = {i.code: rng.random() < 0.85 for i in TPMAP.indicators if applies(i, members, ON)}
    return members, answers


def bench_scoring(n: int, say: bool = True) -> float:
    rng = random.Random(2565)
    population = [household(rng) for _ in range(n)]
    started = time.perf_counter()
    poor = sum(score(TPMAP, members=m, welfare_card=True, surveyed_on=ON, answers=a, measurements={}).poor
               for m, a in population)
    elapsed = time.perf_counter() - started
    if say:
        print(f"  scoring rules alone: {n:,} households in {elapsed:.2f} s = {n / elapsed:,.0f} /s ({poor:,} poor)")
    return n / elapsed


def announcement(household_id: str, members: list[Person]) -> ConsumerRecord[bytes, bytes]:
    """The registry's `household.registered` for a household, as the consumer receives it."""
    return consumer_record(HOUSEHOLD_REGISTERED, {
        "household_id": household_id, "version": 1, "status": "open", "province_code": "40",
        "district_code": "4001", "subdistrict_code": "400101", "village_no": 1, "village_code": "40010101",
        "sources": ["tpmap"], "welfare_card": True,
        "members": [{"member_id": new_id(), "citizen_id_hash": "0" * 64, "sex": "male",
                     "birth_date": m.birth_date.isoformat(), "relation": "head", "disability": m.disability}
                    for m in members]})


@asynccontextmanager
async def service(url: str, folder: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient, dict[str, str]]]:
    """The assessment app in-process on a fresh database, migrated, sets loaded, bus off."""
    settings = make_settings("assessment", url, "127.0.0.1:1", run_bus=False, log_level="WARNING",
                             data_dir=folder)
    app = load("assessment").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        await app.state.sets.sync(app.state.sessionmaker, app.state.settings.indicator_sets_dir)
        token = issue_token(settings.auth, client_id="bench", scopes=["assessment:write"], areas=["*"])
        yield app, client, {"Authorization": f"Bearer {token}"}


async def announce(app: Any, population: list[tuple[str, list[Person], dict[str, bool]]]) -> None:
    consumer: Consumer = app.state.consumer
    for start in range(0, len(population), 1000):
        await consumer.process([consumer.handlers.decode(announcement(household_id, members))
                                for household_id, members, _ in population[start:start + 1000]])


def population(n: int, seed: int) -> list[tuple[str, list[Person], dict[str, bool]]]:
    rng = random.Random(seed)
    return [(new_id(), *household(rng)) for _ in range(n)]


async def bench_http(n: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with service(f"sqlite+aiosqlite:///{tmp}/a.db", tmp) as (app, client, headers):
            households = population(n, 7)
            await announce(app, households)
            queue = iter(households)
            statuses: list[int] = []

            async def worker(http: httpx.AsyncClient) -> None:
                for household_id, _, answers in queue:
                    body = {"indicator_set": "tpmap-2560", "survey_year": 2565, "surveyed_on": ON.isoformat(),
                            "answers": answers}
                    response = await http.post(f"/v1/households/{household_id}/assessments", json=body,
                                               headers=headers)
                    statuses.append(response.status_code)

            started = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            assert statuses.count(201) == n, {s: statuses.count(s) for s in set(statuses)}
            print(f"  one at a time: POST /v1/households/{{id}}/assessments (in-process ASGI, SQLite, "
                  f"{concurrency} concurrent): {n:,} in {elapsed:.2f} s = {n / elapsed:,.0f} /s", flush=True)
            return n / elapsed


def assessment_csv(households: list[tuple[str, list[Person], dict[str, bool]]]) -> bytes:
    codes = [i.code for i in TPMAP.indicators]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["household_id", "indicator_set", "survey_year", "surveyed_on", *codes])
    for household_id, _, answers in households:
        writer.writerow([household_id, "tpmap-2560", 2565, ON.isoformat(),
                         *("" if c not in answers else "true" if answers[c] else "false" for c in codes)])
    return out.getvalue().encode()


async def bench_import(kind: str, dbs: ScratchDatabases, folder: str, n: int, scoring_rate: float,
                       say: bool = True) -> float:
    """Households imported per second."""
    async with service(await dbs.new("assessment"), folder) as (app, client, headers):
        households = population(n, 11)
        await announce(app, households)
        content = assessment_csv(households)
        started = time.perf_counter()
        response = await client.post("/v1/assessment-imports", files={"file": ("a.csv", content, "text/csv")},
                                     headers=headers)
        job_id = response.json()["id"]
        await app.state.imports.wait(job_id)
        elapsed = time.perf_counter() - started
        job = (await client.get(f"/v1/assessment-imports/{job_id}", headers=headers)).json()
        assert (job["status"], job["assessments_created"]) == ("done", n), job
        rate = n / elapsed
        if say:
            print(f"  bulk import {kind:9} {n:,} households ({len(content) / 2**20:.1f} MiB) in {elapsed:.2f} s = "
                  f"{rate:,.0f} /s, {rate / scoring_rate:.3f} of scoring alone", flush=True)
        return rate


async def measure_import(n: int, postgres_url: str | None) -> tuple[float, list[tuple[str, float]]]:
    """Households scored per second by the rules alone, and (database, households imported per second) on SQLite
    and, given its admin URL, PostgreSQL."""
    scoring_rate = bench_scoring(n, say=False)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ["sqlite"] + (["postgres"] if postgres_url else []):
            dbs = ScratchDatabases(kind, Path(tmp), postgres_url, prefix="kk_bench")
            try:
                figures.append((kind, await bench_import(kind, dbs, tmp, n, scoring_rate, say=False)))
            finally:
                await dbs.drop_all()
    return scoring_rate, figures


async def bench_service(args: argparse.Namespace, scoring_rate: float) -> None:
    await bench_http(args.requests, args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ["sqlite"] + (["postgres"] if args.postgres_url else []):
            dbs = ScratchDatabases(kind, Path(tmp), args.postgres_url, prefix="kk_bench")
            try:
                await bench_import(kind, dbs, tmp, args.households, scoring_rate)
            finally:
                await dbs.drop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assessment", description=__doc__)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for throwaway databases; PostgreSQL is measured when given")
    args = parser.parse_args(argv)
    prepare()
    print("assessment benchmark (tpmap-2560, households of 1-5 with random ages, 85 % of answers 'meets')")
    scoring_rate = bench_scoring(args.households)
    asyncio.run(bench_service(args, scoring_rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
