"""Registry benchmarks: bulk import persons/s beside a raw bulk insert of the same rows, memory as files
grow, and POST /v1/households requests/s over real HTTP (prints figures, asserts no time)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import prepare, wait_healthy
from ops.broker import free_port
from ops.scratchdb import ScratchDatabases
from services.registry.imports.schemas import COLUMNS
from services.registry.imports.service import Importer
from services.registry.models import Household, ImportChunk, ImportJob, Member
from services.registry.settings import RegistrySettings
from shared import migrations
from shared.app import settle_heap
from shared.auth import issue_token
from shared.clock import utcnow
from shared.db import create_engine, is_sqlite, sessionmaker, transaction
from shared.ids import new_id
from shared.pii import CitizenIdProtector, PiiSettings, check_digit
from shared.text import name_key

FIRST = ["สมชาย", "สมหญิง", "ประเสริฐ", "บุญมี", "มาลี", "ทองใบ", "สุภาพ", "วันเพ็ญ", "อำนวย", "จันทร์เพ็ญ",
         "ณัฐพล", "กุลธิดา", "ภูมิ", "ปิยะ", "ศิริพร", "สมศักดิ์"]
LAST = ["ใจดี", "ศรีสุข", "มั่งมี", "แก้วมณี", "บุญเรือง", "พรหมมา", "ศรีสุวรรณ์", "ทองดี", "จันทร์หอม", "วงศ์ใหญ่"]
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "registry" / "migrations"
SUBDISTRICTS = ["400101", "400102", "400103", "400201", "400301", "401601", "402901"]


def citizen_id(rng: random.Random) -> str:
    body = str(rng.randrange(1, 9)) + "".join(str(rng.randrange(10)) for _ in range(11))
    return body + check_digit(body)


def people(persons: int, seed: int = 2565) -> Iterator[dict[str, str]]:
    """CSV rows for `persons` people in households of 1–5, deterministic."""
    rng = random.Random(seed)
    made, household = 0, 0
    while made < persons:
        household += 1
        size = min(rng.randint(1, 5), persons - made)
        sub = rng.choice(SUBDISTRICTS)
        village, house = str(rng.randint(1, 15)), f"{rng.randint(1, 300)}/{rng.randint(1, 9)}"
        last = rng.choice(LAST)
        sources = rng.choice(["tpmap", "exclusion_error", "tpmap;vulnerable"])
        welfare = rng.choice(["true", "false"])
        for i in range(size):
            yield {
                "household_key": f"KK{household:07d}", "subdistrict_code": sub, "village_no": village,
                "house_no": house, "lat": "", "lon": "", "sources": sources, "welfare_card": welfare,
                "citizen_id": citizen_id(rng),
                "title": "นาย" if i % 2 == 0 else "นาง", "first_name": rng.choice(FIRST), "last_name": last,
                "sex": "male" if i % 2 == 0 else "female",
                "birth_date": f"{rng.randint(1940, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "relation": "head" if i == 0 else rng.choice(["spouse", "child", "parent", "relative"]),
                "disability": rng.choice(["false"] * 9 + ["true"]),
            }
        made += size


def write_csv(path: Path, persons: int) -> int:
    """Write the file; returns its size in bytes."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(people(persons))
    return path.stat().st_size


