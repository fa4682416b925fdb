"""`make load`: the whole system under a steady mix of partner agencies' reads and writes for five minutes:
p50/p95/p99/max latency and errors per operation and overall, each service's peak memory, then the history
checker once reporting has caught up. Exit status 1 if any request failed or any check did.

The broker and the four services run as processes on SQLite (`ops.launcher.System`, as `kaenkhun up` starts
them), the services pinned with taskset to CPU 0 and this generator to CPU 1, with the default rate limits
(50 requests/s per client and service, burst 200). First the demo at scale 1 is loaded through the public
APIs (5,000 households and their assessments, teams, centres, budgets, grants); then, as staff, one partner
agency per load client is registered (`POST /v1/partners`, tied to the client's id) and 100 target-poor
households are referred to each (`POST /v1/households/{id}/referrals`).

The load: `--clients` partner clients (default 6), each with its own token (`registry:read registry:write
assessment:read assessment:write assistance:partner reporting:read`, area 40), share `--rate` requests/s
(default 40) for `--duration` s (default 300). It is open-loop: request i is sent at start + i/rate by client
i mod clients, whatever the earlier answers do, and its latency runs from that scheduled time to the end of
the answer, so a slow answer never hides the requests that queued behind it (no coordinated omission).
Any status but the expected one, and any transport error or timeout, is an error. The mix (% of requests):

    reads 80
      22  GET  registry   /v1/households/{id}                                      200
      12  GET  registry   /v1/households?subdistrict=…&limit=50
                          (one in three: ?district=…&q=<surname>&limit=50)         200
      12  GET  assessment /v1/households/{id}/assessments                          200
       8  GET  assistance /v1/referrals?status=open&limit=50  (the partner's own)   200
      10  GET  assistance /v1/referrals/{id}  (its steps and the help given)       200
      10  GET  reporting  /v1/reports/poverty?area=40&level=district&survey_year=2565           200
       6  GET  reporting  /v1/reports/assistance?area=40&level=district&fiscal_year=2565        200
    writes 20
       8  POST registry   /v1/households: 1–5 persons, Thai names, fresh valid citizen IDs       201
       6  POST assessment /v1/households/{id}/assessments: this year's survey round, every
                          indicator that applies answered; a household the load registered
                          at least 10 s before, else a demo household                          201
       6  POST assistance /v1/referrals/{id}/help: help the partner gave under its referral    201

Each client stays far under its limits: at 40 requests/s, 6 clients, the busiest service (registry, 42 %)
gets 2.8 requests/s from each. Written to bench/load.md (or `--output`) with the machine and the command.

`--capacity` (`make capacity`) instead searches the highest rate of the same mix held with p99 ≤ 100 ms and no
error, with the rate limits off, against the system and against a bare app doing the same database work, on
SQLite and (`--postgres-url`) PostgreSQL: bench/capacity.py, written to bench/capacity.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import prepare
from bench.load_mix import MIX, SEED, Operation, World, client_id, seed
from ops import consistency, demo
from ops.launcher import System
from services import SERVICES
from services.registry.settings import RegistrySettings
from shared.auth import issue_token
from shared.db import create_engine
from shared.settings import REPO_ROOT

SERVER_CPU, CLIENT_CPU = "0", 1
OUTPUT = REPO_ROOT / "bench" / "load.md"
SCOPES = ["registry:read", "registry:write", "registry:lookup", "assessment:read", "assessment:write",
          "assistance:partner", "reporting:read"]
PROGRESS_S = 30.0
TIMEOUT_S = 30.0


# -- the load -------------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, ms: float, error: str | None) -> None:
        self.latencies_ms.append(ms)
        if error is not None:
            self.errors += 1
            if len(self.examples) < 3:
                self.examples.append(error)


@dataclass
class Figures:
    tallies: dict[str, Tally]
    scheduled_rate: float
    sent: int
    seconds: float  # from the first scheduled request to the last answer
    slip_ms: float  # the generator's largest lag behind its schedule
    peak_mib: dict[str, float] = field(default_factory=dict)
    findings: list[consistency.Finding] = field(default_factory=list)
    settle_s: float = 0.0
    written: str = ""


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def drive(world: World, tokens: list[str], rate: float, duration: float, say: demo.Say) -> Figures:
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    https = [httpx.AsyncClient(headers={"Authorization": f"Bearer {t}"}, timeout=TIMEOUT_S, limits=limits)
             for t in tokens]
    tallies = {op.name: Tally() for op in MIX}
    window: list[float] = []
    pick = random.Random(f"{SEED}:mix")
    total = int(rate * duration)
    in_flight: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.5

    async def one(op: Operation, client: int, scheduled: float) -> None:
        call = op.build(world, client, scheduled)
        error: str | None = None
        answer: Any = None
        try:
            response = await https[client].request(call.method, call.url, params=call.params, json=call.json,
                                                     headers=call.headers)
            if response.status_code != op.expect:
                error = f"{call.method} {response.url} → {response.status_code}: {response.text[:400]}"
            elif call.done is not None:
                answer = response.json()
        except httpx.HTTPError as exc:  # refused, reset, timed out: as much an error as a 500
            error = f"{call.method} {call.url} → {exc!r}"
        ms = (loop.time() - scheduled) * 1000
        tallies[op.name].add(ms, error)
        window.append(ms)
        if error is None and call.done is not None:
            call.done(answer)

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_S)
            done = sum(len(t.latencies_ms) for t in tallies.values())
            errors = sum(t.errors for t in tallies.values())
            say(f"{loop.time() - start:5.0f} s  {done:7,} answered  {len(window) / PROGRESS_S:5.1f}/s  last "
                f"{PROGRESS_S:.0f} s: p50 {percentile(window, 0.5):6.1f} ms  p99 {percentile(window, 0.99):7.1f} ms"
                f"  max {max(window, default=0):7.1f} ms   errors {errors}   in flight {len(in_flight)}")
            window.clear()

    reporter = asyncio.create_task(progress())
    slip = 0.0
    try:
        operations, weights = list(MIX), [op.weight for op in MIX]
        for i in range(total):
            scheduled = start + i / rate
            wait = scheduled - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            slip = max(slip, loop.time() - scheduled)
            task = asyncio.create_task(one(pick.choices(operations, weights)[0], i % len(tokens), scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    finally:
        reporter.cancel()
        for client in https:
            await client.aclose()
    return Figures(tallies, rate, total, loop.time() - start, slip * 1000)


def tokens(clients: int, ttl_s: float) -> list[str]:
    """A token per load client, as a partner agency's client holds one (SCOPES, area 40)."""
    auth = RegistrySettings().auth  # the services' own settings: same keys, issuer and audience
    return [issue_token(auth, client_id=client_id(n), scopes=SCOPES, areas=[demo.PROVINCE], ttl_s=int(ttl_s))
            for n in range(clients)]


