"""MPI benchmark: GET /v1/mpi (Alkire–Foster, exact) at N persons, province by district and district by
sub-district, p50/p95 over loopback HTTP to `kaenkhun serve assessment`, and how much the serving process's
memory (RSS) grows while it answers; beside, in the same run, a SQL GROUP BY scan of the same current
assessments (households, persons, poor, target poor, censored score per district; no per-indicator split), the
least a report computed from the assessments themselves has to do.

Set-up is direct, not through HTTP: households of 1–5 persons with random ages and answers in Khon Kaen's
villages, scored by the real rules, the assessment rows written by COPY with the database migrated to
assessment_0008, then migrated to the head: assessment_0009 fills the village sums from them (its time is
printed too).

    .venv/bin/python -m bench.mpi [--persons 1000000] [--requests 200] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench import prepare, wait_healthy
from bench.assessment import TPMAP, household
from ops.broker import free_port
from ops.scratchdb import ScratchDatabases
from services import load
from services.assessment.assessments.schemas import AssessmentIn
from services.assessment.assessments.service import new_revision
from services.assessment.models import KnownHousehold, metadata
from services.assessment.scoring import score
from services.assessment.settings import AssessmentSettings
from shared import areas, migrations
from shared.auth import issue_token
from shared.db import bulk_insert, create_engine, sessionmaker, transaction
from shared.ids import new_id
from shared.settings import REPO_ROOT

ON = date(2022, 1, 15)
CHUNK = 20_000


@dataclass
class Figures:
    persons: int
    households: int
    villages: int
    backfill_s: float
    p50_p95_ms: dict[str, tuple[float, float]]
    rss_growth_mib: float
    scan_p50_p95_ms: tuple[float, float]


def villages() -> list[str]:
    """Khon Kaen's sub-districts, 12 villages each."""
    province = areas.find("40")
    assert province is not None
    return [areas.village_code(s.code, n) for d in areas.children(province) for s in areas.children(d)
            for n in range(1, 13)]


def assessment_rows(persons: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """Stored assessment rows (scored by the real rules) for households adding up to `persons` persons."""
    rng = random.Random(seed)
    codes = villages()
    rows: list[dict[str, Any]] = []
    counted = 0
    while counted < persons:
        members, answers = household(rng)
        members = members[:persons - counted]
        village = rng.choice(codes)
        known = KnownHousehold(id=new_id(), version=1, status="open", province_code=village[:2],
                               district_code=village[:4], subdistrict_code=village[:6], village_code=village,
                               welfare_card=rng.random() < 0.6, sources=["tpmap"], members=[])
        body = AssessmentIn(indicator_set=TPMAP.id, survey_year=2565, surveyed_on=ON, answers=answers)
        try:
            result = score(TPMAP, members=members, welfare_card=known.welfare_card, surveyed_on=ON,
                           answers=answers, measurements={})
        except ValueError:  # a member cut off changed what applies: draw again
            continue
        rows.append(new_revision(known, body, TPMAP, result, None, "bench"))
        counted += len(members)
    return rows, len(codes)


async def load_database(url: str, persons: int) -> tuple[int, int, float]:
    """Migrate to assessment_0008, write the assessments, migrate to the head (the backfill); (households,
    villages, backfill seconds)."""
    spec = load("assessment").spec
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, spec.migrations_dir, "assessment_0008")
        rows, village_count = await asyncio.to_thread(assessment_rows, persons, 2565)
        maker = sessionmaker(engine)
        for start in range(0, len(rows), CHUNK):
            async with transaction(maker) as session:
                await bulk_insert(session, metadata.tables["assessment"], rows[start:start + CHUNK])
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE assessment"))
            await conn.commit()
        started = time.perf_counter()
        await migrations.upgrade(engine, spec.migrations_dir)
        backfill_s = time.perf_counter() - started
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE mpi_village"))
            await conn.execute(text("ANALYZE mpi_village_indicator"))
            await conn.commit()
    finally:
        await engine.dispose()
    return len(rows), village_count, backfill_s


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[94] * 1000


QUERIES = {"province by district": {"area": "40", "level": "district"},
           "district by sub-district": {"area": "4001", "level": "subdistrict"}}
# Beside them, in the same process: the floor of any request on this machine now, and the largest report
# (every village of the province, fewer requests).
FLOOR, WHOLE = "GET /healthz", "province by village"