async def migrated(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await migrations.upgrade(engine, MIGRATIONS)
    return engine


async def run_import(engine: AsyncEngine, path: Path, size: int, settings: RegistrySettings,
                     ) -> tuple[float, dict[str, Any]]:
    """The registry's real Importer on a file stored as an upload is (in the database, outside the timer); returns
    seconds and the job's counts."""
    maker = sessionmaker(engine)
    importer = Importer(maker, CitizenIdProtector(settings.pii), settings,
                        chunk=settings.import_chunk_households, max_errors=settings.import_max_errors)
    job_id = path.stem
    async with transaction(maker) as session:
        session.add(ImportJob(id=job_id, status="queued", filename=path.name, sha256="-",
                              size_bytes=size, client_id="bench", areas=["*"], created_at=utcnow()))
        await session.flush()
        with path.open("rb") as file:
            seq = 0
            while piece := file.read(settings.import_stored_chunk_bytes):
                session.add(ImportChunk(import_id=job_id, seq=seq, data=piece))
                await session.flush()
                seq += 1
    assert await importer.claim(job_id) == [job_id]
    settle_heap()  # as the service does once it has started
    started = time.perf_counter()
    await importer.run(job_id)
    elapsed = time.perf_counter() - started
    async with transaction(maker) as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None
        counts = {"status": job.status, "persons": job.persons_created, "households": job.households_created,
                  "rejected": job.rows_rejected, "failure": job.failure}
    return elapsed, counts


def raw_rows(persons: int, protector: CitizenIdProtector) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same households and members as the import writes, built in memory (outside the timer)."""
    households: dict[str, dict[str, Any]] = {}
    members: list[dict[str, Any]] = []
    now = utcnow()
    for row in people(persons):
        key = row["household_key"]
        if key not in households:
            sub, village = row["subdistrict_code"], int(row["village_no"])
            households[key] = {
                "id": new_id(), "province_code": sub[:2], "district_code": sub[:4], "subdistrict_code": sub,
                "village_no": village, "village_code": f"{sub}{village:02d}", "house_no": row["house_no"],
                "lat": None, "lon": None, "source_tpmap": "tpmap" in row["sources"],
                "source_exclusion_error": "exclusion_error" in row["sources"],
                "source_vulnerable": "vulnerable" in row["sources"], "source_other": False,
                "welfare_card": row["welfare_card"] == "true", "status": "open", "closed_reason": None,
                "closed_at": None, "team_id": None, "buddy_official": None, "import_id": None, "version": 1,
                "created_at": now, "updated_at": now,
            }
        members.append({
            "id": new_id(), "household_id": households[key]["id"], "position": 1,
            "citizen_id_enc": protector.encrypt(row["citizen_id"]),
            "citizen_id_hash": protector.hash(row["citizen_id"]),
            "title": row["title"], "first_name": row["first_name"], "last_name": row["last_name"],
            "first_name_key": name_key(row["first_name"]), "last_name_key": name_key(row["last_name"]),
            "sex": row["sex"],
            "birth_date": date.fromisoformat(row["birth_date"]), "relation": row["relation"],
            "disability": row["disability"] == "true", "active": True, "removed_reason": None, "removed_at": None,
            "transferred_to": None, "created_at": now,
        })
    return list(households.values()), members


async def raw_insert(engine: AsyncEngine, households: list[dict[str, Any]], members: list[dict[str, Any]]) -> float:
    """The baseline: the same rows by the driver's fastest bulk path (sqlite3 executemany; asyncpg COPY)."""
    hcols, mcols = list(households[0]), list(members[0])
    if is_sqlite(str(engine.url)):
        import sqlite3

        path = engine.url.database
        assert path is not None
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            hrows = [tuple(_sqlite(v) for v in h.values()) for h in households]
            mrows = [tuple(_sqlite(v) for v in m.values()) for m in members]
            started = time.perf_counter()
            with conn:
                conn.executemany(f"INSERT INTO household ({','.join(hcols)}) VALUES ({','.join('?' * len(hcols))})",
                                 hrows)
                conn.executemany(f"INSERT INTO member ({','.join(mcols)}) VALUES ({','.join('?' * len(mcols))})",
                                 mrows)
            return time.perf_counter() - started
        finally:
            conn.close()
    import asyncpg

    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        hrecords = [tuple(h.values()) for h in households]
        mrecords = [tuple(m.values()) for m in members]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("household", records=hrecords, columns=hcols)
            await conn.copy_records_to_table("member", records=mrecords, columns=mcols)
        return time.perf_counter() - started
    finally:
        await conn.close()


def _sqlite(value: Any) -> Any:
    """Values as SQLAlchemy's SQLite dialect stores them (dates and times as ISO text)."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value.isoformat() if isinstance(value, date) else value


async def count_rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        h = (await conn.execute(select(func.count()).select_from(Household))).scalar_one()
        m = (await conn.execute(select(func.count()).select_from(Member))).scalar_one()
    return int(h), int(m)


@dataclass
class ImportResult:
    kind: str
    persons: int
    import_s: float
    raw_s: float
    counts: dict[str, Any]

    def line(self) -> str:
        rate, raw_rate = self.persons / self.import_s, self.persons / self.raw_s
        return (f"  {self.kind:9} {self.persons:>8,} persons  import {self.import_s:6.2f} s {rate:9,.0f} /s   "
                f"raw {self.raw_s:6.2f} s {raw_rate:10,.0f} /s   ratio {rate / raw_rate:5.3f}   "
                f"{self.counts['status']}, {self.counts['households']:,} households, "
                f"{self.counts['rejected']} rows rejected")


async def bench_import(kind: str, dbs: ScratchDatabases, folder: Path, persons: int) -> ImportResult:
    settings = RegistrySettings(database_url="sqlite+aiosqlite:///unused.db")
    path = folder / f"{new_id()}.csv"
    size = write_csv(path, persons)
    engine = await migrated(await dbs.new("import"))
    try:
        import_s, counts = await run_import(engine, path, size, settings)
        assert await count_rows(engine) == (counts["households"], counts["persons"]), "rows do not match counts"
        assert counts["persons"] == persons, f"not every person was imported: {counts}"
    finally:
        await engine.dispose()
    households, members = raw_rows(persons, CitizenIdProtector(PiiSettings()))
    raw_engine = await migrated(await dbs.new("raw"))
    try:
        raw_s = await raw_insert(raw_engine, households, members)
        assert await count_rows(raw_engine) == (len(households), len(members))
    finally:
        await raw_engine.dispose()
    return ImportResult(kind, persons, import_s, raw_s, counts)


async def import_memory(folder: Path, persons: int) -> float:
    """Peak Python heap (tracemalloc) while importing a file of `persons` people, in MiB."""
    settings = RegistrySettings(database_url="sqlite+aiosqlite:///unused.db")
    path = folder / f"{new_id()}.csv"
    size = write_csv(path, persons)
    dbs = ScratchDatabases("sqlite", folder)
    engine = await migrated(await dbs.new("memory"))
    try:
        tracemalloc.start()
        tracemalloc.reset_peak()
        await run_import(engine, path, size, settings)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await engine.dispose()
    return peak / 2**20


async def post_households(folder: Path, requests: int, concurrency: int) -> tuple[float, float]:
    """POST /v1/households over loopback HTTP to `kaenkhun serve registry` (its own process)."""
    port = free_port()
    data = folder / "serve"
    env = os.environ | {"KAENKHUN_DATA_DIR": str(data), "KAENKHUN_REGISTRY_PORT": str(port),
                        "KAENKHUN_REGISTRY_RUN_BUS": "false", "KAENKHUN_LOG_LEVEL": "WARNING"}
    env.pop("KAENKHUN_REGISTRY_DATABASE_URL", None)
    kaenkhun = Path(sys.executable).parent / "kaenkhun"
    migrate = await asyncio.create_subprocess_exec(kaenkhun, "migrate", "registry", env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if await migrate.wait() != 0:
        raise RuntimeError("kaenkhun migrate registry failed")
    server = await asyncio.create_subprocess_exec(kaenkhun, "serve", "registry", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        token = issue_token(RegistrySettings().auth, client_id="bench", scopes=["registry:write", "registry:lookup"],
                            areas=["*"])
        headers = {"Authorization": f"Bearer {token}"}
        rows = people(requests * 2, seed=7)
        bodies = []
        current: dict[str, Any] | None = None
        for row in rows:
            if current is None or row["relation"] == "head":
                if current is not None:
                    bodies.append(current)
                current = {"address": {"subdistrict_code": row["subdistrict_code"], "village_no":
                                       int(row["village_no"]), "house_no": row["house_no"]},
                           "sources": row["sources"].split(";"), "welfare_card": row["welfare_card"] == "true",
                           "members": []}
            current["members"].append({k: row[k] for k in ("citizen_id", "title", "first_name", "last_name", "sex",
                                                            "birth_date", "relation")})
        bodies = bodies[:requests]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await wait_healthy(client)
            queue = iter(bodies)
            statuses: list[int] = []
            latencies: list[float] = []

            async def worker() -> None:
                for body in queue:
                    t = time.perf_counter()
                    response = await client.post("/v1/households", json=body, headers=headers)
                    latencies.append(time.perf_counter() - t)
                    statuses.append(response.status_code)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        assert statuses.count(201) == len(bodies), {s: statuses.count(s) for s in set(statuses)}
        latencies.sort()
        return len(bodies) / elapsed, latencies[int(len(latencies) * 0.99) - 1]
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)


async def run(args: argparse.Namespace) -> None:
    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-registry-") as tmp:
        folder = Path(tmp)
        print(f"registry benchmark: bulk import of {args.persons:,} persons (households of 1-5, Thai names), "
              "the registry's Importer (parse, validate, encrypt + hash IDs, insert, one event per household) "
              "beside a raw bulk insert of the same rows (sqlite3 executemany / asyncpg COPY) built beforehand")
        kinds = ["sqlite"] + (["postgres"] if args.postgres_url else [])
        for kind in kinds:
            dbs = ScratchDatabases(kind, folder, args.postgres_url, prefix="kk_bench")
            try:
                print((await bench_import(kind, dbs, folder, args.persons)).line(), flush=True)
            finally:
                await dbs.drop_all()
        print("\nmemory: peak Python heap while importing (tracemalloc; flat = independent of file size)")
        for persons in (args.persons // 10, args.persons):
            print(f"  {persons:>8,} persons  peak {await import_memory(folder, persons):7.1f} MiB", flush=True)
        rate, p99 = await post_households(folder, args.requests, args.concurrency)
        print(f"\nPOST /v1/households over loopback HTTP (uvicorn, one process, SQLite, bus off), "
              f"{args.requests:,} households, {args.concurrency} concurrent clients in this process: "
              f"{rate:,.0f} req/s, p99 {p99 * 1000:.1f} ms")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registry", description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for throwaway databases; PostgreSQL is measured when given")
    args = parser.parse_args(argv)
    prepare()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
