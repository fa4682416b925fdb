"""`make bench-province`: a synthetic Khon Kaen of TPMAP's size (353,910 households, 1,140,733 persons) loaded
through the public imports only, on PostgreSQL, timed phase by phase until reporting shows all of it.

The province (`Province`, seeded: the same seed and fraction give the same people) has the official 26
districts and 199 sub-districts (geothai, as the registry) and 2,139 villages, the province's count (geothai names
no villages: each sub-district gets at least three, the rest spread by the seed, numbered from 1). Households of
1 to 9 persons (TPMAP's 3.22 on average, the total exact), with Thai names, ages as on the survey date, valid
citizen IDs that are distinct by construction (no set of a million IDs in memory), `tpmap` as their source,
about 45 % with a welfare card and 15 % deprived in one to three indicators (synthetic shares, not TPMAP's).
Two CSV files are written a household at a time to temporary files: the registry import's (one row per
person, a `household_key` per household) and the assessment import's for survey year B.E. 2561 (one row per
household, by the same `household_key`: nobody lists the households to learn their ids), answering exactly the
indicators that apply to the household's members.

The run (`--fraction F` loads a proportional smaller province; the whole one takes tens of minutes): a
PostgreSQL scratch database per service (`ops.scratchdb`), the broker and the four services as processes
(`ops.launcher.System`), then the phases, each with its wall time, its rate and each service's peak RSS during
it (VmHWM, reset at the phase's start through /proc/PID/clear_refs):
- generate: both files;
- registry import: `POST /v1/imports` of the whole file until its job is done (every person created);
- to assessment: until the assessment service's inbox holds every household's registration (`GET /v1/bus`);
- assessment import: `POST /v1/assessment-imports` of the whole file until its job is done (every assessment
  created, none rejected);
- reporting: until `GET /v1/reports/poverty` shows every household, person, assessment and target-poor
  household, and `/v1/reports/freshness` says `caught_up` (nothing left in an outbox or unapplied; the
  phase's rate: the events reporting applied in the meantime; it consumes all along, so many arrive during
  the imports);
then the poverty report of the province by district, of the province by village (every village) and of
Mueang Khon Kaen by village, a few requests each, p50 / p95. The figures go to bench/province.md (`--output`);
`make bench BENCH_ARGS="--province F"` adds them to the suite. Prints figures and asserts no time; it stops if
any row was rejected or anything is missing.

    .venv/bin/python -m bench.province [--fraction 1.0] [--seed 2561] [--requests 20] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from bench import prepare
from bench.assessment import TPMAP
from ops.demo.loader import Loader
from ops.demo.population import Home, People, assessment_row, household_rows
from ops.launcher import System
from ops.scratchdb import ScratchDatabases
from services import SERVICES
from services.assessment.scoring import Person, applies
from services.assessment.sets.schemas import IndicatorSet
from services.registry.imports.schemas import COLUMNS
from shared import areas
from shared.pii import check_digit
from shared.settings import DEV_CLIENT_SECRET, REPO_ROOT

PROVINCE = "40"
HOUSEHOLDS = 353_910  # TPMAP's survey of Khon Kaen
PERSONS = 1_140_733
VILLAGES = 2_139  # the province's villages (หมู่บ้าน), as Wikipedia counts them; geothai names none
SURVEY_YEAR = 2561
SURVEYED_ON = date(2018, 3, 15)  # B.E. 2561
WELFARE_CARD = 0.45
DEPRIVED = 0.15
# Household sizes 1 … 9 and their weights (mean ≈ 3.3; `sizes` then makes the persons exact).
SIZE_WEIGHTS = (0.12, 0.22, 0.24, 0.21, 0.12, 0.06, 0.02, 0.007, 0.003)
# Citizen IDs: "1" or "3", the province's "40", then nine digits from the person's serial by an affine map
# that is a bijection of 0 … 10⁹ − 1 (the multiplier shares no factor with 10⁹), then the check digit.
ID_SPACE = 10**9
ID_MULTIPLIER = 387_420_489  # 3¹⁸
RESULTS = REPO_ROOT / "bench" / "province.md"
# The poverty reports timed once everything is loaded: (area, level) of `GET /v1/reports/poverty`.
REPORTS = {"province by district": (PROVINCE, "district"), "province by village": (PROVINCE, "village"),
           "Mueang Khon Kaen by village": ("4001", "village")}

Say = Callable[[str], None]


@dataclass(frozen=True)
class Province:
    """What is generated: the seed and the fraction of TPMAP's Khon Kaen decide every person."""

    fraction: float = 1.0
    seed: int = 2561

    @property
    def households(self) -> int:
        return max(1, round(HOUSEHOLDS * self.fraction))

    @property
    def persons(self) -> int:
        return max(self.households, round(PERSONS * self.fraction))


