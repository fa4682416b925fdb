"""Every service's consumer: events/s it applies through its real path (decode, inbox, projection, all in the
service's own transaction), on SQLite and on PostgreSQL.

Synthetic households of Khon Kaen (`--persons`, 2.85 a household) make the events each service consumes, in
the order their producers publish them: `household.registered` (registry), `assessment.recorded` and
`poverty.status_changed` (assessment service), and for one household in three a referral created and updated
(assistance). Each service takes the events of the topics it subscribes to — registry: the referrals;
assessment: the households; assistance and reporting: households, assessments and statuses — in polls of
`KAENKHUN_KAFKA_CONSUMER_BATCH_SIZE` (500) records, each poll's records grouped by topic as Kafka hands a
poll over, applied by `Consumer.process`: what the consumer does with a poll once the broker has handed it
over (bench/bus.py measures the way through Kafka). The target of issue 23 is 10,000 events/s for every
consumer on both databases.

    .venv/bin/python -m bench.consumers [--persons 100000] [--postgres-url URL] [--services a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench import prepare
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from shared.events.assistance import REFERRAL_CREATED, REFERRAL_UPDATED
from shared.ids import new_id
from shared.settings import KafkaSettings
from tests.kit.apps import consumer_record, make_settings
from tests.kit.reporting import household_events, synthetic_households

SERVICES = ("registry", "assessment", "assistance", "reporting")


@dataclass
class Figure:
    service: str
    database: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _referrals(h: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """A referral of the household to a partner, created then taken up."""
    facts = {"referral_id": new_id(), "household_id": h["id"], "village_code": h["village"], "dimension": "income",
             "partner_id": new_id(), "partner_sector": "government", "partner_client_id": None,
             "due_on": "2026-03-31", "version": 1, "status": "open"}
    return [(REFERRAL_CREATED, facts),
            (REFERRAL_UPDATED, facts | {"version": 2, "status": "in_progress", "status_before": "open"})]


def events(persons: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    for n, h in enumerate(synthetic_households(persons)):
        yield from household_events(h)
        if n % 3 == 0:
            yield from _referrals(h)


def polls(topics: set[str], persons: int, size: int) -> Iterator[list[ConsumerRecord[bytes, bytes]]]:
    """The records of the service's topics, `size` to a poll, each poll's grouped by topic (in order within it)."""
    poll: list[ConsumerRecord[bytes, bytes]] = []
    offset = 0
    for event_type, data in events(persons):
        if event_type.topic not in topics:
            continue
        offset += 1
        poll.append(consumer_record(event_type, data, offset=offset))
        if len(poll) == size:
            yield sorted(poll, key=lambda r: r.topic)
            poll = []
    if poll:
        yield sorted(poll, key=lambda r: r.topic)


async def ingest(service: str, url: str, persons: int) -> tuple[int, float]:
    """(events applied, seconds in `Consumer.process` and decoding) for one service on a fresh database."""
    settings = make_settings(service, url, "127.0.0.1:1", run_bus=False, log_json=False)
    app = load(service).create_app(settings)
    count, elapsed = 0, 0.0
    async with app.router.lifespan_context(app):
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        consumer = app.state.consumer
        size = KafkaSettings().consumer_batch_size
        for poll in polls(set(consumer.topics), persons, size):
            started = time.perf_counter()
            applied = await consumer.process([consumer.handlers.decode(r) for r in poll])
            elapsed += time.perf_counter() - started
            if applied != len(poll):
                raise SystemExit(f"{service}: {applied} of a poll of {len(poll)} applied")
            count += applied
    return count, elapsed


async def measure(services: list[str], persons: int, postgres_url: str | None) -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        for kind, admin_url in [("sqlite", None)] + ([("postgres", postgres_url)] if postgres_url else []):
            dbs = ScratchDatabases(kind, Path(folder), admin_url)
            try:
                for service in services:
                    count, seconds = await ingest(service, await dbs.new(f"consumer_{service}"), persons)
                    figures.append(Figure(service, "SQLite" if kind == "sqlite" else "PostgreSQL", count, seconds))
                    print(f"  {kind:9} {service:10} {count:,} events in {seconds:.1f} s: "
                          f"{figures[-1].rate:,.0f} events/s", flush=True)
            finally:
                await dbs.drop_all()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"))
    parser.add_argument("--services", default=",".join(SERVICES))
    args = parser.parse_args()
    prepare()
    services = [s for s in args.services.split(",") if s]
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise SystemExit(f"unknown services: {', '.join(sorted(unknown))}; choose among {', '.join(SERVICES)}")
    print(f"consumers: {args.persons:,} persons' events through each service's Consumer.process, "
          f"{KafkaSettings().consumer_batch_size} records a poll")
    asyncio.run(measure(services, args.persons, args.postgres_url))


if __name__ == "__main__":
    main()
