"""Reporting benchmark: how fast the read models take events in, and GET /v1/reports/poverty at district
level with N persons loaded (p50/p95 over loopback HTTP to `kaenkhun serve reporting`), beside a DuckDB
scan of the same raw household rows, in the same run; and (`--part replicas`, or `all` when PostgreSQL is given)
ingest by one replica against two replicas sharing the partitions and the database, in the same run.

    .venv/bin/python -m bench.reporting [--persons 1000000] [--requests 200] [--postgres-url URL]
        [--part all|report|replicas] [--replica-persons 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa

from bench import prepare, wait_healthy
from ops.broker import free_port
from ops.scratchdb import ScratchDatabases
from services import load
from services.reporting.settings import ReportingSettings
from shared import migrations
from shared.auth import issue_token
from shared.db import create_engine
from tests.kit.apps import consumer_record, make_settings
from tests.kit.reporting import DIMENSIONS
from tests.kit.reporting import household_events as events
from tests.kit.reporting import synthetic_households as households

BATCH = 500


async def ingest(url: str, persons: int) -> tuple[int, float, list[dict[str, Any]]]:
    """Feed every household's events through the reporting consumer's real path (inbox included), in batches
    as Kafka would hand them over; returns (events, seconds, the raw household rows for the baseline)."""
    settings = make_settings("reporting", url, "127.0.0.1:1", run_bus=False, log_json=False)
    app = load("reporting").create_app(settings)
    raw: list[dict[str, Any]] = []
    count, elapsed = 0, 0.0
    async with app.router.lifespan_context(app):
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        consumer = app.state.consumer
        pending: list[Any] = []

        async def flush() -> None:
            nonlocal elapsed
            # As Kafka hands a poll over: the records of each partition together, in order.
            pending.sort(key=lambda r: r.topic)
            started = time.perf_counter()
            await consumer.process([consumer.handlers.decode(r) for r in pending])
            elapsed += time.perf_counter() - started
            pending.clear()

        for h in households(persons):
            raw.append({"village_code": h["village"], "persons": h["persons"], "poor": h["poor"],
                        "target_poor": h["target_poor"], "score": float(h["score"]),
                        **{d: d in h["deprived"] for d in DIMENSIONS}})
            for event_type, data in events(h):
                count += 1
                pending.append(consumer_record(event_type, data, offset=count))
            if len(pending) >= BATCH:
                await flush()
        if pending:
            await flush()
    return count, elapsed, raw


PARTITIONS = 4


def _replica(url: str, partitions: list[int], persons: int, ready: Any, go: Any, done: Any) -> None:
    """One replica's process: the records of its partitions in polls of up to 500 of one partition, in order,
    through the consumer's real path; puts (events, seconds)."""

    async def main() -> tuple[int, float]:
        settings = make_settings("reporting", url, "127.0.0.1:1", run_bus=False, log_json=False,
                                 log_level="WARNING")
        app = load("reporting").create_app(settings)
        async with app.router.lifespan_context(app):
            consumer = app.state.consumer
            queues: dict[tuple[str, int], list[Any]] = {}  # per topic and partition, as Kafka keeps them
            for n, h in enumerate(households(persons)):
                partition = n % PARTITIONS  # a household's events on one partition (its ids differ per process)
                if partition in partitions:
                    for event_type, data in events(h):
                        queue = queues.setdefault((event_type.topic, partition), [])
                        record = consumer_record(event_type, data, offset=len(queue))
                        queue.append(dataclasses.replace(record, partition=partition))
            polls, left = [], list(queues.values())
            while left:  # a poll of one partition's next records at a time, round robin over the partitions: the
                # same shape of poll, so the same handler runs, with one replica or two
                for queue in left:
                    polls.append(queue[:BATCH])
                    del queue[:BATCH]
                left = [q for q in left if q]
            ready.set()
            go.wait()
            started = time.perf_counter()
            for poll in polls:
                await consumer.apply([consumer.handlers.decode(r) for r in poll])
            return sum(len(p) for p in polls), time.perf_counter() - started

    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    done.put(asyncio.run(main()))


async def replicas(admin_url: str, persons: int) -> list[tuple[int, int, float]]:
    """Reporting ingest on PostgreSQL by one replica, then by two sharing the partitions and one database, each
    replica its own process: (replicas, events, seconds from the start of all to the end of the last)."""
    context = multiprocessing.get_context("spawn")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (1, 2):
            dbs = ScratchDatabases("postgres", Path(folder), admin_url)
            try:
                url = await dbs.new("reporting")
                engine = create_engine(url)
                await migrations.upgrade(engine, load("reporting").spec.migrations_dir)
                await engine.dispose()
                ready, go, done = [context.Event() for _ in range(count)], context.Event(), context.Queue()
                shares = [[p for p in range(PARTITIONS) if p % count == i] for i in range(count)]
                processes = [context.Process(target=_replica, args=(url, share, persons, ready[i], go, done))
                             for i, share in enumerate(shares)]
                for process in processes:
                    process.start()
                for event in ready:
                    await asyncio.to_thread(event.wait)
                go.set()
                finished = [await asyncio.to_thread(done.get) for _ in processes]
                for process in processes:
                    process.join()
                results.append((count, sum(n for n, _ in finished), max(s for _, s in finished)))
            finally:
                await dbs.drop_all()
    return results