def villages(rng: random.Random) -> list[tuple[str, int]]:
    """The province's villages as (sub-district code, village number): at least three per sub-district, the
    rest spread over the sub-districts by `rng`."""
    province = areas.find(PROVINCE)
    assert province is not None
    subdistricts = [s.code for d in areas.children(province) for s in areas.children(d)]
    count = dict.fromkeys(subdistricts, 3)
    for _ in range(VILLAGES - 3 * len(subdistricts)):
        count[rng.choice(subdistricts)] += 1
    return [(code, number) for code in subdistricts for number in range(1, count[code] + 1)]


def sizes(province: Province, rng: random.Random) -> list[int]:
    """Each household's size, adding up to exactly `province.persons`."""
    drawn = rng.choices(range(1, len(SIZE_WEIGHTS) + 1), SIZE_WEIGHTS, k=province.households)
    short = province.persons - sum(drawn)
    if short > (len(SIZE_WEIGHTS) - 1) * province.households + sum(1 - s for s in drawn):
        raise ValueError(f"{province.persons:,} persons do not fit in {province.households:,} households")
    while short:
        n = rng.randrange(len(drawn))
        if short > 0 and drawn[n] < len(SIZE_WEIGHTS):
            drawn[n] += 1
            short -= 1
        elif short < 0 and drawn[n] > 1:
            drawn[n] -= 1
            short += 1
    return drawn


class Residents(People):
    """The demo's Thai persons (names, ages, household shapes), with citizen IDs distinct by construction."""

    def __init__(self, rng: random.Random, on: date) -> None:
        super().__init__(rng, on)
        self.serial = 0
        self.offset = rng.randrange(ID_SPACE)

    def citizen_id(self, born: date) -> str:
        first = "3" if born.year < 1984 else "1"
        body = f"{first}{PROVINCE}{(ID_MULTIPLIER * self.serial + self.offset) % ID_SPACE:09d}"
        self.serial += 1
        return body + check_digit(body)


@dataclass
class Files:
    """The two import files written, and what reporting must show once both are loaded."""

    registry: Path
    assessments: Path
    households: int = 0
    persons: int = 0
    target_poor_households: int = 0
    target_poor_persons: int = 0
    mib: tuple[float, float] = (0.0, 0.0)  # the two files' sizes


def assessment_columns(indicator_set: IndicatorSet) -> list[str]:
    return ["household_key", "indicator_set", "survey_year", "surveyed_on",
            *(i.measurement.name if i.measurement else i.code for i in indicator_set.indicators)]


def _writer(out: IO[str], columns: list[str]) -> csv.DictWriter[str]:
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n", restval="")
    writer.writeheader()
    return writer


