"""`make capacity` (`python -m bench.load --capacity`): the highest rate of the load test's partner mix that the
system sustains, beside the same search against a bare FastAPI app doing the same database work.

The capacity is the highest open-loop rate (requests/s, all clients together) at which the mix of
bench/load.py (its docstring: the operations, their weights, how latency is measured) runs with p99 ≤ 100 ms
over every request and not one error, held for `--confirm-s` (default 120 s). It is searched for with short
probes of `--probe-s` (default 25 s) at a time (`search`):

1. bracket: from `--start-rate` (default 20), double the rate while a probe passes (halve it while one fails);
2. bisect between the highest rate that passed and the lowest that failed, until they are within 5 % (or
   1 request/s) of each other;
3. confirm: hold the highest rate that passed for the full `--confirm-s`; if that fails, step down by 10 % and
   hold again, at most 5 holds in all (down to 0.9⁴ ≈ 66 % of the rate bisected to): if none holds, the
   search reports no capacity (0) rather than walking down further, and the probes in the report say why.

Each probe runs on what the earlier ones left (their writes stay; the database grows by the load's writes as it
would in service); before each probe the system settles (every outbox published, every inbox caught up, as the
history checker's `--settle`), so that no probe pays for the seeding's backlog or for the one before. A probe
reports its p50, p99, errors, how far the generator fell behind and the operation with the highest p99; at low
rates a short probe holds few requests (25 s at 4 requests/s: 100), so its p99 is close to its slowest answer.

The search runs twice on each database (SQLite; and PostgreSQL when `--postgres-url` or
KAENKHUN_TEST_POSTGRES_URL names a server, in scratch databases dropped afterwards): first against the system
(`ops.launcher.System`: the broker and the four services as processes, as `kaenkhun up` runs them), seeded as
`make load` seeds it (the demo at scale 1, a partner per client with its referrals); then, the services stopped,
against `bench.bare` (its docstring: what it does and leaves out) on the same four databases as the system left
them, as one uvicorn process, with the same clients, tokens and ids. Against the bare app the load's own new
households are not surveyed (no bus tells the assessment database of them): the assessment writes resurvey demo
households, as they do against the system until a registered household is 10 s old.

Rate limits are off for the search (`KAENKHUN_LIMITS_RATE_PER_S=0`, as every benchmark runs, bench.prepare):
the default 50 requests/s per client and service would otherwise fail the probes above ~700 requests/s with 429s
for a limit, not a capacity; the six clients of `make load` are kept. The services (and the bare app) are pinned
with taskset to CPU 0, the generator to CPU 1, as in `make load` (a generator behind its schedule shows in the
latencies, which are counted from the schedule, and in the report's column of how far it fell behind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.http import wait_up
from bench.load import CLIENT_CPU, SERVER_CPU, Tally, drive, percentile, tokens
from bench.load_mix import World, seed
from ops import consistency, demo
from ops.broker import free_port
from ops.launcher import System
from ops.scratchdb import ScratchDatabases
from services import SERVICES
from shared.db import create_engine
from shared.settings import REPO_ROOT

P99_MS = 100.0
TOLERANCE = 0.05  # bisect until the bracket is this narrow (relative), or FLOOR requests/s
FLOOR = 1.0
CEILING = 10_000.0
STEP_DOWN = 0.9
HOLDS = 5  # at most, stepping down by STEP_DOWN after each that fails
SETTLE_S = 300.0
OUTPUT = REPO_ROOT / "bench" / "capacity.md"


@dataclass(frozen=True)
class Trial:
    rate: float
    seconds: float
    ok: bool
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    slip_ms: float = 0.0
    slowest: str = ""  # the operation with the highest p99, and that p99


@dataclass
class Search:
    rate: float  # the highest rate held for the confirmation (0: none, not even FLOOR)
    trials: list[Trial] = field(default_factory=list)


Probe = Callable[[float, float], Awaitable[Trial]]  # (rate, seconds) -> how it went


async def search(probe: Probe, *, start: float, probe_s: float, confirm_s: float) -> Search:
    """Bracket by doubling (or halving) from `start`, bisect to TOLERANCE, then hold the rate found for
    `confirm_s`, stepping down by STEP_DOWN until a hold passes, at most HOLDS times (see the module's
    docstring)."""
    trials: list[Trial] = []

    async def passes(rate: float, seconds: float) -> bool:
        trials.append(await probe(rate, seconds))
        return trials[-1].ok

    good, bad = 0.0, start
    if await passes(start, probe_s):
        good, bad = start, 0.0
        while good * 2 <= CEILING:
            if not await passes(good * 2, probe_s):
                bad = good * 2
                break
            good *= 2
    else:
        while bad / 2 >= FLOOR:
            if await passes(bad / 2, probe_s):
                good = bad / 2
                break
            bad /= 2
    if good == 0.0:
        return Search(0.0, trials)
    while bad and bad - good > max(FLOOR, TOLERANCE * good):
        middle = round((good + bad) / 2, 1)
        if await passes(middle, probe_s):
            good = middle
        else:
            bad = middle
    for _ in range(HOLDS):
        if good < FLOOR:
            break
        if await passes(good, confirm_s):
            return Search(good, trials)
        good = round(good * STEP_DOWN, 1)
    return Search(0.0, trials)


# -- probing a target ---------------------------------------------------------------------------------------


def trial(rate: float, seconds: float, tallies: dict[str, Tally], slip_ms: float) -> Trial:
    latencies = [ms for t in tallies.values() for ms in t.latencies_ms]
    errors = sum(t.errors for t in tallies.values())
    p99 = percentile(latencies, 0.99)
    slowest = max(((percentile(t.latencies_ms, 0.99), name) for name, t in tallies.items() if t.latencies_ms),
                  default=(0.0, "none"))
    return Trial(rate, seconds, errors == 0 and p99 <= P99_MS, percentile(latencies, 0.5), p99, errors,
                 slip_ms, f"{slowest[1]} {slowest[0]:.0f}")


def prober(world: World, tokens: list[str], say: demo.Say, settle: Callable[[], Awaitable[None]]) -> Probe:
    async def probe(rate: float, seconds: float) -> Trial:
        await settle()
        figures = await drive(world, tokens, rate, seconds, lambda _: None)
        found = trial(rate, seconds, figures.tallies, figures.slip_ms)
        say(f"  {rate:7.1f} requests/s for {seconds:3.0f} s: p50 {found.p50_ms:6.1f} ms  p99 {found.p99_ms:7.1f} ms"
            f"  errors {found.errors}  generator behind by up to {found.slip_ms:.0f} ms  "
            + ("pass" if found.ok else "FAIL") + f"  (highest p99: {found.slowest} ms)")
        for example in [e for t in figures.tallies.values() for e in t.examples][:3]:
            say(f"    {example[:300]}")
        return found
    return probe


async def _settle_system(system: System) -> None:
    engines = {name: create_engine(url) for name, url in system.database_urls.items()}
    try:
        settled = await consistency.settle(engines, kafka=system.kafka, timeout_s=SETTLE_S)
        if not settled:
            raise RuntimeError(f"the system did not settle within {SETTLE_S:.0f} s: {settled.waiting_for}")
    finally:
        for engine in engines.values():
            await engine.dispose()


async def _rest() -> None:
    await asyncio.sleep(3)  # the bare app has nothing to catch up: only the last probe's connections to close


@contextmanager
def bare_app(database_urls: dict[str, str], log: Path) -> Iterator[str]:
    """`bench.bare` as one uvicorn process on the services' databases, pinned like them; yields its URL."""
    port = free_port()
    env = os.environ | {f"KAENKHUN_BENCH_{name.upper()}_URL": url for name, url in database_urls.items()}
    with open(log, "ab") as out:
        server = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn", "bench.bare:app",
                                   "--port", str(port), "--log-level", "warning"], env=env, cwd=REPO_ROOT,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/openapi.json")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextmanager
def generator_cpu() -> Iterator[None]:
    """This process (the load generator) on CLIENT_CPU while inside, as `make load` runs it."""
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- one database --------------------------------------------------------------------------------------------


@dataclass
class Capacity:
    database: str  # "SQLite" or "PostgreSQL"
    system: Search
    bare: Search
    seconds: float


def measure(kind: str, postgres_url: str | None, *, clients: int, scale: int, start: float, probe_s: float,
            confirm_s: float, say: demo.Say) -> Capacity:
    """The search against the system, then against the bare app on the databases it left (see the module)."""
    started = time.monotonic()
    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
    with tempfile.TemporaryDirectory(prefix="kaenkhun-capacity-") as tmp:
        folder = Path(tmp)
        dbs = ScratchDatabases(kind, folder, postgres_url, prefix="kk_capacity")
        try:
            urls = ({service: asyncio.run(dbs.new(service)) for service in SERVICES} if kind == "postgres"
                    else None)
            system = System(folder, cpus=SERVER_CPU, database_urls=urls)
            try:
                say(f"{name}: starting the broker and the four services …")
                system.start_all()
                with generator_cpu():
                    world = asyncio.run(seed(system, clients, scale, say))
                    signed = tokens(clients, 24 * 3600)
                    say(f"{name}: searching the system's capacity …")
                    found = asyncio.run(search(prober(world, signed, say, lambda: _settle_system(system)),
                                               start=start, probe_s=probe_s, confirm_s=confirm_s))
            finally:
                system.stop()
            say(f"{name}: the system holds {found.rate:g} requests/s; now the bare app on its databases …")
            world.assess_registered = False
            world.fresh.clear()
            with bare_app(system.database_urls, folder / "bare.log") as url, generator_cpu():
                world.endpoints = demo.Endpoints(*(f"{url}/{service}" for service in SERVICES))
                bare = asyncio.run(search(prober(world, signed, say, _rest), start=start, probe_s=probe_s,
                                          confirm_s=confirm_s))
            say(f"{name}: the bare app holds {bare.rate:g} requests/s")
        finally:
            asyncio.run(dbs.drop_all())
    return Capacity(name, found, bare, time.monotonic() - started)


