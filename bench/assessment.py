"""Assessment benchmarks: households scored per second by the scoring rules alone, and assessments recorded
per second through the real service path (HTTP in-process, SQLite: projection read, scoring, revision check,
insert, two outbox events). Prints figures, asserts no time."""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import date
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord

from services import load
from services.assessment.indicators import Person, applies, load_files, score
from shared import migrations
from shared.auth import issue_token
from shared.bus.consumer import Consumer
from shared.events.envelope import CloudEvent, source_for
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from tests.apps import make_settings, running

ON = date(2022, 1, 15)
TPMAP = next(f.definition for f in load_files() if f.definition.id == "tpmap-2560")


def household(rng: random.Random) -> tuple[list[Person], dict[str, bool]]:
    members = [Person(date(rng.randint(1935, 2021), rng.randint(1, 12), 1), rng.random() < 0.1)
               for _ in range(rng.randint(1, 5))]
    answers = {i.code: rng.random() < 0.85 for i in TPMAP.indicators if applies(i, members, ON)}
    return members, answers


def bench_scoring(n: int) -> float:
    rng = random.Random(2565)
    population = [household(rng) for _ in range(n)]
    started = time.perf_counter()
    poor = sum(score(TPMAP, members=m, welfare_card=True, surveyed_on=ON, answers=a, measurements={}).poor
               for m, a in population)
    elapsed = time.perf_counter() - started
    print(f"  scoring rules alone: {n:,} households in {elapsed:.2f} s = {n / elapsed:,.0f} /s ({poor:,} poor)")
    return n / elapsed


async def bench_http(n: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings("assessment", f"sqlite+aiosqlite:///{tmp}/a.db", "127.0.0.1:1", run_bus=False,
                                 log_level="WARNING")
        app = load("assessment").create_app(settings)
        async with running(app) as client:
            await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
            await app.state.sets.sync(app.state.sessionmaker, app.state.settings.indicator_sets_dir)
            consumer: Consumer = app.state.consumer
            rng = random.Random(7)
            bodies: list[tuple[str, dict[str, Any]]] = []
            for _ in range(n):
                members, answers = household(rng)
                household_id = new_id()
                data = {"household_id": household_id, "version": 1, "status": "open", "province_code": "40",
                        "district_code": "4001", "subdistrict_code": "400101", "village_no": 1,
                        "village_code": "40010101", "sources": ["tpmap"], "welfare_card": True,
                        "members": [{"member_id": new_id(), "citizen_id_hash": "0" * 64, "sex": "male",
                                     "birth_date": m.birth_date.isoformat(), "relation": "head",
                                     "disability": m.disability} for m in members]}
                event = CloudEvent(source=source_for("registry"), type=HOUSEHOLD_REGISTERED.type, data=data)
                record = ConsumerRecord(topic="registry.household", partition=0, offset=0, timestamp=0,
                                        timestamp_type=0, key=None, value=event.to_json(), checksum=None,
                                        serialized_key_size=0, serialized_value_size=0, headers=[])
                await consumer.process([consumer.handlers.decode(record)])
                bodies.append((household_id, {"indicator_set": "tpmap-2560", "survey_year": 2565,
                                              "surveyed_on": ON.isoformat(), "answers": answers}))
            token = issue_token(settings.auth, client_id="bench", scopes=["assessment:write"], areas=["*"])
            headers = {"Authorization": f"Bearer {token}"}
            queue = iter(bodies)
            statuses: list[int] = []

            async def worker(http: httpx.AsyncClient) -> None:
                for household_id, body in queue:
                    response = await http.post(f"/v1/households/{household_id}/assessments", json=body,
                                               headers=headers)
                    statuses.append(response.status_code)

            started = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            assert statuses.count(201) == n, {s: statuses.count(s) for s in set(statuses)}
            print(f"  POST /v1/households/{{id}}/assessments (in-process ASGI, SQLite, {concurrency} concurrent): "
                  f"{n:,} in {elapsed:.2f} s = {n / elapsed:,.0f} /s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assessment", description=__doc__)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    print("assessment benchmark (tpmap-2560, households of 1-5 with random ages, 85 % of answers 'meets')")
    bench_scoring(args.households)
    asyncio.run(bench_http(args.requests, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