async def serve_and_query(url: str, requests: int) -> list[float]:
    port = free_port()
    env = os.environ | {"KAENKHUN_REPORTING_DATABASE_URL": url, "KAENKHUN_REPORTING_PORT": str(port),
                        "KAENKHUN_REPORTING_RUN_BUS": "false", "KAENKHUN_LOG_LEVEL": "WARNING"}
    kaenkhun = Path(sys.executable).parent / "kaenkhun"
    server = await asyncio.create_subprocess_exec(kaenkhun, "serve", "reporting", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = issue_token(ReportingSettings().auth, client_id="bench", scopes=["reporting:read", "reporting:detail"],
                        areas=["*"])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            await wait_healthy(client)
            params = {"area": "40", "level": "district", "survey_year": 2565}
            latencies = []
            for i in range(requests + 10):
                started = time.perf_counter()
                response = await client.get("/v1/reports/poverty", params=params)
                took = time.perf_counter() - started
                assert response.status_code == 200, response.text
                if i >= 10:  # the first requests warm caches
                    latencies.append(took)
            return latencies
    finally:
        server.terminate()
        await server.wait()


def duckdb_scan(raw: list[dict[str, Any]], runs: int) -> tuple[list[float], int]:
    table = pa.Table.from_pylist(raw)
    con = duckdb.connect()
    con.register("households", table)
    query = """
        SELECT substr(village_code, 1, 4) AS district, count(*) AS households, sum(persons) AS persons,
               sum(CASE WHEN target_poor THEN 1 ELSE 0 END) AS target_poor_households,
               sum(CASE WHEN target_poor THEN persons ELSE 0 END) AS target_poor_persons,
               sum(CASE WHEN poor THEN persons ELSE 0 END) AS poor_persons,
               sum(CASE WHEN poor THEN persons * score ELSE 0 END) AS censored,
               sum(health::INT), sum(living::INT), sum(education::INT), sum(income::INT), sum(access::INT)
        FROM households GROUP BY 1 ORDER BY 1"""
    timings, rows = [], 0
    for i in range(runs + 10):
        started = time.perf_counter()
        rows = len(con.execute(query).fetchall())
        if i >= 10:
            timings.append(time.perf_counter() - started)
    return timings, rows


def quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49] * 1000, cuts[94] * 1000


async def run_replicas(persons: int, postgres_url: str | None) -> None:
    if not postgres_url:
        raise SystemExit("the replica benchmark needs PostgreSQL: --postgres-url or KAENKHUN_TEST_POSTGRES_URL")
    print(f"reporting replicas: {persons:,} persons, three events per household, {PARTITIONS} partitions, through "
          "the consumer's real path on PostgreSQL: one replica, then two sharing the partitions and the database "
          "(each replica a process of its own)")
    figures = await replicas(postgres_url, persons)
    rates = {count: events / seconds for count, events, seconds in figures}
    for count, events_, seconds in figures:
        print(f"  {count} replica{'s' if count > 1 else ''}: {events_:,} events in {seconds:.1f} s: "
              f"{rates[count]:,.0f} events/s")
    print(f"  two replicas / one: {rates[2] / rates[1]:.2f}")


async def run(persons: int, requests: int, postgres_url: str | None) -> None:
    print(f"reporting benchmark: {persons:,} persons (Khon Kaen's 199 sub-districts × 12 villages), three events per "
          "household (registered, assessed, poverty status) through the consumer's real path; then "
          f"GET /v1/reports/poverty?area=40&level=district, {requests} requests, one client, loopback HTTP to "
          "`kaenkhun serve reporting`, beside DuckDB scanning the same raw household rows in this process")
    with tempfile.TemporaryDirectory() as folder:
        kinds = [("sqlite", None)] + ([("postgres", postgres_url)] if postgres_url else [])
        for kind, admin_url in kinds:
            dbs = ScratchDatabases(kind, Path(folder), admin_url)
            url = await dbs.new("reporting")
            try:
                count, seconds, raw = await ingest(url, persons)
                print(f"  {kind:9} ingest {count:,} events in {seconds:.1f} s: {count / seconds:,.0f} events/s "
                      f"({len(raw):,} households)")
                latencies = await serve_and_query(url, requests)
                scans, districts = duckdb_scan(raw, requests)
                p50, p95 = quantiles(latencies)
                d50, d95 = quantiles(scans)
                print(f"  {kind:9} poverty report, {districts} districts: p50 {p50:.1f} ms, p95 {p95:.1f} ms   "
                      f"DuckDB scan p50 {d50:.1f} ms, p95 {d95:.1f} ms   p95 ratio {p95 / d95:.2f}")
            finally:
                await dbs.drop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"))
    parser.add_argument("--part", choices=("all", "report", "replicas"), default="all")
    parser.add_argument("--replica-persons", type=int, default=100_000)
    args = parser.parse_args()
    prepare()
    if args.part in ("all", "report"):
        asyncio.run(run(args.persons, args.requests, args.postgres_url))
    if args.part == "replicas" or (args.part == "all" and args.postgres_url):
        asyncio.run(run_replicas(args.replica_persons, args.postgres_url))
    elif args.part == "all":
        print("reporting replicas: not measured (PostgreSQL only: --postgres-url or KAENKHUN_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
