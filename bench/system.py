"""The whole system under the demo: time to load `--scale N` end to end, each service's peak memory, and the
end-to-end lag from a registry write to the reporting service showing it.

Also counted: the events each producing service wrote (its outbox rows, including the lag probe's few), the input
of docs/scaling.md's national estimate.

The broker and the four services run as separate processes on SQLite (`ops.launcher.System`, as
`kaenkhun up` starts them). The load is `kaenkhun demo --scale N` (HTTP imports, assessments, pushes) and is
timed until the reporting service shows every figure. Then, one at a time, a household is registered with
`POST /v1/households` in a village of its own and `GET /v1/reports/poverty?area=<sub-district>&level=village`
is polled (no pause) until that village shows it: the lag runs from the 201 to the first report showing it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import prepare
from bench.registry import citizen_id
from ops import demo
from ops.launcher import System

LAG_SUBDISTRICT = "400105"


@dataclass
class SystemFigures:
    scale: int
    households: int
    load_s: float
    peak_mib: dict[str, float]
    lag_ms: list[float]
    events: dict[str, int]  # outbox rows each producing service wrote during the load (its events)

    @property
    def lag_p50_p95(self) -> tuple[float, float]:
        cuts = statistics.quantiles(self.lag_ms, n=100)
        return cuts[49], cuts[94]


async def _lag(loader: demo.Loader, samples: int) -> list[float]:
    rng = random.Random(99)
    registry, reporting = loader.endpoints.registry, loader.endpoints.reporting
    lags = []
    for n in range(samples):
        village_no = 30 + n % 60  # villages the demo does not use (it numbers them up to 20)
        village = f"{LAG_SUBDISTRICT}{village_no:02d}"
        before = await _households(loader, reporting, village)
        await loader.call("POST", f"{registry}/v1/households", json={
            "address": {"subdistrict_code": LAG_SUBDISTRICT, "village_no": village_no, "house_no": f"lag-{n}"},
            "sources": ["vulnerable"], "welfare_card": False,
            "members": [{"citizen_id": citizen_id(rng), "title": "นาง", "first_name": "คำปุ่น",
                         "last_name": "ภูผาลา", "sex": "female", "birth_date": "1950-02-02", "relation": "head"}]})
        written = time.perf_counter()
        while await _households(loader, reporting, village) == before:
            pass
        lags.append((time.perf_counter() - written) * 1000)
    return lags


async def _households(loader: demo.Loader, reporting: str, village: str) -> int:
    body = await loader.call("GET", f"{reporting}/v1/reports/poverty", params={
        "area": village[:6], "level": "village", "survey_year": demo.SURVEY_YEAR})
    return next((int(r["households"]) for r in body["rows"] if r["area_code"] == village), 0)


def measure(scale: int, samples: int, say: demo.Say = print) -> SystemFigures:
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-system-") as tmp:
        # No rate limit (bench.prepare): the lag probe polls the report as fast as it can, as one client.
        system = System(Path(tmp)).start_all()
        try:
            loader = system.loader(demo.Scenario(scale=scale), say=say, timeout_s=3600)

            async def run() -> tuple[float, list[float]]:
                try:
                    _, _, seconds = await demo.run(loader)
                    return seconds, await _lag(loader, samples)
                finally:
                    await loader.close()

            seconds, lags = asyncio.run(run())
            events = {name: int(system.rows(name, "SELECT count(*) FROM outbox")[0][0])
                      for name in ("registry", "assessment", "assistance")}
            return SystemFigures(scale, loader.scenario.households, seconds, system.peak_memory_mib(), lags, events)
        finally:
            system.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.system", description=__doc__)
    parser.add_argument("--scale", type=int, default=30)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    prepare()
    figures = measure(args.scale, args.samples, say=lambda line: print(f"  {line}", flush=True))
    p50, p95 = figures.lag_p50_p95
    print(f"scale {figures.scale}: {figures.households:,} households loaded in {figures.load_s:.1f} s; peak memory "
          + ", ".join(f"{k} {v:.0f} MiB" for k, v in figures.peak_mib.items())
          + f"; lag registry → reporting p50 {p50:.0f} ms, p95 {p95:.0f} ms ({len(figures.lag_ms)} writes); events "
          + ", ".join(f"{k} {v:,}" for k, v in figures.events.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