def write_files(province: Province, folder: Path, indicator_set: IndicatorSet = TPMAP) -> Files:
    """Both import files, a household at a time (only the households' sizes are held, not their people)."""
    rng = random.Random(province.seed)
    answers_rng = random.Random(f"{province.seed}:assessments")
    people = Residents(rng, SURVEYED_ON)
    homes_at = villages(rng)
    houses = [0] * len(homes_at)
    files = Files(folder / "households-2561.csv", folder / "assessments-2561.csv")
    with files.registry.open("w", encoding="utf-8-sig", newline="") as registry_out, \
            files.assessments.open("w", encoding="utf-8-sig", newline="") as assessments_out:
        registry = _writer(registry_out, list(COLUMNS))
        assessments = _writer(assessments_out, assessment_columns(indicator_set))
        for n, size in enumerate(sizes(province, rng), 1):
            at = rng.randrange(len(homes_at))
            houses[at] += 1
            subdistrict, village_no = homes_at[at]
            home = Home(f"KK{n:07d}", subdistrict, village_no, f"{houses[at]}/{rng.randint(1, 9)}", ["tpmap"],
                        welfare_card=rng.random() < WELFARE_CARD, members=people.household(size))
            if rng.random() < DEPRIVED:
                persons = [Person(m.birth_date, m.disability) for m in home.members]
                applicable = [i.code for i in indicator_set.indicators if applies(i, persons, SURVEYED_ON)]
                home.fails = set(rng.sample(applicable, min(len(applicable), rng.choice((1, 1, 2, 2, 3)))))
            registry.writerows(household_rows([home]))
            assessments.writerow(assessment_row(home, indicator_set, answers_rng, survey_year=SURVEY_YEAR,
                                                surveyed_on=SURVEYED_ON, by_key=True))
            files.households += 1
            files.persons += len(home.members)
            if home.target:
                files.target_poor_households += 1
                files.target_poor_persons += len(home.members)
    files.mib = (files.registry.stat().st_size / 2**20, files.assessments.stat().st_size / 2**20)
    return files


# -- the run ---------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float
    count: int
    unit: str
    peak_mib: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> str:
        """Counted per second, or "—" where that says nothing: a phase under a second (the assessment service had
        every household when the registry job ended) or with nothing counted (reporting had applied every event
        when the assessment job ended)."""
        return f"{self.count / self.seconds:,.0f}" if self.seconds >= 1 and self.count else "—"


@dataclass
class Figures:
    province: Province
    files: Files
    phases: list[Phase]
    reports_ms: dict[str, tuple[float, float]]  # report (of `REPORTS`) → (p50, p95)
    requests: int
    load_average: tuple[float, float]  # the machine's, over 1 minute, as the load starts and as it ends

    @property
    def peak_mib(self) -> dict[str, float]:
        """Each service's peak RSS over the whole load: the highest of its phases'."""
        peaks: dict[str, float] = {}
        for phase in self.phases:
            for name, mib in phase.peak_mib.items():
                peaks[name] = max(peaks.get(name, 0.0), mib)
        return peaks

    @property
    def load_s(self) -> float:
        """From the registry upload until reporting shows everything (the generation not counted)."""
        return sum(p.seconds for p in self.phases if p.name != "generate")


def reset_peaks(system: System) -> None:
    """Start each service's VmHWM again from its current RSS (Linux: "5" to /proc/PID/clear_refs)."""
    for process in system.processes.values():
        try:
            Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        except OSError:  # not Linux, or not allowed: the peak then counts from the service's start
            pass


async def timed(system: System | None, name: str, unit: str, say: Say, work: Callable[[], Awaitable[int]],
                ) -> Phase:
    if system is not None:
        reset_peaks(system)
    started = time.perf_counter()
    count = await work()
    phase = Phase(name, time.perf_counter() - started, count, unit,
                  system.peak_memory_mib() if system is not None else {})
    say(f"{name:18} {phase.seconds:8.1f} s  {count:>10,} {unit}  {phase.rate:>9} {unit}/s"
        + (("  peak RSS " + ", ".join(f"{k} {v:.0f}" for k, v in phase.peak_mib.items()) + " MiB")
           if phase.peak_mib else ""))
    return phase