async def serve_and_query(url: str, requests: int) -> tuple[dict[str, tuple[float, float]], float]:
    """p50/p95 ms per query and the RSS growth (MiB) of the serving process from before the first request."""
    port = free_port()
    # PYTHONPATH: this checkout's code, also when the virtualenv's editable install points at another worktree.
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "KAENKHUN_ASSESSMENT_DATABASE_URL": url,
                        "KAENKHUN_ASSESSMENT_PORT": str(port), "KAENKHUN_ASSESSMENT_RUN_BUS": "false",
                        "KAENKHUN_LOG_LEVEL": "WARNING"}
    kaenkhun = Path(sys.executable).parent / "kaenkhun"
    server = await asyncio.create_subprocess_exec(kaenkhun, "serve", "assessment", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = issue_token(AssessmentSettings().auth, client_id="bench", scopes=["assessment:read"], areas=["*"])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            await wait_healthy(client)
            for _ in range(100):  # the indicator sets load after start-up
                if (await client.get("/v1/indicator-sets")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            before = peak = rss_mib(server.pid)
            figures = {}
            for name, params in QUERIES.items():
                latencies = []
                for i in range(requests + 10):
                    started = time.perf_counter()
                    response = await client.get("/v1/mpi", params=params | {"survey_year": "2565"})
                    took = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    peak = max(peak, rss_mib(server.pid))
                    if i >= 10:  # the first requests warm caches
                        latencies.append(took)
                figures[name] = quantiles(latencies)
            growth = peak - before
            for name, path, params, count in ((FLOOR, "/healthz", {}, requests),
                                              (WHOLE, "/v1/mpi", {"area": "40", "level": "village",
                                                                  "survey_year": "2565"}, 20)):
                latencies = []
                for _ in range(count):
                    started = time.perf_counter()
                    response = await client.get(path, params=params)
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                figures[name] = quantiles(latencies)
            return figures, growth
    finally:
        server.terminate()
        await server.wait()


SCAN = text("""
    SELECT substr(village_code, 1, 4) AS district, count(*), sum(member_count),
           sum(CASE WHEN poor THEN 1 ELSE 0 END), sum(CASE WHEN poor THEN member_count ELSE 0 END),
           sum(CASE WHEN target_poor THEN 1 ELSE 0 END), sum(CASE WHEN target_poor THEN member_count ELSE 0 END),
           sum(CASE WHEN poor THEN member_count * score_num * (3600 / score_den) ELSE 0 END)
    FROM assessment
    WHERE survey_year = 2565 AND current AND indicator_set_id = 'tpmap-2560' AND village_code LIKE '40%'
    GROUP BY 1 ORDER BY 1""")


async def scan(url: str, runs: int) -> tuple[float, float]:
    """p50/p95 ms of the GROUP BY scan of the assessments (the baseline)."""
    engine = create_engine(url)
    timings = []
    try:
        async with engine.connect() as conn:
            for i in range(runs + 3):
                started = time.perf_counter()
                found = (await conn.execute(SCAN)).all()
                if i >= 3:
                    timings.append(time.perf_counter() - started)
            assert len(found) > 20, found
    finally:
        await engine.dispose()
    return quantiles(timings)


async def measure(admin_url: str, persons: int, requests: int) -> Figures:
    with tempfile.TemporaryDirectory() as folder:
        dbs = ScratchDatabases("postgres", Path(folder), admin_url, prefix="kk_bench")
        try:
            url = await dbs.new("assessment")
            households, village_count, backfill_s = await load_database(url, persons)
            latencies, growth = await serve_and_query(url, requests)
            baseline = await scan(url, max(requests // 10, 20))
        finally:
            await dbs.drop_all()
    return Figures(persons, households, village_count, backfill_s, latencies, growth, baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mpi", description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error("needs --postgres-url or KAENKHUN_TEST_POSTGRES_URL")
    prepare()
    f = asyncio.run(measure(args.postgres_url, args.persons, args.requests))
    print(f"MPI benchmark (PostgreSQL, {f.persons:,} persons, {f.households:,} households, {f.villages:,} villages)")
    print(f"  assessment_0009 backfill of the village sums: {f.backfill_s:.1f} s")
    scan_p50, scan_p95 = f.scan_p50_p95_ms
    for name, (p50, p95) in f.p50_p95_ms.items():
        if name in (FLOOR, WHOLE):
            print(f"  {name if name == FLOOR else 'GET /v1/mpi ' + name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            continue
        print(f"  GET /v1/mpi {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms (SQL GROUP BY scan of the assessments: "
              f"p95 {scan_p95:.1f} ms; ratio {p95 / scan_p95:.3f})")
    print(f"  serving process RSS growth over {2 * args.requests + 20} requests: {f.rss_growth_mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