async def settle_and_check(system: System) -> tuple[list[consistency.Finding], float]:
    engines = {name: create_engine(url) for name, url in system.database_urls.items()}
    try:
        started = time.monotonic()
        settled = await consistency.settle(engines, kafka=system.kafka)
        if not settled:
            print(f"  (not settled within 300 s, {settled.waiting_for}: the checks run on a system still moving)")
        settled = time.monotonic() - started
        return await consistency.check(engines), settled
    finally:
        for engine in engines.values():
            await engine.dispose()


async def run(system: System, args: argparse.Namespace, say: demo.Say) -> Figures:
    world = await seed(system, args.clients, args.scale, say)
    signed = tokens(args.clients, args.duration + 3600)
    busiest = max(sum(op.weight for op in MIX if op.name.startswith(s)) for s in SERVICES) / 100
    say(f"load        {args.rate:g} requests/s for {args.duration:g} s from {args.clients} clients (each at most "
        f"{args.rate * busiest / args.clients:.1f} requests/s to one service; limit 50, burst 200)")
    figures = await drive(world, signed, args.rate, args.duration, say)
    figures.peak_mib = system.peak_memory_mib()
    helped = len(figures.tallies[MIX[-1].name].latencies_ms) - figures.tallies[MIX[-1].name].errors
    figures.written = (f"{world.registered:,} households registered ({world.assessed_new:,} of them then assessed), "
                       f"{world.assessed_again:,} demo households surveyed again, {helped:,} help records")
    say("settling    until every outbox is published and no inbox grows for 3 s …")
    figures.findings, figures.settle_s = await settle_and_check(system)
    return figures


# -- the report -----------------------------------------------------------------------------------------


def _row(name: str, expect: str, tally: Tally) -> str:
    values = tally.latencies_ms
    cells = [f"{percentile(values, q):.1f}" for q in (0.5, 0.95, 0.99)] + [f"{max(values, default=0):.1f}"]
    return f"| {name} | {len(values):,} | {expect} | {tally.errors} | " + " | ".join(cells) + " |"