class Run:
    """The loading client: the demo's loader (sign-in, retries, problem+json shown as it came)."""

    def __init__(self, system: System, files: Files, say: Say, timeout_s: float) -> None:
        self.system, self.files, self.say, self.timeout_s = system, files, say, timeout_s
        self.loader: Loader = system.loader(say=say, timeout_s=timeout_s)
        self.loader.http.timeout = httpx.Timeout(600.0)  # a whole province's file in one upload
        self.admin: dict[str, str] = {}

    async def sign_in(self) -> None:
        """As the province's staff; and as the administrator, for the assessment service's `/v1/bus` (first:
        once signed in, the loader sends its token with every call)."""
        token = await self.loader.call("POST", f"{self.system.url('registry')}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "kaenkhun-admin", "client_secret": DEV_CLIENT_SECRET,
            "scope": "assessment:admin"})
        self.admin = {"Authorization": f"Bearer {token['access_token']}"}
        await self.loader.sign_in()

    async def until(self, what: str, check: Callable[[], Awaitable[str | None]]) -> None:
        """Poll `check` (None once done, else what is still missing) every second, saying so every 10 s."""
        deadline, said = time.monotonic() + self.timeout_s, time.monotonic()
        while (missing := await check()) is not None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: still {missing} after {self.timeout_s:.0f} s")
            if time.monotonic() - said >= 10:
                self.say(f"  {what}: {missing}")
                said = time.monotonic()
            await asyncio.sleep(1)

    async def upload(self, service: str, path: str, file: Path, rows: int) -> dict[str, Any]:
        """Upload an import file and wait until its job has ended; the job's final status."""
        url = f"{self.system.url(service)}{path}"
        with file.open("rb") as content:
            job = await self.loader.call("POST", url, files={"file": (file.name, content, "text/csv")},
                                         expect=(202,))
        status: dict[str, Any] = {}

        async def check() -> str | None:
            nonlocal status
            status = await self.loader.call("GET", f"{url}/{job['id']}", params={"errors_limit": 5})
            if status["status"] == "failed":
                raise SystemExit(f"{file.name}: the import failed: {status['failure']}")
            done = status["status"] == "done"
            return None if done else f"{status['status']}, {status['checkpoint_row']:,} / {rows:,} rows"

        await self.until(f"{service} import", check)
        if status["rows_rejected"]:
            raise SystemExit(f"{file.name}: {status['rows_rejected']:,} rows rejected, e.g. {status['errors']}")
        return status

    async def registry_import(self) -> int:
        status = await self.upload("registry", "/v1/imports", self.files.registry, self.files.persons)
        made = (status["households_created"], status["persons_created"])
        if made != (self.files.households, self.files.persons):
            raise SystemExit(f"registry import created {made}, wanted {self.files.households, self.files.persons}")
        return self.files.persons

    async def to_assessment(self) -> int:
        """Until the assessment service has every household's registration (its inbox)."""
        async def check() -> str | None:
            bus = await self.loader.call("GET", f"{self.system.url('assessment')}/v1/bus", headers=self.admin)
            received = sum(bus["inbox"].values())
            return None if received >= self.files.households else f"{received:,} / {self.files.households:,}"

        await self.until("registry events to assessment", check)
        return self.files.households

    async def assessment_import(self) -> int:
        status = await self.upload("assessment", "/v1/assessment-imports", self.files.assessments,
                                   self.files.households)
        if status["assessments_created"] != self.files.households:
            raise SystemExit(f"assessment import created {status['assessments_created']:,}, wanted "
                             f"{self.files.households:,}")
        return self.files.households

    async def freshness(self) -> tuple[int, bool]:
        """The reporting service's events applied over every topic, and whether it has caught up (every event
        the producers have written is published and applied: `caught_up`)."""
        freshness = await self.loader.call("GET", f"{self.system.url('reporting')}/v1/reports/freshness")
        return sum(t["events_applied"] for t in freshness["topics"]), bool(freshness["caught_up"])

    async def reporting(self) -> int:
        """Until the poverty report shows every household, person, assessment and target-poor household, and the
        reporting service has caught up; the events it applied meanwhile."""
        base = f"{self.system.url('reporting')}/v1/reports"
        files = self.files
        before, _ = await self.freshness()
        wanted = {"households": files.households, "persons": files.persons, "assessed_households": files.households,
                  "assessed_persons": files.persons, "target_poor_households": files.target_poor_households,
                  "target_poor_persons": files.target_poor_persons}

        async def check() -> str | None:
            report = await self.loader.call("GET", f"{base}/poverty", params={
                "area": PROVINCE, "survey_year": SURVEY_YEAR})
            total = report["total"]
            differ = {k: (total.get(k), v) for k, v in wanted.items() if total.get(k) != v}
            if differ:
                return ", ".join(f"{k} {got:,} / {want:,}" for k, (got, want) in differ.items())
            _, caught_up = await self.freshness()
            return None if caught_up else "not caught up (events unpublished or not applied)"

        await self.until("reporting", check)
        after, _ = await self.freshness()
        return after - before

    async def reports(self, requests: int) -> dict[str, tuple[float, float]]:
        """p50 and p95 of `requests` of each of `REPORTS`, one at a time (after two to warm up)."""
        base = f"{self.system.url('reporting')}/v1/reports/poverty"
        found = {}
        for name, (area, level) in REPORTS.items():
            params = {"area": area, "level": level, "survey_year": SURVEY_YEAR}
            times = []
            for n in range(requests + 2):
                started = time.perf_counter()
                await self.loader.call("GET", base, params=params)
                if n >= 2:
                    times.append((time.perf_counter() - started) * 1000)
            found[name] = quantiles(times)
            self.say(f"poverty report {name}: p50 {found[name][0]:.1f} ms, p95 {found[name][1]:.1f} ms "
                     f"({requests} requests)")
        return found


def quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


async def measure(province: Province, postgres_url: str, *, requests: int = 20, say: Say = print,
                  timeout_s: float = 7200.0) -> Figures:
    """Generate, start the system on fresh PostgreSQL databases, load, wait, time the reports; stop it all."""
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-province-") as tmp:
        folder = Path(tmp)
        load_before = os.getloadavg()[0]
        say(f"province: {province.households:,} households, {province.persons:,} persons (fraction "
            f"{province.fraction:g} of TPMAP's Khon Kaen), seed {province.seed}")
        files: Files | None = None

        async def generate() -> int:
            nonlocal files
            files = await asyncio.to_thread(write_files, province, folder)
            return files.persons

        phases = [await timed(None, "generate", "persons", say, generate)]
        assert files is not None
        say(f"  files: registry {files.mib[0]:,.1f} MiB, assessments {files.mib[1]:,.1f} MiB; "
            f"{files.target_poor_households:,} target-poor households")
        dbs = ScratchDatabases("postgres", folder, postgres_url, prefix="kk_province")
        system: System | None = None
        try:
            urls = {name: await dbs.new(name) for name in SERVICES}
            system = System(folder, database_urls=urls).start_all()
            run = Run(system, files, say, timeout_s)
            try:
                await run.sign_in()
                for name, unit, work in (("registry import", "persons", run.registry_import),
                                         ("to assessment", "households", run.to_assessment),
                                         ("assessment import", "households", run.assessment_import),
                                         ("reporting", "events", run.reporting)):
                    phases.append(await timed(system, name, unit, say, work))
                load_after = os.getloadavg()[0]
                reports = await run.reports(requests)
            finally:
                await run.loader.close()
        finally:
            if system is not None:
                system.stop()
            await dbs.drop_all()
    return Figures(province, files, phases, reports, requests, (load_before, load_after))


# -- the results -----------------------------------------------------------------------------------------------


def table(figures: Figures) -> list[str]:
    lines = ["| phase | wall s | count | rate /s | peak RSS MiB during it |", "| --- | ---: | ---: | ---: | --- |"]
    for p in figures.phases:
        peak = ", ".join(f"{k} {v:.0f}" for k, v in p.peak_mib.items()) or "—"
        lines.append(f"| {p.name} | {p.seconds:,.1f} | {p.count:,} {p.unit} | {p.rate} | {peak} |")
    lines.append(f"| **load, registry upload → reporting shows all** | **{figures.load_s:,.1f}** | "
                 f"{figures.files.persons:,} persons | {figures.files.persons / figures.load_s:,.0f} | |")
    return lines