def measure_all(postgres_url: str | None, *, clients: int, scale: int, start: float, probe_s: float,
                confirm_s: float, say: demo.Say) -> list[Capacity]:
    """`measure` on SQLite, then on PostgreSQL if `postgres_url` names a server."""
    kinds = ["sqlite", "postgres"] if postgres_url else ["sqlite"]
    return [measure(kind, postgres_url, clients=clients, scale=scale, start=start, probe_s=probe_s,
                    confirm_s=confirm_s, say=say) for kind in kinds]


# -- the report -----------------------------------------------------------------------------------------------


def ratio(capacity: Capacity) -> str:
    return f"{capacity.system.rate / capacity.bare.rate:.3f}" if capacity.bare.rate else "—"


def report(capacities: list[Capacity]) -> list[str]:
    """The capacities and every probe, as markdown lines."""
    lines = ["| database | system requests/s | bare app requests/s | ratio | search time |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {c.database} | {c.system.rate:g} | {c.bare.rate:g} | {ratio(c)} | {c.seconds / 60:.0f} min |"
              for c in capacities]
    lines += ["", "Every probe, in order (latency from the scheduled send to the end of the answer):", "",
              "| database | target | requests/s | seconds | p50 ms | p99 ms | errors | generator behind, ms | | "
              "operation with the highest p99, ms |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    lines += [f"| {c.database} | {target} | {t.rate:g} | {t.seconds:g} | {t.p50_ms:.1f} | {t.p99_ms:.1f} | "
              f"{t.errors} | {t.slip_ms:.0f} | {'pass' if t.ok else 'fail'} | {t.slowest} |"
              for c in capacities for target, s in (("system", c.system), ("bare", c.bare)) for t in s.trials]
    return lines



def main(args: argparse.Namespace, command: str, say: demo.Say) -> int:
    """`python -m bench.load --capacity`: the search on SQLite (and PostgreSQL), written to `args.output`."""
    from bench.suite import machine

    capacities = measure_all(args.postgres_url, clients=args.clients, scale=args.scale, start=args.start_rate,
                             probe_s=args.probe_s, confirm_s=args.confirm_s, say=say)
    lines = report(capacities)
    print("\n".join(["", *lines]), flush=True)
    output = args.output or OUTPUT
    output.write_text("\n".join([
        "# Capacity", "",
        f"Written by `{command}`: the highest open-loop rate of the partner mix of `make load` ({args.clients} "
        f"clients, after the demo at scale {args.scale}) held for {args.confirm_s:g} s with p99 ≤ {P99_MS:g} ms and "
        f"no error, searched with probes of {args.probe_s:g} s from {args.start_rate:g} requests/s, beside the same "
        "search against a bare FastAPI app doing the same database work; the method: the docstring of "
        "bench/capacity.py.", "",
        "## Machine", "", *machine(args.postgres_url), "", "## Figures", "", *lines, ""]), encoding="utf-8")
    print(f"\nwrote {output}")
    return 0 if all(c.system.rate and c.bare.rate for c in capacities) else 1