def report(figures: Figures) -> list[str]:
    """The figures as markdown lines (a table, then a list), for the terminal and for bench/load.md."""
    overall = Tally()
    for tally in figures.tallies.values():
        overall.latencies_ms += tally.latencies_ms
        overall.errors += tally.errors
    expects = {op.name: str(op.expect) for op in MIX}
    answered = len(overall.latencies_ms)
    lines = ["| operation | count | expected | errors | p50 ms | p95 ms | p99 ms | max ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [_row(name, expects[name], tally) for name, tally in figures.tallies.items()]
    lines.append(_row("**overall**", "", overall))
    rate = f"{figures.scheduled_rate:g}"
    error_rate = overall.errors / answered if answered else 0.0
    failed = [f for f in figures.findings if not f.ok]
    lines += [
        "",
        f"- requests: {figures.sent:,} sent, {answered:,} answered, {overall.errors} errors (error rate "
        f"{error_rate:.3%})",
        f"- rate: {rate} requests/s scheduled, {answered / figures.seconds:.2f} achieved ({figures.seconds:.1f} s "
        f"from the first scheduled request to the last answer); the generator was at most {figures.slip_ms:.1f} ms "
        "behind its schedule",
        f"- written by the load: {figures.written}",
        "- peak memory (RSS, VmHWM) per service over the seeding and the load, MiB: "
        + ", ".join(f"{name} {mib:.0f}" for name, mib in figures.peak_mib.items()),
        f"- history checker (`kaenkhun check-consistency --settle`) after {figures.settle_s:.1f} s to settle: "
        + (f"all {len(figures.findings)} checks pass" if not failed else f"{len(failed)} of "
           f"{len(figures.findings)} checks FAIL"),
    ]
    lines += [f"  - {'ok' if f.ok else 'FAIL'} {f.check}: {f.summary}" for f in figures.findings]
    lines += [f"    - {example}" for f in failed for example in f.examples]
    if overall.errors:
        lines += ["", "First errors:"]
        lines += [f"- {example}" for tally in figures.tallies.values() for example in tally.examples]
    return lines


def write(path: Path, lines: list[str], args: argparse.Namespace, command: str) -> None:
    from bench.suite import machine

    path.write_text("\n".join([
        "# Load test", "",
        f"Written by `{command}`: {args.clients} partner clients, {args.rate:g} requests/s, open loop, for "
        f"{args.duration:g} s after the demo at scale {args.scale}; the mix and how latency is measured: the "
        "docstring of bench/load.py.", "",
        "## Machine", "", *machine(None), "", "## Figures", "", *lines, ""]), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, all clients together")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=6, help="partner clients, each with its own token")
    parser.add_argument("--scale", type=int, default=1, help="the demo's scale (1: 5,000 households)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"the markdown report (default {OUTPUT.relative_to(REPO_ROOT)}, with --capacity "
                             "bench/capacity.md)")
    capacity = parser.add_argument_group("capacity search (bench/capacity.py; rate limits off, --rate and "
                                         "--duration unused)")
    capacity.add_argument("--capacity", action="store_true",
                          help="search the highest rate held with p99 ≤ 100 ms and no error, beside a bare app")
    capacity.add_argument("--probe-s", type=float, default=25.0, help="seconds of each probe")
    capacity.add_argument("--confirm-s", type=float, default=120.0, help="seconds the rate found must hold")
    capacity.add_argument("--start-rate", type=float, default=20.0, help="the first probe's requests/s")
    capacity.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                          help="also search on PostgreSQL, in scratch databases on this server")
    args = parser.parse_args(argv)
    prepare("taskset")
    command = shlex.join([".venv/bin/python", "-m", "bench.load", *(sys.argv[1:] if argv is None else argv)])

    def say(line: str) -> None:
        print(f"  {line}", flush=True)

    if args.capacity:
        from bench import capacity as search

        return search.main(args, command, say)

    # The default limits, whatever this shell says: the load must stay under them, not switch them off.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAENKHUN_LIMITS_")}
    with tempfile.TemporaryDirectory(prefix="kaenkhun-load-") as tmp:
        system = System(Path(tmp), env=env, cpus=SERVER_CPU)
        try:
            print("starting the broker and the four services …", flush=True)
            system.start_all()
            if (os.cpu_count() or 1) > CLIENT_CPU:
                os.sched_setaffinity(0, {CLIENT_CPU})
            figures = asyncio.run(run(system, args, say))
        finally:
            system.stop()
    lines = report(figures)
    print("\n".join(["", *lines]), flush=True)
    write(args.output or OUTPUT, lines, args, command)
    print(f"\nwrote {args.output or OUTPUT}")
    errors = sum(t.errors for t in figures.tallies.values())
    return 1 if errors or not all(f.ok for f in figures.findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