def write(figures: Figures, machine: list[str], command: str, path: Path = RESULTS) -> Path:
    f, p = figures.files, figures.province
    path.write_text("\n".join([
        "# Province-scale benchmark", "",
        f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. What it does: the docstring of "
        "bench/province.py. Figures from one run; nothing here is asserted.", "",
        "## Machine", "", *machine, "",
        "## The province", "",
        f"- fraction {p.fraction:g} of TPMAP's Khon Kaen (353,910 households, 1,140,733 persons), seed {p.seed}: "
        f"**{f.households:,} households, {f.persons:,} persons** in 26 districts, 199 sub-districts and "
        f"{VILLAGES:,} villages; {f.target_poor_households:,} target-poor households ({f.target_poor_persons:,} "
        f"persons) in survey year B.E. {SURVEY_YEAR}",
        f"- import files (UTF-8 CSV): registry {f.mib[0]:,.1f} MiB, assessments {f.mib[1]:,.1f} MiB",
        "- PostgreSQL, one scratch database per service; the broker and the four services as processes",
        f"- the machine's 1-minute load average: {figures.load_average[0]:.1f} as the run started (other work "
        f"on the machine), {figures.load_average[1]:.1f} once reporting showed everything (this run's processes "
        "included)", "",
        "## Phases", "", *table(figures), "",
        "Peak RSS per service over the whole load (VmHWM, the highest of its phases'): "
        + ", ".join(f"{k} {v:.0f} MiB" for k, v in figures.peak_mib.items()) + ".", "",
        "## Reports at that size", "",
        "| `GET /v1/reports/poverty?survey_year=2561&…` | p50 ms | p95 ms |", "| --- | ---: | ---: |",
        *(f"| {name}: `area={area}&level={level}` | {figures.reports_ms[name][0]:.1f} | "
          f"{figures.reports_ms[name][1]:.1f} |" for name, (area, level) in REPORTS.items()),
        "", f"Each over {figures.requests} requests, one at a time, after two to warm up. Rows: one per district; "
        "one per village with households.", ""]), encoding="utf-8")
    return path


def rows(figures: Figures) -> list[tuple[str, str]]:
    """The suite's rows (figure, value)."""
    f = figures.files
    phases = ", ".join(f"{p.name} {p.seconds:,.0f} s ({p.rate} {p.unit}/s)" for p in figures.phases
                       if p.name != "generate")
    return [(f"province load through the public imports, PostgreSQL ({f.households:,} households, {f.persons:,} "
             f"persons): registry upload → reporting shows all, s", f"{figures.load_s:,.0f}"),
            ("province load by phase", phases),
            ("province load: peak RSS per service, MiB",
             ", ".join(f"{k} {v:.0f}" for k, v in figures.peak_mib.items())),
            *((f"province: poverty report p50 / p95 ms, {name} (`area={area}&level={level}`)",
               f"{figures.reports_ms[name][0]:.1f} / {figures.reports_ms[name][1]:.1f}")
              for name, (area, level) in REPORTS.items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.province", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="of TPMAP's Khon Kaen (default 1.0: 353,910 households, 1,140,733 persons)")
    parser.add_argument("--seed", type=int, default=2561)
    parser.add_argument("--requests", type=int, default=20, help="per report, for its p50 / p95")
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for the scratch databases (default KAENKHUN_TEST_POSTGRES_URL)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be above 0 and at most 1")
    if not args.postgres_url:
        raise SystemExit("bench.province runs on PostgreSQL: set KAENKHUN_TEST_POSTGRES_URL or pass --postgres-url")
    prepare()
    from bench.suite import machine

    described = machine(args.postgres_url)  # the commit as the run starts
    figures = asyncio.run(measure(Province(args.fraction, args.seed), args.postgres_url, requests=args.requests,
                                  say=lambda line: print(line, flush=True)))
    command = "make bench-province" + (f" BENCH_ARGS='--fraction {args.fraction:g}'" if args.fraction != 1 else "")
    path = write(figures, described, command, args.output)
    print(f"load {figures.load_s:,.1f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
